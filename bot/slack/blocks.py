"""Shared Block Kit helpers: text objects, simple blocks, desk-local times. Pure functions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot import calendar
from bot.desks.models import Desk
from bot.text import clean

Blocks = list[dict[str, Any]]


def escape(text: str | None) -> str:
    """User text made inert for ``mrkdwn``: Slack's three control characters escaped as Slack
    documents (``&`` ``<`` ``>`` -> ``&amp;`` ``&lt;`` ``&gt;``), so ``<!channel>``, ``<@U…>``,
    ``<!subteam^…>`` and ``<url|label>`` show as text and notify nobody; invisible characters
    removed. https://api.slack.com/reference/surfaces/formatting#escaping
    Every piece of user-written text placed in mrkdwn goes through this helper."""
    if not text:
        return ""
    return clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def md(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def section(text: str, block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": md(text)}
    if block_id:
        block["block_id"] = block_id
    return block


def context_block(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [md(text)]}


def local_time(at: datetime, desk: Desk) -> str:
    """'09:00 EST' in the desk's zone."""
    return at.astimezone(calendar.zone(desk.timezone)).strftime("%H:%M %Z")


def local_datetime(at: datetime, desk: Desk) -> str:
    return at.astimezone(calendar.zone(desk.timezone)).strftime("%a %d %b %H:%M %Z")
