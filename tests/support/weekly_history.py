"""Checklist history built through the real services with a controlled clock, for the weekly
summary and export tests."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import col

from bot.checklist import service as checklist
from bot.checklist.models import AuthLayer, Check, ChecklistRun, ContingencyGap, PermissionGap, Platform
from bot.checklist.service import ProblemReport
from bot.db import session_scope
from bot.desks.models import Desk
from bot.escalation.models import Escalation, EscalationState
from tests.support.harness import utc

MON, TUE, WED, THU, FRI = (date(2026, 11, d) for d in (23, 24, 25, 26, 27))
PREV_MON = date(2026, 11, 16)


def post_day(engine: Engine, desk_id: int, day: date) -> int:
    """Claim and mark posted ``day``'s run at its post time; the run id."""
    with session_scope(engine) as session:
        desk = session.get(Desk, desk_id)
        assert desk is not None
        plan = checklist.schedule(desk, day)
        assert plan is not None
        claim = checklist.claim_post(session=session, desk=desk, day=day, now=plan.post_at)
        assert claim.run is not None and claim.run.id is not None
        checklist.mark_posted(session=session, run_id=claim.run.id, ts=f"{day:%Y%m%d}.000100", now=plan.post_at)
        return claim.run.id


def at_local(day: date, hhmm: str) -> datetime:
    """Desk-local (New York, EST in late November) wall-clock time as UTC."""
    h, m = (int(x) for x in hhmm.split(":"))
    return utc(day.year, day.month, day.day, h, m) + timedelta(hours=5)


def confirm(engine: Engine, run_id: int, user: str, at: datetime) -> None:
    with session_scope(engine) as session:
        run = session.get(ChecklistRun, run_id)
        assert run is not None
        checklist.confirm(session=session, run=run, user_id=user, now=at)


def problem(engine: Engine, run_id: int, user: str, at: datetime, report: ProblemReport) -> None:
    with session_scope(engine) as session:
        run = session.get(ChecklistRun, run_id)
        assert run is not None
        checklist.report_problem(session=session, run=run, user_id=user, report=report, now=at)


IDENTITY = ProblemReport(failed=frozenset({Check.AUTHENTICATION}), auth_layer=AuthLayer.IDENTITY, platform=Platform.TWS)
NO_SECOND_DEVICE = ProblemReport(
    failed=frozenset({Check.CONTINGENCY}), gaps=frozenset({ContingencyGap.NO_BACKUP_FACTOR})
)
NO_BACKUP = ProblemReport(failed=frozenset({Check.CONTINGENCY}), gaps=frozenset({ContingencyGap.NO_BACKUP_FACTOR}))
PERMISSIONS = ProblemReport(
    failed=frozenset({Check.PERMISSIONS}),
    platform=Platform.TWS,
    missing_permissions="EUREX futures",
    permission_gaps=frozenset({PermissionGap.TRADING}),
)
DEVICE_AND_SECOND = ProblemReport(
    failed=frozenset({Check.AUTHENTICATION, Check.CONTINGENCY}),
    auth_layer=AuthLayer.DEVICE_TRUST,
    platform=Platform.IBKR_DESKTOP,
    gaps=frozenset({ContingencyGap.NO_BACKUP_FACTOR}),
    note='phone lost, "IB Key" moved',
)


def thanksgiving_week(engine: Engine, desk_id: int) -> dict[date, int]:
    """W48 2026 (Thu 26 holiday, Fri 27 early close) plus Mon 16 Nov of W47. Run ids by day.

    UTRD1 confirms on time every day. UTRD2: Mon late; Tue identity problem then confirmed
    (final: on time); Wed confirmed then no backup second factor (final: problem); Fri missed.
    UTRD3: Mon no second device; Tue permissions; Wed device trust + no second device; Fri no
    backup second factor. In W47 everyone confirms on Monday (completion 100%).
    """
    runs = {day: post_day(engine, desk_id, day) for day in (PREV_MON, MON, TUE, WED, FRI)}
    for user in ("UTRD1", "UTRD2", "UTRD3"):
        confirm(engine, runs[PREV_MON], user, at_local(PREV_MON, "08:05"))
    for day in (MON, TUE, WED, FRI):
        confirm(engine, runs[day], "UTRD1", at_local(day, "08:10"))
    confirm(engine, runs[MON], "UTRD2", at_local(MON, "09:30"))
    problem(engine, runs[TUE], "UTRD2", at_local(TUE, "08:20"), IDENTITY)
    confirm(engine, runs[TUE], "UTRD2", at_local(TUE, "10:00"))
    confirm(engine, runs[WED], "UTRD2", at_local(WED, "08:15"))
    problem(engine, runs[WED], "UTRD2", at_local(WED, "11:00"), NO_BACKUP)
    problem(engine, runs[MON], "UTRD3", at_local(MON, "08:30"), NO_SECOND_DEVICE)
    problem(engine, runs[TUE], "UTRD3", at_local(TUE, "08:30"), PERMISSIONS)
    problem(engine, runs[WED], "UTRD3", at_local(WED, "08:30"), DEVICE_AND_SECOND)
    problem(engine, runs[FRI], "UTRD3", at_local(FRI, "08:30"), NO_BACKUP)
    return runs


def escalations(engine: Engine, desk_id: int, runs: dict[date, int]) -> None:
    """E1 Mon opened/acked after 12 min/resolved Tue; E2 Wed acked after 30 min, open; E3 from
    the week before, still open. Escalations opened by the services while the history was built
    are replaced by these, so the figures are exactly these three."""
    with session_scope(engine) as session:
        session.execute(delete(Escalation).where(col(Escalation.desk_id) == desk_id))
        session.add(
            Escalation(
                desk_id=desk_id,
                run_id=runs[MON],
                trader_id="UTRD3",
                kind="recovery_path",
                state=EscalationState.RESOLVED,
                opened_at=at_local(MON, "09:00"),
                acknowledged_at=at_local(MON, "09:12"),
                acknowledged_by="UMGR1",
                resolved_at=at_local(TUE, "10:00"),
                resolved_by="UMGR1",
                resolution_note="second device registered",
            )
        )
        session.add(
            Escalation(
                desk_id=desk_id,
                run_id=runs[WED],
                trader_id="UTRD2",
                kind="recovery_path",
                state=EscalationState.ACKNOWLEDGED,
                opened_at=at_local(WED, "11:00"),
                acknowledged_at=at_local(WED, "11:30"),
                acknowledged_by="UMGR2",
            )
        )
        session.add(
            Escalation(
                desk_id=desk_id,
                run_id=runs[PREV_MON],
                trader_id="UTRD1",
                kind="silent",
                opened_at=at_local(PREV_MON, "09:00"),
                level=2,
                level2_at=at_local(PREV_MON, "09:15"),
            )
        )
