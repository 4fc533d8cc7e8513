"""Resolving automatically: an escalation whose condition has gone resolves, the system acting.

A conditional UPDATE to ``resolved`` with ``resolved_by`` NULL and a reason ("confirmed",
"answered", "the checklist was posted", ...), an audit event with actor ``system``, an
in-place update of every message the escalation produced, and the pager's ``resolve`` — or
the withdrawal of a trigger still waiting in the outbox (``notices.page_resolved``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from bot.audit import record
from bot.checklist import rosters
from bot.checklist.models import Answer, ChecklistRun
from bot.desks.models import Desk
from bot.escalation.labels import AUTO_REASON, NOTE_LIMIT
from bot.escalation.models import Escalation, EscalationKind, EscalationState
from bot.escalation.notices import page_resolved, update_everywhere
from bot.escalation.rules import (
    OPEN_STATES,
    SYSTEM,
    Outcome,
    Transition,
    auto_reason,
    kinds_called_for,
    post_failed_holds,
    subject,
)


def _resolve(
    session: Session, esc: Escalation, desk: Desk, reason: str, now: datetime, *, digests: bool = True
) -> bool:
    """Resolve with the system as actor: every message updated in place (the grouped ones by
    the caller when not ``digests``: a pass updates each once), the pager told."""
    done = session.execute(
        update(Escalation)
        .where(col(Escalation.id) == esc.id, col(Escalation.state).in_(OPEN_STATES))
        .values(state=EscalationState.RESOLVED, resolved_at=now, resolved_by=None, resolution_note=reason)
    )
    session.refresh(esc)
    if not done.rowcount:  # type: ignore[attr-defined]
        return False
    record(
        session,
        subject=subject(esc),
        action="resolved",
        at=now,
        actor=SYSTEM,
        desk_id=esc.desk_id,
        automatic=True,
        note=reason,
    )
    update_everywhere(session, esc, desk, "resolved", now, digests=digests)
    page_resolved(session, esc, desk, now)
    return True


def resolve_automatically(*, session: Session, escalation_id: int, note: str, now: datetime) -> Transition | None:
    """The condition behind the escalation has gone (a readiness gap was fixed): resolved with
    the system as actor; every message it produced is updated in place and a level-2 page is
    resolved (or withdrawn). None when it no longer exists; UNCHANGED when already resolved."""
    esc = session.get(Escalation, escalation_id)
    if esc is None:
        return None
    desk = session.get(Desk, esc.desk_id)
    assert desk is not None
    done = _resolve(session, esc, desk, note[:NOTE_LIMIT], now)
    return Transition(Outcome.DONE if done else Outcome.UNCHANGED, esc, desk)


def resolve_standing(
    *, session: Session, desk: Desk, trader_id: str, kind: EscalationKind, note: str, now: datetime
) -> list[int]:
    """Resolve the trader's open standing escalations of ``kind`` on the desk (their condition
    has gone: a later probe was healthy), with the system as actor."""
    rows = session.exec(
        select(Escalation).where(
            Escalation.desk_id == desk.id,
            Escalation.trader_id == trader_id,
            Escalation.kind == kind,
            col(Escalation.run_id).is_(None),
            col(Escalation.state).in_(OPEN_STATES),
        )
    ).all()
    done = []
    for esc in rows:
        if _resolve(session, esc, desk, note[:NOTE_LIMIT], now):
            assert esc.id is not None
            done.append(esc.id)
    return done


def resolve_gone(
    session: Session, desk: Desk, run: ChecklistRun, trader: str, answer: Answer | None, now: datetime
) -> list[int]:
    """Resolve the trader's open escalations on ``run`` that ``answer`` no longer calls for."""
    wanted = kinds_called_for(answer)
    resolved: list[int] = []
    current = session.exec(
        select(Escalation).where(
            Escalation.run_id == run.id,
            Escalation.trader_id == trader,
            col(Escalation.state).in_(OPEN_STATES),
        )
    ).all()
    for esc in current:
        kind = EscalationKind(esc.kind)
        if kind not in wanted and _resolve(session, esc, desk, auto_reason(kind, answer), now):
            assert esc.id is not None
            resolved.append(esc.id)
    return resolved


def follow_live_state(*, session: Session, desk: Desk, now: datetime) -> list[Escalation]:
    """Resolve every open escalation of ``desk`` whose condition no longer holds. The grouped
    messages listing them are the caller's to update, once each (``notices.update_digests``)."""
    assert desk.id is not None
    rows = session.exec(
        select(Escalation, ChecklistRun)
        .join(ChecklistRun, col(ChecklistRun.id) == col(Escalation.run_id))
        .where(Escalation.desk_id == desk.id, col(Escalation.state).in_(OPEN_STATES))
        .order_by(col(Escalation.id))
    ).all()
    answers: dict[int, dict[str, Answer]] = {}
    resolved: list[Escalation] = []
    for esc, run in rows:
        assert run.id is not None and esc.id is not None
        kind = EscalationKind(esc.kind)
        if kind is EscalationKind.POST_FAILED:
            if not post_failed_holds(run) and _resolve(session, esc, desk, AUTO_REASON[kind], now, digests=False):
                resolved.append(esc)
            continue
        if run.id not in answers:
            answers[run.id] = rosters.current_answers(session=session, run_id=run.id)
        answer = answers[run.id].get(esc.trader_id)
        reason = auto_reason(kind, answer)
        if kind not in kinds_called_for(answer) and _resolve(session, esc, desk, reason, now, digests=False):
            resolved.append(esc)
    return resolved
