"""Shared Block Kit helpers: text objects, simple blocks, desk-local times. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence
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


# --- Slack's limits, and fitting long lists into them ---------------------------------------
# https://api.slack.com/reference/block-kit/blocks : "up to 50 blocks in each message, and 100
# blocks in modals or Home tabs".
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
# https://api.slack.com/reference/block-kit/blocks#section : section text at most 3,000 characters.
SECTION_TEXT = 3000
# https://api.slack.com/reference/block-kit/blocks#header : header text at most 150 characters.
HEADER_TEXT = 150
# https://api.slack.com/reference/block-kit/block-elements#button : button text at most 75.
BUTTON_TEXT = 75
# https://api.slack.com/reference/surfaces/views : private_metadata at most 3,000 characters.
PRIVATE_METADATA = 3000
# https://api.slack.com/methods/chat.postMessage#truncating : text beyond 40,000 is truncated.
MESSAGE_TEXT = 40000
# Not documented: Slack refuses a message whose blocks carry more than about 12,000-13,000
# characters of text in all (``msg_blocks_too_long``, reported by users). Builders keep a
# message's block text under this budget.
MESSAGE_CHARS = 11000
# What a section packed by ``pack`` may hold (leaves room for a closing "…and N more").
SECTION_BUDGET = 2900


def text_size(blocks: Any) -> int:
    """Characters of text in blocks: every text object, raw_text cell and rich-text run."""
    total = 0

    def walk(node: Any) -> None:
        nonlocal total
        if isinstance(node, dict):
            if node.get("type") in ("plain_text", "mrkdwn", "raw_text", "text") and isinstance(node.get("text"), str):
                total += len(node["text"])
            for value in node.values():
                if isinstance(value, dict | list):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return total


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


class Group:
    """A list to show under a heading, most important items first; what doesn't fit is
    summarised by ``more(n)`` (e.g. "…and 812 more ready")."""

    def __init__(self, heading: str, items: Sequence[str], more: str, *, inline: bool = False) -> None:
        self.heading = heading
        self.items = items  # may be lazy (drawn as iterated): ``pack`` reads only what fits, and len()
        self.more = more  # "{n} more ready"
        self.inline = inline  # items joined with ", " instead of one per line


class Packed(list[str]):
    """Section texts, and how many items were left out (summarised as "…and N more")."""

    hidden: int = 0


def pack(groups: list[Group], *, chars: int, sections: int) -> Packed:
    """Section texts (each within ``SECTION_BUDGET``) showing ``groups`` in order within
    ``chars`` characters and at most ``sections`` sections (at least one per non-empty group):
    each group's heading always, then as many items as fit, then "…and N more". Earlier groups
    are served first; items must be short (cut them to a few hundred characters)."""
    texts = Packed()
    used = 0
    live = [g for g in groups if g.items]
    for i, group in enumerate(live):
        later = len(live) - i - 1
        reserve = 80 * later  # the headings and summaries of the groups still to come
        tail = len(group.more) + 20
        current = group.heading
        shown = 0
        sep = ", " if group.inline else "\n"
        for item in group.items:
            piece = ((sep if shown else "\n") if current else "") + item
            if used + len(current) + len(piece) + tail + reserve > chars:
                break
            if len(current) + len(piece) + tail > SECTION_BUDGET:
                if len(texts) + 2 + later > sections:
                    break
                texts.append(current)
                used += len(current)
                current, piece = "", item
            current += piece
            shown += 1
        hidden = len(group.items) - shown
        if hidden:
            texts.hidden += hidden
            current += ("\n" if current else "") + "…and " + group.more.format(n=hidden)
        texts.append(current)
        used += len(current)
    return texts
