"""Away days: a trader away (holiday, travel, sick) gets no reminder, is never escalated, is
shown 🌴 in the roster and is left out of the weekly figures. Queries and rules only, no Slack.

Dates are desk-local trading dates, inclusive. A period may start today at the earliest, last
at most ``MAX_DAYS`` days, and never end before it starts. A new period replaces any period of
the same person it overlaps. Traders set their own; a desk's managers set them for its traders.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from sqlalchemy import delete
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


def set_away(
    *, session: Session, actor: str, user_id: str, start: date, end: date, note: str | None, now: datetime
) -> Away:
    check_can_set(session=session, actor=actor, user_id=user_id)
    text = validate(start, end, today_for(session=session, user_id=user_id, now=now), note)
    session.execute(delete(Away).where(col(Away.user_id) == user_id, col(Away.start) <= end, col(Away.end) >= start))
    away = Away(user_id=user_id, start=start, end=end, note=text, set_by=actor, created_at=now)
    session.add(away)
    session.flush()
    _record(session, actor, user_id, "away_set", now, start=start.isoformat(), end=end.isoformat())
    return away


def back(*, session: Session, actor: str, user_id: str, now: datetime) -> int:
    """End today's away period (yesterday is its last day) and drop future ones; how many changed."""
    check_can_set(session=session, actor=actor, user_id=user_id)
    today = today_for(session=session, user_id=user_id, now=now)
    changed = 0
    for away in session.exec(select(Away).where(Away.user_id == user_id, col(Away.end) >= today)).all():
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
    session.delete(away)
    session.flush()
    _record(session, actor, away.user_id, "away_cancelled", now, start=away.start.isoformat(), end=away.end.isoformat())
    return away


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


def away_on(*, session: Session, user_ids: Iterable[str], day: date) -> set[str]:
    """Who among ``user_ids`` is away on ``day`` (one query per 500 users)."""
    wanted = sorted(set(user_ids))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found |= set(
            session.exec(
                select(Away.user_id).where(col(Away.user_id).in_(chunk), col(Away.start) <= day, col(Away.end) >= day)
            ).all()
        )
    return found


def away_days(*, session: Session, user_ids: Iterable[str], start: date, end: date) -> dict[str, set[date]]:
    """Each user's away dates within [start, end]."""
    wanted = sorted(set(user_ids))
    days: dict[str, set[date]] = {}
    for first in range(0, len(wanted), 500):
        chunk = wanted[first : first + 500]
        for away in session.exec(
            select(Away).where(col(Away.user_id).in_(chunk), col(Away.start) <= end, col(Away.end) >= start)
        ).all():
            day = max(away.start, start)
            while day <= min(away.end, end):
                days.setdefault(away.user_id, set()).add(day)
                day += timedelta(days=1)
    return days
