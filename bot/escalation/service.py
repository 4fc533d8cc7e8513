"""Escalations: reminders, missing recovery paths, silent and restricted traders, level 2.

The database decides everything: an escalation is unique per (run, trader, kind), every
notification is an outbox row with a unique dedup key written in the same transaction
as the change that caused it, and transitions are conditional UPDATEs on ``state`` (a
double click makes one transition). ``run_pass`` can therefore run every minute, from
several replicas and from the CLI, and still remind, escalate and page exactly once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from bot.audit import AuditEvent
from bot.checklist import events as checklist_events
from bot.checklist import service as checklist
from bot.checklist.labels import problem_summary
from bot.checklist.models import Answer, ChecklistRun
from bot.delivery import outbox
from bot.delivery.models import OutboxMessage
from bot.delivery.outbox import Kind
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.errors import ServiceError
from bot.escalation.labels import NOTE_LIMIT, kind_title
from bot.escalation.models import LOW_SEVERITY, Escalation, EscalationKind, EscalationState
from bot.text import clean


class NotManagerError(ServiceError):
    pass


class Outcome(StrEnum):
    DONE = "done"
    UNCHANGED = "unchanged"  # someone (or a double click) got there first


@dataclass(frozen=True)
class Transition:
    outcome: Outcome
    escalation: Escalation
    desk: Desk


@dataclass
class PassReport:
    reminders: int = 0
    opened: list[int] = field(default_factory=list)
    level2: list[int] = field(default_factory=list)
    note: str = ""

    def describe(self, desk_name: str) -> str:
        return (
            f"{desk_name}: {self.reminders} reminder(s) queued, {len(self.opened)} escalation(s) opened, "
            f"{len(self.level2)} raised to level 2{f' ({self.note})' if self.note else ''}."
        )


def subject(esc: Escalation) -> str:
    return f"escalation:{esc.id}"


def audit(
    session: Session, esc: Escalation, action: str, now: datetime, actor: str | None = None, **detail: Any
) -> None:
    session.add(
        AuditEvent(
            desk_id=esc.desk_id,
            at=now,
            actor=actor,
            subject=subject(esc),
            action=action,
            detail=json.dumps(detail, default=str),
        )
    )


def _report_detail(answer: Answer | None) -> str:
    if answer is None:
        return ""
    summary = problem_summary(answer)
    return summary + (f" — “{answer.note}”" if answer.note else "")


# --- opening ----------------------------------------------------------------------------


def open_escalation(
    *,
    session: Session,
    desk: Desk,
    run: ChecklistRun,
    trader_id: str,
    kind: EscalationKind,
    detail: str,
    now: datetime,
) -> Escalation | None:
    """Open one escalation and queue a DM to every manager; None if it was already open."""
    assert desk.id is not None and run.id is not None
    existing = session.exec(
        select(Escalation.id).where(
            Escalation.run_id == run.id, Escalation.trader_id == trader_id, Escalation.kind == kind
        )
    ).first()
    if existing is not None:
        return None
    esc = Escalation(desk_id=desk.id, run_id=run.id, trader_id=trader_id, kind=kind, detail=detail, opened_at=now)
    try:
        with session.begin_nested():
            session.add(esc)
    except IntegrityError:  # a concurrent pass opened it first
        return None
    assert esc.id is not None
    audit(session, esc, "opened", now, kind=str(kind), trader=trader_id, run=run.id)
    managers = desks.members(session=session, desk_id=desk.id, role=Role.MANAGER)
    for manager in managers:
        outbox.enqueue(
            session=session,
            dedup_key=f"{subject(esc)}:dm:{manager}",
            kind=Kind.SLACK_DM,
            payload={"user": manager, "render": {"view": "escalation.dm", "escalation_id": esc.id}},
            desk_id=desk.id,
            now=now,
            audit={"subject": subject(esc), "ok": "notified", "fail": "notify_failed"},
        )
    return esc


def open_standing(
    *, session: Session, desk: Desk, trader_id: str, kind: EscalationKind, detail: str, now: datetime
) -> Escalation:
    """Open an escalation that belongs to no checklist run (the readiness profile's gaps, found
    before the morning) and queue a DM to every manager. The caller decides that it is opened
    once (``bot.profile`` claims its gap row first); the (run, trader, kind) key doesn't, as
    ``run_id`` is NULL."""
    assert desk.id is not None
    esc = Escalation(desk_id=desk.id, run_id=None, trader_id=trader_id, kind=kind, detail=detail, opened_at=now)
    session.add(esc)
    session.flush()
    assert esc.id is not None
    audit(session, esc, "opened", now, kind=str(kind), trader=trader_id)
    for manager in desks.members(session=session, desk_id=desk.id, role=Role.MANAGER):
        outbox.enqueue(
            session=session,
            dedup_key=f"{subject(esc)}:dm:{manager}",
            kind=Kind.SLACK_DM,
            payload={"user": manager, "render": {"view": "escalation.dm", "escalation_id": esc.id}},
            desk_id=desk.id,
            now=now,
            audit={"subject": subject(esc), "ok": "notified", "fail": "notify_failed"},
        )
    return esc


def open_recovery_path(*, session: Session, run: ChecklistRun, answer: Answer, now: datetime) -> Escalation | None:
    """Called when a report is stored: a missing recovery path escalates at once."""
    if not answer.missing_recovery_path:
        return None
    desk = session.get(Desk, run.desk_id)
    assert desk is not None
    return open_escalation(
        session=session,
        desk=desk,
        run=run,
        trader_id=answer.user_id,
        kind=EscalationKind.RECOVERY_PATH,
        detail=_report_detail(answer),
        now=now,
    )


@checklist_events.subscribe
def _on_answer_stored(session: Session, run: ChecklistRun, answer: Answer, now: datetime) -> None:
    """A stored report with a missing recovery path escalates at once, in its transaction."""
    open_recovery_path(session=session, run=run, answer=answer, now=now)


def _update_everywhere(session: Session, esc: Escalation, desk: Desk, transition: str, now: datetime) -> None:
    """Queue an in-place update of every message this escalation has produced so far; each is
    rendered from the escalation's state when it is delivered."""
    prefix = f"{subject(esc)}:"
    originals = session.exec(
        select(OutboxMessage.dedup_key).where(
            col(OutboxMessage.dedup_key).startswith(prefix),
            col(OutboxMessage.kind).in_([Kind.SLACK_DM, Kind.SLACK_POST]),
        )
    ).all()
    for ref in originals:
        view = "escalation.level2" if ref.endswith(":level2:channel") else "escalation.dm"
        outbox.enqueue(
            session=session,
            dedup_key=f"{ref}:update:{transition}",
            kind=Kind.SLACK_UPDATE,
            payload={"ref": ref, "render": {"view": view, "escalation_id": esc.id}},
            desk_id=desk.id,
            now=now,
        )


