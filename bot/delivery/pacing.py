"""Pacing: sending budgets kept in the database, shared by every thread, process and replica.

A *budget* is a row of ``delivery_pacer`` named by its key (``slack:chat.update``, the
channel budget ``slack#C0123``, ``pager``): when its next call may start, its current spacing,
whether a call is in flight, when the service last answered 429. A call may need several
budgets at once -- a Slack post takes its method's workspace budget *and* its channel's
(``bot.delivery.tiers``) -- and takes them all or none, in one short transaction of its own
(never inside another one, never across the call itself): the rows are read ``FOR UPDATE`` in
key order on PostgreSQL (the row locks order concurrent senders; the fixed order rules out
deadlocks), under the write lock (``BEGIN IMMEDIATE``) on SQLite. N processes therefore send
at the budget's rate, not N times it. Times are the database's clock
(``statement_timestamp()`` on PostgreSQL, ``julianday('now')`` on SQLite), so processes on
different hosts agree without synchronised clocks; only the sleeps are local.

- ``take(budgets, within=...)``: when no call of any of them is in flight, the call starts at
  ``max(now, next_at of each)``; if that is no later than ``within`` seconds from now every
  budget is marked busy and its ``next_at`` moved a spacing past the start. Otherwise nothing
  changes and the answer says how long until it could start (a sender with other work -- the
  outbox worker -- does that meanwhile instead of sleeping: ``bot.delivery.worker``).
- ``done(budgets)``: the answer arrived (with ``session``: in the transaction that records
  the outcome); the budgets are free, and their next call starts no
  sooner than one spacing after this answer. Spacing from the *answer* means two calls can
  never reach the server closer than the spacing, whichever processes send them and however
  the network or the GIL delays one. A sender that dies between ``take`` and ``done`` holds
  them for at most ``hold`` seconds.
- ``rate_limited(budgets, retry_after)``: a 429 pauses them for ``Retry-After`` and slows them
  down (spacing x ``slowdown``); after ``recover_after`` seconds without a 429 the spacing is
  the configured rate's again.

``SharedPacer`` is the one-budget form with a blocking ``wait()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Float, cast, func, literal, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from bot.db import conflict_insert, read_scope, session_scope
from bot.delivery.models import PacerBudget

INFINITE = float("inf")


class Pacer(Protocol):
    """A blocking pacer of one service (``SharedPacer``)."""

    def wait(self) -> None: ...

    def done(self) -> None: ...

    def rate_limited(self, retry_after: float) -> None: ...


@dataclass(frozen=True)
class Budget:
    """One shared budget: its row's key (at most 32 characters) and its rate (calls a second;
    None or 0: no spacing, but still one call in flight at a time)."""

    key: str
    rate: float | None

    @property
    def spacing(self) -> float:
        return 1.0 / self.rate if self.rate else 0.0


@dataclass(frozen=True)
class Taken:
    """What ``take`` got: ``delay`` (seconds until the call may start) when the budgets are
    now this caller's, else None with ``free_in``, when they could be (a guess: others may
    take them first) and ``key``, the budget that stood in the way."""

    delay: float | None
    free_in: float = 0.0
    key: str = ""

    @property
    def ok(self) -> bool:
        return self.delay is not None


_TABLE: Any = PacerBudget.__table__  # type: ignore[attr-defined]
_C = _TABLE.c


class SharedBudgets:
    """Budgets in the database (see module); one object per process is enough, several work."""

    def __init__(
        self,
        engine: Engine,
        *,
        slowdown: float = 1.25,
        recover_after: float = 60.0,
        hold: float = 60.0,
    ) -> None:
        self.engine = engine
        self._slowdown = slowdown
        self._recover_after = recover_after
        self._hold = hold
        self._known: set[str] = set()
        self._postgresql = engine.dialect.name == "postgresql"
        self._greatest = func.greatest if self._postgresql else func.max
        self.now: ColumnElement[float] = (
            cast(func.extract("epoch", func.statement_timestamp()), Float)
            if self._postgresql
            else (func.julianday("now") - 2440587.5) * 86400.0
        )

    def _rows(self, budgets: Sequence[Budget]) -> None:
        """Create the budgets' rows the first time (concurrent creators: the key decides)."""
        new = [b for b in budgets if b.key not in self._known]
        if not new:
            return
        with session_scope(self.engine) as session:
            insert = conflict_insert(self.engine.dialect.name, _TABLE)
            for b in new:
                values = {"service": b.key, "next_at": 0.0, "spacing": b.spacing, "limited_at": 0.0, "busy_until": 0.0}
                session.execute(insert.values(**values).on_conflict_do_nothing())
        self._known.update(b.key for b in new)

    def take(self, budgets: Sequence[Budget], *, within: float = INFINITE) -> Taken:
        """Take every budget for one call if it can start within ``within`` seconds (see module)."""
        budgets = sorted({b.key: b for b in budgets}.values(), key=lambda b: b.key)
        if not budgets:
            return Taken(0.0)
        self._rows(budgets)
        stmt = (
            select(_C.service, _C.next_at, _C.spacing, _C.limited_at, _C.busy_until, self.now)
            .where(_C.service.in_([b.key for b in budgets]))
            .order_by(_C.service)
        )
        if self._postgresql:
            stmt = stmt.with_for_update()
        with session_scope(self.engine) as session:
            rows = {r[0]: r for r in session.execute(stmt).all()}
            now = float(next(iter(rows.values()))[5])
            busy = [(float(r[4]) - now, key) for key, r in rows.items() if float(r[4]) > now]
            if busy:
                # One of them is in flight: look again in a moment (its answer frees it).
                return Taken(None, min(min(busy)[0], 0.05), min(busy)[1])
            spacings = {}
            for b in budgets:
                row = rows[b.key]
                recently_limited = now - float(row[3]) <= self._recover_after
                spacings[b.key] = max(float(row[2]), b.spacing) if recently_limited else b.spacing
            start, key = max((max(float(rows[b.key][1]), now), b.key) for b in budgets)
            if start - now > within:
                return Taken(None, start - now, key)
            for b in budgets:
                session.execute(
                    update(_TABLE)
                    .where(_C.service == b.key)
                    .values(spacing=spacings[b.key], next_at=start + spacings[b.key], busy_until=start + self._hold)
                )
        return Taken(max(0.0, start - now))

    def free_in(self, budgets: Sequence[Budget]) -> float:
        """Seconds until a call could take ``budgets`` (0: now), read without taking them."""
        if not budgets:
            return 0.0
        self._rows(budgets)
        stmt = select(_C.next_at - self.now, _C.busy_until - self.now).where(_C.service.in_([b.key for b in budgets]))
        with read_scope(self.engine) as session:
            rows = session.execute(stmt).all()
        return max([0.0, *(float(r[0]) for r in rows), *(0.05 for r in rows if float(r[1]) > 0)])

    def done(self, budgets: Sequence[Budget], *, session: Session | None = None) -> None:
        """The call's answer arrived: free the budgets; their next call starts a spacing after now.
        With ``session``, in its transaction (the outbox records the call's outcome in the same
        one): the budgets stay busy until it commits."""
        values = {"busy_until": 0.0, "next_at": self._greatest(_C.next_at, self.now + _C.spacing)}
        if session is not None:
            self._update(session, budgets, values)  # rows made by take()
        else:
            self._set(budgets, **values)

    def rate_limited(self, budgets: Sequence[Budget], retry_after: float) -> None:
        """The service said 429: pause the budgets for ``retry_after`` seconds and slow them down."""
        for b in budgets:
            self._set(
                [b],
                limited_at=self.now,
                spacing=self._greatest(_C.spacing * self._slowdown, literal(b.spacing, Float), 0.001),
                next_at=self._greatest(_C.next_at, self.now + retry_after),
            )

    def _set(self, budgets: Sequence[Budget], **values: Any) -> None:
        if not budgets:
            return
        self._rows(budgets)
        with session_scope(self.engine) as session:
            self._update(session, budgets, values)

    def _update(self, session: Session, budgets: Sequence[Budget], values: dict[str, Any]) -> None:
        for key in sorted(b.key for b in budgets):  # one row at a time, in key order: as take() locks them
            session.execute(update(_TABLE).where(_C.service == key).values(**values))

    def state(self, budget: Budget) -> tuple[float, float, bool]:
        """(seconds until the next slot, current spacing, a call in flight) -- for logs and tests."""
        self._rows([budget])
        stmt = select(_C.next_at - self.now, _C.spacing, _C.busy_until > self.now).where(_C.service == budget.key)
        with read_scope(self.engine) as session:
            until, spacing, busy = session.execute(stmt).one()
        return max(0.0, float(until)), float(spacing), bool(busy)


