"""What the weekly report reads, in a constant number of statements whatever the number of
traders: the runs and each trader's first and final answer, the escalations that touch the
week, and since when flagged traders have had no recovery path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from bot.checklist.models import NO_BACKUP_GAPS, Answer, ChecklistRun
from bot.escalation.models import Escalation


@dataclass
class Cell:
    first_at: datetime
    status: str
    failed_checks: str
    auth_layer: str | None
    gaps: str
    restricted: bool
    final_at: datetime


def missing_recovery(gaps: str) -> bool:
    values = set(gaps.split(","))
    return bool({g.value for g in NO_BACKUP_GAPS} & values)


@dataclass(frozen=True)
class Run:
    id: int
    trading_date: date
    posted_at: datetime | None
    deadline_at: datetime
    market_close_at: datetime


def load_answers(
    session: Session, desk_id: int, start: date, end: date
) -> tuple[dict[int, Run], dict[tuple[int, str], Cell]]:
    """Runs and each (run, trader)'s first/final answer for trading dates in [start, end]:
    two statements."""
    runs = {
        r.id: Run(r.id, r.trading_date, r.posted_at, r.deadline_at, r.market_close_at)
        for r in session.execute(
            sa_select(
                col(ChecklistRun.id),
                col(ChecklistRun.trading_date),
                col(ChecklistRun.posted_at),
                col(ChecklistRun.deadline_at),
                col(ChecklistRun.market_close_at),
            ).where(
                col(ChecklistRun.desk_id) == desk_id,
                col(ChecklistRun.trading_date) >= start,
                col(ChecklistRun.trading_date) <= end,
            )
        ).all()
    }
    cells: dict[tuple[int, str], Cell] = {}
    rows = session.execute(
        sa_select(
            col(Answer.run_id),
            col(Answer.user_id),
            col(Answer.status),
            col(Answer.failed_checks),
            col(Answer.auth_layer),
            col(Answer.contingency_gaps),
            col(Answer.restricted),
            col(Answer.created_at),
        )
        .join(ChecklistRun, col(ChecklistRun.id) == col(Answer.run_id))
        .where(
            col(ChecklistRun.desk_id) == desk_id,
            col(ChecklistRun.trading_date) >= start,
            col(ChecklistRun.trading_date) <= end,
        )
        .order_by(col(Answer.run_id), col(Answer.user_id), col(Answer.version))
    ).all()
    for run_id, user, status, failed, layer, gaps, restricted, at in rows:
        cell = cells.get((run_id, user))
        if cell is None:
            cells[(run_id, user)] = Cell(at, status, failed, layer, gaps, restricted, at)
        else:  # a later version: it is the final answer so far; the first stays the first
            cell.status, cell.failed_checks, cell.auth_layer = status, failed, layer
            cell.gaps, cell.restricted, cell.final_at = gaps, restricted, at
    return runs, cells


def escalation_times(session: Session, desk_id: int, start: datetime, end: datetime) -> Sequence[tuple[Any, ...]]:
    """(trader, opened, acknowledged, resolved) of the desk's escalations opened before ``end``
    and not resolved before ``start``: one statement."""
    return session.execute(
        sa_select(
            col(Escalation.trader_id),
            col(Escalation.opened_at),
            col(Escalation.acknowledged_at),
            col(Escalation.resolved_at),
        ).where(
            col(Escalation.desk_id) == desk_id,
            col(Escalation.opened_at) < end,
            or_(col(Escalation.resolved_at).is_(None), col(Escalation.resolved_at) >= start),
        )
    ).all()


def recovery_since(session: Session, desk_id: int, users: list[str], until: date) -> dict[str, date]:
    """For each of ``users`` whose final answers (any week up to ``until``) report no backup
    second factor: the first such report after their last final answer without that gap. One
    statement."""
    latest = (
        select(
            col(Answer.run_id).label("run_id"),
            col(Answer.user_id).label("user_id"),
            func.max(Answer.version).label("version"),
        )
        .join(ChecklistRun, col(ChecklistRun.id) == col(Answer.run_id))
        .where(
            ChecklistRun.desk_id == desk_id,
            col(ChecklistRun.trading_date) <= until,
            col(Answer.user_id).in_(users),
        )
        .group_by(col(Answer.run_id), col(Answer.user_id))
        .subquery()
    )
    final = (
        select(
            col(Answer.user_id).label("user_id"),
            col(ChecklistRun.trading_date).label("day"),
            col(Answer.contingency_gaps).label("gaps"),
        )
        .join(
            latest,
            and_(
                col(Answer.run_id) == latest.c.run_id,
                col(Answer.user_id) == latest.c.user_id,
                col(Answer.version) == latest.c.version,
            ),
        )
        .join(ChecklistRun, col(ChecklistRun.id) == col(Answer.run_id))
        .cte("final")
    )
    missing = or_(*(final.c.gaps.like(f"%{g.value}%") for g in sorted(NO_BACKUP_GAPS)))
    ok = select(final.c.user_id, func.max(final.c.day).label("last_ok")).where(~missing).group_by(final.c.user_id)
    ok_sub = ok.subquery()
    query = (
        select(final.c.user_id, func.min(final.c.day))
        .outerjoin(ok_sub, ok_sub.c.user_id == final.c.user_id)
        .where(missing, or_(ok_sub.c.last_ok.is_(None), final.c.day > ok_sub.c.last_ok))
        .group_by(final.c.user_id)
    )
    return {user: day for user, day in session.execute(query).all()}