def _page(session: Session, esc: Escalation, desk: Desk, action: str, now: datetime) -> None:
    if desk.pager_kind == "none":
        return
    summary = f"{kind_title(esc.kind)}: trader {esc.trader_id} on desk {desk.name}"
    outbox.enqueue(
        session=session,
        dedup_key=f"{subject(esc)}:page:{action}",
        kind=Kind.PAGER,
        payload={
            "action": action,
            "escalation_id": esc.id,
            "escalation_kind": esc.kind,
            "summary": summary,
            "details": {"trader": esc.trader_id, "detail": clean(esc.detail), "opened_at": esc.opened_at.isoformat()},
        },
        desk_id=desk.id,
        now=now,
        audit={"subject": subject(esc), "ok": f"page_{action}_sent", "fail": f"page_{action}_failed"},
    )


# --- the pass ---------------------------------------------------------------------------


def run_pass(*, session: Session, desk: Desk, now: datetime) -> PassReport:
    """Everything due for ``desk`` at ``now``: reminders, deadline escalations, level 2.

    Idempotent: unique escalations, unique outbox keys and conditional updates decide.
    """
    assert desk.id is not None
    report = PassReport()
    run = checklist.today_run(session=session, desk=desk, now=now)
    if run is not None and run.message_ts is not None and not checklist.run_closed(run, desk, now):
        _run_checks(session, desk, run, now, report)
    else:
        day = checklist.desk_today(desk, now)
        why = "closed" if run is not None and run.message_ts is not None else "not posted"
        report.note = f"the checklist for {day} is {why}: only level 2 was checked"
    _level2(session, desk, now, report)
    return report


