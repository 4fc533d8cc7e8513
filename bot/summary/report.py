"""The weekly readiness summary for a desk's managers: plain dataclasses, no Slack.

Definitions (each trader x each posted trading day of the ISO week is one *cell*):

- The summary counts the trader's **final** answer of the day (highest version); earlier
  versions only matter for *timeliness* (below) and stay in the export.
- **on time**: the final answer is *confirmed* and the trader's **first** answer of that day
  (version 1) was stored strictly before the run's ``deadline_at``.
- **late**: the final answer is *confirmed* and the first answer came at or after the deadline.
- **problem**: the final answer reports a problem (the trader is *restricted* that day when
  the answer says so). Problems are counted by layer: identity and device trust (the
  authentication layer named), platform/session, authorization (= the permissions check
  failed) and recovery path (= no backup second factor: the contingency gap "no backup second
  factor", or "no second MFA device" as recorded before 2026-12; a recorded "no recovery code"
  alone is not one — IBKR has no recovery codes, and the question then accepted either).
- **missed**: no answer at all on a posted day whose checklist has closed (market close).
- **pending**: no answer yet while the checklist is still open (week-to-date views only);
  **not posted**: a trading day without a posted checklist. Neither counts anywhere.
- **away**: no answer on a day the trader was away (``bot.desks.away``): left out of every
  denominator (not missed, not expected) and shown as away. An answer given while away counts.
- **completion rate** = (on time + late + problem) / (on time + late + problem + missed).
  Its change is in percentage points against the previous ISO week.
- **median time to confirm**: from ``run.posted_at`` to the stored time of the final,
  confirming answer, over the trader's on-time and late days.
- **missing recovery path**: traders whose latest final answer in the week reports no backup
  second factor (as above); *since* is the first such report after their last final
  answer without that gap (any earlier week), *days* the trading days from then to that answer.
- Escalations: *opened / acknowledged / resolved* count those timestamps inside the desk-local
  week; *still open* are those opened before the week's end and not resolved by then.

The report is extensible: ``columns`` is a list of metric definitions and ``rows`` is keyed
by trader, so later inputs (trader profiles) add columns with ``add_column`` and rows by key.

Loading is a constant number of SQL statements whatever the number of traders.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

from sqlmodel import Session

from bot import calendar
from bot.checklist.models import AnswerStatus, AuthLayer, Check
from bot.desks import away
from bot.desks.models import Desk, Role
from bot.desks.service import members
from bot.people import service as people
from bot.people.service import Names
from bot.profile.weekly import week_figures
from bot.summary import reads
from bot.summary.weeks import mon_fri, parse_iso_week, week_bounds, week_weekdays

MetricValue = int | float | str | timedelta | None


class DayOutcome(StrEnum):
    ON_TIME = "on_time"
    LATE = "late"
    PROBLEM = "problem"
    MISSED = "missed"
    PENDING = "pending"
    NOT_POSTED = "not_posted"
    HOLIDAY = "holiday"
    AWAY = "away"


class MetricKind(StrEnum):
    COUNT = "count"
    DURATION = "duration"
    PERCENT = "percent"
    TEXT = "text"


@dataclass(frozen=True)
class Metric:
    """A column definition: later inputs add their own with ``WeeklyReport.add_column``."""

    key: str
    label: str
    kind: MetricKind = MetricKind.COUNT
    short: str = ""  # a narrow header for tables

    @property
    def header(self) -> str:
        return self.short or self.label


ON_TIME = Metric("on_time", "Confirmed on time", short="On time")
LATE = Metric("late", "Confirmed late", short="Late")
MISSED = Metric("missed", "Missed (no answer)", short="Missed")
IDENTITY = Metric("identity", "Problems: identity", short="Identity")
DEVICE_TRUST = Metric("device_trust", "Problems: device trust", short="Device")
PLATFORM = Metric("platform", "Problems: platform/session", short="Platform")
AUTHORIZATION = Metric("authorization", "Problems: authorization (permissions)", short="Permissions")
RECOVERY_PATH = Metric("recovery_path", "Problems: recovery path", short="Recovery")
RESTRICTED = Metric("restricted", "Days restricted", short="Restricted")
AWAY = Metric("away", "Days away", short="Away")
MEDIAN_CONFIRM = Metric("median_confirm", "Median time from post to confirmation", MetricKind.DURATION, "Median")
# From the readiness profile (bot.profile): gaps open at any time during the week.
PROFILE_GAP = Metric("profile_gap", "Readiness profile: recovery-path gap", MetricKind.TEXT, "Profile")
AUTOMATION_FLAGS = Metric("automation_flags", "Flagged automations (API hygiene)", short="API")
FENCE_GAPS = Metric("fence_gaps", "Broker-side fences missing (gaps)", short="Fences")

BASE_COLUMNS: tuple[Metric, ...] = (
    ON_TIME,
    LATE,
    MISSED,
    IDENTITY,
    DEVICE_TRUST,
    PLATFORM,
    AUTHORIZATION,
    RECOVERY_PATH,
    RESTRICTED,
    AWAY,
    MEDIAN_CONFIRM,
)


@dataclass
class TraderRow:
    user_id: str
    values: dict[str, MetricValue] = field(default_factory=dict)
    days: dict[date, DayOutcome] = field(default_factory=dict)

    def count(self, metric: Metric) -> int:
        value = self.values.get(metric.key)
        return value if isinstance(value, int) else 0


@dataclass(frozen=True)
class RecoveryGap:
    user_id: str
    since: date
    days: int  # trading days from ``since`` to the latest report, inclusive


@dataclass(frozen=True)
class EscalationFigures:
    opened: int
    acknowledged: int
    resolved: int
    median_to_acknowledge: timedelta | None
    still_open: int
    still_open_traders: list[str]


@dataclass(frozen=True)
class Attention:
    user_id: str
    reasons: list[str]


@dataclass
class WeeklyReport:
    desk_id: int
    desk_name: str
    timezone: str
    iso_week: str
    weekdays: list[date]  # Mon..Fri
    trading_days: list[date]
    posted_days: list[date]
    holidays: list[tuple[date, str]]
    early_closes: list[date]
    columns: list[Metric]
    rows: dict[str, TraderRow]
    completion_rate: float | None
    previous_completion_rate: float | None
    on_time_rate: float | None
    escalations: EscalationFigures
    recovery_gaps: list[RecoveryGap]
    attention: list[Attention]
    names: Names = field(default_factory=Names)

    @property
    def completion_change(self) -> float | None:
        """Percentage points against the previous week."""
        if self.completion_rate is None or self.previous_completion_rate is None:
            return None
        return (self.completion_rate - self.previous_completion_rate) * 100

    def add_column(self, metric: Metric, values: Mapping[str, MetricValue]) -> None:
        """Join another input: a column, with values by trader (new traders get a row)."""
        self.columns.append(metric)
        for user, value in values.items():
            self.rows.setdefault(user, TraderRow(user)).values[metric.key] = value

    def total(self, metric: Metric) -> int:
        return sum(row.count(metric) for row in self.rows.values())


def _outcome(cell: reads.Cell | None, run: reads.Run, now: datetime, away: bool = False) -> DayOutcome:
    if run.posted_at is None:
        return DayOutcome.NOT_POSTED
    if cell is None:
        if away:
            return DayOutcome.AWAY
        return DayOutcome.PENDING if now < run.market_close_at else DayOutcome.MISSED
    if cell.status == AnswerStatus.PROBLEM:
        return DayOutcome.PROBLEM
    return DayOutcome.ON_TIME if cell.first_at < run.deadline_at else DayOutcome.LATE


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _completion(
    runs: dict[int, reads.Run],
    cells: dict[tuple[int, str], reads.Cell],
    traders: list[str],
    now: datetime,
    away_days: Mapping[str, set[date]],
) -> float | None:
    answered = expected = 0
    users = set(traders) | {user for _, user in cells}
    for run in runs.values():
        for user in users:
            gone = run.trading_date in away_days.get(user, ())
            outcome = _outcome(cells.get((run.id, user)), run, now, gone)
            if outcome in (DayOutcome.ON_TIME, DayOutcome.LATE, DayOutcome.PROBLEM):
                answered += 1
                expected += 1
            elif outcome is DayOutcome.MISSED:
                expected += 1
    return _rate(answered, expected)


def build_summary(*, session: Session, desk: Desk, iso_week: str, now: datetime) -> WeeklyReport:
    """The desk's report for ``iso_week`` as known at ``now`` (week-to-date before it ends)."""
    assert desk.id is not None
    iso_week = parse_iso_week(iso_week)
    monday, friday = mon_fri(iso_week)
    prev_monday = monday - timedelta(days=7)
    weekdays = week_weekdays(iso_week)
    trading = calendar.trading_days(monday, friday)

    traders = members(session=session, desk_id=desk.id, role=Role.TRADER)
    all_runs, all_cells = reads.load_answers(session, desk.id, prev_monday, friday)
    everyone = {*traders, *(user for _, user in all_cells)}
    away_days = away.away_days(session=session, user_ids=everyone, start=prev_monday, end=friday, desk_id=desk.id)
    runs = {rid: r for rid, r in all_runs.items() if r.trading_date >= monday}
    prev_runs = {rid: r for rid, r in all_runs.items() if r.trading_date < monday}
    cells = {k: c for k, c in all_cells.items() if k[0] in runs}
    prev_cells = {k: c for k, c in all_cells.items() if k[0] in prev_runs}

    users = list(dict.fromkeys([*traders, *sorted({user for _, user in cells})]))
    run_by_day = {r.trading_date: r for r in runs.values()}
    rows: dict[str, TraderRow] = {}
    answered = expected = on_time_total = 0
    latest_final: dict[str, tuple[date, reads.Cell]] = {}
    for user in users:
        row = TraderRow(user)
        counts = dict.fromkeys((m.key for m in BASE_COLUMNS if m.kind is MetricKind.COUNT), 0)
        waits: list[timedelta] = []
        for day in weekdays:
            if day not in trading:
                row.days[day] = DayOutcome.HOLIDAY
                continue
            run = run_by_day.get(day)
            if run is None:
                row.days[day] = DayOutcome.NOT_POSTED
                continue
            cell = cells.get((run.id, user))
            outcome = _outcome(cell, run, now, day in away_days.get(user, ()))
            row.days[day] = outcome
            if outcome is DayOutcome.AWAY:
                counts[AWAY.key] += 1
            if outcome in (DayOutcome.ON_TIME, DayOutcome.LATE, DayOutcome.PROBLEM, DayOutcome.MISSED):
                expected += 1
            if outcome is DayOutcome.MISSED:
                counts[MISSED.key] += 1
            if cell is None:
                continue
            answered += 1
            latest_final[user] = (day, cell)
            if outcome is DayOutcome.PROBLEM:
                checks = set(cell.failed_checks.split(","))
                if cell.auth_layer == AuthLayer.IDENTITY:
                    counts[IDENTITY.key] += 1
                if cell.auth_layer == AuthLayer.DEVICE_TRUST:
                    counts[DEVICE_TRUST.key] += 1
                if cell.auth_layer == AuthLayer.PLATFORM:
                    counts[PLATFORM.key] += 1
                if Check.PERMISSIONS.value in checks:
                    counts[AUTHORIZATION.key] += 1
                if reads.missing_recovery(cell.gaps):
                    counts[RECOVERY_PATH.key] += 1
                if cell.restricted:
                    counts[RESTRICTED.key] += 1
            else:
                counts[outcome.value] += 1
                if outcome is DayOutcome.ON_TIME:
                    on_time_total += 1
                if run.posted_at is not None:
                    waits.append(cell.final_at - run.posted_at)
        row.values.update(counts)
        row.values[MEDIAN_CONFIRM.key] = _median(waits)
        rows[user] = row

    escalations = _escalations(session, desk, iso_week)
    gaps = _recovery_gaps(session, desk.id, latest_final, friday)
    report = WeeklyReport(
        desk_id=desk.id,
        desk_name=desk.name,
        timezone=desk.timezone,
        iso_week=iso_week,
        weekdays=weekdays,
        trading_days=trading,
        posted_days=sorted(r.trading_date for r in runs.values() if r.posted_at is not None),
        holidays=[(d, calendar.holiday_name(d) or "holiday") for d in weekdays if d not in trading],
        early_closes=[d for d in trading if calendar.is_early_close(d)],
        columns=list(BASE_COLUMNS),
        rows=rows,
        completion_rate=_rate(answered, expected),
        previous_completion_rate=_completion(prev_runs, prev_cells, traders, now, away_days),
        on_time_rate=_rate(on_time_total, expected),
        escalations=escalations,
        recovery_gaps=gaps,
        attention=[],
    )
    _add_profile(session, report, desk, iso_week)
    report.attention = _attention(report)
    report.names = people.names_for(session=session, user_ids=report.rows)
    return report


