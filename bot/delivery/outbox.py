"""Persisted outbound notifications, delivered by a worker with retries.

A state change and the notifications it causes are committed together: ``enqueue``
writes an ``OutboxMessage`` in the caller's transaction. ``dedup_key`` is unique, so
enqueuing the same notification twice (a repeated pass, a concurrent replica, a
double click) is a no-op decided by the database.

Delivery (``deliver_due``) is a plain function; ``OutboxWorker`` runs it in a thread.

- **Lanes and order.** Messages are delivered in id order within a *lane*: one
  service (``slack`` or ``pager``) for one desk. A message waits while an earlier
  message of its lane is undelivered (in backoff, or claimed by another worker), so an
  update never overtakes the message it edits and a page's ``resolve`` never overtakes
  its ``trigger``. Permanently failed messages (``failed_at``) no longer block.
- **Claims.** Each message is claimed by a conditional UPDATE (unclaimed, or its lease
  expired) before it is sent, so replicas never send the same message concurrently.
  A worker that dies after sending but before recording it causes one resend after
  the lease (at-least-once in that window only; PagerDuty dedups by ``dedup_key``).
- **Retries.** 429 waits for ``Retry-After``; 5xx, timeouts and connection errors back
  off exponentially (capped) and are retried for as long as it takes — Slack down for
  ten minutes means delivery ten minutes late, in order. Other Slack errors
  (``channel_not_found``, ...) and 4xx from a pager are permanent: ``failed_at``.
- **Pacing.** The worker's WebClient has *no* slack_sdk retry handlers: a handler
  sleeping inside a call would hide the rate limit from the worker and stall it one
  message at a time. Instead a ``Pacer`` spaces calls to the service's rate and, on a
  429, pauses the whole service for ``Retry-After`` and slows down. A fan-out of 500
  DMs then runs at the rate limit instead of bouncing off it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import select as sa_select
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.audit import AuditEvent
from bot.db import read_scope, session_scope
from bot.delivery.models import OutboxMessage
from bot.desks.models import Desk

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from bot.delivery.pager import Pager

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
BACKOFF_BASE = 2.0  # seconds; doubles per attempt
BACKOFF_CAP = 60.0
SCAN = 2000  # pending rows looked at per pass (lanes are walked in id order)


class Kind(StrEnum):
    SLACK_DM = "slack.dm"  # payload: user, text, blocks
    SLACK_POST = "slack.post"  # payload: channel, text, blocks
    SLACK_UPDATE = "slack.update"  # payload: ref (dedup_key of the original), text, blocks
    PAGER = "pager.event"  # payload: action, escalation_id, summary, details


def service_of(kind: str) -> str:
    return kind.split(".", 1)[0]


def enqueue(
    *,
    session: Session,
    dedup_key: str,
    kind: Kind | str,
    payload: dict[str, Any],
    desk_id: int | None,
    now: datetime,
    audit: dict[str, str] | None = None,
) -> OutboxMessage | None:
    """Queue a notification in the caller's transaction; None if ``dedup_key`` exists.

    ``audit`` (optional): {"subject": ..., "ok": action, "fail": action} — the worker
    records an AuditEvent when the message is delivered or fails.
    """
    if session.exec(select(OutboxMessage.id).where(OutboxMessage.dedup_key == dedup_key)).first() is not None:
        return None
    body = dict(payload)
    if audit:
        body["_audit"] = audit
    message = OutboxMessage(
        dedup_key=dedup_key,
        kind=str(kind),
        desk_id=desk_id,
        payload=json.dumps(body, separators=(",", ":")),
        created_at=now,
        next_attempt_at=now,
    )
    try:
        with session.begin_nested():  # a concurrent writer may insert the same key first
            session.add(message)
    except IntegrityError:
        return None
    return message


# --- delivery outcomes ------------------------------------------------------------------


class DeliveryError(Exception):
    """A delivery did not happen. ``retry_after`` None means permanent."""

    def __init__(self, message: str, *, retry_after: float | None, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class NotReady(Exception):
    """The message depends on one not delivered yet (an update before its original)."""


class Pacer:
    """Spaces calls to one service (monotonic clock); a 429 pauses it and slows it down."""

    def __init__(self, rate_per_second: float | None, *, slowdown: float = 1.25, recover_after: float = 60.0) -> None:
        self.base_interval = 1.0 / rate_per_second if rate_per_second else 0.0
        self.interval = self.base_interval
        self._next = 0.0
        self._slowdown = slowdown
        self._recover_after = recover_after
        self._last_limited = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Sleep until the next call may start."""
        with self._lock:
            now = time.monotonic()
            if self.interval > self.base_interval and now - self._last_limited > self._recover_after:
                self.interval = self.base_interval
            start = max(now, self._next)
            self._next = start + self.interval
        delay = start - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def done(self) -> None:
        """The call's answer arrived: the next call starts one interval after it.

        Spacing from the *answer* (not from when the request left) means two requests can
        never reach the server closer than the interval, however the network or the GIL
        delays one of them; the DB work between calls overlaps the wait.
        """
        with self._lock:
            self._next = max(self._next, time.monotonic() + self.interval)

    def rate_limited(self, retry_after: float) -> None:
        with self._lock:
            now = time.monotonic()
            self._last_limited = now
            self.interval = max(self.interval * self._slowdown, 0.001)
            self._next = max(self._next, now + retry_after)


