"""A weekly report of any size, built in memory (no database), for the builders' limits."""

from __future__ import annotations

from datetime import date, timedelta

from bot.desks.models import Desk
from bot.people.service import NAME_LIMIT, Names
from bot.summary.report import (
    BASE_COLUMNS,
    Attention,
    DayOutcome,
    EscalationFigures,
    RecoveryGap,
    TraderRow,
    WeeklyReport,
)


def weekly_report(n: int) -> WeeklyReport:
    users = traders(n)
    weekdays = [date(2026, 11, 23) + timedelta(days=i) for i in range(5)]
    rows = {}
    for i, user in enumerate(users):
        row = TraderRow(user)
        row.values = {m.key: (i % 5 if m.kind.value == "count" else timedelta(minutes=i % 90)) for m in BASE_COLUMNS}
        row.days = {d: list(DayOutcome)[i % 7] for d in weekdays}
        rows[user] = row
    return WeeklyReport(
        desk_id=7,
        desk_name=DESK.name,
        timezone=DESK.timezone,
        iso_week="2026-W48",
        weekdays=weekdays,
        trading_days=weekdays[:3] + weekdays[4:],
        posted_days=weekdays[:3] + weekdays[4:],
        holidays=[(weekdays[3], "Thanksgiving Day")],
        early_closes=[weekdays[4]],
        columns=list(BASE_COLUMNS),
        rows=rows,
        completion_rate=0.9,
        previous_completion_rate=0.8,
        on_time_rate=0.7,
        escalations=EscalationFigures(n, n // 2, n // 3, timedelta(minutes=12), n // 4, users[: n // 4]),
        recovery_gaps=[RecoveryGap(u, date(2026, 11, 2), 18) for u in users[: n // 2]],
        attention=[
            Attention(u, ["no recovery path for 18 trading days (since Mon 02 Nov)", "missed 3", "restricted 2"])
            for u in users[: n // 2]
        ],
        names=names_for(users),
    )


DESK = Desk(
    id=7,
    name="equities-global-macro-and-rates",
    channel_id="C0123",
    timezone="America/New_York",
    post_at="08:00",
    deadline="09:00",
    escalation_channel_id="C0456",
    pager_kind="pagerduty",
    pager_secret="gAAAA-encrypted",
    managers_channel_id="C0789",
)


def traders(n: int) -> list[str]:
    return [f"U{i:07d}" for i in range(n)]


def names_for(users: list[str]) -> Names:
    return Names({u: f"{HOSTILE} {i}"[:NAME_LIMIT] for i, u in enumerate(users)})


HOSTILE = "<!channel> & <@U999> Ziggy Stardust-Longname"