def _add_profile(session: Session, report: WeeklyReport, desk: Desk, iso_week: str) -> None:
    """The readiness profile's gaps that were open at some point of the week: one statement."""
    assert desk.id is not None
    start, end = week_bounds(desk, iso_week)
    figures = week_figures(session=session, desk_id=desk.id, start=start, end=end)
    users = list(report.rows)
    report.add_column(PROFILE_GAP, {u: figures[u].recovery if u in figures else None for u in users})
    report.add_column(AUTOMATION_FLAGS, {u: figures[u].automation_flags if u in figures else 0 for u in users})
    report.add_column(FENCE_GAPS, {u: figures[u].fence_gaps if u in figures else 0 for u in users})


def _median(values: list[timedelta]) -> timedelta | None:
    if not values:
        return None
    return timedelta(seconds=statistics.median(v.total_seconds() for v in values))


def _escalations(session: Session, desk: Desk, iso_week: str) -> EscalationFigures:
    """One statement: escalations that touch the desk-local week."""
    start, end = week_bounds(desk, iso_week)
    rows = reads.escalation_times(session, desk.id or 0, start, end)
    opened = acked = resolved = 0
    waits: list[timedelta] = []
    still_open: list[str] = []
    for trader, opened_at, acked_at, resolved_at in rows:
        if start <= opened_at < end:
            opened += 1
        if acked_at is not None and start <= acked_at < end:
            acked += 1
            waits.append(acked_at - opened_at)
        if resolved_at is not None and start <= resolved_at < end:
            resolved += 1
        if resolved_at is None or resolved_at >= end:  # opened before the end, unresolved by then
            still_open.append(trader)
    return EscalationFigures(opened, acked, resolved, _median(waits), len(still_open), sorted(set(still_open)))