def _run_checks(session: Session, desk: Desk, run: ChecklistRun, now: datetime, report: PassReport) -> None:
    assert run.id is not None and desk.id is not None
    traders = desks.members(session=session, desk_id=desk.id, role=Role.TRADER)
    latest = checklist.current_answers(session=session, run_id=run.id)
    # A missing recovery path escalates at once; this catches any report stored without the hook.
    for trader in traders:
        answer = latest.get(trader)
        if answer is not None and answer.missing_recovery_path:
            esc = open_recovery_path(session=session, run=run, answer=answer, now=now)
            if esc is not None and esc.id is not None:
                report.opened.append(esc.id)
    remind_from = run.deadline_at - timedelta(minutes=desk.reminder_minutes)
    if desk.reminder_minutes > 0 and remind_from <= now < run.deadline_at:
        for trader in traders:
            if trader in latest:
                continue
            queued = outbox.enqueue(
                session=session,
                dedup_key=f"reminder:{run.id}:{trader}",
                kind=Kind.SLACK_DM,
                payload={"user": trader, "render": {"view": "checklist.reminder", "run_id": run.id, "trader": trader}},
                desk_id=desk.id,
                now=now,
            )
            report.reminders += queued is not None
    if now >= run.deadline_at:
        for trader in traders:
            answer = latest.get(trader)
            if answer is None:
                kind, detail = EscalationKind.SILENT, ""
            elif answer.restricted and not answer.missing_recovery_path:
                kind, detail = EscalationKind.RESTRICTED, _report_detail(answer)
            else:
                continue
            esc = open_escalation(
                session=session, desk=desk, run=run, trader_id=trader, kind=kind, detail=detail, now=now
            )
            if esc is not None and esc.id is not None:
                report.opened.append(esc.id)


def _level2(session: Session, desk: Desk, now: datetime, report: PassReport) -> None:
    cutoff = now - timedelta(minutes=desk.ack_timeout_minutes)
    stale = session.exec(
        select(Escalation)
        .where(
            Escalation.desk_id == desk.id,
            Escalation.state == EscalationState.OPEN,
            Escalation.level == 1,
            col(Escalation.opened_at) <= cutoff,
            col(Escalation.kind).not_in([k.value for k in LOW_SEVERITY]),
        )
        .order_by(col(Escalation.id))
    ).all()
    for esc in stale:
        raised = session.execute(
            update(Escalation)
            .where(
                col(Escalation.id) == esc.id,
                col(Escalation.state) == EscalationState.OPEN,
                col(Escalation.level) == 1,
            )
            .values(level=2, level2_at=now)
        )
        if not raised.rowcount:  # type: ignore[attr-defined]
            continue
        session.refresh(esc)
        assert esc.id is not None
        report.level2.append(esc.id)
        audit(session, esc, "re_escalated", now, level=2, timeout_minutes=desk.ack_timeout_minutes)
        if desk.escalation_channel_id:
            outbox.enqueue(
                session=session,
                dedup_key=f"{subject(esc)}:level2:channel",
                kind=Kind.SLACK_POST,
                payload={
                    "channel": desk.escalation_channel_id,
                    "render": {"view": "escalation.level2", "escalation_id": esc.id},
                },
                desk_id=desk.id,
                now=now,
            )
        _update_everywhere(session, esc, desk, "level2", now)
        _page(session, esc, desk, "trigger", now)


