"""What listeners depend on (``Deps``, injected by middleware) and small helpers shared by
listeners: typed access to payloads and ephemeral replies."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from slack_bolt import Ack
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.crypto import Keyring
from bot.db import read_scope, session_scope

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Blocks = list[dict[str, Any]]


class RosterNotifier(Protocol):
    """What a listener needs of the live roster: mark a run as changed (in memory)."""

    def notify(self, run_id: int) -> None: ...


@dataclass
class Deps:
    """What listeners need besides Slack: the database, the clock, the roster refresher and
    the background pool for work done after the acknowledgement.

    Opening a modal can't wait: Slack's ``trigger_id`` expires 3 seconds after the click
    (https://api.slack.com/interactivity/handling#modal_responses). ``urgent`` work (modal
    opens) runs on a pool of its own, never behind other background work, and ``modal_client``
    has no retry handlers: a ``views.open`` retried after a 429 would reuse an expired trigger.
    """

    engine: Engine
    clock: Clock
    refresher: RosterNotifier
    executor: Executor
    urgent_executor: Executor | None = None
    modal_client: WebClient | None = None
    names_client: WebClient | None = None  # users.info, for a user the bot has never seen
    # Draws a user's App Home (bot.slack.home.publish, set by bot.runtime: listeners of every
    # capability can ask for it without importing App Home, which reads every capability).
    home_publisher: Callable[..., None] | None = None
    keys: Keyring = field(default_factory=lambda: Keyring(None))  # secrets at rest, signed exports
    allow_private_pager: bool = False  # PREFLIGHT_ALLOW_PRIVATE_PAGER (bot.delivery.pager.check_url)
    # The real time, for what is checked against the outside world (drill codes from a phone's
    # authenticator app): ``clock`` may be moved by PREFLIGHT_CLOCK_OFFSET. None: ``clock``.
    wall: Clock | None = None

    def wall_now(self) -> datetime:
        return (self.wall or self.clock)()

    def later(self, fn: Callable[..., None], /, **kwargs: Any) -> None:
        """Run ``fn(**kwargs)`` on the background pool, after the HTTP response has gone."""
        self.executor.submit(_logged, fn, kwargs)

    def after_home_click(self, body: dict[str, Any], client: WebClient, now: datetime) -> None:
        """A click in App Home changed something: draw the user's App Home again (after the
        change is stored, on the background pool)."""
        if (body.get("view") or {}).get("type") == "home" and self.home_publisher is not None:
            self.later(self.home_publisher, client=client, deps=self, user=user_id(body), now=now)

    def urgent(self, fn: Callable[..., None], /, **kwargs: Any) -> None:
        """Run ``fn(**kwargs)`` at once on the modal pool (never queued behind ``later`` work)."""
        (self.urgent_executor or self.executor).submit(_logged, fn, kwargs)

    def db(self) -> AbstractContextManager[Session]:
        return session_scope(self.engine)

    def read(self) -> AbstractContextManager[Session]:
        """A read-only session for a request's short reads: no write lock on SQLite, no
        BEGIN/ROLLBACK round trips on PostgreSQL (see bot.db.read_scope)."""
        return read_scope(self.engine, per_statement=True)


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


def ephemeral(client: WebClient, *, channel: str | None, user: str, text: str, blocks: Blocks | None = None) -> None:
    """Reply only to ``user``; in a channel when we know it, else by DM."""
    try:
        if channel:
            client.chat_postEphemeral(channel=channel, user=user, text=text, blocks=blocks)
        else:
            client.chat_postMessage(channel=user, text=text, blocks=blocks)
    except SlackApiError as exc:
        log.warning("ephemeral reply to %s failed: %s", user, exc.response.get("error"))


@dataclass(frozen=True)
class Click:
    """A button click, read once from its payload: who clicked, where (None in App Home or a
    DM), which button, and the value it carries (``id``: that value as a row id, or None)."""

    user: str
    channel: str | None
    action_id: str
    value: str
    response_url: str | None = None

    @classmethod
    def of(cls, body: dict[str, Any]) -> Click:
        action = (body.get("actions") or [{}])[0]
        action_id = str(action.get("action_id") or "") if isinstance(action, dict) else ""
        url = body.get("response_url")
        return cls(
            user=user_id(body),
            channel=channel_id(body),
            action_id=action_id,
            value=action_value(body),
            response_url=url if isinstance(url, str) else None,
        )

    @property
    def id(self) -> int | None:
        return parse_int(self.value)

    def reply(self, client: WebClient, text: str) -> None:
        """Tell only the one who clicked, through the click's ``response_url`` (see ``respond``)."""
        body: dict[str, Any] = {"user": {"id": self.user}, "response_url": self.response_url}
        if self.channel:
            body["channel"] = {"id": self.channel}
        respond(client, body, text)


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


