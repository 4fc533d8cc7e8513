"""The heatmap PNG: rendered headless, legible for 5 and for 60 traders."""

from __future__ import annotations

import dataclasses
import struct
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bot import calendar
from bot.db import session_scope
from bot.desks.models import Desk
from bot.summary import chart, weeks
from bot.summary import report as summary
from bot.summary.report import DayOutcome, EscalationFigures, TraderRow, WeeklyReport
from tests.support.factories import make_desk
from tests.support.harness import utc
from tests.support.weekly_history import escalations, thanksgiving_week

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CYCLE = (DayOutcome.ON_TIME, DayOutcome.LATE, DayOutcome.PROBLEM, DayOutcome.MISSED, DayOutcome.ON_TIME)


def size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_SIGNATURE and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def synthetic(traders: int, iso_week: str = "2026-W48") -> WeeklyReport:
    monday = weeks.week_monday(iso_week)
    weekdays = [monday + timedelta(days=i) for i in range(5)]
    trading = [d for d in weekdays if calendar.is_trading_day(d)]
    rows = {}
    for i in range(traders):
        user = f"U{i:04d}LONGNAME"
        days = {d: (CYCLE[(i + j) % 5] if d in trading else DayOutcome.HOLIDAY) for j, d in enumerate(weekdays)}
        rows[user] = TraderRow(user, {}, days)
    return WeeklyReport(
        desk_id=1,
        desk_name="equities",
        timezone="America/New_York",
        iso_week=iso_week,
        weekdays=weekdays,
        trading_days=trading,
        posted_days=trading,
        holidays=[(d, calendar.holiday_name(d) or "") for d in weekdays if d not in trading],
        early_closes=[d for d in trading if calendar.is_early_close(d)],
        columns=list(summary.BASE_COLUMNS),
        rows=rows,
        completion_rate=0.8,
        previous_completion_rate=0.9,
        on_time_rate=0.6,
        escalations=EscalationFigures(0, 0, 0, None, 0, []),
        recovery_gaps=[],
        attention=[],
    )


@pytest.mark.slow
def test_png_grows_with_traders(tmp_path: Path) -> None:
    small = chart.render_heatmap(synthetic(5))
    large = chart.render_heatmap(synthetic(60))
    (tmp_path / "small.png").write_bytes(small)
    (tmp_path / "large.png").write_bytes(large)
    (w5, h5), (w60, h60) = size(small), size(large)
    assert w5 == w60 == 800
    assert h60 > h5 * 3  # about 0.3 inch per trader row
    assert h5 >= 300  # room for the title, the day labels and the legend
    assert h60 == round(chart.figure_size(60)[1] * chart.DPI)


def test_alt_text_counts_outcomes() -> None:
    text = chart.alt_text(synthetic(5))
    # 5 traders x 4 trading days; the cycle gives each outcome a known count.
    assert text.startswith("Heatmap of 5 traders by weekday for equities, 2026-W48:")
    assert "8 ready on time, 4 late, 4 problem, 4 missed trader-days" in text


def test_real_report_renders(engine: Engine) -> None:
    desk = make_desk(engine)
    assert desk.id is not None
    escalations(engine, desk.id, thanksgiving_week(engine, desk.id))
    with session_scope(engine) as session:
        loaded = session.get(Desk, desk.id)
        assert loaded is not None
        report = summary.build_summary(session=session, desk=loaded, iso_week="2026-W48", now=utc(2026, 11, 28))
    png = chart.render_heatmap(report)  # rows labelled from the names cache
    assert size(png)[1] == round(chart.figure_size(3)[1] * chart.DPI)
    assert [report.names(u) for u in chart.chart_rows(report)] == ["Alice", "Bob", "Carol"]
    assert date(2026, 11, 26) in dict(report.holidays)


def test_hostile_names_render_as_plain_text_without_warnings() -> None:
    """A name is user text: ``$\\evil$`` is drawn as written, not parsed as mathtext (which
    raised), and an emoji the font lacks is left out instead of warning (issue 17)."""
    import warnings

    from bot.people.service import Names

    report = synthetic(4)
    users = list(report.rows)
    hostile = ["$\\evil$", "🚀 Rocket Trader", "a $b$ c $", "\u202eRTL\u200b name"]
    report = dataclasses.replace(report, names=Names(dict(zip(users, hostile, strict=True))))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = chart.render_heatmap(report)
    assert png[:8] == PNG_SIGNATURE
    assert chart.plain_label("$\\evil$") == "\\$\\evil\\$"
    assert chart.plain_label("🚀 Rocket") == "Rocket"
    assert chart.plain_label("🚀", "U1") == "U1"
    assert chart.plain_label("\u202eRTL\u200b") == "RTL"
