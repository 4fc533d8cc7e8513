"""Readiness gaps: what a desk's profiles and automations lack for the next checklist, opened,
escalated once (from the afternoon before that checklist), closed when fixed (resolving their
escalation), and the re-sync after a trader's profile changes.

Domain only: no Slack (the trader's notice is an outbox row with a render spec). Services
take ``session`` and ``now`` and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from bot import calendar
from bot.audit import record
from bot.checklist import rosters
from bot.db import insert_or_skip
from bot.delivery import outbox
from bot.delivery.specs import ProfileNotice
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.escalation import notices, opening, resolving
from bot.escalation.models import Escalation, EscalationKind
from bot.profile import automation as automations
from bot.profile import fences
from bot.profile.models import GapKind, ReadinessGap
from bot.profile.policy import FLAG_TEXT
from bot.profile.reading import drill_times, factor_records, policy_for, policy_row, profiles_of, status_of

GAP_ESCALATION = {
    GapKind.RECOVERY: EscalationKind.PROFILE_RECOVERY,
    GapKind.SMS_ONLY: EscalationKind.PROFILE_SMS_ONLY,
    GapKind.AUTOMATION: EscalationKind.API_HYGIENE,
    GapKind.FENCES: EscalationKind.BROKER_FENCES,
}


def horizon(desk: Desk, now: datetime) -> datetime:
    """The next checklist that a gap would affect (its post time, UTC)."""
    return rosters.next_post_time(desk, now)


def _previous_trading_day(day: date) -> date:
    day -= timedelta(days=1)
    while not calendar.is_trading_day(day):
        day -= timedelta(days=1)
    return day


def escalate_from(desk: Desk, at: datetime) -> datetime:
    """Gaps that matter to the checklist posted at ``at`` are escalated from the close of the
    trading day before it ("the previous afternoon"), or at once when found later."""
    day = calendar.local_date(at, calendar.zone(desk.timezone))
    return calendar.market_close(_previous_trading_day(day))


@dataclass
class SyncReport:
    opened: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)

    def describe(self, desk_name: str) -> str:
        return (
            f"{desk_name}: {len(self.opened)} readiness gap(s) opened, {len(self.closed)} closed, "
            f"{len(self.escalated)} escalated."
        )


@dataclass(frozen=True)
class _Wanted:
    user_id: str
    kind: GapKind
    subject: str
    detail: str


def _desk_gaps(session: Session, desk: Desk, at: datetime, today: date) -> dict[tuple[str, str], _Wanted]:
    """Every gap the desk's profiles and automations show for the checklist at ``at``."""
    assert desk.id is not None
    traders = desks.members(session=session, desk_id=desk.id, role=Role.TRADER)
    wanted: dict[tuple[str, str], _Wanted] = {}
    profiles = profiles_of(session, traders)
    records = factor_records(session, profiles)
    drilled = drill_times(session, profiles)
    row = policy_row(session, desk.id)
    for user, profile in profiles.items():
        status = status_of(profile, records[user], policy_for(profile, row), at, drilled.get(user))
        kind = status.gap_kind
        if kind is not None:
            subject = f"profile:{user}"
            wanted[(subject, kind.value)] = _Wanted(user, kind, subject, status.describe())
        missing = fences.trader_missing(profile, desk_ip_restrictions=desk.ip_restrictions)
        if missing:
            subject = f"profile:{user}"
            wanted[(subject, GapKind.FENCES.value)] = _Wanted(user, GapKind.FENCES, subject, fences.describe(missing))
    members = set(traders) | set(desks.members(session=session, desk_id=desk.id, role=Role.MANAGER))
    autos = [a for a in automations.on_desks(session=session, desk_ids=[desk.id]) if a.owner_id in members]
    all_flags = automations.flags(session=session, automations=autos, today=today)
    owners = profiles_of(session, sorted({a.owner_id for a in autos}))
    for auto in autos:
        assert auto.id is not None
        flags = all_flags[auto.id]
        subject = f"automation:{auto.id}"
        if flags:
            detail = f"{auto.name}: " + "; ".join(FLAG_TEXT[f] for f in flags)
            wanted[(subject, GapKind.AUTOMATION.value)] = _Wanted(auto.owner_id, GapKind.AUTOMATION, subject, detail)
        missing = fences.automation_missing(auto, owners.get(auto.owner_id), desk_ip_restrictions=desk.ip_restrictions)
        if missing:
            detail = f"{auto.name}: {fences.describe(missing)}"
            wanted[(subject, GapKind.FENCES.value)] = _Wanted(auto.owner_id, GapKind.FENCES, subject, detail)
    return wanted


def open_gaps(session: Session, desk_id: int) -> list[ReadinessGap]:
    return list(
        session.exec(
            select(ReadinessGap)
            .where(ReadinessGap.desk_id == desk_id, col(ReadinessGap.open_key).is_not(None))
            .order_by(col(ReadinessGap.id))
        ).all()
    )