# --- modals: opened at once, never with an expired trigger ----------------------------------

TRIGGER_LIFE = 3.0  # seconds: https://api.slack.com/interactivity/handling#modal_responses
TRIGGER_MARGIN = 2.5  # past this since the click arrived, don't try: it would fail or be late
RECEIVED = "_received_monotonic"
TOO_LATE = "Slack's window for opening that form passed while I was busy. Please click again."


def open_modal_now(work: Work) -> Callable[..., None]:
    """A listener for a click or command that opens a modal: acknowledge, then run
    ``work(body=, client=, deps=, now=)`` on the urgent pool (``Deps.urgent``)."""

    def listener(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
        body[RECEIVED] = time.monotonic()
        ack()
        deps.urgent(work, body=body, client=client, deps=deps, now=now)

    listener.__name__ = getattr(work, "__name__", "listener")
    return listener


def open_view(
    deps: Deps,
    body: dict[str, Any],
    view: dict[str, Any],
    *,
    client: WebClient,
    fallback: Blocks | None = None,
) -> bool:
    """``views.open`` with the click's trigger, never after the trigger expired and never
    waiting on a rate limit: past ``TRIGGER_MARGIN`` seconds since the click arrived nothing is
    tried, and a 429 or ``expired_trigger_id`` is not retried (a pool thread asleep on
    Retry-After makes every other click behind it miss its own trigger). Then the user is told
    so through the interaction's ``response_url`` (``respond``: not chat.postEphemeral, which
    is rate-limited too), with ``fallback`` blocks (a way to answer without the modal) when
    given. True if the modal opened."""
    received = body.get(RECEIVED)
    user = user_id(body)
    age = time.monotonic() - received if isinstance(received, float) else 0.0
    if age > TRIGGER_MARGIN:
        log.warning("views.open for %s skipped: the trigger is %.1fs old", user, age)
        respond(client, body, TOO_LATE, fallback)
        return False
    try:
        (deps.modal_client or client).views_open(trigger_id=body["trigger_id"], view=view)
    except SlackApiError as exc:
        error = exc.response.get("error")
        log.warning("views.open for %s failed: %s", user, error)
        if error in ("expired_trigger_id", "ratelimited") or exc.response.status_code == 429:
            respond(client, body, TOO_LATE if fallback is None else MODAL_REFUSED, fallback)
        return False
    return True


MODAL_REFUSED = "Slack couldn't open that form just now."


# --- replies through the interaction's response_url ------------------------------------------

# https://api.slack.com/interactivity/handling#message_responses : a response_url takes up to
# 5 responses within 30 minutes; it is not one of the rate-tiered Web API methods.
SLACK_HOOKS = "https://hooks.slack.com/"


def _trusted_response_url(url: Any, client: WebClient) -> str | None:
    """The payload's response_url when it points at Slack (hooks.slack.com, or the host the
    Web API client talks to: a test's fake Slack), else None: the bot posts nowhere else."""
    if not isinstance(url, str):
        return None
    api = urlsplit(client.base_url)
    target = urlsplit(url)
    if url.startswith(SLACK_HOOKS) or (target.scheme, target.netloc) == (api.scheme, api.netloc):
        return url
    return None


def respond(client: WebClient, body: dict[str, Any], text: str, blocks: Blocks | None = None) -> None:
    """Tell only the one who clicked: through the interaction's ``response_url`` (ephemeral,
    the original message left alone), or, without one (App Home), ``ephemeral``."""
    url = _trusted_response_url(body.get("response_url"), client)
    if url is None:
        ephemeral(client, channel=channel_id(body), user=user_id(body), text=text, blocks=blocks)
        return
    message: dict[str, Any] = {"text": text, "response_type": "ephemeral", "replace_original": False}
    if blocks:
        message["blocks"] = blocks
    try:
        # slack_sdk's default for a webhook retries connection errors only: nothing sleeps on a 429.
        response = WebhookClient(url, timeout=client.timeout).send_dict(message)
    except Exception as exc:  # network trouble: logged, as a refused ephemeral is
        log.warning("response_url reply to %s failed: %s", user_id(body), type(exc).__name__)
        return
    if response.status_code != 200:
        log.warning("response_url reply to %s failed: %s %s", user_id(body), response.status_code, response.body)


def retry_after(exc: SlackApiError, *, floor: float) -> float:
    """The seconds a 429 asks for (its ``Retry-After``; 1 when absent or unreadable), at least ``floor``."""
    raw = exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after") or "1"
    if isinstance(raw, list):
        raw = raw[0]
    try:
        return max(float(raw), floor)
    except ValueError:
        return 1.0
