"""What listeners depend on (``Deps``, injected by middleware) and small helpers shared by
listeners: typed access to payloads and ephemeral replies."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from slack_bolt import Ack
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.crypto import Keyring
from bot.db import read_scope, session_scope

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class RosterNotifier(Protocol):
    """What a listener needs of the live roster: mark a run as changed (in memory)."""

    def notify(self, run_id: int) -> None: ...


@dataclass
class Deps:
    """What listeners need besides Slack: the database, the clock, the roster refresher and
    the background pool for work done after the acknowledgement."""

    engine: Engine
    clock: Clock
    refresher: RosterNotifier
    executor: Executor
    keys: Keyring = field(default_factory=lambda: Keyring(None))  # secrets at rest, signed exports

    def later(self, fn: Callable[..., None], /, **kwargs: Any) -> None:
        """Run ``fn(**kwargs)`` on the background pool, after the HTTP response has gone."""
        self.executor.submit(_logged, fn, kwargs)

    def db(self) -> AbstractContextManager[Session]:
        return session_scope(self.engine)

    def read(self) -> AbstractContextManager[Session]:
        """A read-only session: no write lock on SQLite (see bot.db.read_scope)."""
        return read_scope(self.engine)


def _logged(fn: Callable[..., None], kwargs: dict[str, Any]) -> None:
    try:
        fn(**kwargs)
    except Exception:
        log.exception("background work %s failed", getattr(fn, "__name__", fn))


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
