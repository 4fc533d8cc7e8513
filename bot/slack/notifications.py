"""Rendering of outbox notifications at delivery: a render spec (``bot.delivery.specs``: a view
and plain ids) in, (text, blocks) out, from the state at the moment the message is sent.

Domain services queue a spec (``outbox.SlackQueue(...).dm(user, EscalationDM(12), ...)``) and
never build blocks; the outbox worker reads it back from the row and calls ``render`` (injected by
``bot.runtime``) just before it talks to Slack. Each capability's pure view builder does the
drawing; this module only loads what it needs.
"""

from __future__ import annotations

from typing import TypeVar, assert_never

from sqlmodel import Session, SQLModel, col, select

from bot.checklist.models import ChecklistRun
from bot.delivery.errors import DeliveryError
from bot.delivery.specs import (
    ChecklistReminder,
    EscalationChannelDigest,
    EscalationDigest,
    EscalationDM,
    EscalationLevel2,
    ProfileNotice,
    RenderSpec,
)
from bot.desks import contact
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.escalation import notices
from bot.escalation import queries as escalation
from bot.escalation import views as escalation_views
from bot.escalation.models import Escalation
from bot.profile import drill
from bot.profile import views as profile_views
from bot.profile.gaps import gap_by_id
from bot.slack.blocks import Blocks

Row = TypeVar("Row", bound=SQLModel)


def _gone(what: str) -> DeliveryError:
    return DeliveryError(f"{what} no longer exists", retry_after=None)


def _found(row: Row | None, what: str) -> Row:
    """``row``, or a permanent delivery failure saying ``what`` is gone."""
    if row is None:
        raise _gone(what)
    return row


def _desk_of(session: Session, desk_id: int, whose: str) -> Desk:
    return _found(session.get(Desk, desk_id), f"the desk of {whose}")


def _escalation(session: Session, escalation_id: int) -> tuple[Escalation, Desk]:
    esc = _found(session.get(Escalation, escalation_id), f"escalation {escalation_id}")
    return esc, _desk_of(session, esc.desk_id, f"escalation {esc.id}")


def escalation_dm(session: Session, spec: EscalationDM) -> tuple[str, Blocks]:
    esc, desk = _escalation(session, spec.escalation_id)
    names = escalation.names_of(session=session, escalations=[esc])
    return escalation_views.escalation_message(esc, desk, names)


def escalation_level2(session: Session, spec: EscalationLevel2) -> tuple[str, Blocks]:
    esc, desk = _escalation(session, spec.escalation_id)
    managers = desks.members(session=session, desk_id=esc.desk_id, role=Role.MANAGER)
    names = escalation.names_of(session=session, escalations=[esc])
    return escalation_views.level2_message(esc, desk, managers, desk.ack_timeout_minutes, names)


def escalation_digest(session: Session, spec: EscalationDigest) -> tuple[str, Blocks]:
    """One manager's grouped message for the escalations a pass opened, drawn from their
    current states (so each update shows every acknowledgement and resolution so far) and from
    the list the message holds now: a rolling message grows (``notices.notify_answered``), and
    whichever of its queued updates is delivered shows — and coalesces — them all."""
    ids = notices.digest_ids(session=session, key=spec.key) or list(spec.ids)
    items = list(session.exec(select(Escalation).where(col(Escalation.id).in_(ids))).all()) if ids else []
    if not items:
        raise _gone("the escalations of this message")
    desk = _found(session.get(Desk, items[0].desk_id), "the desk of these escalations")
    names = escalation.names_of(session=session, escalations=items)
    return escalation_views.digest_message(items, desk, names, spec.key)


def escalation_channel_digest(session: Session, spec: EscalationChannelDigest) -> tuple[str, Blocks]:
    """The escalation channel's one post for a level-2 pass, from the escalations' current states."""
    ids = list(spec.ids)
    items = list(session.exec(select(Escalation).where(col(Escalation.id).in_(ids))).all()) if ids else []
    if not items:
        raise _gone("the escalations of this message")
    desk = _found(session.get(Desk, items[0].desk_id), "the desk of these escalations")
    managers = desks.members(session=session, desk_id=desk.id or 0, role=Role.MANAGER)
    names = escalation.names_of(session=session, escalations=items)
    return escalation_views.level2_digest_message(items, desk, managers, desk.ack_timeout_minutes, names)


def checklist_reminder(session: Session, spec: ChecklistReminder) -> tuple[str, Blocks]:
    run = _found(session.get(ChecklistRun, spec.run_id), f"checklist run {spec.run_id}")
    desk = _desk_of(session, run.desk_id, f"run {run.id}")
    return escalation_views.reminder_message(desk, run, spec.trader)


def profile_notice(session: Session, spec: ProfileNotice) -> tuple[str, Blocks]:
    """The trader's pre-morning notice of a readiness gap, with the drill's buttons."""
    gap = _found(gap_by_id(session, spec.gap_id), f"readiness gap {spec.gap_id}")
    desk = _desk_of(session, gap.desk_id, f"readiness gap {gap.id}")
    enrollment = drill.enrollment(session, gap.user_id)
    enrolled = enrollment is not None and enrollment.enrolled_at is not None
    found = contact.contacts(session, [desk])
    return profile_views.gap_notice(gap, desk, enrolled=enrolled, contact=found[0][1] if found else None)


def render(session: Session, spec: RenderSpec) -> tuple[str, Blocks]:
    """``bot.delivery.worker.Renderer``: one builder per kind of spec (the worker has already
    turned a stored spec naming no known view into a permanent delivery failure)."""
    match spec:
        case EscalationDM():
            return escalation_dm(session, spec)
        case EscalationLevel2():
            return escalation_level2(session, spec)
        case EscalationChannelDigest():  # before its base class
            return escalation_channel_digest(session, spec)
        case EscalationDigest():
            return escalation_digest(session, spec)
        case ChecklistReminder():
            return checklist_reminder(session, spec)
        case ProfileNotice():
            return profile_notice(session, spec)
        case _:
            assert_never(spec)
