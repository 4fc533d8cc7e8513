"""Delivery of the outbox is a plain function; ``OutboxWorker`` runs it in a thread.

- **Lanes and order** (``bot.delivery.lanes``). Messages are delivered in id order within
  a *lane*: Slack's posts (channel posts and DMs) of one desk, Slack's updates of one desk,
  the pager of one desk. A message waits while an earlier message of its lane is
  undelivered (in backoff, claimed by another worker, or left for a later pass by its
  budget), so a page's ``resolve`` never overtakes its ``trigger``; an update never
  overtakes the message it edits (it is not ready until that one is delivered). Posts go
  first: a pass takes due posts and pages before due updates, and an update whose budget
  (``chat.update``, Tier 3) has no slot soon is left for a later pass instead of holding
  the worker. Permanently failed messages (``failed_at``) no longer block.
- **Coalescing.** An update is rendered from the state at delivery, so it also says what
  every later-queued update of the same message would: those queued before its render are
  marked delivered with it (``coalesced_into``), and a message edited thirty times while
  ``chat.update``'s budget was spent is updated once.
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
  message at a time. Instead each call takes its shared budgets first, once its message is
  claimed and rendered, right before it goes out (``bot.delivery.tiers``: its method's
  workspace tier and, for a post, its channel's one a second), and a 429 pauses them for
  ``Retry-After`` and slows them down. A fan-out of 500 DMs then runs at the rate limit
  instead of bouncing off it. The budgets are database
  rows (``bot.delivery.pacing``), so several processes or replicas -- and the roster
  refresher's ``chat.update`` calls -- send within one budget, not a multiple of it.
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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.audit import record
from bot.db import read_scope, session_scope
from bot.delivery import ledger, tiers
from bot.delivery.errors import DeliveryError, NotReady
from bot.delivery.lanes import LEASE as LEASE  # re-exported
from bot.delivery.lanes import Lane, claim, due_ids, lane_of, release
from bot.delivery.lanes import next_due as next_due  # re-exported
from bot.delivery.models import OutboxMessage
from bot.delivery.outbox import Kind, coalesce, service_of, superseded
from bot.delivery.pacing import Budget
from bot.delivery.pager import Pager, PagerTarget
from bot.delivery.slack import deliver_slack, delivery_client, find_posted, metadata_of, slack_errors
from bot.delivery.specs import RenderSpec, SpecError, from_payload
from bot.delivery.tiers import Pace, SlackBudgets

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


SLACK_RATE = tiers.POST_RATE  # chat.postMessage across channels; each channel: one a second
WAIT_AT_MOST = 0.25  # seconds a pass sleeps for a budget's slot; a later slot: other messages first
BACKOFF_BASE = 2.0  # seconds; doubles per attempt


BACKOFF_CAP = 60.0


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
    paced: int = 0  # left for a later pass: their budget had no slot soon enough
    coalesced: int = 0  # updates a later render of the same message made unnecessary
    resume_in: float | None = None  # when the earliest paced message's budget may be free (s)

    @property
    def touched(self) -> int:
        return self.delivered + self.failed + self.deferred

    def pace(self, free_in: float) -> None:
        self.paced += 1
        self.resume_in = free_in if self.resume_in is None else min(self.resume_in, free_in)


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


@dataclass
class _Peek:
    """What a message needs before it is claimed: its lane, the Slack budgets it takes."""

    kind: str
    lane: Lane
    target: dict[str, Any] | None = None
    not_ready: bool = False
    error: DeliveryError | None = None
    budgets: list[Budget] = field(default_factory=list)
    method: str = ""


def _peek(session: Session, message_id: int, budgets: SlackBudgets | None) -> _Peek | None:
    message = session.get(OutboxMessage, message_id)
    if message is None or message.delivered_at is not None or message.failed_at is not None:
        return None
    peek = _Peek(message.kind, lane_of(message.kind, message.desk_id))
    if service_of(message.kind) != "slack":
        return peek
    body = json.loads(message.payload)
    try:
        peek.target = _update_target(session, message, body)
    except NotReady:
        peek.not_ready = True
        return peek
    except DeliveryError as exc:
        peek.error = exc
        return peek
    if budgets is not None:
        peek.method = tiers.UPDATE if peek.target is not None else tiers.POST
        channel = (peek.target or {}).get("channel") or body.get("channel") or body.get("user")
        peek.budgets = budgets.of(peek.method, str(channel) if channel else None)
        if metadata_of(message.kind, body) is not None and ledger.pending_since(
            session=session, key=f"outbox:{message_id}"
        ):
            peek.budgets += budgets.of(tiers.HISTORY)  # it looks for the post first
    return peek


def deliver_due(
    engine: Engine,
    client: WebClient,
    pager: Pager | None,
    *,
    now: datetime,
    limit: int = 100,
    budgets: SlackBudgets | None = None,
    wait_at_most: float = WAIT_AT_MOST,
    render: Renderer | None = None,
    pager_target: PagerLookup | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PassResult:
    """Deliver up to ``limit`` due messages. ``client`` should come from ``delivery_client``.

    With ``budgets`` each Slack call first takes its shared budgets (``bot.delivery.tiers``);
    one whose slot is more than ``wait_at_most`` seconds away is left for a later pass (its
    lane waits with it) while the pass goes on with the others: posts never wait behind a
    queue of updates. ``PassResult.resume_in`` says when to look again."""
    result = PassResult()
    skip = frozenset({Kind.SLACK_UPDATE.value}) if budgets is not None and budgets.spent(tiers.UPDATE) else frozenset()
    with session_scope(engine) as session:
        ids = due_ids(session, now, limit, skip)
    down: set[str] = set()  # services that failed transiently in this pass: leave them be
    blocked: set[Lane] = set()  # lanes with a message left for a later pass
    for message_id in ids:
        with read_scope(engine) as session:
            peek = _peek(session, message_id, budgets)
        if peek is None or peek.lane in blocked or service_of(peek.kind) in down:
            continue
        if peek.not_ready:
            result.deferred += 1
            continue
        if peek.method and budgets is not None and (spent := budgets.spent(peek.method)):
            result.pace(spent)
            blocked.add(peek.lane)
            continue
        # Claimed first, then paced: a worker that loses the claim to another process moves on
        # to the next message without having taken (and wasted) a slot of the shared budget.
        if not claim(engine, message_id, now):  # another worker got it first
            continue
        pace = Pace(budgets, wait_at_most, sleep)
        if not _deliver_one(engine, client, pager, message_id, peek, pace, now, render, pager_target, result, down):
            release(engine, message_id, now)  # no slot soon: left for a later pass with its lane
            result.pace(pace.free_in)
            blocked.add(peek.lane)
    return result


def _deliver_one(
    engine: Engine,
    client: WebClient,
    pager: Pager | None,
    message_id: int,
    peek: _Peek,
    pace: Pace,
    now: datetime,
    render: Renderer | None,
    pager_target: PagerLookup | None,
    result: PassResult,
    down: set[str],
) -> bool:
    """Send one claimed message and record the outcome: False (nothing done) when its Slack
    budgets have no slot within ``pace.within``."""
    # Read what to send, send it with no transaction open (on SQLite an open write
    # transaction would hold the database's write lock through a slow Slack call or a
    # pacing pause), then record the outcome in a short transaction of its own.
    error = peek.error
    target = peek.target
    outcome: dict[str, Any] = {}
    stamp: dict[str, Any] | None = None  # the message metadata of a post that must appear once
    pending: datetime | None = None  # when an attempt of it whose outcome is unknown started
    posted = False  # chat.postMessage was called (its failure may settle the ledger)
    covered: list[int] = []  # updates of the same message this render makes unnecessary
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
        if service == "slack" and error is None:
            try:
                if target is not None:  # read before rendering: what is queued now, this render shows
                    covered = superseded(session=session, message=message, ref=str(body["ref"]))
                if "render" in body:
                    body["text"], body["blocks"] = _render(session, render, body["render"])
            except DeliveryError as exc:
                error = exc
    if error is None and service == "slack" and not pace.take(peek.budgets):
        return False
    try:
        if error is None:
            try:
                if service == "slack":
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
                        if exc.rate_limited and exc.retry_after is not None:
                            pace.rate_limited(exc.retry_after)  # before they are freed: no one sends in between
                        raise
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
            pace.free(session)  # with the outcome, in its transaction: a round trip less a message
            message = session.get(OutboxMessage, message_id)
            assert message is not None
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
            else:
                if stamp is not None:
                    ledger.settle(session=session, key=ledger_key)
                message.delivered_at = now
                message.claimed_at = None
                message.last_error = None
                message.result = json.dumps(outcome)
                result.delivered += 1
                result.coalesced += coalesce(session=session, ids=covered, into=message_id, now=now)
                _audit_outcome(session, message, body, "ok", now, result=outcome)
        pace.held = []  # freed with the outcome, now committed
    finally:
        pace.free()  # not freed with an outcome (an unexpected error): in a transaction of its own
    return True


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
        self.budgets = SlackBudgets(engine, rates={tiers.POST: slack_rate})
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
            budgets=self.budgets,
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
            if done.resume_in is not None:  # a budget's next slot
                wait = min(wait, max(done.resume_in, 0.01))
            self._wake.wait(wait)
            self._wake.clear()
