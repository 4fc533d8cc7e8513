"""What a manager does to an escalation: acknowledge (one, or every one a grouped message
lists) and resolve with a note. Only the desk's managers may; a double click makes one
transition (conditional UPDATEs on ``state``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col

from bot.audit import record
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.errors import ServiceError
from bot.escalation.labels import NOTE_LIMIT
from bot.escalation.models import Escalation, EscalationState
from bot.escalation.notices import digest_ids, page, page_resolved, update_digests, update_everywhere
from bot.escalation.rules import OPEN_STATES, Outcome, Transition, subject
from bot.text import user_text


class NotManagerError(ServiceError):
    pass


def check_can_act(*, session: Session, escalation_id: int, user_id: str) -> tuple[Escalation, Desk]:
    """The escalation and its desk if ``user_id`` manages that desk; else NotManagerError."""
    esc = session.get(Escalation, escalation_id)
    if esc is None:
        raise ServiceError("This escalation no longer exists.")
    desk = session.get(Desk, esc.desk_id)
    assert desk is not None
    if not desks.is_member(session=session, desk_id=esc.desk_id, user_id=user_id, role=Role.MANAGER):
        raise NotManagerError(f"Only managers of the {desk.name} desk can acknowledge or resolve this escalation.")
    return esc, desk


def acknowledge_many(*, session: Session, key: str, user_id: str, now: datetime) -> tuple[int, int]:
    """Acknowledge every open escalation a grouped message lists (the ones ``user_id`` may act
    on); (acknowledged now, listed). The grouped message is updated once, not once each."""
    ids = digest_ids(session=session, key=key)
    if not ids:
        raise ServiceError("This message no longer lists any escalation.")
    done = 0
    desk: Desk | None = None
    acked: list[Escalation] = []
    for esc_id in ids:
        try:
            t = acknowledge(session=session, escalation_id=esc_id, user_id=user_id, now=now, digests=False)
        except NotManagerError:
            continue
        except ServiceError:  # gone
            continue
        desk = t.desk
        if t.outcome is Outcome.DONE:
            done += 1
            acked.append(t.escalation)
    if desk is None:
        raise NotManagerError("Only the desk's managers can acknowledge these escalations.")
    if done:  # every grouped message listing them (each manager's, the channel's), once
        update_digests(session, desk, acked, f"all:{user_id}:{now.isoformat()}", now)
    return done, len(ids)


def acknowledge(
    *, session: Session, escalation_id: int, user_id: str, now: datetime, digests: bool = True
) -> Transition:
    esc, desk = check_can_act(session=session, escalation_id=escalation_id, user_id=user_id)
    done = session.execute(
        update(Escalation)
        .where(col(Escalation.id) == escalation_id, col(Escalation.state) == EscalationState.OPEN)
        .values(state=EscalationState.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=user_id)
    )
    session.refresh(esc)
    if not done.rowcount:  # type: ignore[attr-defined]
        return Transition(Outcome.UNCHANGED, esc, desk)
    record(session, subject=subject(esc), action="acknowledged", at=now, actor=user_id, desk_id=esc.desk_id)
    update_everywhere(session, esc, desk, "acknowledged", now, digests=digests)
    if esc.level >= 2:
        page(session, esc, desk, "acknowledge", now)
    return Transition(Outcome.DONE, esc, desk)


def validate_note(note: str | None) -> str:
    text = user_text(note, field="note", limit=NOTE_LIMIT, multiline=True)
    if not text:
        raise ServiceError("Write a short note on what was done.", field="note")
    return text


def resolve(*, session: Session, escalation_id: int, user_id: str, note: str, now: datetime) -> Transition:
    text = validate_note(note)
    esc, desk = check_can_act(session=session, escalation_id=escalation_id, user_id=user_id)
    done = session.execute(
        update(Escalation)
        .where(col(Escalation.id) == escalation_id, col(Escalation.state).in_(OPEN_STATES))
        .values(state=EscalationState.RESOLVED, resolved_at=now, resolved_by=user_id, resolution_note=text)
    )
    session.refresh(esc)
    if not done.rowcount:  # type: ignore[attr-defined]
        return Transition(Outcome.UNCHANGED, esc, desk)
    record(session, subject=subject(esc), action="resolved", at=now, actor=user_id, desk_id=esc.desk_id, note=text)
    update_everywhere(session, esc, desk, "resolved", now)
    page_resolved(session, esc, desk, now)
    return Transition(Outcome.DONE, esc, desk)
