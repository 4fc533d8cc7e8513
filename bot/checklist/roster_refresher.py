"""Live roster: re-render a checklist message in place, coalesced.

Answers bump ``checklist_run.answers_version``. The refresher renders a run when
``answers_version > rendered_version`` and at most once per ``interval`` per
message; the claim is a conditional UPDATE, so several threads or replicas
coalesce through the database and the final state always appears. The lease is
operational wall-clock time, not the domain clock.

The roster is cosmetic, escalations are not: ``chat.update`` is a Tier 3 method (about 50
calls a minute per workspace, https://api.slack.com/methods/chat.update), shared with the
outbox's in-place updates of escalation messages. Each roster update therefore takes two
budgets held in the database (``bot.delivery.tiers``), whichever process or replica sends it:
the workspace's ``chat.update`` budget, the outbox's too, and the roster's own
(``rate_per_minute`` for *all* desks, below the tier, so escalations keep the rest). N
replicas send at that rate, not N times it. A ``Retry-After`` pauses both; the client has no
retry handlers, so a 429 never hides inside a call.
A refused update (``msg_blocks_too_long``, ``invalid_blocks``…) is retried once in compact
form; if that is refused too, that version is given up (logged once) instead of being retried
unchanged forever: the next answer renders again.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.checklist.models import ChecklistRun
from bot.checklist.roster_cache import MAX_AGE, RosterCache, snapshot
from bot.checklist.roster_views import checklist_message
from bot.db import claim_lease, session_scope
from bot.delivery import tiers
from bot.delivery.pacing import Budget
from bot.delivery.tiers import SlackBudgets
from bot.slack.deps import retry_after

log = logging.getLogger(__name__)


def _wallclock() -> datetime:
    return datetime.now(UTC)


ROSTER = "roster"  # the roster's own budget: slack:roster
SLEEP_AT_MOST = 0.25  # seconds the refresher sleeps for a slot; a later one: it reschedules the run
RETRYABLE = 5.0  # seconds before retrying after an outage (5xx, timeout)
PERMANENT = frozenset(
    {"msg_blocks_too_long", "invalid_blocks", "invalid_blocks_format", "too_many_attachments", "msg_too_long"}
)


class RosterRefresher:
    """Brings checklist messages up to date, one thread per process.

    ``notify`` (a stored click) only marks the run in memory. The thread keeps, per run, the
    time of its next database attempt: at most one per ``interval`` however many clicks arrive,
    and a run whose lease another process holds is tried again when that lease ends. An
    attempt first reads the run (a snapshot, no write lock on SQLite); only a run that is behind
    and whose lease is free is claimed (the conditional UPDATE) and rendered from the per-run
    cache (``bot.checklist.roster_cache``: answers read incrementally, members and names kept)."""

    def __init__(
        self,
        engine: Engine,
        client: WebClient,
        *,
        interval: float = 1.0,
        wallclock: Callable[[], datetime] = _wallclock,
        rate_per_minute: float | None = None,
        max_age: float = MAX_AGE,
    ) -> None:
        self._engine = engine
        self._client = client
        self._interval = interval
        self.budgets = SlackBudgets(engine)
        # The workspace's chat.update budget (the outbox's too) and the roster's own share of it.
        roster = Budget(f"{self.budgets.namespace}:{ROSTER}", rate_per_minute / 60 if rate_per_minute else None)
        self.budget = [*self.budgets.of(tiers.UPDATE), roster]
        self.refused: dict[int, str] = {}  # run id -> Slack's error for its last refused version
        self.compact: set[int] = set()  # runs whose full roster Slack refused: compact from now on
        self.cache = RosterCache(max_age=max_age)
        self._wallclock = wallclock
        self._heap: list[tuple[float, int]] = []  # (due, run); entries not matching _due are stale
        self._due: dict[int, float] = {}  # run -> when (monotonic) it is next looked at
        self._not_before: dict[int, float] = {}  # run -> earliest next database attempt
        self._cond = threading.Condition()
        self._work = threading.Lock()  # one refresh at a time (the loop, or a direct call)
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._busy = 0

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="roster-refresher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def notify(self, run_id: int, delay: float = 0.0) -> None:
        """Ask for ``run_id``'s message to be brought up to date (soon, coalesced). Memory only:
        no database statement."""
        with self._cond:
            self._schedule(run_id, time.monotonic() + delay)

    def _schedule(self, run_id: int, at: float) -> None:  # holding _cond
        at = max(at, self._not_before.get(run_id, 0.0))
        due = self._due.get(run_id)
        if due is not None and due <= at:
            return  # already due as soon: one attempt covers both
        self._due[run_id] = at
        heapq.heappush(self._heap, (at, run_id))
        self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return not self._due and self._busy == 0

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """For tests and benchmarks: wait until nothing is scheduled or being rendered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.02)
        return False

    # -- worker -------------------------------------------------------------------
    def _next(self) -> int | None:
        """The next run due (holding _cond), or None when stopped."""
        while not self._stopped:
            while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
                heapq.heappop(self._heap)  # superseded by an earlier schedule, or done
            now = time.monotonic()
            if self._heap and self._heap[0][0] <= now:
                _, run_id = heapq.heappop(self._heap)
                del self._due[run_id]
                # However many notifies arrive meanwhile, the next attempt waits an interval.
                self._not_before[run_id] = now + self._interval
                if len(self._not_before) > 512:
                    self._not_before = {k: v for k, v in self._not_before.items() if v > now}
                return run_id
            self._cond.wait(None if not self._heap else self._heap[0][0] - now)
        return None

    def _loop(self) -> None:
        while True:
            with self._cond:
                run_id = self._next()
                if run_id is None:
                    return
                self._busy += 1
            try:
                retry_in = self.refresh(run_id)
            except Exception:
                log.exception("roster refresh of run %s failed", run_id)
                retry_in = RETRYABLE
            with self._cond:
                self._busy -= 1
                if retry_in is not None:
                    at = time.monotonic() + retry_in
                    self._not_before[run_id] = max(self._not_before.get(run_id, 0.0), at)
                    self._schedule(run_id, at)

    def refresh(self, run_id: int) -> float | None:
        """Render one run if it is stale and its lease is free. Returns seconds until the
        next attempt is needed, or None when the message is up to date."""
        with self._work:
            return self._refresh(run_id)

    def _spent(self) -> float:
        """Seconds until a budget this process last found spent may have a slot (a hint)."""
        return max(self.budgets.spent(tiers.UPDATE), self.budgets.spent(ROSTER))

    def _refresh(self, run_id: int) -> float | None:
        wait = self._spent()
        if wait > 0:
            return wait
        now = self._wallclock()
        lease = timedelta(seconds=self._interval)
        with snapshot(self._engine) as session:
            run = session.get(ChecklistRun, run_id)
            if run is None:
                self.cache.drop(run_id)
                return None
            if run.message_ts is None or run.answers_version <= run.rendered_version:
                return None
            if run.roster_claimed_at is not None and run.roster_claimed_at + lease > now:
                return max(0.05, (run.roster_claimed_at + lease - now).total_seconds())  # another holds it
            wait = self.budgets.shared.free_in(self.budget)
            if wait > SLEEP_AT_MOST:  # no slot soon: read and claim nothing until there is one
                return wait
            live = self.cache.read(session, run)
            current = live.roster()
        version, channel, ts = current.version, run.channel_id, run.message_ts
        with session_scope(self._engine) as session:
            claimed = claim_lease(
                session,
                ChecklistRun,
                run_id,
                column="roster_claimed_at",
                now=now,
                lease=lease,
                where=(
                    col(ChecklistRun.message_ts).is_not(None),
                    col(ChecklistRun.answers_version) > col(ChecklistRun.rendered_version),
                ),
            )
        if not claimed:  # taken (or rendered) in between: look again when that lease ends
            return self._interval
        for compact in (False, True) if run_id not in self.compact else (True,):
            text, blocks = checklist_message(current, compact=compact, memo=live.memo)
            taken = self.budgets.take(self.budget, within=SLEEP_AT_MOST)  # a compact retry waits its turn
            if taken.delay is None:
                return max(taken.free_in, 0.05)
            time.sleep(taken.delay)
            try:
                self._update_message(channel, ts, text, blocks)
            except SlackApiError as exc:
                error = str(exc.response.get("error") or "")
                if exc.response.status_code == 429:
                    pause = retry_after(exc, floor=0.5)
                    log.info("chat.update rate limited: roster updates pause %.1fs", pause)
                    return pause
                if error in PERMANENT or (exc.response.status_code < 500 and error):
                    if not compact:
                        self.compact.add(run_id)
                        continue  # try the compact roster
                    if self.refused.get(run_id) != error:
                        log.warning("Slack refused run %s's roster (%s); version %s given up", run_id, error, version)
                    self.refused[run_id] = error
                    break
                log.warning("chat.update for run %s failed: %s", run_id, error or exc.response.status_code)
                return RETRYABLE
            except Exception as exc:  # Slack unreachable
                log.warning("chat.update for run %s failed: %r", run_id, exc)
                return RETRYABLE
            else:
                self.refused.pop(run_id, None)
                break
        done = self._wallclock()
        greatest = func.max if self._engine.dialect.name == "sqlite" else func.greatest
        with session_scope(self._engine) as session:
            # The lease restarts when Slack has answered, so two updates of one message reach
            # Slack at least ``interval`` apart, however long rendering or the call took.
            row = session.execute(
                update(ChecklistRun)
                .where(col(ChecklistRun.id) == run_id)
                .values(rendered_version=greatest(ChecklistRun.rendered_version, version), roster_claimed_at=done)
                .returning(col(ChecklistRun.answers_version), col(ChecklistRun.rendered_version))
            ).first()
        if row is None or row[0] <= row[1]:
            return None
        return self._interval  # more answers came meanwhile: again when the lease ends

    def _update_message(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        """chat.update within the budgets already taken, freed when Slack has answered; a 429
        pauses them first (no one sends in between)."""
        try:
            self._client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        except SlackApiError as exc:
            if exc.response.status_code == 429:
                self.budgets.rate_limited(self.budget, retry_after(exc, floor=0.5))
            raise
        finally:
            self.budgets.done(self.budget)

    def sweep(self) -> int:
        """Schedule every posted run whose message is behind its answers (after a restart)."""
        with session_scope(self._engine) as session:
            ids = session.exec(
                select(ChecklistRun.id).where(
                    col(ChecklistRun.message_ts).is_not(None),
                    col(ChecklistRun.answers_version) > col(ChecklistRun.rendered_version),
                )
            ).all()
        for run_id in ids:
            if run_id is not None:
                self.notify(run_id)
        return len(ids)