def _recovery_gaps(
    session: Session, desk_id: int, latest_final: dict[str, tuple[date, reads.Cell]], until: date
) -> list[RecoveryGap]:
    """Since when each flagged trader has reported a missing recovery path: one statement
    over their final answers (any week up to ``until``)."""
    flagged = {user: day for user, (day, cell) in latest_final.items() if reads.missing_recovery(cell.gaps)}
    since = reads.recovery_since(session, desk_id, sorted(flagged), until)
    gaps = [
        RecoveryGap(user, since[user], len(calendar.trading_days(since[user], day)))
        for user, day in flagged.items()
        if user in since
    ]
    return sorted(gaps, key=lambda g: (-g.days, g.user_id))


def _attention(report: WeeklyReport) -> list[Attention]:
    gaps = {g.user_id: g for g in report.recovery_gaps}
    out: list[Attention] = []
    for user, row in report.rows.items():
        reasons: list[str] = []
        if user in gaps:
            g = gaps[user]
            reasons.append(
                f"no recovery path for {g.days} trading day{'s' if g.days != 1 else ''} (since {g.since:%a %d %b})"
            )
        if row.count(MISSED):
            reasons.append(f"missed {row.count(MISSED)}")
        if row.count(RESTRICTED):
            reasons.append(f"restricted {row.count(RESTRICTED)}")
        if row.count(LATE) >= 2:
            reasons.append(f"late {row.count(LATE)}")
        if isinstance(gap := row.values.get(PROFILE_GAP.key), str):
            reasons.append(f"profile: {gap}")
        if flagged := row.count(AUTOMATION_FLAGS):
            reasons.append(f"{flagged} flagged automation{'s' if flagged != 1 else ''}")
        if fenced := row.count(FENCE_GAPS):
            reasons.append(f"{fenced} broker-side fence gap{'s' if fenced != 1 else ''}")
        if user in report.escalations.still_open_traders:
            reasons.append("open escalation")
        if reasons:
            out.append(Attention(user, reasons))
    return out
