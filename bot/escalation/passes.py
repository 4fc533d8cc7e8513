"""The escalation pass: everything due for a desk at ``now`` (every 30 s, and the CLI).

First every open escalation of the desk whose condition has gone resolves
(``resolving.follow_live_state``, any day); then reminder DMs (from deadline −
``reminder_minutes``; for a late post not before half its window), what the deadline makes
due — or, when the day's checklist is still not posted at its deadline, a desk-wide
``post_failed`` escalation — and finally level 2 (escalation channel, pager trigger) for the
*high-severity* escalations still open and unacknowledged after ``ack_timeout_minutes``.
Idempotent: unique escalations, unique outbox keys and conditional updates decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from bot.audit import record
from bot.checklist import rosters
from bot.checklist import service as checklist
from bot.checklist.models import ChecklistRun
from bot.delivery import outbox
from bot.delivery.specs import ChecklistReminder
from bot.desks import away
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.escalation.models import DESK_WIDE, HIGH_KINDS, Escalation, EscalationKind, EscalationState
from bot.escalation.notices import notify_opened, page, post_level2, update_digests, update_everywhere
from bot.escalation.opening import open_due, open_escalation
from bot.escalation.resolving import follow_live_state
from bot.escalation.rules import subject


@dataclass
class PassReport:
    reminders: int = 0
    opened: list[int] = field(default_factory=list)
    level2: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    note: str = ""
    digest_updates: int = 0  # grouped messages updated (once each, whatever the pass changed)

    def describe(self, desk_name: str) -> str:
        return (
            f"{desk_name}: {self.reminders} reminder(s) queued, {len(self.opened)} escalation(s) opened, "
            f"{len(self.resolved)} resolved automatically, "
            f"{len(self.level2)} raised to level 2{f' ({self.note})' if self.note else ''}."
        )


def run_pass(*, session: Session, desk: Desk, now: datetime) -> PassReport:
    """Everything due for ``desk`` at ``now``: escalations whose condition has gone resolve,
    reminders, deadline escalations (or a desk-wide one when the checklist could not be
    posted), then level 2 for what is still open and unacknowledged.

    Idempotent: unique escalations, unique outbox keys and conditional updates decide.
    """
    assert desk.id is not None
    report = PassReport()
    resolved = follow_live_state(session=session, desk=desk, now=now)
    report.resolved = [e.id for e in resolved if e.id is not None]
    run = rosters.today_run(session=session, desk=desk, now=now)
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
    raised = _level2(session, desk, now, report)
    # Coalesced: each grouped message listing what this pass resolved or raised, updated once.
    report.digest_updates = update_digests(session, desk, [*resolved, *raised], f"pass:{now.isoformat()}", now)
    post_level2(session, desk, raised, now)
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
    gone = away.away_on(session=session, user_ids=members, day=run.trading_date, desk_id=desk.id)
    traders = [t for t in members if t not in gone]  # away traders: no reminder, no escalation
    latest = rosters.current_answers(session=session, run_id=run.id)
    opened: list[Escalation] = []
    if desk.reminder_minutes > 0 and reminder_from(run, desk.reminder_minutes) <= now < run.deadline_at:
        queue = outbox.SlackQueue(session, desk.id, now)
        for trader in traders:
            if trader in latest:
                continue
            queued = queue.dm(trader, ChecklistReminder(run.id, trader), dedup_key=f"reminder:{run.id}:{trader}")
            report.reminders += queued is not None
    # What the deadline makes due (and anything a stored answer's hook did not open);
    # follow_live_state has already resolved what no longer holds. Managers hear of them
    # together: one DM each when few, one grouped message when several (no DM storm).
    for trader in traders:
        opened += open_due(session, desk, run, trader, latest.get(trader), now, notify=False)
    notify_opened(session, desk, run, opened, now)
    report.opened += [e.id for e in opened if e.id is not None]


def _level2(session: Session, desk: Desk, now: datetime, report: PassReport) -> list[Escalation]:
    """Raise what is still open, unacknowledged and high-severity after the timeout (the
    escalations raised: the caller tells the channel, ``notices.post_level2``, and updates
    the grouped messages once). The pass has just resolved every escalation whose condition
    has gone, in this transaction."""
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
    raised: list[Escalation] = []
    for esc in stale:
        done = session.execute(
            update(Escalation)
            .where(
                col(Escalation.id) == esc.id,
                col(Escalation.state) == EscalationState.OPEN,
                col(Escalation.level) == 1,
            )
            .values(level=2, level2_at=now)
        )
        if not done.rowcount:  # type: ignore[attr-defined]
            continue
        session.refresh(esc)
        raised.append(esc)
        assert esc.id is not None
        report.level2.append(esc.id)
        record(
            session,
            subject=subject(esc),
            action="re_escalated",
            at=now,
            desk_id=esc.desk_id,
            level=2,
            timeout_minutes=desk.ack_timeout_minutes,
        )
        update_everywhere(session, esc, desk, "level2", now, digests=False)
        page(session, esc, desk, "trigger", now)
    return raised