# --- manager actions --------------------------------------------------------------------


def _load(session: Session, escalation_id: int, user_id: str) -> tuple[Escalation, Desk]:
    esc = session.get(Escalation, escalation_id)
    if esc is None:
        raise ServiceError("This escalation no longer exists.")
    desk = session.get(Desk, esc.desk_id)
    assert desk is not None
    if not desks.is_member(session=session, desk_id=esc.desk_id, user_id=user_id, role=Role.MANAGER):
        raise NotManagerError(f"Only managers of the {desk.name} desk can acknowledge or resolve this escalation.")
    return esc, desk


def check_can_act(*, session: Session, escalation_id: int, user_id: str) -> tuple[Escalation, Desk]:
    """The escalation and its desk if ``user_id`` manages that desk; else NotManagerError."""
    return _load(session, escalation_id, user_id)


def acknowledge(*, session: Session, escalation_id: int, user_id: str, now: datetime) -> Transition:
    esc, desk = _load(session, escalation_id, user_id)
    done = session.execute(
        update(Escalation)
        .where(col(Escalation.id) == escalation_id, col(Escalation.state) == EscalationState.OPEN)
        .values(state=EscalationState.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=user_id)
    )
    session.refresh(esc)
    if not done.rowcount:  # type: ignore[attr-defined]
        return Transition(Outcome.UNCHANGED, esc, desk)
    audit(session, esc, "acknowledged", now, actor=user_id)
    _update_everywhere(session, esc, desk, "acknowledged", now)
    if esc.level >= 2:
        _page(session, esc, desk, "acknowledge", now)
    return Transition(Outcome.DONE, esc, desk)


def validate_note(note: str | None) -> str:
    text = (note or "").strip()
    if not text:
        raise ServiceError("Write a short note on what was done.")
    if len(text) > NOTE_LIMIT:
        raise ServiceError(f"Keep the note to {NOTE_LIMIT} characters (it has {len(text)}).")
    return text


def resolve(*, session: Session, escalation_id: int, user_id: str, note: str, now: datetime) -> Transition:
    text = validate_note(note)
    esc, desk = _load(session, escalation_id, user_id)
    done = session.execute(
        update(Escalation)
        .where(
            col(Escalation.id) == escalation_id,
            col(Escalation.state).in_([EscalationState.OPEN, EscalationState.ACKNOWLEDGED]),
        )
        .values(state=EscalationState.RESOLVED, resolved_at=now, resolved_by=user_id, resolution_note=text)
    )
    session.refresh(esc)
    if not done.rowcount:  # type: ignore[attr-defined]
        return Transition(Outcome.UNCHANGED, esc, desk)
    audit(session, esc, "resolved", now, actor=user_id, note=text)
    _update_everywhere(session, esc, desk, "resolved", now)
    if esc.level >= 2:
        _page(session, esc, desk, "resolve", now)
    return Transition(Outcome.DONE, esc, desk)


# --- queries ----------------------------------------------------------------------------

OPEN_STATES = (EscalationState.OPEN, EscalationState.ACKNOWLEDGED)


def resolve_automatically(*, session: Session, escalation_id: int, note: str, now: datetime) -> Transition | None:
    """The condition behind the escalation has gone (a readiness gap was fixed): resolved with
    the system as actor; every message it produced is updated in place and a level-2 page is
    resolved. None when it no longer exists; UNCHANGED when it was already resolved."""
    esc = session.get(Escalation, escalation_id)
    if esc is None:
        return None
    desk = session.get(Desk, esc.desk_id)
    assert desk is not None
    done = session.execute(
        update(Escalation)
        .where(col(Escalation.id) == escalation_id, col(Escalation.state).in_(OPEN_STATES))
        .values(state=EscalationState.RESOLVED, resolved_at=now, resolved_by=None, resolution_note=note[:NOTE_LIMIT])
    )
    session.refresh(esc)
    if not done.rowcount:  # type: ignore[attr-defined]
        return Transition(Outcome.UNCHANGED, esc, desk)
    audit(session, esc, "resolved", now, actor=None, note=note, automatic=True)
    _update_everywhere(session, esc, desk, "resolved", now)
    if esc.level >= 2:
        _page(session, esc, desk, "resolve", now)
    return Transition(Outcome.DONE, esc, desk)


