"""The readiness profile's figures for the weekly summary (``bot.summary.report``).

Domain only: no Slack.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from bot.profile.models import GapKind, ReadinessGap


@dataclass(frozen=True)
class WeekFigure:
    """One trader's readiness gaps that were open at some point of a week."""

    recovery: str | None  # e.g. "SMS only", "no recovery path"; None when none
    recovery_since: datetime | None
    automation_flags: int
    fence_gaps: int = 0  # broker-side fences missing (the trader's own, and their automations')


def week_figures(*, session: Session, desk_id: int, start: datetime, end: datetime) -> dict[str, WeekFigure]:
    """Gaps overlapping [start, end): one statement."""
    rows = session.exec(
        select(ReadinessGap).where(
            ReadinessGap.desk_id == desk_id,
            col(ReadinessGap.opened_at) < end,
            (col(ReadinessGap.closed_at).is_(None)) | (col(ReadinessGap.closed_at) >= start),
        )
    ).all()
    recovery: dict[str, list[ReadinessGap]] = {}
    autos: dict[str, int] = {}
    fenced: dict[str, int] = {}
    for gap in rows:
        if gap.kind == GapKind.AUTOMATION:
            autos[gap.user_id] = autos.get(gap.user_id, 0) + 1
        elif gap.kind == GapKind.FENCES:
            fenced[gap.user_id] = fenced.get(gap.user_id, 0) + 1
        else:
            recovery.setdefault(gap.user_id, []).append(gap)
    out: dict[str, WeekFigure] = {}
    for user in set(recovery) | set(autos) | set(fenced):
        gaps = recovery.get(user, [])
        worst = [g for g in gaps if g.kind == GapKind.RECOVERY] or gaps
        out[user] = WeekFigure(
            recovery=None if not worst else ("no recovery path" if worst[0].kind == GapKind.RECOVERY else "SMS only"),
            recovery_since=min((g.opened_at for g in worst), default=None),
            automation_flags=autos.get(user, 0),
            fence_gaps=fenced.get(user, 0),
        )
    return out
