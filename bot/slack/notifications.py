"""Rendering of outbox notifications at delivery: render spec (a view kind and plain data)
in, (text, blocks) out, from the state at the moment the message is sent.

Domain services enqueue ``{"render": {"view": KIND, ...ids}}`` and never build blocks; the
outbox worker calls ``render`` (injected by ``bot.serve``) just before it talks to Slack.
Each capability's pure view builder does the drawing; this module only loads what it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import Session, col, select

from bot.checklist.models import ChecklistRun
from bot.delivery.errors import DeliveryError
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.escalation import service as escalation
from bot.escalation import views as escalation_views
from bot.escalation.models import Escalation
from bot.profile import drill
from bot.profile import views as profile_views
from bot.profile.gaps import gap_by_id
from bot.slack.blocks import Blocks

Spec = dict[str, Any]
View = Callable[[Session, Spec], tuple[str, Blocks]]


def _gone(what: str) -> DeliveryError:
    return DeliveryError(f"{what} no longer exists", retry_after=None)


def _escalation(session: Session, spec: Spec) -> tuple[Escalation, Desk]:
    esc = session.get(Escalation, int(spec["escalation_id"]))
    if esc is None:
        raise _gone(f"escalation {spec['escalation_id']}")
    desk = session.get(Desk, esc.desk_id)
    if desk is None:
        raise _gone(f"the desk of escalation {esc.id}")
    return esc, desk


def escalation_dm(session: Session, spec: Spec) -> tuple[str, Blocks]:
    esc, desk = _escalation(session, spec)
    names = escalation.names_of(session=session, escalations=[esc])
    return escalation_views.escalation_message(esc, desk, names)


def escalation_level2(session: Session, spec: Spec) -> tuple[str, Blocks]:
    esc, desk = _escalation(session, spec)
    managers = desks.members(session=session, desk_id=esc.desk_id, role=Role.MANAGER)
    names = escalation.names_of(session=session, escalations=[esc])
    return escalation_views.level2_message(esc, desk, managers, desk.ack_timeout_minutes, names)


def escalation_digest(session: Session, spec: Spec) -> tuple[str, Blocks]:
    """One manager's grouped message for the escalations a pass opened, drawn from their
    current states (so each update shows every acknowledgement and resolution so far)."""
    ids = [int(i) for i in spec.get("ids") or []]
    items = list(session.exec(select(Escalation).where(col(Escalation.id).in_(ids))).all()) if ids else []
    if not items:
        raise _gone("the escalations of this message")
    desk = session.get(Desk, items[0].desk_id)
    if desk is None:
        raise _gone("the desk of these escalations")
    names = escalation.names_of(session=session, escalations=items)
    return escalation_views.digest_message(items, desk, names, str(spec.get("key") or ""))


def checklist_reminder(session: Session, spec: Spec) -> tuple[str, Blocks]:
    run = session.get(ChecklistRun, int(spec["run_id"]))
    if run is None:
        raise _gone(f"checklist run {spec['run_id']}")
    desk = session.get(Desk, run.desk_id)
    if desk is None:
        raise _gone(f"the desk of run {run.id}")
    return escalation_views.reminder_message(desk, run, str(spec["trader"]))


def profile_notice(session: Session, spec: Spec) -> tuple[str, Blocks]:
    """The trader's pre-morning notice of a readiness gap, with the drill's buttons."""
    gap = gap_by_id(session, int(spec["gap_id"]))
    if gap is None:
        raise _gone(f"readiness gap {spec['gap_id']}")
    desk = session.get(Desk, gap.desk_id)
    if desk is None:
        raise _gone(f"the desk of readiness gap {gap.id}")
    enrollment = drill.enrollment(session, gap.user_id)
    enrolled = enrollment is not None and enrollment.enrolled_at is not None
    return profile_views.gap_notice(gap, desk, enrolled=enrolled)


VIEWS: dict[str, View] = {
    "escalation.dm": escalation_dm,
    "escalation.digest": escalation_digest,
    "escalation.level2": escalation_level2,
    "checklist.reminder": checklist_reminder,
    "profile.notice": profile_notice,
}


def render(session: Session, spec: Spec) -> tuple[str, Blocks]:
    """``bot.delivery.worker.Renderer``: an unknown view is a permanent delivery failure."""
    view = VIEWS.get(str(spec.get("view")))
    if view is None:
        raise DeliveryError(f"no view for notification {spec.get('view')!r}", retry_after=None)
    return view(session, spec)
