"""ISO-week arithmetic for the weekly summary: parsing '2026-W48', a week's days and desk-local
bounds, its last trading day and when its summary is due. Plain functions, no database."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from bot import calendar
from bot.errors import ServiceError

if TYPE_CHECKING:
    from bot.desks.models import Desk

_ISO_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def parse_iso_week(value: str) -> str:
    """'2026-W48' (also '2026-w48') -> '2026-W48', or ServiceError with a sentence."""
    match = _ISO_WEEK.match(value.strip().upper())
    if match:
        year, week = int(match.group(1)), int(match.group(2))
        try:
            date.fromisocalendar(year, week, 1)
        except ValueError:
            raise ServiceError(f"{value!r}: {year} has no ISO week {week}") from None
        return f"{year}-W{week:02d}"
    raise ServiceError(f"{value!r} is not an ISO week like 2026-W48")


def week_monday(iso_week: str) -> date:
    year, week = iso_week.split("-W")
    return date.fromisocalendar(int(year), int(week), 1)


def iso_week_of(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def previous_week(iso_week: str) -> str:
    return iso_week_of(week_monday(iso_week) - timedelta(days=7))


def week_weekdays(iso_week: str) -> list[date]:
    monday = week_monday(iso_week)
    return [monday + timedelta(days=i) for i in range(5)]


def mon_fri(iso_week: str) -> tuple[date, date]:
    monday = week_monday(iso_week)
    return monday, monday + timedelta(days=4)


def last_trading_day(iso_week: str) -> date | None:
    days = calendar.trading_days(*mon_fri(iso_week))
    return days[-1] if days else None


def due_at(desk: Desk, iso_week: str) -> datetime | None:
    """When the week's summary is due: the close of the week's last trading day (early closes
    included) plus ``desk.summary_delay_minutes``. None for a week without trading days."""
    last = last_trading_day(iso_week)
    if last is None:
        return None
    return calendar.market_close(last) + timedelta(minutes=desk.summary_delay_minutes)


def week_bounds(desk: Desk, iso_week: str) -> tuple[datetime, datetime]:
    """Desk-local Monday 00:00 to the next Monday 00:00, in UTC."""
    tz = calendar.zone(desk.timezone)
    monday = week_monday(iso_week)
    return (
        calendar.local_to_utc(monday, time(0, 0), tz),
        calendar.local_to_utc(monday + timedelta(days=7), time(0, 0), tz),
    )


def current_week(desk: Desk, now: datetime) -> str:
    return iso_week_of(calendar.local_date(now, calendar.zone(desk.timezone)))


def latest_due_week(desk: Desk, now: datetime) -> str:
    """The most recent week whose summary is due at ``now``."""
    week = current_week(desk, now)
    for _ in range(3):
        due = due_at(desk, week)
        if due is not None and due <= now:
            return week
        week = previous_week(week)
    return week