def backoff(attempts: int) -> float:
    return float(min(BACKOFF_BASE * 2.0 ** max(attempts - 1, 0), BACKOFF_CAP))


# --- Slack delivery ---------------------------------------------------------------------


def delivery_client(client: WebClient) -> WebClient:
    """The same workspace and timeout, without slack_sdk's in-call retries (see module doc)."""
    from slack_sdk import WebClient

    return WebClient(
        token=client.token,
        base_url=client.base_url,
        timeout=client.timeout,
        retry_handlers=[],
        logger=logging.getLogger("bot.delivery.outbox.slack"),
    )


def _slack_call(call: Callable[[], Any]) -> dict[str, Any]:
    from slack_sdk.errors import SlackApiError

    try:
        response = call()
    except SlackApiError as exc:
        status = exc.response.status_code
        error = str(exc.response.get("error") or f"HTTP {status}")
        if status == 429:
            raw = exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after") or "1"
            if isinstance(raw, list):
                raw = raw[0]
            try:
                wait = float(raw)
            except ValueError:
                wait = 1.0
            raise DeliveryError(
                f"rate limited by Slack (Retry-After {wait:g}s)", retry_after=wait, rate_limited=True
            ) from None
        if status >= 500:
            raise DeliveryError(f"Slack answered {status} ({error})", retry_after=0.0) from None
        raise DeliveryError(f"Slack refused: {error}", retry_after=None) from None
    except Exception as exc:  # timeouts, refused connections, DNS: Slack unreachable
        raise DeliveryError(f"Slack unreachable: {type(exc).__name__}: {exc}"[:300], retry_after=0.0) from None
    return dict(response.data) if isinstance(response.data, dict) else {}


def _update_target(session: Session, message: OutboxMessage, body: dict[str, Any]) -> dict[str, Any] | None:
    """For an update, the channel and ts of the message it edits (read before sending)."""
    if message.kind != Kind.SLACK_UPDATE:
        return None
    original = session.exec(select(OutboxMessage).where(OutboxMessage.dedup_key == body["ref"])).first()
    if original is None or original.failed_at is not None:
        raise DeliveryError(f"the message to update ({body['ref']}) was never delivered", retry_after=None)
    if original.delivered_at is None or not original.result:
        raise NotReady(body["ref"])
    ref = json.loads(original.result)
    return ref if isinstance(ref, dict) else None


def _deliver_slack(kind: str, body: dict[str, Any], target: dict[str, Any] | None, client: WebClient) -> dict[str, Any]:
    text = str(body.get("text") or "")
    blocks = body.get("blocks")
    if target is not None:
        data = _slack_call(
            lambda: client.chat_update(channel=target["channel"], ts=target["ts"], text=text, blocks=blocks)
        )
    else:
        channel = str(body["user"] if kind == Kind.SLACK_DM else body["channel"])
        data = _slack_call(
            lambda: client.chat_postMessage(channel=channel, text=text, blocks=blocks, unfurl_links=False)
        )
    return {"channel": data.get("channel"), "ts": data.get("ts")}


