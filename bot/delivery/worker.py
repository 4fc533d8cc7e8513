"""Delivery of the outbox is a plain function; ``OutboxWorker`` runs it in a thread.

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
  message at a time. Instead a pacer spaces calls to the service's rate and, on a
  429, pauses the whole service for ``Retry-After`` and slows down. A fan-out of 500
  DMs then runs at the rate limit instead of bouncing off it. The pacer's budget is a
  database row (``bot.delivery.pacing.SharedPacer``), so several processes or replicas
  delivering at once still send at the configured rate, not a multiple of it.
- **Posts that must appear once.** A channel post stamped with message metadata (the
  escalation channel's level-2 post, ``bot.delivery.slack.metadata_of``) is written in the
  ``pending_post`` ledger before it is sent and settled when its outcome is known. A retry
  that finds it still pending (the last attempt timed out, got a 5xx, or its worker died)
  first looks for it in the channel's history and adopts the ``ts`` it finds instead of
  posting again (``bot.delivery.ledger``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.audit import record
from bot.db import claim_lease, read_scope, session_scope
from bot.delivery import ledger
from bot.delivery.errors import DeliveryError, NotReady
from bot.delivery.models import OutboxMessage
from bot.delivery.outbox import Kind, service_of
from bot.delivery.pacing import Pacer as Pacer  # re-exported: bot.cli names it
from bot.delivery.pacing import SharedPacer
from bot.delivery.pager import Pager, PagerTarget
from bot.delivery.slack import deliver_slack, delivery_client, find_posted, metadata_of, slack_errors
from bot.delivery.specs import RenderSpec, SpecError, from_payload

if TYPE_CHECKING:
    from slack_sdk import WebClient

log = logging.getLogger(__name__)

Blocks = list[dict[str, Any]]
Renderer = Callable[[Session, RenderSpec], tuple[str, Blocks]]
"""Turns a message's render spec into (text, blocks) from the state at delivery time
(``bot.slack.notifications.render``); raises DeliveryError(retry_after=None) when what it
speaks of is gone. A stored spec naming no known view never reaches it: that message fails
for good."""
PagerLookup = Callable[[Session, int], PagerTarget | None]
"""The pager settings of a desk, read at delivery (``bot.desks.service.pager_target``)."""


LEASE = timedelta(minutes=2)


SLACK_RATE = 10.0  # chat.postMessage: about one a second per channel; across DMs Slack's tier allows more
BACKOFF_BASE = 2.0  # seconds; doubles per attempt


BACKOFF_CAP = 60.0


SCAN = 2000  # pending rows looked at per pass (lanes are walked in id order)


def backoff(attempts: int) -> float:
    return float(min(BACKOFF_BASE * 2.0 ** max(attempts - 1, 0), BACKOFF_CAP))


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
        return claim_lease(
            session,
            OutboxMessage,
            message_id,
            column="claimed_at",
            now=now,
            lease=LEASE,
            where=(
                col(OutboxMessage.delivered_at).is_(None),
                col(OutboxMessage.failed_at).is_(None),
                col(OutboxMessage.next_attempt_at) <= now,
            ),
            values={"attempts": OutboxMessage.attempts + 1},
        )


def _audit_outcome(
    session: Session, message: OutboxMessage, body: dict[str, Any], key: str, now: datetime, **detail: Any
) -> None:
    """The audit event the message asked for (``enqueue(audit=...)``) on this outcome, if any."""
    spec = body.get("_audit")
    if isinstance(spec, dict) and spec.get(key):
        record(
            session,
            subject=str(spec.get("subject") or f"outbox:{message.id}"),
            action=str(spec[key]),
            at=now,
            desk_id=message.desk_id,
            outbox_id=message.id,
            attempt=message.attempts,
            **detail,
        )


def _render(session: Session, render: Renderer | None, data: Any) -> tuple[str, Blocks]:
    if render is None:
        raise DeliveryError("no renderer in this process", retry_after=0.0)
    try:
        spec = from_payload(data if isinstance(data, dict) else {})
    except SpecError as exc:
        raise DeliveryError(str(exc), retry_after=None) from exc
    return render(session, spec)


def _adopt_or_begin(
    engine: Engine,
    client: WebClient,
    *,
    key: str,
    body: dict[str, Any],
    stamp: dict[str, Any],
    pending: datetime | None,
    now: datetime,
) -> str | None:
    """For a post that must appear once: the ``ts`` of an earlier attempt's message found in
    the channel (that attempt's outcome was unknown), or None once this attempt is recorded in
    the ledger (committed before the post)."""
    channel = str(body["channel"])
    if pending is not None:
        look = partial(find_posted, client, channel=channel, metadata=stamp, oldest=ledger.oldest(pending, now))
        found = slack_errors(look)
        if found is not None:
            return found
    with session_scope(engine) as session:
        ledger.begin(session=session, key=key, channel=channel, now=now)
    return None


def deliver_due(
    engine: Engine,
    client: WebClient,
    pager: Pager | None,
    *,
    now: datetime,
    limit: int = 100,
    pacers: dict[str, Pacer] | None = None,
    render: Renderer | None = None,
    pager_target: PagerLookup | None = None,
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
        stamp: dict[str, Any] | None = None  # the message metadata of a post that must appear once
        pending: datetime | None = None  # when an attempt of it whose outcome is unknown started
        posted = False  # chat.postMessage was called (its failure may settle the ledger)
        ledger_key = f"outbox:{message_id}"
        with read_scope(engine) as session:
            message = session.get(OutboxMessage, message_id)
            assert message is not None
            kind, body = message.kind, json.loads(message.payload)
            service = service_of(kind)
            stamp = metadata_of(kind, body)
            if stamp is not None:
                pending = ledger.pending_since(session=session, key=ledger_key)
            page_to = (
                pager_target(session, message.desk_id)
                if service == "pager" and pager_target is not None and message.desk_id is not None
                else None
            )
            try:
                target = _update_target(session, message, body) if service == "slack" else None
                if service == "slack" and "render" in body:
                    body["text"], body["blocks"] = _render(session, render, body["render"])
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
                        adopted = None
                        if stamp is not None:
                            adopted = _adopt_or_begin(
                                engine, client, key=ledger_key, body=body, stamp=stamp, pending=pending, now=now
                            )
                        if adopted is not None:
                            outcome = {"channel": body["channel"], "ts": adopted}
                            log.info("outbox %s: adopted the post of an earlier attempt (ts %s)", message_id, adopted)
                        else:
                            posted = True
                            outcome = deliver_slack(kind, body, target, client, metadata=stamp)
                    except DeliveryError as exc:
                        if exc.rate_limited and exc.retry_after is not None and pacer:
                            pacer.rate_limited(exc.retry_after)  # before done(): no one sends in between
                        raise
                    finally:
                        if pacer:
                            pacer.done()
                elif service == "pager":
                    if pager is None:
                        raise DeliveryError("no pager client in this process", retry_after=0.0)
                    if page_to is None:
                        raise DeliveryError("the desk no longer exists", retry_after=None)
                    outcome = pager.send(target=page_to, event=body)
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
                if posted and (error.retry_after is None or error.rate_limited):
                    ledger.settle(session=session, key=ledger_key)  # refused: certainly not posted
                message.claimed_at = None
                message.last_error = str(error)[:500]
                if error.retry_after is None:
                    message.failed_at = now
                    result.failed += 1
                    _audit_outcome(session, message, body, "fail", now, error=str(error), final=True)
                    log.warning("outbox %s (%s) failed for good: %s", message.id, message.dedup_key, error)
                else:
                    wait = error.retry_after if error.rate_limited else backoff(message.attempts)
                    message.next_attempt_at = now + timedelta(seconds=wait)
                    result.deferred += 1
                    down.add(service)
                    _audit_outcome(session, message, body, "fail", now, error=str(error), retry_in_seconds=wait)
                    log.info("outbox %s (%s) deferred %.1fs: %s", message.id, message.dedup_key, wait, error)
                continue
            if stamp is not None:
                ledger.settle(session=session, key=ledger_key)
            message.delivered_at = now
            message.claimed_at = None
            message.last_error = None
            message.result = json.dumps(outcome)
            result.delivered += 1
            _audit_outcome(session, message, body, "ok", now, result=outcome)
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
        render: Renderer | None = None,
        pager_target: PagerLookup | None = None,
        clock: Callable[[], datetime] = _utcnow,
        slack_rate: float | None = SLACK_RATE,
        poll: float = 0.5,
        batch: int = 25,
    ) -> None:
        self.engine = engine
        self.client = delivery_client(client)
        self.pager = pager
        self.render = render
        self.pager_target = pager_target
        self.clock = clock
        self.pacers: dict[str, Pacer] = {"slack": SharedPacer(engine, "slack", slack_rate)}
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
        return deliver_due(
            self.engine,
            self.client,
            self.pager,
            now=self.clock(),
            limit=self.batch,
            pacers=self.pacers,
            render=self.render,
            pager_target=self.pager_target,
        )

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
