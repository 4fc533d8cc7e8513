"""NYSE trading days, early closes and desk-local times.

Holidays (with the observed days) and early closes come from the maintained
``holidays`` package; nothing here is a hand-written list. Times are converted
between desk-local wall clock and UTC here and only here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.errors import ServiceError

EXCHANGE_TZ = ZoneInfo("America/New_York")
REGULAR_CLOSE = time(16, 0)
EARLY_CLOSE = time(13, 0)


class CalendarError(ServiceError):
    """A bad date, time or time zone; the message is a sentence."""


# ``holidays`` is imported on first use (once per process; the scheduler's first pass does it in
# its own thread): it is not needed to start serving.


@lru_cache(maxsize=64)
def _closed(year: int) -> dict[date, str]:
    import holidays

    return dict(holidays.financial_holidays("NYSE", years=year).items())


@lru_cache(maxsize=64)
def _half_days(year: int) -> dict[date, str]:
    import holidays

    return dict(holidays.financial_holidays("NYSE", years=year, categories=("half_day",)).items())


def holiday_name(day: date) -> str | None:
    """The exchange holiday's name when the NYSE is closed on a weekday, else None."""
    return _closed(day.year).get(day)


def is_trading_day(day: date) -> bool:
    return day.weekday() < 5 and day not in _closed(day.year)


def is_early_close(day: date) -> bool:
    return is_trading_day(day) and day in _half_days(day.year)


def market_close(day: date) -> datetime:
    """The session's close in UTC (13:00 ET on early-close days, 16:00 ET otherwise)."""
    close = EARLY_CLOSE if is_early_close(day) else REGULAR_CLOSE
    return datetime.combine(day, close, tzinfo=EXCHANGE_TZ).astimezone(UTC)


def trading_days(start: date, end: date) -> list[date]:
    """Trading days in [start, end]."""
    days: list[date] = []
    day = start
    while day <= end:
        if is_trading_day(day):
            days.append(day)
        day += timedelta(days=1)
    return days


def next_trading_day(after: date) -> date:
    day = after + timedelta(days=1)
    while not is_trading_day(day):
        day += timedelta(days=1)
    return day


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CalendarError(f"unknown time zone {name!r} (use an IANA name such as America/New_York)") from None


def parse_hhmm(value: str) -> time:
    """'08:00' -> time(8, 0); anything else raises CalendarError with a sentence."""
    hours, sep, minutes = value.partition(":")
    if sep and len(hours) in (1, 2) and len(minutes) == 2 and hours.isdigit() and minutes.isdigit():
        h, m = int(hours), int(minutes)
        if h < 24 and m < 60:
            return time(h, m)
    raise CalendarError(f"{value!r} is not a time of day in HH:MM (24-hour), e.g. 08:00")


def local_to_utc(day: date, at: time, tz: ZoneInfo) -> datetime:
    """A desk-local wall-clock time on a day, as UTC. Nonexistent times (spring-forward gap)
    resolve forward, ambiguous ones (fall-back) to the first occurrence."""
    local = datetime.combine(day, at, tzinfo=tz)
    # Round-trip through UTC normalises a time inside a DST gap.
    return local.astimezone(UTC)


def local_date(now: datetime, tz: ZoneInfo) -> date:
    return now.astimezone(tz).date()


@dataclass(frozen=True)
class DeskDay:
    """A desk's schedule for one trading day, in UTC."""

    trading_date: date
    post_at: datetime
    deadline: datetime
    market_close: datetime
    early_close: bool


def desk_day(day: date, tz: ZoneInfo, post_at: time, deadline: time) -> DeskDay | None:
    """The schedule for ``day`` or None when the exchange is closed that day."""
    if not is_trading_day(day):
        return None
    return DeskDay(
        trading_date=day,
        post_at=local_to_utc(day, post_at, tz),
        deadline=local_to_utc(day, deadline, tz),
        market_close=market_close(day),
        early_close=is_early_close(day),
    )


def deadline_after_close(deadline: time, tz: ZoneInfo, start: date, days: int = 371) -> date | None:
    """The first trading day from ``start`` (within ``days``) on which a desk-local ``deadline``
    falls after the regular NYSE close, or None. Checked over a year because desk zones and
    New York change to and from daylight saving time on different dates. (On early-close
    days a later deadline is cut to the close when the checklist is posted.)"""
    day = start
    for _ in range(days):
        if is_trading_day(day):
            close = datetime.combine(day, REGULAR_CLOSE, tzinfo=EXCHANGE_TZ)
            if local_to_utc(day, deadline, tz) > close:
                return day
        day += timedelta(days=1)
    return None


# --- IBKR's week: when a desk that trades Sunday evening has its sessions probed ------------
# docs/broker-facts.md §3: IBKR invalidates the auto-restart tokens "each Sunday at 1:00 am ET"
# [S18]; North America's daily reset runs 00:15–01:45 ET, Sunday to Friday, and the weekend
# maintenance Friday 23:00 – Saturday 03:00 ET [S45]; IDEALPRO, IBKR's FX venue, trades
# "Sunday - Friday: 17:15 - 17:00 ET" [S46] — the first of the week's markets to open, before
# CME Globex's Sunday evening and Asia's Monday morning. The Sunday probe runs after all of
# them and early enough to log in again. In New York time (IBKR's own), so DST is the zone
# database's business; shown to each desk in its zone.
FX_WEEK_OPENS = time(17, 15)  # Sunday, New York time
SUNDAY_PROBE_LEAD = timedelta(hours=2)  # the probe runs this long before the FX week opens
DAILY_RESET_STARTS = time(0, 15)  # New York time: Monday's reset ends the Sunday window
SUNDAY_PROBE_AT = (datetime.combine(date(2026, 1, 4), FX_WEEK_OPENS) - SUNDAY_PROBE_LEAD).time()  # 15:15 New York


@dataclass(frozen=True)
class SundayWindow:
    """One Sunday's probe, in UTC: due from ``probe_at`` until ``until`` (Monday's daily reset:
    a bot that was down at ``probe_at`` still probes when it comes back, before the reset)."""

    sunday: date  # New York date
    probe_at: datetime
    fx_open: datetime
    until: datetime


def sunday_window(sunday: date) -> SundayWindow:
    if sunday.weekday() != 6:
        raise ValueError(f"{sunday} is not a Sunday")
    fx_open = local_to_utc(sunday, FX_WEEK_OPENS, EXCHANGE_TZ)
    until = local_to_utc(sunday + timedelta(days=1), DAILY_RESET_STARTS, EXCHANGE_TZ)
    return SundayWindow(sunday=sunday, probe_at=fx_open - SUNDAY_PROBE_LEAD, fx_open=fx_open, until=until)


def sunday_window_at(now: datetime) -> SundayWindow | None:
    """The Sunday window ``now`` falls in, or None."""
    day = local_date(now, EXCHANGE_TZ)
    window = sunday_window(day - timedelta(days=(day.weekday() + 1) % 7))  # the latest Sunday
    return window if window.probe_at <= now < window.until else None


def next_sunday_window(now: datetime) -> SundayWindow:
    """The window ``now`` is in, or the next one."""
    day = local_date(now, EXCHANGE_TZ)
    window = sunday_window(day - timedelta(days=(day.weekday() + 1) % 7))
    return window if now < window.until else sunday_window(window.sunday + timedelta(days=7))