def gap_by_id(session: Session, gap_id: int) -> ReadinessGap | None:
    return session.get(ReadinessGap, gap_id)


def sync_desk(*, session: Session, desk: Desk, now: datetime) -> SyncReport:
    """Bring the desk's readiness gaps up to date at ``now``: open new ones, close fixed ones
    (resolving their escalation with the system as actor), and escalate the open ones that are
    due (once per gap, claimed by a conditional UPDATE). Idempotent, safe to run concurrently."""
    assert desk.id is not None
    report = SyncReport()
    at = horizon(desk, now)
    today = calendar.local_date(now, calendar.zone(desk.timezone))
    wanted = _desk_gaps(session, desk, at, today)
    current = {(g.subject, g.kind): g for g in open_gaps(session, desk.id)}
    for key, gap in current.items():
        if key in wanted:
            if gap.detail != wanted[key].detail:
                gap.detail = wanted[key].detail
                session.add(gap)
            continue
        closed = session.execute(
            update(ReadinessGap)
            .where(col(ReadinessGap.id) == gap.id, col(ReadinessGap.open_key).is_not(None))
            .values(open_key=None, closed_at=now)
        )
        if not closed.rowcount:  # type: ignore[attr-defined]
            continue
        assert gap.id is not None
        report.closed.append(gap.id)
        _record(session, gap.id, "gap_closed", desk, gap.user_id, gap.kind, now)
        if gap.escalation_id is not None:
            resolving.resolve_automatically(
                session=session, escalation_id=gap.escalation_id, note=_fixed_note(gap), now=now
            )
    for key, want in wanted.items():
        if key in current:
            continue
        new_id = insert_or_skip(
            session,
            ReadinessGap,
            {
                "desk_id": desk.id,
                "user_id": want.user_id,
                "kind": want.kind.value,
                "subject": want.subject,
                "detail": want.detail,
                "opened_at": now,
                "open_key": "1",
            },
        )
        if new_id is not None:
            report.opened.append(new_id)
            _record(session, new_id, "gap_opened", desk, want.user_id, want.kind.value, now)
    if now >= escalate_from(desk, at):
        opened = []  # the managers hear of them together: one grouped DM each when several
        for gap in open_gaps(session, desk.id):
            if gap.escalated_at is None and (esc := _escalate(session, desk, gap, now)) is not None:
                assert gap.id is not None
                report.escalated.append(gap.id)
                opened.append(esc)
        notices.notify_standing(session, desk, opened, now)
    return report


def _record(session: Session, gap_id: int, action: str, desk: Desk, user_id: str, kind: str, now: datetime) -> None:
    """A gap opened or closed, in the audit trail: whose it is and of what kind."""
    record(session, subject=f"readiness_gap:{gap_id}", action=action, at=now, desk_id=desk.id, user=user_id, kind=kind)


def _fixed_note(gap: ReadinessGap) -> str:
    if gap.kind == GapKind.AUTOMATION or gap.subject.startswith("automation:"):
        return "Fixed in the automation register."
    if gap.kind == GapKind.FENCES:
        return "Fixed in the trader's broker setup."
    return "Fixed in the trader's readiness profile."


def _escalate(session: Session, desk: Desk, gap: ReadinessGap, now: datetime) -> Escalation | None:
    claimed = session.execute(
        update(ReadinessGap)
        .where(col(ReadinessGap.id) == gap.id, col(ReadinessGap.escalated_at).is_(None))
        .values(escalated_at=now)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        return None
    kind = GAP_ESCALATION[GapKind(gap.kind)]
    esc = opening.open_escalation(
        session=session, desk=desk, run=None, trader_id=gap.user_id, kind=kind, detail=gap.detail, now=now, notify=False
    )
    assert esc is not None  # a gap's kind is not one a partial index keeps to one
    session.execute(update(ReadinessGap).where(col(ReadinessGap.id) == gap.id).values(escalation_id=esc.id))
    assert gap.id is not None
    # The trader hears it too, with the buttons to fix it (rendered at delivery: bot.slack.notifications).
    outbox.SlackQueue(session, desk.id, now).dm(
        gap.user_id, ProfileNotice(gap.id), dedup_key=f"readiness_gap:{gap.id}:notice"
    )
    return esc


def sync_trader(*, session: Session, user_id: str, now: datetime) -> None:
    """After a trader's profile changes: the gaps of their desks (and of the desks their
    automations run for) now, fixed ones closing at once; and today's open rosters showing
    them drawn again (``bot.checklist.rosters.mark_changed``)."""
    mine = {d.id: d for d in desks.desks_of_user(session=session, user_id=user_id)}
    for auto in automations.owned_by(session=session, user_id=user_id):
        if auto.desk_id not in mine:
            desk = session.get(Desk, auto.desk_id)
            if desk is not None:
                mine[desk.id] = desk
    for desk in mine.values():
        sync_desk(session=session, desk=desk, now=now)
    rosters.mark_changed(session=session, user_id=user_id, now=now)