# --- the pass ---------------------------------------------------------------------------


@dataclass
class PassResult:
    delivered: int = 0
    failed: int = 0
    deferred: int = 0

    @property
    def touched(self) -> int:
        return self.delivered + self.failed + self.deferred


@dataclass(frozen=True)
class _Row:
    id: int
    kind: str
    desk_id: int | None
    next_attempt_at: datetime
    claimed_at: datetime | None


def _due_ids(session: Session, now: datetime, limit: int) -> list[int]:
    """Due messages, in id order, that no earlier undelivered message of their lane blocks."""
    rows = session.execute(
        sa_select(
            col(OutboxMessage.id),
            col(OutboxMessage.kind),
            col(OutboxMessage.desk_id),
            col(OutboxMessage.next_attempt_at),
            col(OutboxMessage.claimed_at),
        )
        .where(col(OutboxMessage.delivered_at).is_(None), col(OutboxMessage.failed_at).is_(None))
        .order_by(col(OutboxMessage.id))
        .limit(SCAN)
    ).all()
    blocked: set[tuple[str, int | None]] = set()
    due: list[int] = []
    for row in (_Row(*r) for r in rows):
        lane = (service_of(row.kind), row.desk_id)
        if lane in blocked:
            continue
        claimed = row.claimed_at is not None and row.claimed_at > now - LEASE
        if claimed or row.next_attempt_at > now:
            blocked.add(lane)
            continue
        due.append(row.id)
        if len(due) >= limit:
            break
    return due


