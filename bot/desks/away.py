"""Away days: a trader away (holiday, travel, sick) gets no reminder, is never escalated, is
shown 🌴 in the roster and is left out of the weekly figures. Queries and rules only, no Slack.

Dates are desk-local trading dates, inclusive. A period may start today at the earliest, last
at most ``MAX_DAYS`` days, and never end before it starts. A new period replaces the periods of
the same person and scope it overlaps. Traders set their own (every desk); a desk's managers set
them for its traders (their own desks only: ``Away.desks``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, true
from sqlmodel import Session, col, select

from bot import calendar
from bot.desks import service as desks
from bot.desks.models import Away, Role
from bot.errors import ServiceError
from bot.text import user_text

MAX_DAYS = 60
NOTE_LIMIT = 200


def today_for(*, session: Session, user_id: str, now: datetime) -> date:
    """The user's today: in the zone of their first desk (traders first), else UTC."""
    mine = desks.desks_of_user(session=session, user_id=user_id, role=Role.TRADER) or desks.desks_of_user(
        session=session, user_id=user_id
    )
    tz = calendar.zone(mine[0].timezone) if mine else calendar.zone("UTC")
    return calendar.local_date(now, tz)


def parse_day(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ServiceError("Write the date as YYYY-MM-DD, e.g. 2026-12-01.", field=field) from None


def check_can_set(*, session: Session, actor: str, user_id: str) -> None:
    """Anyone for themselves (if they trade on a desk); a manager for a trader of their desk."""
    traded = {d.id for d in desks.desks_of_user(session=session, user_id=user_id, role=Role.TRADER)}
    if not traded:
        who = "You're" if actor == user_id else "They're"
        raise ServiceError(f"{who} not a trader on any desk, so there's nothing to be away from.", field="user")
    if actor == user_id:
        return
    managed = {d.id for d in desks.desks_of_user(session=session, user_id=actor, role=Role.MANAGER)}
    if not traded & managed:
        raise ServiceError("Only managers of their desk can set someone else's away days.", field="user")


def validate(start: date, end: date, today: date, note: str | None) -> str | None:
    if end < start:
        raise ServiceError(f"The last day ({end:%a %d %b}) is before the first ({start:%a %d %b}).", field="end")
    if start < today:
        raise ServiceError(f"{start:%a %d %b %Y} is in the past: away days start today or later.", field="start")
    if (end - start).days + 1 > MAX_DAYS:
        raise ServiceError(f"An away period lasts at most {MAX_DAYS} days.", field="end")
    return user_text(note, field="note", limit=NOTE_LIMIT)


def scope_of(*, session: Session, actor: str, user_id: str) -> str | None:
    """Where an away set by ``actor`` applies: None (every desk) for the trader's own; else the
    desks ``actor`` manages that the trader trades on, as ",3,7," (a manager acts on their own desks)."""
    if actor == user_id:
        return None
    traded = {d.id for d in desks.desks_of_user(session=session, user_id=user_id, role=Role.TRADER)}
    shared = sorted(i for i in traded & _managed(session, actor) if i is not None)
    return "," + ",".join(str(i) for i in shared) + "," if shared else None


def applies_on(away: Away, desk_id: int | None) -> bool:
    """Whether ``away`` keeps its trader off desk ``desk_id``'s reminders and escalations."""
    return away.desks is None or f",{desk_id}," in away.desks


def scope_names(*, session: Session, away: Away) -> list[str]:
    """The names of the desks a manager's away applies to ([] for the trader's own: every desk)."""
    if away.desks is None:
        return []
    ids = {int(i) for i in away.desks.strip(",").split(",") if i}
    return sorted(d.name for d in desks.desks_of_user(session=session, user_id=away.user_id) if d.id in ids)


def _on_desk(desk_id: int | None) -> Any:
    """Away rows that apply on ``desk_id`` (None: any desk)."""
    if desk_id is None:
        return true()
    return or_(col(Away.desks).is_(None), col(Away.desks).contains(f",{desk_id},"))


def set_away(
    *, session: Session, actor: str, user_id: str, start: date, end: date, note: str | None, now: datetime
) -> Away:
    check_can_set(session=session, actor=actor, user_id=user_id)
    text = validate(start, end, today_for(session=session, user_id=user_id, now=now), note)
    scope = scope_of(session=session, actor=actor, user_id=user_id)
    overlapping = delete(Away).where(col(Away.user_id) == user_id, col(Away.start) <= end, col(Away.end) >= start)
    # A period replaces the overlapping ones of the same scope only: the trader's own replace
    # their own, a manager's replace those set for the same desks (never another desk's).
    same_scope = col(Away.desks).is_(None) if scope is None else col(Away.desks) == scope
    overlapping = overlapping.where(same_scope)
    session.execute(overlapping)
    away = Away(user_id=user_id, start=start, end=end, note=text, set_by=actor, created_at=now, desks=scope)
    session.add(away)
    session.flush()
    _record(session, actor, user_id, "away_set", now, start=start.isoformat(), end=end.isoformat())
    return away


def back(*, session: Session, actor: str, user_id: str, now: datetime) -> int:
    """End today's away period (yesterday is its last day) and drop future ones; how many changed.
    A manager ends those that apply on their desks (the trader's own included: ending an away
    only ever brings reminders and escalations back), not another desk's managers' ones."""
    check_can_set(session=session, actor=actor, user_id=user_id)
    today = today_for(session=session, user_id=user_id, now=now)
    mine = _managed(session, actor) if actor != user_id else None
    changed = 0
    for away in session.exec(select(Away).where(Away.user_id == user_id, col(Away.end) >= today)).all():
        if mine is not None and not any(applies_on(away, d) for d in mine):
            continue
        changed += 1
        if away.start >= today:
            session.delete(away)
        else:
            away.end = today - timedelta(days=1)
            session.add(away)
    if changed:
        session.flush()
        _record(session, actor, user_id, "away_ended", now, today=today.isoformat())
    return changed


def cancel(*, session: Session, actor: str, away_id: int, now: datetime) -> Away:
    """Remove one away period (from App Home)."""
    away = session.get(Away, away_id)
    if away is None:
        raise ServiceError("That away period no longer exists.")
    check_can_set(session=session, actor=actor, user_id=away.user_id)
    if actor != away.user_id and not any(applies_on(away, d) for d in _managed(session, actor)):
        raise ServiceError(
            "That away period was set by another desk's managers: only they or the trader can remove it."
        )
    session.delete(away)
    session.flush()
    _record(session, actor, away.user_id, "away_cancelled", now, start=away.start.isoformat(), end=away.end.isoformat())
    return away


def _managed(session: Session, actor: str) -> set[int]:
    return {d.id for d in desks.desks_of_user(session=session, user_id=actor, role=Role.MANAGER) if d.id is not None}


def _record(session: Session, actor: str, user_id: str, action: str, now: datetime, **detail: str) -> None:
    for desk in desks.desks_of_user(session=session, user_id=user_id, role=Role.TRADER):
        desks.record(session, desk.id, actor, action, now, desk=desk.name, trader=user_id, **detail)


def upcoming(*, session: Session, user_id: str, now: datetime) -> list[Away]:
    """The user's current and future away periods, soonest first."""
    today = today_for(session=session, user_id=user_id, now=now)
    return list(
        session.exec(
            select(Away).where(Away.user_id == user_id, col(Away.end) >= today).order_by(col(Away.start))
        ).all()
    )


def away_on(*, session: Session, user_ids: Iterable[str], day: date, desk_id: int | None) -> set[str]:
    """Who among ``user_ids`` is away on ``day`` on desk ``desk_id`` (an away a manager of
    another desk set doesn't count here; one query per 500 users)."""
    wanted = sorted(set(user_ids))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found |= set(
            session.exec(
                select(Away.user_id).where(
                    col(Away.user_id).in_(chunk), col(Away.start) <= day, col(Away.end) >= day, _on_desk(desk_id)
                )
            ).all()
        )
    return found


def away_days(
    *, session: Session, user_ids: Iterable[str], start: date, end: date, desk_id: int | None
) -> dict[str, set[date]]:
    """Each user's away dates within [start, end], on desk ``desk_id``."""
    wanted = sorted(set(user_ids))
    days: dict[str, set[date]] = {}
    for first in range(0, len(wanted), 500):
        chunk = wanted[first : first + 500]
        for away in session.exec(
            select(Away).where(
                col(Away.user_id).in_(chunk), col(Away.start) <= end, col(Away.end) >= start, _on_desk(desk_id)
            )
        ).all():
            day = max(away.start, start)
            while day <= min(away.end, end):
                days.setdefault(away.user_id, set()).add(day)
                day += timedelta(days=1)
    return days
