"""The roster of a checklist run: each trader's state (ready, restricted, pending, away), read in
a handful of queries, and which rosters show a trader (to draw them again after a change that
stores no answer: ``mark_changed``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlmodel import Session, col, select

from bot import calendar
from bot.checklist.facts import TraderFacts, facts_for
from bot.checklist.models import Answer, ChecklistRun
from bot.checklist.service import desk_today, get_run, run_closed, schedule
from bot.db import add_at_commit
from bot.desks import away
from bot.desks.models import Desk, Role
from bot.desks.service import desks_of_user, members
from bot.errors import ServiceError
from bot.people import service as people
from bot.people.service import Names


class TraderState(StrEnum):
    READY = "ready"
    RESTRICTED = "restricted"
    PENDING = "pending"
    AWAY = "away"  # no answer, and away today: not expected to answer


@dataclass(frozen=True)
class RosterEntry:
    user_id: str
    state: TraderState
    answer: Answer | None


@dataclass(frozen=True)
class Roster:
    desk: Desk
    run: ChecklistRun
    entries: list[RosterEntry]
    version: int
    names: Names = field(default_factory=Names)
    facts: dict[str, TraderFacts] = field(default_factory=dict)  # from capabilities above (bot.checklist.facts)

    def count(self, state: TraderState) -> int:
        return sum(1 for e in self.entries if e.state == state)

    def of(self, state: TraderState) -> list[RosterEntry]:
        return [e for e in self.entries if e.state == state]

    def entry(self, user_id: str) -> RosterEntry | None:
        return next((e for e in self.entries if e.user_id == user_id), None)


def current_answers(*, session: Session, run_id: int) -> dict[str, Answer]:
    """Each trader's latest answer for a run, in one query."""
    answers = session.exec(
        select(Answer).where(Answer.run_id == run_id).order_by(col(Answer.user_id), col(Answer.version))
    ).all()
    return {a.user_id: a for a in answers}  # later versions overwrite earlier ones


def state_of(answer: Answer | None, is_away: bool = False) -> TraderState:
    if answer is None:
        return TraderState.AWAY if is_away else TraderState.PENDING
    return TraderState.RESTRICTED if answer.restricted else TraderState.READY


def roster(*, session: Session, run: ChecklistRun) -> Roster:
    """Every trader's state for a run, with their names (from the cache: no Slack call)."""
    assert run.id is not None
    desk = session.get(Desk, run.desk_id)
    assert desk is not None
    traders = members(session=session, desk_id=run.desk_id, role=Role.TRADER)
    latest = current_answers(session=session, run_id=run.id)
    gone = away.away_on(session=session, user_ids=traders, day=run.trading_date, desk_id=run.desk_id)
    entries = [RosterEntry(u, state_of(latest.get(u), u in gone), latest.get(u)) for u in traders]
    names = people.names_for(session=session, user_ids=traders)
    known = facts_for(session, run, traders)
    return Roster(desk=desk, run=run, entries=entries, version=run.answers_version, names=names, facts=known)


def today_run(*, session: Session, desk: Desk, now: datetime) -> ChecklistRun | None:
    assert desk.id is not None
    return get_run(session=session, desk_id=desk.id, day=desk_today(desk, now))


def next_post_time(desk: Desk, now: datetime) -> datetime:
    """The next scheduled post (UTC) strictly after ``now``."""
    day = desk_today(desk, now)
    for _ in range(15):
        plan = schedule(desk, day)
        if plan is not None and plan.post_at > now:
            return plan.post_at
        day = calendar.next_trading_day(day)
    raise ServiceError("no trading day in the next two weeks")


def rosters_showing(*, session: Session, user_id: str, now: datetime) -> list[int]:
    """Today's rosters that show ``user_id``: on each desk they trade on, today's run (the
    desk's date) if it has been posted and has not closed (``run_closed``: a closed
    checklist's message is the day's record and is not drawn again). The run ids."""
    shown: list[int] = []
    for desk in desks_of_user(session=session, user_id=user_id, role=Role.TRADER):
        run = today_run(session=session, desk=desk, now=now)
        if run is not None and run.id is not None and run.message_ts is not None and not run_closed(run, desk, now):
            shown.append(run.id)
    return shown


def mark_changed(*, session: Session, user_id: str, now: datetime) -> list[int]:
    """The one roster redraw for a change that stores no answer (an away day set or cancelled,
    a readiness-profile fact): the ``answers_version`` of each roster showing ``user_id``
    (``rosters_showing``) is bumped at commit (``bot.db.add_at_commit``), so the refresher
    draws it again. The run ids, for the caller to ``notify`` the refresher after its commit."""
    touched = rosters_showing(session=session, user_id=user_id, now=now)
    for run_id in touched:
        add_at_commit(session, ChecklistRun, "answers_version", run_id)
    return touched
