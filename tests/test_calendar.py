"""The NYSE calendar (from the ``holidays`` package) and desk-local <-> UTC conversions."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot import calendar
from bot.calendar import CalendarError, desk_day, parse_hhmm
from bot.errors import ServiceError
from tests.support.harness import utc

NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")


def test_thanksgiving_is_not_a_trading_day() -> None:
    day = date(2026, 11, 26)
    assert not calendar.is_trading_day(day)
    assert calendar.holiday_name(day) == "Thanksgiving Day"
    assert desk_day(day, NY, time(8), time(9)) is None


def test_day_after_thanksgiving_closes_early_at_13_00_new_york() -> None:
    day = date(2026, 11, 27)
    assert calendar.is_trading_day(day)
    assert calendar.is_early_close(day)
    assert calendar.market_close(day) == utc(2026, 11, 27, 18, 0)  # 13:00 EST
    plan = desk_day(day, NY, time(8), time(9))
    assert plan is not None
    assert plan.early_close
    assert plan.market_close == utc(2026, 11, 27, 18, 0)
    assert plan.post_at == utc(2026, 11, 27, 13, 0)
    assert plan.deadline == utc(2026, 11, 27, 14, 0)


def test_regular_day_closes_at_16_00_new_york() -> None:
    day = date(2026, 11, 25)
    assert calendar.is_trading_day(day)
    assert not calendar.is_early_close(day)
    assert calendar.market_close(day) == utc(2026, 11, 25, 21, 0)  # 16:00 EST
    assert calendar.market_close(date(2026, 7, 1)) == utc(2026, 7, 1, 20, 0)  # 16:00 EDT


@pytest.mark.parametrize("day", [date(2026, 11, 28), date(2026, 11, 29), date(2027, 1, 2), date(2027, 1, 3)])
def test_weekends_are_not_trading_days(day: date) -> None:
    assert day.weekday() >= 5
    assert not calendar.is_trading_day(day)
    assert not calendar.is_early_close(day)
    assert desk_day(day, NY, time(8), time(9)) is None


@pytest.mark.parametrize(
    ("observed", "actual"),
    [
        (date(2026, 7, 3), date(2026, 7, 4)),  # Independence Day on a Saturday -> Friday
        (date(2027, 12, 24), date(2027, 12, 25)),  # Christmas on a Saturday -> Friday
        (date(2027, 7, 5), date(2027, 7, 4)),  # Independence Day on a Sunday -> Monday
    ],
)
def test_observed_holidays_close_the_exchange(observed: date, actual: date) -> None:
    assert actual.weekday() >= 5
    assert not calendar.is_trading_day(observed)
    assert "observed" in (calendar.holiday_name(observed) or "")
    assert desk_day(observed, NY, time(8), time(9)) is None


def test_new_years_day_on_a_saturday_is_not_observed_on_the_friday() -> None:
    # NYSE rule: when 1 January falls on a Saturday, the exchange stays open on 31 December.
    assert date(2022, 1, 1).weekday() == 5
    assert calendar.is_trading_day(date(2021, 12, 31))
    assert calendar.is_trading_day(date(2027, 12, 31))


def test_trading_days_and_next_trading_day_skip_holidays_and_weekends() -> None:
    week = calendar.trading_days(date(2026, 11, 23), date(2026, 11, 29))
    assert week == [date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 27)]
    assert calendar.next_trading_day(date(2026, 11, 25)) == date(2026, 11, 27)
    assert calendar.next_trading_day(date(2026, 11, 27)) == date(2026, 11, 30)
    assert calendar.next_trading_day(date(2026, 7, 2)) == date(2026, 7, 6)


# --- desk-local times across DST -------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "post_utc", "deadline_utc"),
    [
        (date(2026, 3, 6), utc(2026, 3, 6, 13, 0), utc(2026, 3, 6, 14, 0)),  # Fri, EST (UTC-5)
        (date(2026, 3, 9), utc(2026, 3, 9, 12, 0), utc(2026, 3, 9, 13, 0)),  # Mon after 8 Mar, EDT (UTC-4)
        (date(2026, 10, 30), utc(2026, 10, 30, 12, 0), utc(2026, 10, 30, 13, 0)),  # Fri, EDT
        (date(2026, 11, 2), utc(2026, 11, 2, 13, 0), utc(2026, 11, 2, 14, 0)),  # Mon after 1 Nov, EST
    ],
)
def test_new_york_desk_day_across_dst(day: date, post_utc: datetime, deadline_utc: datetime) -> None:
    plan = desk_day(day, NY, time(8), time(9))
    assert plan is not None
    assert plan.post_at == post_utc
    assert plan.deadline == deadline_utc
    assert plan.post_at.astimezone(NY).time() == time(8)


@pytest.mark.parametrize(
    ("day", "post_utc"),
    [
        (date(2026, 3, 13), utc(2026, 3, 13, 8, 0)),  # New York already on EDT, London still GMT
        (date(2026, 3, 27), utc(2026, 3, 27, 8, 0)),  # last Friday of GMT (London changes on 29 Mar)
        (date(2026, 3, 30), utc(2026, 3, 30, 7, 0)),  # BST (UTC+1)
        (date(2026, 10, 23), utc(2026, 10, 23, 7, 0)),  # still BST (London changes on 25 Oct)
        (date(2026, 10, 26), utc(2026, 10, 26, 8, 0)),  # GMT again, New York still on EDT until 1 Nov
    ],
)
def test_london_desk_day_follows_londons_dst_dates(day: date, post_utc: datetime) -> None:
    plan = desk_day(day, LONDON, time(8), time(8, 45))
    assert plan is not None
    assert plan.post_at == post_utc
    assert plan.deadline - plan.post_at == timedelta(minutes=45)
    assert plan.post_at.astimezone(LONDON).time() == time(8)


def test_london_desk_in_the_weeks_when_only_one_city_has_changed() -> None:
    # 9-27 Mar 2026: New York is UTC-4, London UTC+0 -> London 08:00 is New York 04:00.
    plan = desk_day(date(2026, 3, 16), LONDON, time(8), time(9))
    assert plan is not None
    assert plan.post_at.astimezone(NY).time() == time(4)
    # 26-30 Oct 2026: London is back on UTC+0, New York still UTC-4.
    plan = desk_day(date(2026, 10, 27), LONDON, time(8), time(9))
    assert plan is not None
    assert plan.post_at.astimezone(NY).time() == time(4)
    # Otherwise the gap is five hours.
    plan = desk_day(date(2026, 11, 25), LONDON, time(8), time(9))
    assert plan is not None
    assert plan.post_at.astimezone(NY).time() == time(3)


def test_local_to_utc_in_the_spring_gap_and_the_autumn_overlap() -> None:
    # 02:30 does not exist in New York on 8 Mar 2026; it resolves forward to 03:30 EDT = 07:30 UTC.
    assert calendar.local_to_utc(date(2026, 3, 8), time(2, 30), NY) == utc(2026, 3, 8, 7, 30)
    # 01:30 happens twice on 1 Nov 2026; the first one (EDT) is 05:30 UTC.
    assert calendar.local_to_utc(date(2026, 11, 1), time(1, 30), NY) == utc(2026, 11, 1, 5, 30)


def test_local_date_uses_the_desk_zone() -> None:
    late_evening_ny = utc(2026, 11, 26, 3, 0)  # 22:00 on 25 Nov in New York
    assert calendar.local_date(late_evening_ny, NY) == date(2026, 11, 25)
    assert calendar.local_date(late_evening_ny, LONDON) == date(2026, 11, 26)


# --- parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("08:00", time(8, 0)),
        ("8:00", time(8, 0)),
        ("00:00", time(0, 0)),
        ("23:59", time(23, 59)),
        ("09:05", time(9, 5)),
    ],
)
def test_parse_hhmm_accepts_24_hour_times(text: str, expected: time) -> None:
    assert parse_hhmm(text) == expected


@pytest.mark.parametrize(
    "text", ["", "8", "08", "0800", "24:00", "12:60", "8:5", "08:000", "-1:00", "ab:cd", "08:00pm", " 08:00", "08.00"]
)
def test_parse_hhmm_rejects_everything_else_with_a_sentence(text: str) -> None:
    with pytest.raises(CalendarError) as excinfo:
        parse_hhmm(text)
    assert "HH:MM" in str(excinfo.value)
    assert isinstance(excinfo.value, ServiceError)


def test_zone_rejects_unknown_names_with_a_sentence() -> None:
    assert calendar.zone("Europe/London") == LONDON
    for bad in ("Mars/Olympus", "", "../etc/passwd"):
        with pytest.raises(CalendarError, match="time zone"):
            calendar.zone(bad)
