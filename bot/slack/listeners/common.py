"""Small helpers shared by listeners: typed access to payloads and ephemeral replies."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

if TYPE_CHECKING:
    from bot.slack.app import Deps

log = logging.getLogger(__name__)


class PayloadError(ValueError):
    """The payload lacks something a real Slack payload always has."""


def user_id(body: dict[str, Any]) -> str:
    user = body.get("user") or {}
    uid = user.get("id") if isinstance(user, dict) else None
    uid = uid or body.get("user_id")
    if not isinstance(uid, str):
        raise PayloadError("payload has no user id")
    return uid


def action_value(body: dict[str, Any]) -> str:
    actions = body.get("actions") or []
    if not actions or not isinstance(actions[0], dict):
        raise PayloadError("payload has no action")
    return str(actions[0].get("value") or "")


def channel_id(body: dict[str, Any]) -> str | None:
    channel = body.get("channel") or (body.get("container") or {})
    if isinstance(channel, dict):
        cid = channel.get("id") or channel.get("channel_id")
        return str(cid) if cid else None
    return None


def ephemeral(client: WebClient, *, channel: str | None, user: str, text: str) -> None:
    """Reply only to ``user``; in a channel when we know it, else by DM."""
    try:
        if channel:
            client.chat_postEphemeral(channel=channel, user=user, text=text)
        else:
            client.chat_postMessage(channel=user, text=text)
    except SlackApiError as exc:
        log.warning("ephemeral reply to %s failed: %s", user, exc.response.get("error"))


Work = Callable[..., None]


def ack_then(work: Work) -> Callable[..., None]:
    """A listener that acknowledges at once and runs ``work(body=, client=, deps=, now=)``
    after the HTTP response has gone (for clicks and events whose answer is not in the ack)."""

    def listener(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
        ack()
        deps.later(work, body=body, client=client, deps=deps, now=now)

    listener.__name__ = getattr(work, "__name__", "listener")
    return listener


def parse_int(value: str) -> int | None:
    return int(value) if value.isdigit() else None
