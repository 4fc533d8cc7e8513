"""Escalations: reminders, missing recovery paths, silent and restricted traders, level 2.

Escalations follow the live state. Each kind has a condition on the trader's *current*
answer (``kinds_called_for``) — or, for a morning that could not be posted, on the run —
and an open escalation whose condition no longer holds is resolved automatically, with the
system as the actor: when the trader's answer changes (``bot.checklist.events``, in the
transaction that stores it) and at every pass. Level 2 is decided by the same pass after
that check, so it never fires for an escalation whose condition has gone; a page that was
queued but not yet sent when its escalation resolves is withdrawn instead of being
followed by a resolve.

The database decides everything else: an escalation is unique per (run, trader, kind),
every notification is an outbox row with a unique dedup key written in the same
transaction as the change that caused it, and transitions are conditional UPDATEs on
``state`` (a double click makes one transition). ``run_pass`` can therefore run every
minute, from several replicas and from the CLI, and still remind, escalate and page once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, exists, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from bot.audit import AuditEvent
from bot.checklist import events as checklist_events
from bot.checklist import service as checklist
from bot.checklist.labels import problem_summary
from bot.checklist.models import Answer, AnswerStatus, Check, ChecklistRun, ContingencyGap
from bot.delivery import outbox
from bot.delivery.models import OutboxMessage
from bot.delivery.outbox import Kind
from bot.desks import away
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.errors import ServiceError
from bot.escalation.labels import AUTO_REASON, NOTE_LIMIT, kind_title
from bot.escalation.models import DESK_WIDE, HIGH_KINDS, Escalation, EscalationKind, EscalationState
from bot.people import service as people
from bot.secret_text import REFUSAL as SECRET_REFUSAL
from bot.secret_text import looks_like_secret
from bot.text import clean

SYSTEM = "system"  # the audit actor of automatic transitions
OPEN_STATES = (EscalationState.OPEN, EscalationState.ACKNOWLEDGED)
# Opened as soon as the report is stored; every other trader kind waits for the deadline.
AT_ONCE = frozenset({EscalationKind.RECOVERY_PATH})
DIGEST_FROM = 3  # a pass opening this many (several) sends one grouped message per manager instead of DMs


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
    resolved: list[int] = field(default_factory=list)
    note: str = ""

    def describe(self, desk_name: str) -> str:
        return (
            f"{desk_name}: {self.reminders} reminder(s) queued, {len(self.opened)} escalation(s) opened, "
            f"{len(self.resolved)} resolved automatically, "
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


# --- conditions -------------------------------------------------------------------------


def _restricted_otherwise(answer: Answer) -> bool:
    """A failed check that no dedicated kind covers: authentication, permissions, or a
    contingency failure whose gaps open nothing of their own (a recorded "No recovery code")."""
    checks = set(answer.checks)
    if checks & {Check.AUTHENTICATION, Check.PERMISSIONS}:
        return True
    covered = answer.missing_recovery_path or answer.sms_only or answer.missing_secondary_interface
    return Check.CONTINGENCY in checks and not covered


def kinds_called_for(answer: Answer | None) -> frozenset[EscalationKind]:
    """The trader escalations a current answer calls for (before the deadline, only AT_ONCE
    ones are opened). An open escalation of a kind not in here is resolved."""
    if answer is None:
        return frozenset({EscalationKind.SILENT})
    if answer.status != AnswerStatus.PROBLEM:
        return frozenset()
    kinds: set[EscalationKind] = set()
    if answer.missing_recovery_path:
        kinds.add(EscalationKind.RECOVERY_PATH)
    if answer.sms_only:
        kinds.add(EscalationKind.SMS_ONLY)
    if answer.missing_secondary_interface:
        kinds.add(EscalationKind.SECONDARY_INTERFACE)
    if _restricted_otherwise(answer):
        kinds.add(EscalationKind.RESTRICTED)
    return frozenset(kinds)


def _detail(kind: EscalationKind, answer: Answer | None) -> str:
    return "" if kind is EscalationKind.SILENT else _report_detail(answer)


def _auto_reason(kind: EscalationKind, answer: Answer | None) -> str:
    if answer is not None and answer.status == AnswerStatus.CONFIRMED:
        return "confirmed"
    if kind is EscalationKind.RECOVERY_PATH and answer is not None and ContingencyGap.RECOVERY_CODE in answer.gaps:
        return "reported only “no recovery code”, which is not a missing recovery path (IBKR has no recovery codes)"
    return AUTO_REASON[kind]


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
    notify: bool = True,
) -> Escalation | None:
    """Open one escalation and (``notify``) queue a DM to every manager; None if it was already
    opened (today's escalation of that kind for that trader is one, whatever its state) or the
    trader is away that day (an away trader is never escalated)."""
    assert desk.id is not None and run.id is not None
    if away.away_on(session=session, user_ids=[trader_id], day=run.trading_date):
        return None
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
    audit(session, esc, "opened", now, kind=str(kind), trader=trader_id or None, run=run.id)
    if not notify:
        return esc
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


def _past_deadline(run: ChecklistRun, now: datetime) -> bool:
    return run.message_ts is not None and now >= run.deadline_at


def _resolve_gone(
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
        if kind not in wanted and _resolve_automatically(session, esc, desk, _auto_reason(kind, answer), now):
            assert esc.id is not None
            resolved.append(esc.id)
    return resolved


def _open_due(
    session: Session,
    desk: Desk,
    run: ChecklistRun,
    trader: str,
    answer: Answer | None,
    now: datetime,
    *,
    notify: bool = True,
) -> list[Escalation]:
    """Open what the trader's current answer calls for and is due: a missing recovery path at
    once, the rest from the (effective) deadline. The escalations opened now; with
    ``notify=False`` the caller tells the managers (``_notify``)."""
    wanted = kinds_called_for(answer)
    due = wanted if _past_deadline(run, now) else wanted & AT_ONCE
    opened: list[Escalation] = []
    for kind in sorted(due):
        esc = open_escalation(
            session=session,
            desk=desk,
            run=run,
            trader_id=trader,
            kind=kind,
            detail=_detail(kind, answer),
            now=now,
            notify=notify,
        )
        if esc is not None and esc.id is not None:
            opened.append(esc)
    return opened


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


@checklist_events.subscribe
def _on_answer_stored(session: Session, run: ChecklistRun, answer: Answer, now: datetime) -> None:
    """In the transaction that stores the answer: escalations that no longer hold resolve
    (a silent trader answered, a restricted one confirmed, a backup second factor was
    reported), a missing recovery path opens at once, and after the deadline a problem
    opens its escalation now (a silent trader who answers with a problem is *restricted*)."""
    desk = session.get(Desk, run.desk_id)
    assert desk is not None
    _resolve_gone(session, desk, run, answer.user_id, answer, now)
    _open_due(session, desk, run, answer.user_id, answer, now)


# A first confirmation calls for no escalation (``kinds_called_for``): it only resolves what is
# open for the trader on the run, which the ORM hook above does (messages, pager, audit).
_ESC = Escalation.__table__  # type: ignore[attr-defined]
checklist_events.declare_confirm(
    checklist_events.ConfirmRule(
        name="escalation",
        hook=_on_answer_stored,
        full_path=exists().where(
            _ESC.c.run_id == checklist_events.RUN_ID,
            _ESC.c.trader_id == checklist_events.USER_ID,
            _ESC.c.state.in_([s.value for s in OPEN_STATES]),
        ),
    )
)


# --- resolving automatically --------------------------------------------------------------


def _resolve_automatically(session: Session, esc: Escalation, desk: Desk, reason: str, now: datetime) -> bool:
    """Resolve with the system as actor: every message updated in place, the pager told."""
    done = session.execute(
        update(Escalation)
        .where(col(Escalation.id) == esc.id, col(Escalation.state).in_(OPEN_STATES))
        .values(state=EscalationState.RESOLVED, resolved_at=now, resolved_by=None, resolution_note=reason)
    )
    session.refresh(esc)
    if not done.rowcount:  # type: ignore[attr-defined]
        return False
    audit(session, esc, "resolved", now, actor=SYSTEM, automatic=True, note=reason)
    _update_everywhere(session, esc, desk, "resolved", now)
    _page_resolved(session, esc, desk, now)
    return True


def _post_failed_holds(run: ChecklistRun) -> bool:
    return run.message_ts is None


def follow_live_state(*, session: Session, desk: Desk, now: datetime) -> list[int]:
    """Resolve every open escalation of ``desk`` whose condition no longer holds (ids)."""
    assert desk.id is not None
    rows = session.exec(
        select(Escalation, ChecklistRun)
        .join(ChecklistRun, col(ChecklistRun.id) == col(Escalation.run_id))
        .where(Escalation.desk_id == desk.id, col(Escalation.state).in_(OPEN_STATES))
        .order_by(col(Escalation.id))
    ).all()
    answers: dict[int, dict[str, Answer]] = {}
    resolved: list[int] = []
    for esc, run in rows:
        assert run.id is not None and esc.id is not None
        kind = EscalationKind(esc.kind)
        if kind is EscalationKind.POST_FAILED:
            if not _post_failed_holds(run) and _resolve_automatically(session, esc, desk, AUTO_REASON[kind], now):
                resolved.append(esc.id)
            continue
        if run.id not in answers:
            answers[run.id] = checklist.current_answers(session=session, run_id=run.id)
        answer = answers[run.id].get(esc.trader_id)
        if kind not in kinds_called_for(answer) and _resolve_automatically(
            session, esc, desk, _auto_reason(kind, answer), now
        ):
            resolved.append(esc.id)
    return resolved


def _update_everywhere(
    session: Session, esc: Escalation, desk: Desk, transition: str, now: datetime, *, digests: bool = True
) -> None:
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
    for ref, ids in digests_of(session, esc) if digests else []:
        _update_digest(session, ref, ids, desk, f"{esc.id}:{transition}", now)


# --- grouped messages: one per manager when a pass opens several escalations -------------


def _digest_prefix(run_id: int) -> str:
    return f"digest:{run_id}:"


def digests_of(session: Session, esc: Escalation) -> list[tuple[str, list[int]]]:
    """(dedup key, escalation ids) of every grouped message that lists ``esc``."""
    if esc.run_id is None:  # the readiness profile's escalations are never grouped
        return []
    rows = session.exec(
        select(OutboxMessage.dedup_key, OutboxMessage.payload).where(
            col(OutboxMessage.dedup_key).startswith(_digest_prefix(esc.run_id)),
            OutboxMessage.kind == Kind.SLACK_DM,
        )
    ).all()
    found: list[tuple[str, list[int]]] = []
    for key, payload in rows:
        ids = [int(i) for i in json.loads(payload).get("render", {}).get("ids", [])]
        if esc.id in ids:
            found.append((key, ids))
    return found


def digest_ids(*, session: Session, key: str) -> list[int]:
    """The escalations a grouped message lists (empty when there is no such message)."""
    if not key.startswith("digest:"):
        return []
    payload = session.exec(select(OutboxMessage.payload).where(OutboxMessage.dedup_key == key)).first()
    if payload is None:
        return []
    return [int(i) for i in json.loads(payload).get("render", {}).get("ids", [])]


def _update_digest(session: Session, ref: str, ids: list[int], desk: Desk, why: str, now: datetime) -> None:
    outbox.enqueue(
        session=session,
        dedup_key=f"{ref}:update:{why}"[:200],
        kind=Kind.SLACK_UPDATE,
        payload={"ref": ref, "render": {"view": "escalation.digest", "ids": ids, "key": ref}},
        desk_id=desk.id,
        now=now,
    )


def _notify(session: Session, desk: Desk, run: ChecklistRun, opened: list[Escalation], now: datetime) -> None:
    """Tell every manager about the escalations one pass opened: one DM each when there are
    few, else one grouped message per manager listing them all (no DM storm)."""
    assert desk.id is not None and run.id is not None
    if not opened:
        return
    managers = desks.members(session=session, desk_id=desk.id, role=Role.MANAGER)
    if len(opened) < DIGEST_FROM:
        for esc in opened:
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
        return
    ids = [e.id for e in opened if e.id is not None]
    for manager in managers:
        key = f"{_digest_prefix(run.id)}{ids[0]}:{manager}"
        outbox.enqueue(
            session=session,
            dedup_key=key,
            kind=Kind.SLACK_DM,
            payload={"user": manager, "render": {"view": "escalation.digest", "ids": ids, "key": key}},
            desk_id=desk.id,
            now=now,
            audit={"subject": f"digest:{run.id}:{ids[0]}", "ok": "notified", "fail": "notify_failed"},
        )


def _page(session: Session, esc: Escalation, desk: Desk, action: str, now: datetime) -> None:
    if desk.pager_kind == "none":
        return
    name = people.names_for(session=session, user_ids=[esc.trader_id])(esc.trader_id) if not esc.desk_wide else ""
    trader = esc.trader_id if name == esc.trader_id else f"{name} ({esc.trader_id})"
    about = f"trader {trader} on desk {desk.name}" if not esc.desk_wide else f"desk {desk.name}"
    outbox.enqueue(
        session=session,
        dedup_key=f"{subject(esc)}:page:{action}",
        kind=Kind.PAGER,
        payload={
            "action": action,
            "escalation_id": esc.id,
            "escalation_kind": esc.kind,
            "summary": f"{kind_title(esc.kind)}: {about}",
            "details": {
                "trader": esc.trader_id,
                "trader_name": name,
                "detail": clean(esc.detail),
                "opened_at": esc.opened_at.isoformat(),
            },
        },
        desk_id=desk.id,
        now=now,
        audit={"subject": subject(esc), "ok": f"page_{action}_sent", "fail": f"page_{action}_failed"},
    )


def _page_resolved(session: Session, esc: Escalation, desk: Desk, now: datetime) -> None:
    """Tell the pager an escalation is resolved. A trigger still waiting in the outbox (the
    pager was down, or the worker hasn't reached it) is withdrawn instead: the pager never
    hears of a trader who was fine by the time the page would have gone out."""
    if esc.level < 2:
        return
    prefix = f"{subject(esc)}:page:"
    if outbox.withdraw(session=session, dedup_key=prefix + "trigger"):
        outbox.withdraw(session=session, dedup_key=prefix + "acknowledge")
        audit(session, esc, "page_trigger_withdrawn", now, reason="resolved before the page was sent")
        return
    _page(session, esc, desk, "resolve", now)


# --- the pass ---------------------------------------------------------------------------


def run_pass(*, session: Session, desk: Desk, now: datetime) -> PassReport:
    """Everything due for ``desk`` at ``now``: escalations whose condition has gone resolve,
    reminders, deadline escalations (or a desk-wide one when the checklist could not be
    posted), then level 2 for what is still open and unacknowledged.

    Idempotent: unique escalations, unique outbox keys and conditional updates decide.
    """
    assert desk.id is not None
    report = PassReport()
    report.resolved = follow_live_state(session=session, desk=desk, now=now)
    run = checklist.today_run(session=session, desk=desk, now=now)
    if run is not None and run.message_ts is not None and not checklist.run_closed(run, desk, now):
        _run_checks(session, desk, run, now, report)
    else:
        day = checklist.desk_today(desk, now)
        why = "closed" if run is not None and run.message_ts is not None else "not posted"
        report.note = f"the checklist for {day} is {why}: only level 2 was checked"
        posted_failed = _check_not_posted(session, desk, now)
        if posted_failed is not None:
            report.opened.append(posted_failed)
            report.note = f"the checklist for {day} could not be posted: managers are told"
    _level2(session, desk, now, report)
    return report


def _check_not_posted(session: Session, desk: Desk, now: datetime) -> int | None:
    """A morning that could not be posted by its deadline is itself an escalation (desk-wide).
    Not for a desk added after the day's post time (it never had a chance), nor after the close."""
    plan = checklist.schedule(desk, checklist.desk_today(desk, now))
    if plan is None or not plan.deadline <= now < plan.market_close or desk.created_at > plan.post_at:
        return None
    run = checklist.ensure_run(session=session, desk=desk, plan=plan, now=now)
    if run.message_ts is not None:
        return None
    detail = (
        f"Last error from Slack: {run.post_error}." if run.post_error else "No post was attempted (the bot was down)."
    )
    attempts = f" {run.post_attempts} attempt(s)." if run.post_attempts else ""
    esc = open_escalation(
        session=session,
        desk=desk,
        run=run,
        trader_id=DESK_WIDE,
        kind=EscalationKind.POST_FAILED,
        detail=detail + attempts,
        now=now,
    )
    return esc.id if esc is not None else None


def reminder_from(run: ChecklistRun, reminder_minutes: int) -> datetime:
    """Reminders go ``reminder_minutes`` before the deadline; when the checklist was posted
    after that moment (posted late), halfway through its answer window instead, so nobody is
    reminded of a checklist seconds after it appeared."""
    usual = run.deadline_at - timedelta(minutes=reminder_minutes)
    posted = run.posted_at or run.post_due_at
    return usual if usual >= posted else posted + (run.deadline_at - posted) / 2


def _run_checks(session: Session, desk: Desk, run: ChecklistRun, now: datetime, report: PassReport) -> None:
    assert run.id is not None and desk.id is not None
    members = desks.members(session=session, desk_id=desk.id, role=Role.TRADER)
    gone = away.away_on(session=session, user_ids=members, day=run.trading_date)
    traders = [t for t in members if t not in gone]  # away traders: no reminder, no escalation
    latest = checklist.current_answers(session=session, run_id=run.id)
    opened: list[Escalation] = []
    if desk.reminder_minutes > 0 and reminder_from(run, desk.reminder_minutes) <= now < run.deadline_at:
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
    # What the deadline makes due (and anything a stored answer's hook did not open);
    # follow_live_state has already resolved what no longer holds. Managers hear of them
    # together: one DM each when few, one grouped message when several (no DM storm).
    for trader in traders:
        opened += _open_due(session, desk, run, trader, latest.get(trader), now, notify=False)
    _notify(session, desk, run, opened, now)
    report.opened += [e.id for e in opened if e.id is not None]


def _level2(session: Session, desk: Desk, now: datetime, report: PassReport) -> None:
    """Raise what is still open, unacknowledged and high-severity after the timeout. The
    pass has just resolved every escalation whose condition has gone, in this transaction."""
    cutoff = now - timedelta(minutes=desk.ack_timeout_minutes)
    stale = session.exec(
        select(Escalation)
        .where(
            Escalation.desk_id == desk.id,
            Escalation.state == EscalationState.OPEN,
            Escalation.level == 1,
            col(Escalation.kind).in_(HIGH_KINDS),
            col(Escalation.opened_at) <= cutoff,
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


def acknowledge_many(*, session: Session, key: str, user_id: str, now: datetime) -> tuple[int, int]:
    """Acknowledge every open escalation a grouped message lists (the ones ``user_id`` may act
    on); (acknowledged now, listed). The grouped message is updated once, not once each."""
    ids = digest_ids(session=session, key=key)
    if not ids:
        raise ServiceError("This message no longer lists any escalation.")
    done = 0
    desk: Desk | None = None
    for esc_id in ids:
        try:
            t = acknowledge(session=session, escalation_id=esc_id, user_id=user_id, now=now, digests=False)
        except NotManagerError:
            continue
        except ServiceError:  # gone
            continue
        desk = t.desk
        done += t.outcome is Outcome.DONE
    if desk is None:
        raise NotManagerError("Only the desk's managers can acknowledge these escalations.")
    if done:  # every grouped message listing them (each manager's), once
        first = session.get(Escalation, ids[0])
        for ref, listed in digests_of(session, first) if first is not None else [(key, ids)]:
            _update_digest(session, ref, listed, desk, f"all:{user_id}:{now.isoformat()}", now)
    return done, len(ids)


def acknowledge(
    *, session: Session, escalation_id: int, user_id: str, now: datetime, digests: bool = True
) -> Transition:
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
    _update_everywhere(session, esc, desk, "acknowledged", now, digests=digests)
    if esc.level >= 2:
        _page(session, esc, desk, "acknowledge", now)
    return Transition(Outcome.DONE, esc, desk)


def validate_note(note: str | None) -> str:
    text = (note or "").strip()
    if not text:
        raise ServiceError("Write a short note on what was done.")
    if len(text) > NOTE_LIMIT:
        raise ServiceError(f"Keep the note to {NOTE_LIMIT} characters (it has {len(text)}).")
    if looks_like_secret(text):
        raise ServiceError(SECRET_REFUSAL)
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
    _page_resolved(session, esc, desk, now)
    return Transition(Outcome.DONE, esc, desk)


# --- queries ----------------------------------------------------------------------------


def resolve_automatically(*, session: Session, escalation_id: int, note: str, now: datetime) -> Transition | None:
    """The condition behind the escalation has gone (a readiness gap was fixed): resolved with
    the system as actor; every message it produced is updated in place and a level-2 page is
    resolved (or withdrawn). None when it no longer exists; UNCHANGED when already resolved."""
    esc = session.get(Escalation, escalation_id)
    if esc is None:
        return None
    desk = session.get(Desk, esc.desk_id)
    assert desk is not None
    done = _resolve_automatically(session, esc, desk, note[:NOTE_LIMIT], now)
    return Transition(Outcome.DONE if done else Outcome.UNCHANGED, esc, desk)


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


_OPEN_FOR_TRADER = (
    select(Escalation, Desk)
    .join(Desk, col(Desk.id) == col(Escalation.desk_id))
    .where(col(Escalation.state).in_(OPEN_STATES), col(Escalation.trader_id) == bindparam("open_for_trader"))
    .order_by(col(Escalation.opened_at), col(Escalation.id))
)  # built once: every trader's /ibstatus asks


def open_for_trader(*, session: Session, user_id: str) -> list[tuple[Escalation, Desk]]:
    rows = session.execute(_OPEN_FOR_TRADER, {"open_for_trader": user_id}).all()
    return [(e, d) for e, d in rows]


def open_desk_wide(*, session: Session, desk_ids: Iterable[int]) -> list[tuple[Escalation, Desk]]:
    """Open escalations about desks themselves (a checklist that could not be posted)."""
    return _open_where(session, Escalation.trader_id == DESK_WIDE, col(Escalation.desk_id).in_(list(desk_ids)))


def open_for_desk(*, session: Session, desk_id: int) -> list[Escalation]:
    return [e for e, _ in _open_where(session, Escalation.desk_id == desk_id)]


def names_of(*, session: Session, escalations: Iterable[Escalation]) -> people.Names:
    """The names of everyone these escalations mention (traders and the managers who acted)."""
    ids: set[str | None] = set()
    for esc in escalations:
        ids |= {esc.trader_id, esc.acknowledged_by, esc.resolved_by}
    return people.names_for(session=session, user_ids=ids)


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
    """Escalations with the delivery of every message about them (their own and the grouped ones)."""
    query = select(Escalation, Desk).join(Desk, col(Desk.id) == col(Escalation.desk_id))
    if open_only:
        query = query.where(col(Escalation.state).in_(OPEN_STATES))
    rows = session.exec(query.order_by(col(Escalation.id))).all()
    grouped: dict[int, list[OutboxMessage]] = {}
    for message in session.exec(
        select(OutboxMessage).where(
            col(OutboxMessage.dedup_key).startswith("digest:"), OutboxMessage.kind == Kind.SLACK_DM
        )
    ).all():
        for esc_id in json.loads(message.payload).get("render", {}).get("ids", []):
            grouped.setdefault(int(esc_id), []).append(message)
    out: list[tuple[Escalation, Desk, Delivery]] = []
    for esc, desk in rows:
        own = delivery_of(session, f"{subject(esc)}:")
        extra = grouped.get(esc.id or 0, [])
        out.append(
            (
                esc,
                desk,
                Delivery(
                    delivered=own.delivered + sum(1 for r in extra if r.delivered_at is not None),
                    waiting=own.waiting + [r for r in extra if r.delivered_at is None and r.failed_at is None],
                    failed=own.failed + [r for r in extra if r.failed_at is not None],
                ),
            )
        )
    return out


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
