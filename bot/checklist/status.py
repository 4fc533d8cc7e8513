"""Who-is-ready answers for /ibstatus and App Home: queries only, no Slack."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Date, Select, and_, bindparam, exists
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from bot import calendar
from bot.checklist import rosters
from bot.checklist import service as checklist
from bot.checklist.models import Answer, ChecklistRun
from bot.checklist.rosters import Roster, RosterEntry
from bot.desks import away
from bot.desks import service as desks
from bot.desks.models import Away, Desk, DeskMember, Role
from bot.errors import ServiceError
from bot.people import service as people
from bot.people.models import Person
from bot.people.service import Names


@dataclass(frozen=True)
class DeskStatus:
    """A desk's roster today (``roster`` is None before today's post)."""

    desk: Desk
    roster: Roster | None
    next_post: datetime
    names: Names = field(default_factory=Names)


@dataclass(frozen=True)
class TraderStatus:
    """One trader's standing on one desk today: ``entry`` is None before today's post;
    ``run`` is today's posted run while it still takes answers (for answer buttons)."""

    desk: Desk
    entry: RosterEntry | None
    next_post: datetime
    run: ChecklistRun | None = None
    names: Names = field(default_factory=Names)


def _desk_status(session: Session, desk: Desk, now: datetime) -> DeskStatus:
    run = rosters.today_run(session=session, desk=desk, now=now)
    roster = rosters.roster(session=session, run=run) if run is not None and run.message_ts else None
    names = roster.names if roster is not None else Names()
    return DeskStatus(desk=desk, roster=roster, next_post=rosters.next_post_time(desk, now), names=names)


def _trader_status(session: Session, desk: Desk, trader_id: str, now: datetime) -> TraderStatus:
    """Only this trader's latest answer is read: the cost doesn't grow with the desk."""
    run = rosters.today_run(session=session, desk=desk, now=now)
    entry = None
    answerable = None
    if run is not None and run.id is not None and run.message_ts is not None:
        answer = checklist.latest_answer(session=session, run_id=run.id, user_id=trader_id)
        is_away = bool(away.away_on(session=session, user_ids=[trader_id], day=run.trading_date, desk_id=desk.id))
        entry = RosterEntry(trader_id, rosters.state_of(answer, is_away), answer)
        answerable = None if checklist.run_closed(run, desk, now) else run
    return TraderStatus(
        desk=desk,
        entry=entry,
        next_post=rosters.next_post_time(desk, now),
        run=answerable,
        names=people.names_for(session=session, user_ids=[trader_id]),
    )


def own_status(*, session: Session, user_id: str, now: datetime) -> list[TraderStatus]:
    """Today's status on every desk where ``user_id`` trades."""
    return overview(session=session, user_id=user_id, now=now).trading


@dataclass(frozen=True)
class Overview:
    """What ``/ibstatus`` alone and App Home start from, in a handful of queries: the user's
    standing on each desk they trade on, the desks they manage, their current and future
    away periods (``upcoming``: ending on or after their today, soonest first)."""

    trading: list[TraderStatus]
    managing: list[Desk]
    upcoming: list[Away]
    flags: dict[str, bool] = field(default_factory=dict)  # ``overview``'s ``flags``, answered


# ``overview``'s statements, built once (their SQL is compiled once and cached).
_USER: BindParameter[str] = bindparam("overview_user")
USER = _USER  # what a caller's ``flags`` compare with: the user asking
_DAYS = [bindparam(f"overview_day{i}", type_=Date()) for i in range(3)]
_ANY_AWAY = exists().where(col(Away.user_id) == _USER, col(Away.end) >= _DAYS[0])  # else no away query
_NAME = (col(Person.display_name), col(Person.real_name), col(Person.handle), col(Person.deleted))
_DESKS_RUNS_ANSWERS = (
    sa_select(
        Desk,
        col(DeskMember.role),
        ChecklistRun,
        Answer,
        *_NAME,  # the four columns of the user's name, not their whole row (fewer columns, no object)
        _ANY_AWAY.label("any_away"),
    )
    .join(DeskMember, col(DeskMember.desk_id) == col(Desk.id))
    .outerjoin(
        ChecklistRun,
        and_(
            col(ChecklistRun.desk_id) == col(Desk.id),
            col(DeskMember.role) == Role.TRADER.value,
            col(ChecklistRun.trading_date).in_(_DAYS),
        ),
    )
    .outerjoin(Answer, and_(col(Answer.run_id) == col(ChecklistRun.id), col(Answer.user_id) == _USER))
    .outerjoin(Person, col(Person.user_id) == _USER)
    .where(col(DeskMember.user_id) == _USER)
    .order_by(col(Desk.name), col(DeskMember.role), col(ChecklistRun.id), col(Answer.version))
)
_WITH_FLAGS: dict[tuple[str, ...], Select[Any]] = {}


def _statement(flags: Mapping[str, ColumnElement[bool]]) -> Select[Any]:
    """``_DESKS_RUNS_ANSWERS`` with a column per flag, built once per set of names (a name
    stands for one condition: callers pass module-level constants)."""
    key = tuple(sorted(flags))
    if key not in _WITH_FLAGS:
        _WITH_FLAGS[key] = _DESKS_RUNS_ANSWERS.add_columns(*(flags[name].label(f"flag_{name}") for name in key))
    return _WITH_FLAGS[key]


