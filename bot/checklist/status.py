"""Who-is-ready answers for /ibstatus and App Home: queries only, no Slack."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session

from bot.checklist import service as checklist
from bot.checklist.models import ChecklistRun
from bot.checklist.service import Roster, RosterEntry
from bot.desks import away
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.errors import ServiceError
from bot.people import service as people
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
    run = checklist.today_run(session=session, desk=desk, now=now)
    roster = checklist.roster(session=session, run=run) if run is not None and run.message_ts else None
    names = roster.names if roster is not None else Names()
    return DeskStatus(desk=desk, roster=roster, next_post=checklist.next_post_time(desk, now), names=names)


def _trader_status(session: Session, desk: Desk, trader_id: str, now: datetime) -> TraderStatus:
    """Only this trader's latest answer is read: the cost doesn't grow with the desk."""
    run = checklist.today_run(session=session, desk=desk, now=now)
    entry = None
    answerable = None
    if run is not None and run.id is not None and run.message_ts is not None:
        answer = checklist.latest_answer(session=session, run_id=run.id, user_id=trader_id)
        is_away = bool(away.away_on(session=session, user_ids=[trader_id], day=run.trading_date))
        entry = RosterEntry(trader_id, checklist.state_of(answer, is_away), answer)
        answerable = None if checklist.run_closed(run, desk, now) else run
    return TraderStatus(
        desk=desk,
        entry=entry,
        next_post=checklist.next_post_time(desk, now),
        run=answerable,
        names=people.names_for(session=session, user_ids=[trader_id]),
    )


def own_status(*, session: Session, user_id: str, now: datetime) -> list[TraderStatus]:
    """Today's status on every desk where ``user_id`` trades."""
    return [
        _trader_status(session, desk, user_id, now)
        for desk in desks.desks_of_user(session=session, user_id=user_id, role=Role.TRADER)
    ]


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


def managed_status(*, session: Session, user_id: str, now: datetime) -> list[DeskStatus]:
    """Today's roster of every desk ``user_id`` manages."""
    return [
        _desk_status(session, desk, now)
        for desk in desks.desks_of_user(session=session, user_id=user_id, role=Role.MANAGER)
    ]


def trader_status(*, session: Session, manager_id: str, trader_id: str, now: datetime) -> list[TraderStatus]:
    """A trader's status on the desks that ``manager_id`` manages."""
    managed = {d.id for d in desks.desks_of_user(session=session, user_id=manager_id, role=Role.MANAGER)}
    shared = [d for d in desks.desks_of_user(session=session, user_id=trader_id, role=Role.TRADER) if d.id in managed]
    if not shared:
        raise ServiceError("Only managers of that trader's desk can see their status.")
    return [_trader_status(session, desk, trader_id, now) for desk in shared]
