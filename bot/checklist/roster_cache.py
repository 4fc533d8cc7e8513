"""The roster refresher's cache: one live roster per run, brought up to date incrementally.

A full load (``rosters.roster``) reads the desk's ~2,000 traders, every answer version, names,
away days and profile facts; the refresher keeps that per run and afterwards reads only what
is new:

- answers are append-only versions (``service._store`` inserts, never updates), so the rows
  with ``id > last seen`` are what changed, each bumping ``answers_version`` once in the
  transaction that stores it;
- ``answers_version`` is also bumped by what changes the roster *without* an answer row (away
  days, profile facts: both through ``rosters.mark_changed``). So the increment is
  used only when the bump since the last read is fully explained by the rows read (their count
  equals the version delta), every new row belongs to a known trader, the desk row and the
  trader list (count and greatest member id) are unchanged and the cache is younger than
  ``max_age`` (names change without a bump). Anything else is a full load.

Every read happens in one snapshot (``snapshot``: REPEATABLE READ on PostgreSQL, a deferred
transaction — one WAL snapshot — on SQLite), so the version and the rows agree. On PostgreSQL
answer ids are taken before commit: a click with a smaller id may commit after a larger one was
read. When the rows above the last id don't explain the delta, the run's answer ids are read
and those never seen are fetched; if the delta is still not explained (an away day, a profile
change), it is a full load: a mismatch never leaves a wrong roster standing. The roster a
refresh renders reflects at least the ``version`` it records as rendered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.checklist.facts import TraderFacts
from bot.checklist.models import Answer, ChecklistRun
from bot.checklist.roster_views import RosterMemo
from bot.checklist.rosters import Roster, RosterEntry, roster, state_of
from bot.db import read_scope
from bot.desks.models import Desk, DeskMember, Role
from bot.people.service import Names

MAX_AGE = 60.0  # seconds: names and facts can change without a bump; reload at least this often


@contextmanager
def snapshot(engine: Engine) -> Iterator[Session]:
    """A read-only session whose statements all see one snapshot of the database."""
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    with read_scope(engine) as session:
        yield session


def _desk_state(desk: Desk) -> dict[str, Any]:
    return desk.model_dump()


def _members_mark(session: Session, desk_id: int) -> tuple[int, int]:
    """The trader list's count and greatest row id: an added or removed trader changes it."""
    count, top = session.exec(
        select(func.count(col(DeskMember.id)), func.max(col(DeskMember.id))).where(
            DeskMember.desk_id == desk_id, DeskMember.role == Role.TRADER
        )
    ).one()
    return int(count or 0), int(top or 0)


@dataclass
class LiveRoster:
    """One run's roster as last read, with the rendered pieces of its generation."""

    desk: Desk
    run: ChecklistRun
    entries: list[RosterEntry]
    position: dict[str, int]  # trader -> index in entries
    names: Names
    facts: dict[str, TraderFacts]
    version: int  # answers_version of the snapshot the roster reflects
    last_answer_id: int
    seen: set[int]  # ids of every answer row read
    members: tuple[int, int]
    desk_state: dict[str, Any]
    loaded_at: float  # monotonic time of the full load
    memo: RosterMemo = field(default_factory=RosterMemo)

    def roster(self) -> Roster:
        return Roster(
            desk=self.desk,
            run=self.run,
            entries=list(self.entries),
            version=self.version,
            names=self.names,
            facts=self.facts,
        )


class RosterCache:
    """Live rosters by run id, for the one thread that renders them."""

    def __init__(self, *, max_age: float = MAX_AGE, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self._monotonic = monotonic
        self._runs: dict[int, LiveRoster] = {}
        self.full_loads = 0
        self.incremental_loads = 0
        self.last_load = ""  # "full" or "incremental": what the last ``read`` did

    def get(self, run_id: int) -> LiveRoster | None:
        return self._runs.get(run_id)

    def drop(self, run_id: int) -> None:
        self._runs.pop(run_id, None)

    def read(self, session: Session, run: ChecklistRun) -> LiveRoster:
        """``run``'s roster as of ``session``'s snapshot (``run`` read in that snapshot)."""
        assert run.id is not None
        now = self._monotonic()
        for key in [k for k, v in self._runs.items() if now - v.loaded_at > self.max_age]:
            del self._runs[key]  # too old to use: a full load anyway
        live = self._runs.get(run.id)
        if live is not None and self._advance(session, live, run):
            self.incremental_loads += 1
            self.last_load = "incremental"
            return live
        live = self._load(session, run, now)
        self._runs[run.id] = live
        self.full_loads += 1
        self.last_load = "full"
        return live

    def _load(self, session: Session, run: ChecklistRun, now: float) -> LiveRoster:
        assert run.id is not None
        full = roster(session=session, run=run)
        seen = {i for i in session.exec(select(Answer.id).where(Answer.run_id == run.id)).all() if i is not None}
        return LiveRoster(
            desk=full.desk,
            run=run,
            entries=list(full.entries),
            position={e.user_id: i for i, e in enumerate(full.entries)},
            names=full.names,
            facts=full.facts,
            version=run.answers_version,
            last_answer_id=max(seen, default=0),
            seen=seen,
            members=_members_mark(session, run.desk_id),
            desk_state=_desk_state(full.desk),
            loaded_at=now,
        )

    def _advance(self, session: Session, live: LiveRoster, run: ChecklistRun) -> bool:
        """Apply what is new since ``live`` was read; False when only a full load is right."""
        delta = run.answers_version - live.version
        if delta < 0:
            return False
        desk = session.get(Desk, run.desk_id)
        if desk is None or _desk_state(desk) != live.desk_state:
            return False
        if _members_mark(session, run.desk_id) != live.members:
            return False
        assert run.id is not None
        rows = (
            session.exec(
                select(Answer)
                .where(Answer.run_id == run.id, col(Answer.id) > live.last_answer_id)
                .order_by(col(Answer.id))
            ).all()
            if delta
            else []
        )
        if len(rows) != delta:
            rows = [*rows, *self._missed(session, live, run.id, rows)]
        if len(rows) != delta or any(a.user_id not in live.position for a in rows):
            return False
        for answer in rows:
            i = live.position[answer.user_id]
            known = live.entries[i].answer
            if known is None or answer.version > known.version:
                live.entries[i] = RosterEntry(answer.user_id, state_of(answer), answer)
            assert answer.id is not None
            live.last_answer_id = max(live.last_answer_id, answer.id)
            live.seen.add(answer.id)
        live.run = run
        live.version = run.answers_version
        return True

    @staticmethod
    def _missed(session: Session, live: LiveRoster, run_id: int, rows: Sequence[Answer]) -> list[Answer]:
        """Rows below the last id seen that were not committed when it was read (PostgreSQL
        takes ids before commit): the run's answer ids, less those read, fetched by id."""
        ids = set(session.exec(select(Answer.id).where(Answer.run_id == run_id)).all())
        missing = [i for i in ids - live.seen - {a.id for a in rows} if i is not None]
        if not missing:
            return []
        return list(session.exec(select(Answer).where(col(Answer.id).in_(missing))).all())