_AWAY_SINCE = (
    select(Away).where(col(Away.user_id) == _USER, col(Away.end) >= _DAYS[0]).order_by(col(Away.start), col(Away.id))
)


def overview(
    *, session: Session, user_id: str, now: datetime, flags: Mapping[str, ColumnElement[bool]] | None = None
) -> Overview:
    """At most two queries whatever the number of desks: the user's desks and roles with today's
    run on each desk they trade on, their latest answer on it, their name and whether they have
    away periods; then, only if they have, those periods.
    A desk's today is within a day of the UTC date, so the runs of those three dates are read
    and each desk keeps the one of its own today.
    ``flags``: more yes/no questions about the user (SQL over ``USER``, e.g. "has an open
    escalation"), answered by the same query, so a caller reads the rows only when there are
    some (``Overview.flags``: all False for someone on no desk)."""
    utc_day = now.astimezone(UTC).date()
    params: dict[str, Any] = {"overview_user": user_id}
    params |= {f"overview_day{i}": utc_day + timedelta(days=i - 1) for i in range(3)}
    mine: list[tuple[Desk, Role]] = []
    runs: dict[int | None, ChecklistRun] = {}
    latest: dict[int | None, Answer] = {}
    name: tuple[Any, ...] = (None, None, None, False)
    seen: set[tuple[int | None, Role]] = set()
    any_away = False
    answered = dict.fromkeys(flags or {}, False)
    for desk, role, run, answer, *rest in session.execute(_statement(flags or {}), params).all():
        name, (away_rows, *asked) = tuple(rest[:4]), rest[4:]
        any_away = bool(away_rows)
        answered = {flag: bool(value) for flag, value in zip(sorted(answered), asked, strict=True)}
        if (desk.id, Role(role)) not in seen:
            seen.add((desk.id, Role(role)))
            mine.append((desk, Role(role)))
        if run is not None and run.trading_date == checklist.desk_today(desk, now):
            runs[desk.id] = run
            if answer is not None:
                latest[desk.id] = answer  # later versions overwrite earlier ones
    trading = [desk for desk, role in mine if role is Role.TRADER]
    managing = [desk for desk, role in mine if role is Role.MANAGER]
    first = (trading or [desk for desk, _ in mine])[:1]
    today = calendar.local_date(now, calendar.zone(first[0].timezone if first else "UTC"))  # as away.today_for
    periods = list(session.execute(_AWAY_SINCE, params).scalars()) if trading and any_away else []
    names = people.name_of(user_id, *name)
    statuses: list[TraderStatus] = []
    for desk in trading:
        entry: RosterEntry | None = None
        answerable: ChecklistRun | None = None
        run = runs.get(desk.id)
        if run is not None and run.id is not None and run.message_ts is not None:
            answer = latest.get(desk.id)
            is_away = any(p.start <= run.trading_date <= p.end and away.applies_on(p, desk.id) for p in periods)
            entry = RosterEntry(user_id, rosters.state_of(answer, is_away), answer)
            answerable = None if checklist.run_closed(run, desk, now) else run
        statuses.append(
            TraderStatus(
                desk=desk, entry=entry, next_post=rosters.next_post_time(desk, now), run=answerable, names=names
            )
        )
    upcoming = [p for p in periods if p.end >= today]
    return Overview(trading=statuses, managing=managing, upcoming=upcoming, flags=answered)


def desk_status(*, session: Session, user_id: str, name: str | None, now: datetime) -> DeskStatus:
    """Today's roster of a desk the caller belongs to (any role)."""
    mine = desks.desks_of_user(session=session, user_id=user_id)
    if name is None:
        if len(mine) == 1:
            return _desk_status(session, mine[0], now)
        if not mine:
            raise ServiceError("You're not on any desk yet.")
        names = ", ".join(f"`{d.name}`" for d in mine)
        raise ServiceError(f"You're on several desks; name one: {names}.")
    for desk in mine:
        if desk.name == name:
            return _desk_status(session, desk, now)
    shown = f" named `{name}`" if desks.valid_name(name) else " with that name"
    raise ServiceError(f"You're not on a desk{shown}.")


def managed_status(
    *, session: Session, user_id: str, now: datetime, managing: list[Desk] | None = None
) -> list[DeskStatus]:
    """Today's roster of every desk ``user_id`` manages (``managing``: those desks, when the
    caller has them already, e.g. from ``overview``)."""
    if managing is None:
        managing = desks.desks_of_user(session=session, user_id=user_id, role=Role.MANAGER)
    return [_desk_status(session, desk, now) for desk in managing]


def trader_status(*, session: Session, manager_id: str, trader_id: str, now: datetime) -> list[TraderStatus]:
    """A trader's status on the desks that ``manager_id`` manages."""
    managed = {d.id for d in desks.desks_of_user(session=session, user_id=manager_id, role=Role.MANAGER)}
    shared = [d for d in desks.desks_of_user(session=session, user_id=trader_id, role=Role.TRADER) if d.id in managed]
    if not shared:
        raise ServiceError("Only managers of that trader's desk can see their status.")
    return [_trader_status(session, desk, trader_id, now) for desk in shared]
