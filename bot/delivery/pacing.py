"""Pacing: one sending budget per service, kept in the database.

The outbox worker spaces its calls to a service (Slack) at the service's rate. The budget
-- when the next call may start, the current spacing, whether a call is in flight, when
the service last said 429 -- is a row of ``delivery_pacer``, so every thread, process and
replica that delivers draws on the same budget: N processes send at the configured rate,
not N times it. Each step is one atomic ``UPDATE`` (the row lock orders concurrent
senders) in a short transaction of its own, never inside another one and never across
the call itself. Times are the database's clock (``statement_timestamp()`` on PostgreSQL,
``julianday('now')`` on SQLite), so processes on different hosts agree without
synchronised clocks; only the sleeps are local.

- ``wait()`` takes the next slot when no call is in flight: ``start = max(next_at, now)``,
  marks the service busy, and sleeps until ``start``. While another sender's call is in
  flight it polls (a fraction of the spacing) until that call is done.
- ``done()``: the answer arrived; the service is free, and the next call starts no sooner
  than one spacing after this answer. Spacing from the *answer* means two calls can never
  reach the server closer than the spacing, whichever processes send them and however the
  network or the GIL delays one. A sender that dies between ``wait()`` and ``done()``
  holds the service for at most ``hold`` seconds.
- ``rate_limited(retry_after)``: a 429 pauses the service for ``Retry-After`` and slows it
  down (spacing x ``slowdown``); after ``recover_after`` seconds without a 429 the spacing is
  the configured rate's again.

Normally one process delivers (the leader, ``bot.processes``) with one worker thread, so
``wait`` finds the service free; several senders at once (a leadership hand-over, a CLI
``escalations run`` next to the bot) queue on the row instead of adding up their rates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import Float, case, cast, func, literal, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from bot.db import conflict_insert, read_scope, session_scope
from bot.delivery.models import PacerBudget


class Pacer(Protocol):
    """What the outbox worker asks of a pacer (``deliver_due(pacers={service: ...})``)."""

    def wait(self) -> None: ...

    def done(self) -> None: ...

    def rate_limited(self, retry_after: float) -> None: ...


_TABLE: Any = PacerBudget.__table__  # type: ignore[attr-defined]
_C = _TABLE.c


class SharedPacer:
    """Spaces calls to ``service`` at ``rate_per_second`` across every process (see module)."""

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
        self.base_spacing = 1.0 / rate_per_second if rate_per_second else 0.0
        self.poll = min(max(self.base_spacing / 4, 0.005), 0.05)
        self._slowdown = slowdown
        self._recover_after = recover_after
        self._hold = hold
        self._sleep = sleep
        self._ready = False
        postgresql = engine.dialect.name == "postgresql"
        self._greatest = func.greatest if postgresql else func.max
        self._now: ColumnElement[float] = (
            cast(func.extract("epoch", func.statement_timestamp()), Float)
            if postgresql
            else (func.julianday("now") - 2440587.5) * 86400.0
        )

    def _row(self) -> None:
        """Create the service's row the first time (concurrent creators: the key decides)."""
        if self._ready:
            return
        values = {"service": self.service, "next_at": 0.0, "spacing": self.base_spacing}
        with session_scope(self.engine) as session:
            insert = conflict_insert(self.engine.dialect.name, _TABLE)
            session.execute(insert.values(limited_at=0.0, busy_until=0.0, **values).on_conflict_do_nothing())
        self._ready = True

    def _update(self, **values: Any) -> None:
        self._row()
        with session_scope(self.engine) as session:
            session.execute(update(_TABLE).where(_C.service == self.service).values(**values))

    def reserve(self) -> float | None:
        """Take the next slot: seconds until it starts (0: now); None while another call is in flight."""
        self._row()
        now, base = self._now, literal(self.base_spacing, Float)
        recently_limited = now - _C.limited_at <= self._recover_after
        spacing = case((recently_limited, self._greatest(_C.spacing, base)), else_=base)
        start = self._greatest(_C.next_at, now)
        stmt = (
            update(_TABLE)
            .where(_C.service == self.service, _C.busy_until <= now)
            .values(spacing=spacing, next_at=start + spacing, busy_until=start + self._hold)
            .returning(_C.next_at - _C.spacing, now)
        )
        with session_scope(self.engine) as session:
            row = session.execute(stmt).first()
        if row is None:
            return None
        return max(0.0, float(row[0]) - float(row[1]))

    def wait(self) -> None:
        """Sleep until this process may make the next call."""
        while (delay := self.reserve()) is None:
            self._sleep(self.poll)
        if delay > 0:
            self._sleep(delay)

    def done(self) -> None:
        """The call's answer arrived: free the service; the next call starts a spacing after now."""
        self._update(busy_until=0.0, next_at=self._greatest(_C.next_at, self._now + _C.spacing))

    def rate_limited(self, retry_after: float) -> None:
        """The service said 429: pause it for ``retry_after`` seconds and slow down."""
        now = self._now
        self._update(
            limited_at=now,
            spacing=self._greatest(_C.spacing * self._slowdown, literal(self.base_spacing, Float), 0.001),
            next_at=self._greatest(_C.next_at, now + retry_after),
        )

    def budget(self) -> tuple[float, float, bool]:
        """(seconds until the next slot, current spacing, a call in flight) -- for logs and tests."""
        self._row()
        stmt = select(_C.next_at - self._now, _C.spacing, _C.busy_until > self._now).where(_C.service == self.service)
        with read_scope(self.engine) as session:
            until, spacing, busy = session.execute(stmt).one()
        return max(0.0, float(until)), float(spacing), bool(busy)