class SharedPacer:
    """Spaces calls to ``service`` at ``rate_per_second`` across every process: one budget
    (see module), taken with a blocking ``wait()``."""

    def __init__(
        self,
        engine: Engine,
        service: str,
        rate_per_second: float | None,
        *,
        slowdown: float = 1.25,
        recover_after: float = 60.0,
        hold: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.engine = engine
        self.service = service
        self.budget_ = Budget(service, rate_per_second)
        self.base_spacing = self.budget_.spacing
        self.poll = min(max(self.base_spacing / 4, 0.005), 0.05)
        self.budgets = SharedBudgets(engine, slowdown=slowdown, recover_after=recover_after, hold=hold)
        self._sleep = sleep

    def reserve(self) -> float | None:
        """Take the next slot: seconds until it starts (0: now); None while another call is in flight."""
        return self.budgets.take([self.budget_]).delay

    def wait(self) -> None:
        """Sleep until this process may make the next call."""
        while (delay := self.reserve()) is None:
            self._sleep(self.poll)
        if delay > 0:
            self._sleep(delay)

    def done(self) -> None:
        self.budgets.done([self.budget_])

    def rate_limited(self, retry_after: float) -> None:
        self.budgets.rate_limited([self.budget_], retry_after)

    def budget(self) -> tuple[float, float, bool]:
        """(seconds until the next slot, current spacing, a call in flight)."""
        return self.budgets.state(self.budget_)