def _claim(engine: Engine, message_id: int, now: datetime) -> bool:
    with session_scope(engine) as session:
        result = session.execute(
            update(OutboxMessage)
            .where(
                col(OutboxMessage.id) == message_id,
                col(OutboxMessage.delivered_at).is_(None),
                col(OutboxMessage.failed_at).is_(None),
                col(OutboxMessage.next_attempt_at) <= now,
                col(OutboxMessage.claimed_at).is_(None) | (col(OutboxMessage.claimed_at) <= now - LEASE),
            )
            .values(claimed_at=now, attempts=OutboxMessage.attempts + 1)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def _audit(
    session: Session, message: OutboxMessage, body: dict[str, Any], key: str, now: datetime, **detail: Any
) -> None:
    spec = body.get("_audit")
    if isinstance(spec, dict) and spec.get(key):
        session.add(
            AuditEvent(
                desk_id=message.desk_id,
                at=now,
                subject=str(spec.get("subject") or f"outbox:{message.id}"),
                action=str(spec[key]),
                detail=json.dumps({"outbox_id": message.id, "attempt": message.attempts, **detail}),
            )
        )


def deliver_due(
    engine: Engine,
    client: WebClient,
    pager: Pager | None,
    *,
    now: datetime,
    limit: int = 100,
    pacers: dict[str, Pacer] | None = None,
) -> PassResult:
    """Deliver up to ``limit`` due messages. ``client`` should come from ``delivery_client``."""
    pacers = pacers if pacers is not None else {}
    result = PassResult()
    with session_scope(engine) as session:
        ids = _due_ids(session, now, limit)
    down: set[str] = set()  # services that failed transiently in this pass: leave them be
    for message_id in ids:
        with session_scope(engine) as session:
            peek = session.get(OutboxMessage, message_id)
            if peek is None or service_of(peek.kind) in down:
                continue
        if not _claim(engine, message_id, now):
            continue
        # Read what to send, send it with no transaction open (on SQLite an open write
        # transaction would hold the database's write lock through a slow Slack call or a
        # pacing pause), then record the outcome in a short transaction of its own.
        error: DeliveryError | None = None
        target: dict[str, Any] | None = None
        not_ready = False
        outcome: dict[str, Any] = {}
        with read_scope(engine) as session:
            message = session.get(OutboxMessage, message_id)
            assert message is not None
            kind, body = message.kind, json.loads(message.payload)
            service = service_of(kind)
            desk = session.get(Desk, message.desk_id) if message.desk_id is not None else None
            try:
                target = _update_target(session, message, body) if service == "slack" else None
            except NotReady:
                not_ready = True
            except DeliveryError as exc:
                error = exc
        pacer = pacers.get(service)
        if not not_ready and error is None:
            try:
                if service == "slack":
                    if pacer:
                        pacer.wait()
                    try:
                        outcome = _deliver_slack(kind, body, target, client)
                    finally:
                        if pacer:
                            pacer.done()
                elif service == "pager":
                    if pager is None:
                        raise DeliveryError("no pager client in this process", retry_after=0.0)
                    if desk is None:
                        raise DeliveryError("the desk no longer exists", retry_after=None)
                    outcome = pager.send(desk=desk, event=body)
                else:
                    raise DeliveryError(f"unknown kind {kind!r}", retry_after=None)
            except DeliveryError as exc:
                error = exc
        with session_scope(engine) as session:
            message = session.get(OutboxMessage, message_id)
            assert message is not None
            if not_ready:
                message.claimed_at = None
                message.attempts -= 1
                message.next_attempt_at = now
                result.deferred += 1
                continue
            if error is not None:
                message.claimed_at = None
                message.last_error = str(error)[:500]
                if error.retry_after is None:
                    message.failed_at = now
                    result.failed += 1
                    _audit(session, message, body, "fail", now, error=str(error), final=True)
                    log.warning("outbox %s (%s) failed for good: %s", message.id, message.dedup_key, error)
                else:
                    wait = error.retry_after if error.rate_limited else backoff(message.attempts)
                    message.next_attempt_at = now + timedelta(seconds=wait)
                    result.deferred += 1
                    down.add(service)
                    if error.rate_limited and pacer:
                        pacer.rate_limited(wait)
                    _audit(session, message, body, "fail", now, error=str(error), retry_in_seconds=wait)
                    log.info("outbox %s (%s) deferred %.1fs: %s", message.id, message.dedup_key, wait, error)
                continue
            message.delivered_at = now
            message.claimed_at = None
            message.last_error = None
            message.result = json.dumps(outcome)
            result.delivered += 1
            _audit(session, message, body, "ok", now, result=outcome)
    return result


def next_due(engine: Engine) -> datetime | None:
    with session_scope(engine) as session:
        return session.exec(
            select(OutboxMessage.next_attempt_at)
            .where(col(OutboxMessage.delivered_at).is_(None), col(OutboxMessage.failed_at).is_(None))
            .order_by(col(OutboxMessage.next_attempt_at))
            .limit(1)
        ).first()


def _utcnow() -> datetime:
    return datetime.now(UTC)


class OutboxWorker:
    """Runs ``deliver_due`` in a background thread until stopped.

    ``clock`` is wall-clock UTC by default (leases and backoff are operational time).
    """

    def __init__(
        self,
        engine: Engine,
        client: WebClient,
        pager: Pager | None,
        *,
        clock: Callable[[], datetime] = _utcnow,
        slack_rate: float | None = 10.0,
        poll: float = 0.5,
        batch: int = 25,
    ) -> None:
        self.engine = engine
        self.client = delivery_client(client)
        self.pager = pager
        self.clock = clock
        self.pacers = {"slack": Pacer(slack_rate)}
        self.poll = poll
        self.batch = batch
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="outbox-worker", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def run_once(self) -> PassResult:
        return deliver_due(self.engine, self.client, self.pager, now=self.clock(), limit=self.batch, pacers=self.pacers)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                done = self.run_once()
            except Exception:
                log.exception("outbox pass failed")
                done = PassResult()
            if done.delivered and not self._stop.is_set():
                continue  # more may be due right away
            wait = self.poll
            try:
                upcoming = next_due(self.engine)
            except Exception:
                upcoming = None
            if upcoming is not None:
                wait = min(self.poll, max((upcoming - self.clock()).total_seconds(), 0.01))
            self._wake.wait(wait)
            self._wake.clear()
