"""Live roster: re-render a checklist message in place, coalesced.

Answers bump ``checklist_run.answers_version``. The refresher renders a run when
``answers_version > rendered_version`` and at most once per ``interval`` per
message; the claim is a conditional UPDATE, so several threads or replicas
coalesce through the database and the final state always appears. The lease is
operational wall-clock time, not the domain clock.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.checklist.models import ChecklistRun
from bot.checklist.service import roster
from bot.checklist.views import checklist_message
from bot.db import claim_lease, session_scope

log = logging.getLogger(__name__)


def _wallclock() -> datetime:
    return datetime.now(UTC)


class RosterRefresher:
    def __init__(
        self,
        engine: Engine,
        client: WebClient,
        *,
        interval: float = 1.0,
        wallclock: Callable[[], datetime] = _wallclock,
    ) -> None:
        self._engine = engine
        self._client = client
        self._interval = interval
        self._wallclock = wallclock
        self._due: list[tuple[float, int]] = []
        self._cond = threading.Condition()
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
        """Ask for ``run_id``'s message to be brought up to date (soon, coalesced)."""
        with self._cond:
            heapq.heappush(self._due, (time.monotonic() + delay, run_id))
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
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._due or self._due[0][0] > time.monotonic()):
                    timeout = None if not self._due else max(0.0, self._due[0][0] - time.monotonic())
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, run_id = heapq.heappop(self._due)
                # Drop duplicates of the same run that are due now: one render covers them.
                self._due = [d for d in self._due if d[1] != run_id or d[0] > time.monotonic()]
                heapq.heapify(self._due)
                self._busy += 1
            try:
                retry_in = self.refresh(run_id)
            except Exception:
                log.exception("roster refresh of run %s failed", run_id)
                retry_in = 5.0
            finally:
                with self._cond:
                    self._busy -= 1
            if retry_in is not None:
                self.notify(run_id, retry_in)

    def refresh(self, run_id: int) -> float | None:
        """Render one run if it is stale and its lease is free. Returns seconds until the
        next attempt is needed, or None when the message is up to date."""
        now = self._wallclock()
        lease = timedelta(seconds=self._interval)
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
            if not claimed:
                return self._wait_needed(session, run_id, now)
            run = session.get(ChecklistRun, run_id)
            assert run is not None and run.message_ts is not None
            text, blocks = checklist_message(roster(session=session, run=run))
            version, channel, ts = run.answers_version, run.channel_id, run.message_ts
        try:
            self._client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        except SlackApiError as exc:
            log.warning("chat.update for run %s failed: %s", run_id, exc.response.get("error"))
            return 5.0
        done = self._wallclock()
        greatest = func.max if self._engine.dialect.name == "sqlite" else func.greatest
        with session_scope(self._engine) as session:
            # The lease restarts when Slack has answered, so two updates of one message reach
            # Slack at least ``interval`` apart, however long rendering or the call took.
            session.execute(
                update(ChecklistRun)
                .where(col(ChecklistRun.id) == run_id)
                .values(rendered_version=greatest(ChecklistRun.rendered_version, version), roster_claimed_at=done)
            )
            return self._wait_needed(session, run_id, done)

    def _wait_needed(self, session: Session, run_id: int, now: datetime) -> float | None:
        row = session.exec(
            select(ChecklistRun.answers_version, ChecklistRun.rendered_version, ChecklistRun.roster_claimed_at).where(
                ChecklistRun.id == run_id
            )
        ).first()
        if row is None or row[0] <= row[1]:
            return None
        claimed_at = row[2]
        if claimed_at is None:
            return 0.0
        return max(0.05, (claimed_at + timedelta(seconds=self._interval) - now).total_seconds())

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