def _open_where(session: Session, *conditions: Any) -> list[tuple[Escalation, Desk]]:
    rows = session.exec(
        select(Escalation, Desk)
        .join(Desk, col(Desk.id) == col(Escalation.desk_id))
        .where(col(Escalation.state).in_(OPEN_STATES), *conditions)
        .order_by(col(Escalation.opened_at), col(Escalation.id))
    ).all()
    return [(e, d) for e, d in rows]


def open_for_manager(*, session: Session, user_id: str) -> tuple[int, list[tuple[Escalation, Desk]]]:
    """(number of desks managed, open escalations on them)."""
    managed = [d.id for d in desks.desks_of_user(session=session, user_id=user_id, role=Role.MANAGER)]
    if not managed:
        return 0, []
    return len(managed), _open_where(session, col(Escalation.desk_id).in_(managed))


def open_for_trader(*, session: Session, user_id: str) -> list[tuple[Escalation, Desk]]:
    return _open_where(session, Escalation.trader_id == user_id)


@dataclass(frozen=True)
class Delivery:
    delivered: int
    waiting: list[OutboxMessage]
    failed: list[OutboxMessage]

    def describe(self) -> str:
        parts = [f"{self.delivered} delivered"]
        if self.waiting:
            first = self.waiting[0]
            why = f": {first.last_error}" if first.last_error else ""
            parts.append(f"{len(self.waiting)} waiting (attempts {first.attempts}{why})")
        if self.failed:
            parts.append(f"{len(self.failed)} failed ({self.failed[0].last_error})")
        return ", ".join(parts)


def delivery_of(session: Session, prefix: str) -> Delivery:
    rows = session.exec(
        select(OutboxMessage).where(col(OutboxMessage.dedup_key).startswith(prefix)).order_by(col(OutboxMessage.id))
    ).all()
    return Delivery(
        delivered=sum(1 for r in rows if r.delivered_at is not None),
        waiting=[r for r in rows if r.delivered_at is None and r.failed_at is None],
        failed=[r for r in rows if r.failed_at is not None],
    )


def listing(*, session: Session, open_only: bool) -> list[tuple[Escalation, Desk, Delivery]]:
    query = select(Escalation, Desk).join(Desk, col(Desk.id) == col(Escalation.desk_id))
    if open_only:
        query = query.where(col(Escalation.state).in_(OPEN_STATES))
    rows = session.exec(query.order_by(col(Escalation.id))).all()
    return [(e, d, delivery_of(session, f"{subject(e)}:")) for e, d in rows]


def waiting_messages(*, session: Session) -> list[OutboxMessage]:
    """Everything not yet delivered (nor given up on), oldest first."""
    return list(
        session.exec(
            select(OutboxMessage)
            .where(col(OutboxMessage.delivered_at).is_(None), col(OutboxMessage.failed_at).is_(None))
            .order_by(col(OutboxMessage.id))
        ).all()
    )


def outbox_counts(*, session: Session) -> dict[str, int]:
    rows = session.exec(
        select(
            func.count(col(OutboxMessage.id)),
            func.count(col(OutboxMessage.delivered_at)),
            func.count(col(OutboxMessage.failed_at)),
        )
    ).one()
    total, delivered, failed = (int(x) for x in rows)
    return {"total": total, "delivered": delivered, "failed": failed, "waiting": total - delivered - failed}
