"""The readiness profile: saving it (each save an audit event), who may see or change what,
the recovery-path gaps (opened, escalated once, closed and auto-resolved), what the checklist
needs to know, and the figures for App Home and the weekly summary.

Domain only: no Slack. Services take ``session`` and ``now`` and never commit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import exists, update
from sqlmodel import Session, col, select

from bot import calendar
from bot.audit import AuditEvent
from bot.checklist import events as checklist_events
from bot.checklist import facts as checklist_facts
from bot.checklist import service as checklist
from bot.checklist.models import Answer, AuthLayer, Check, ChecklistRun
from bot.crypto import Keyring
from bot.db import insert_or_skip
from bot.delivery import outbox
from bot.delivery.outbox import Kind
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.errors import ServiceError
from bot.escalation import service as escalation
from bot.escalation.models import EscalationKind
from bot.profile import automation as automations
from bot.profile import drill
from bot.profile.labels import FACTOR_LABEL, interface_label
from bot.profile.models import (
    Automation,
    GapKind,
    Interface,
    PlatformPermission,
    Product,
    ProfilePolicy,
    ReadinessGap,
    RiskTier,
    SecondFactor,
    SecondFactorRecord,
    TotpEnrollment,
    TraderProfile,
    VerifiedBy,
)
from bot.profile.policy import (
    DRILL_DAYS_RANGE,
    FLAG_TEXT,
    PROBLEM_ICON,
    AutomationFlag,
    RecoveryStatus,
    TierPolicy,
    first_trading_day_of_week,
    needs_weekly_login,
    recovery_status,
    tier_policy,
)

NOTE_LIMIT = 300
GAP_ESCALATION = {
    GapKind.RECOVERY: EscalationKind.PROFILE_RECOVERY,
    GapKind.SMS_ONLY: EscalationKind.PROFILE_SMS_ONLY,
    GapKind.AUTOMATION: EscalationKind.API_HYGIENE,
}


class NotAllowedError(ServiceError):
    """The user may not see or change this; nothing changed."""


# --- reading ----------------------------------------------------------------------------------


def get_profile(session: Session, user_id: str) -> TraderProfile | None:
    return session.exec(select(TraderProfile).where(TraderProfile.user_id == user_id)).first()


def _ensure(session: Session, user_id: str, now: datetime) -> TraderProfile:
    profile = get_profile(session, user_id)
    if profile is None:
        profile = TraderProfile(user_id=user_id, created_at=now, updated_at=now)
        session.add(profile)
        session.flush()
    return profile


def factor_records(session: Session, user_ids: Iterable[str]) -> dict[str, dict[SecondFactor, SecondFactorRecord]]:
    users = sorted(set(user_ids))
    out: dict[str, dict[SecondFactor, SecondFactorRecord]] = {u: {} for u in users}
    if not users:
        return out
    for row in session.exec(select(SecondFactorRecord).where(col(SecondFactorRecord.user_id).in_(users))).all():
        try:
            out[row.user_id][SecondFactor(row.method)] = row
        except ValueError:
            continue
    return out


def permissions(session: Session, user_id: str) -> list[PlatformPermission]:
    rows = session.exec(select(PlatformPermission).where(PlatformPermission.user_id == user_id)).all()
    order = {i.value: n for n, i in enumerate(Interface)}
    return sorted(rows, key=lambda r: order.get(r.interface, 99))


def policy_row(session: Session, desk_id: int) -> ProfilePolicy | None:
    return session.exec(select(ProfilePolicy).where(ProfilePolicy.desk_id == desk_id)).first()


def policy_for(profile: TraderProfile | None, row: ProfilePolicy | None) -> TierPolicy:
    return tier_policy(
        profile.risk_tier if profile else RiskTier.STANDARD,
        standard_days=row.standard_drill_days if row else None,
        elevated_days=row.elevated_drill_days if row else None,
    )


def status_of(
    profile: TraderProfile, records: Mapping[SecondFactor, SecondFactorRecord], policy: TierPolicy, at: datetime
) -> RecoveryStatus:
    try:
        primary = SecondFactor(profile.primary_factor)
    except ValueError:
        primary = SecondFactor.IB_KEY
    return recovery_status(
        primary=primary,
        verified_at={m: r.last_verified_at for m, r in records.items()},
        policy=policy,
        at=at,
    )


def user_zone(session: Session, user_id: str) -> ZoneInfo:
    """The zone of the user's first desk (UTC for someone on none): 'today' and dates in modals."""
    mine = desks.desks_of_user(session=session, user_id=user_id)
    return calendar.zone(mine[0].timezone) if mine else ZoneInfo("UTC")


# --- who may see and change what --------------------------------------------------------------


def _managers_desks_of(session: Session, manager_id: str, trader_id: str) -> list[Desk]:
    managed = {d.id for d in desks.desks_of_user(session=session, user_id=manager_id, role=Role.MANAGER)}
    return [d for d in desks.desks_of_user(session=session, user_id=trader_id, role=Role.TRADER) if d.id in managed]


def check_can_view(*, session: Session, viewer_id: str, trader_id: str) -> None:
    """A profile is seen by its trader and by the managers of a desk they trade on."""
    if viewer_id == trader_id:
        return
    if not _managers_desks_of(session, viewer_id, trader_id):
        raise NotAllowedError(f"Only <@{trader_id}> and the managers of their desk can see their readiness profile.")


def is_manager(session: Session, user_id: str) -> bool:
    return bool(desks.desks_of_user(session=session, user_id=user_id, role=Role.MANAGER))


def check_can_set_tier(*, session: Session, manager_id: str, trader_id: str | None = None) -> None:
    if not is_manager(session, manager_id):
        raise NotAllowedError("Only a desk's managers can set a trader's risk tier.")
    if trader_id is not None and not _managers_desks_of(session, manager_id, trader_id):
        raise NotAllowedError(
            f"You don't manage a desk that <@{trader_id}> trades on, so you can't set their risk tier."
        )


# --- saving -------------------------------------------------------------------------------------


def _audit(session: Session, user_id: str, actor: str, action: str, now: datetime, **detail: object) -> None:
    session.add(
        AuditEvent(
            at=now,
            actor=actor,
            subject=f"profile:{user_id}",
            action=action,
            detail=json.dumps(detail, default=str),
        )
    )


def _enum_value(value: str | None, enum: type[Interface] | type[SecondFactor] | type[RiskTier]) -> str | None:
    if value is None:
        return None
    return value if value in {m.value for m in enum} else None


def validate_interfaces(primary: str | None, secondary: str | None) -> dict[str, str]:
    errors: dict[str, str] = {}
    if primary is None:
        errors["primary_interface"] = "Pick the interface you trade on first."
    elif _enum_value(primary, Interface) is None:
        errors["primary_interface"] = "That's not an interface IB Preflight knows; pick one from the list."
    if secondary is not None:
        if _enum_value(secondary, Interface) is None:
            errors["secondary_interface"] = "That's not an interface IB Preflight knows; pick one from the list."
        elif secondary == primary:
            errors["secondary_interface"] = "The secondary interface must differ from the primary one."
    return errors


def save_interfaces(
    *, session: Session, user_id: str, primary: str | None, secondary: str | None, now: datetime
) -> TraderProfile:
    errors = validate_interfaces(primary, secondary)
    if errors:
        key, message = next(iter(errors.items()))
        raise ServiceError(message, field=key)
    profile = _ensure(session, user_id, now)
    before = (profile.primary_interface, profile.secondary_interface)
    profile.primary_interface, profile.secondary_interface = primary, secondary
    profile.updated_at = now
    session.add(profile)
    _audit(session, user_id, user_id, "interfaces_saved", now, before=before, after=(primary, secondary))
    sync_trader(session=session, user_id=user_id, now=now)
    return profile


def validate_permissions(
    interface: str | None, trading: Sequence[str], market_data: Sequence[str], note: str | None
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if interface is None or _enum_value(interface, Interface) is None:
        errors["interface"] = "Pick the platform these permissions are for (an interface IB Preflight knows)."
    known = {p.value for p in Product}
    if any(p not in known for p in trading):
        errors["trading"] = "That choice isn't one of the products; pick again."
    if any(p not in known for p in market_data):
        errors["market_data"] = "That choice isn't one of the products; pick again."
    if note is not None and len(note.strip()) > NOTE_LIMIT:
        errors["note"] = f"Keep the note to {NOTE_LIMIT} characters (it has {len(note.strip())})."
    return errors


def save_permissions(
    *,
    session: Session,
    user_id: str,
    interface: str | None,
    trading: Sequence[str],
    market_data: Sequence[str],
    note: str | None,
    now: datetime,
) -> PlatformPermission:
    """What the trader expects to trade on one platform, and apart from it their market data
    (subscriptions take effect at once; trading permissions take up to about 48 hours —
    docs/broker-facts.md §4, https://ibkr.info/it/tag/account-mgmt?page=9)."""
    errors = validate_permissions(interface, trading, market_data, note)
    if errors:
        key, message = next(iter(errors.items()))
        raise ServiceError(message, field=key)
    assert interface is not None
    _ensure(session, user_id, now)
    row = session.exec(
        select(PlatformPermission).where(
            PlatformPermission.user_id == user_id, PlatformPermission.interface == interface
        )
    ).first()
    if row is None:
        row = PlatformPermission(user_id=user_id, interface=interface)
    order = [p.value for p in Product]
    row.trading = ",".join(p for p in order if p in set(trading))
    row.market_data = ",".join(p for p in order if p in set(market_data))
    row.note = (note or "").strip() or None
    row.updated_at = now
    if not row.trading and not row.market_data and not row.note:
        if row.id is not None:
            session.delete(row)
    else:
        session.add(row)
    session.flush()
    _audit(
        session,
        user_id,
        user_id,
        "permissions_saved",
        now,
        interface=interface,
        trading=row.trading,
        market_data=row.market_data,
    )
    return row


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=tz).astimezone(UTC)


def validate_second_factors(
    primary: str | None, registered: Sequence[str], verified_on: Mapping[str, date | None], today: date
) -> dict[str, str]:
    errors: dict[str, str] = {}
    known = {m.value for m in SecondFactor}
    if any(m not in known for m in registered):
        errors["registered"] = "That choice isn't one of the methods; pick again."
    if primary is None or primary not in known:
        errors["primary_factor"] = "Pick the method you use first to log in (usually IB Key on your phone)."
    elif primary not in registered:
        errors["primary_factor"] = "Your primary method must be one of the methods registered with IBKR."
    for method, day in verified_on.items():
        if day is None:
            continue
        if day > today:
            errors[f"verified_{method}"] = "That date is in the future."
        elif method not in registered:
            errors[f"verified_{method}"] = "Only give a date for a method you've ticked as registered."
    return errors


def save_second_factors(
    *,
    session: Session,
    user_id: str,
    primary: str | None,
    registered: Sequence[str],
    verified_on: Mapping[str, date | None],
    now: datetime,
) -> TraderProfile:
    """The methods registered with IBKR and the day each last worked (declared). A method's
    drill or checklist time is kept when the declared day is that same day."""
    tz = user_zone(session, user_id)
    today = calendar.local_date(now, tz)
    errors = validate_second_factors(primary, registered, verified_on, today)
    if errors:
        key, message = next(iter(errors.items()))
        raise ServiceError(message, field=key)
    assert primary is not None
    profile = _ensure(session, user_id, now)
    profile.primary_factor = primary
    profile.updated_at = now
    session.add(profile)
    current = factor_records(session, [user_id])[user_id]
    for method, row in current.items():
        if method.value not in registered:
            session.delete(row)
    for value in registered:
        method = SecondFactor(value)
        row = current.get(method) or SecondFactorRecord(user_id=user_id, method=value)
        day = verified_on.get(value)
        if day is None:
            row.last_verified_at, row.verified_by = None, None
        elif row.last_verified_at is None or calendar.local_date(row.last_verified_at, tz) != day:
            row.last_verified_at, row.verified_by = _local_midnight(day, tz), VerifiedBy.DECLARED
        if day is not None:
            row.unverified_reason = None
        row.updated_at = now
        session.add(row)
    session.flush()
    _audit(
        session,
        user_id,
        user_id,
        "second_factors_saved",
        now,
        primary=primary,
        registered=sorted(registered),
        verified_on={k: v for k, v in verified_on.items() if v},
    )
    sync_trader(session=session, user_id=user_id, now=now)
    return profile


def set_risk_tier(
    *, session: Session, manager_id: str, trader_id: str | None, tier: str | None, now: datetime
) -> TraderProfile:
    if trader_id is None:
        raise ServiceError("Pick the trader.", field="trader")
    check_can_set_tier(session=session, manager_id=manager_id, trader_id=trader_id)
    if tier is None or _enum_value(tier, RiskTier) is None:
        raise ServiceError("Pick standard or elevated.", field="tier")
    profile = _ensure(session, trader_id, now)
    before = profile.risk_tier
    profile.risk_tier, profile.risk_tier_set_by, profile.risk_tier_set_at = tier, manager_id, now
    profile.updated_at = now
    session.add(profile)
    _audit(session, trader_id, manager_id, "risk_tier_set", now, before=before, after=tier)
    sync_trader(session=session, user_id=trader_id, now=now)
    return profile


def set_policy(
    *,
    session: Session,
    desk: Desk,
    standard_days: int | None,
    elevated_days: int | None,
    actor: str | None,
    now: datetime,
) -> ProfilePolicy:
    """A desk's drill windows per tier (the tiers' backup counts are fixed: 1 and 2)."""
    assert desk.id is not None
    low, high = DRILL_DAYS_RANGE
    for value, what, key in (
        (standard_days, "The standard tier's drill window", "standard_drill_days"),
        (elevated_days, "The elevated tier's drill window", "elevated_drill_days"),
    ):
        if value is not None and not low <= value <= high:
            raise ServiceError(f"{what} must be between {low} and {high} days, got {value}", field=key)
    row = policy_row(session, desk.id) or ProfilePolicy(desk_id=desk.id)
    before = (row.standard_drill_days, row.elevated_drill_days)
    if standard_days is not None:
        row.standard_drill_days = standard_days
    if elevated_days is not None:
        row.elevated_drill_days = elevated_days
    row.updated_at = now
    session.add(row)
    session.flush()
    session.add(
        AuditEvent(
            desk_id=desk.id,
            at=now,
            actor=actor,
            subject=f"desk:{desk.id}",
            action="profile_policy_set",
            detail=json.dumps({"before": before, "after": (row.standard_drill_days, row.elevated_drill_days)}),
        )
    )
    sync_desk(session=session, desk=desk, now=now)
    return row


# --- the drill ------------------------------------------------------------------------------------


def start_enrollment(
    *, session: Session, user_id: str, account_name: str, keys: Keyring, now: datetime
) -> drill.NewEnrollment:
    return drill.start_enrollment(session=session, user_id=user_id, account_name=account_name, keys=keys, now=now)


def submit_code(
    *, session: Session, user_id: str, code: str, purpose: drill.Purpose, keys: Keyring, now: datetime
) -> drill.CodeResult:
    """Enrolment or drill; a passed one records "backup verified" now on the trader's
    Mobile Authenticator app (when registered) and closes the gaps it fixes."""
    result = drill.submit_code(session=session, user_id=user_id, code=code, purpose=purpose, keys=keys, now=now)
    if result.ok:
        record = factor_records(session, [user_id])[user_id].get(SecondFactor.AUTHENTICATOR)
        if record is not None:
            record.last_verified_at, record.verified_by, record.unverified_reason = now, VerifiedBy.DRILL, None
            record.updated_at = now
            session.add(record)
            session.flush()
        sync_trader(session=session, user_id=user_id, now=now)
    return result


def rotate_secrets(*, session: Session, keys: Keyring) -> int:
    """Re-encrypt every stored drill secret under the first of ``keys`` (for ``preflight keys
    rotate``); the number of values re-encrypted. UndecryptableError if one can't be read."""
    return drill.rotate_secrets(session=session, keys=keys)


# --- readiness gaps: open, escalate once, close and auto-resolve ---------------------------------


def horizon(desk: Desk, now: datetime) -> datetime:
    """The next checklist that a gap would affect (its post time, UTC)."""
    return checklist.next_post_time(desk, now)


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
    profiles = {
        p.user_id: p for p in session.exec(select(TraderProfile).where(col(TraderProfile.user_id).in_(traders))).all()
    }
    records = factor_records(session, profiles)
    row = policy_row(session, desk.id)
    for user, profile in profiles.items():
        status = status_of(profile, records[user], policy_for(profile, row), at)
        kind = status.gap_kind
        if kind is not None:
            subject = f"profile:{user}"
            wanted[(subject, kind.value)] = _Wanted(user, kind, subject, status.describe())
    members = set(traders) | set(desks.members(session=session, desk_id=desk.id, role=Role.MANAGER))
    autos = [a for a in automations.on_desks(session=session, desk_ids=[desk.id]) if a.owner_id in members]
    all_flags = automations.flags(session=session, automations=autos, today=today)
    for auto in autos:
        assert auto.id is not None
        flags = all_flags[auto.id]
        if flags:
            subject = f"automation:{auto.id}"
            detail = f"{auto.name}: " + "; ".join(FLAG_TEXT[f] for f in flags)
            wanted[(subject, GapKind.AUTOMATION.value)] = _Wanted(auto.owner_id, GapKind.AUTOMATION, subject, detail)
    return wanted


def open_gaps(session: Session, desk_id: int) -> list[ReadinessGap]:
    return list(
        session.exec(
            select(ReadinessGap)
            .where(ReadinessGap.desk_id == desk_id, col(ReadinessGap.open_key).is_not(None))
            .order_by(col(ReadinessGap.id))
        ).all()
    )


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
        session.add(
            AuditEvent(
                desk_id=desk.id,
                at=now,
                subject=f"readiness_gap:{gap.id}",
                action="gap_closed",
                detail=json.dumps({"user": gap.user_id, "kind": gap.kind}),
            )
        )
        if gap.escalation_id is not None:
            escalation.resolve_automatically(
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
            session.add(
                AuditEvent(
                    desk_id=desk.id,
                    at=now,
                    subject=f"readiness_gap:{new_id}",
                    action="gap_opened",
                    detail=json.dumps({"user": want.user_id, "kind": want.kind.value}),
                )
            )
    if now >= escalate_from(desk, at):
        for gap in open_gaps(session, desk.id):
            if gap.escalated_at is None and _escalate(session, desk, gap, now):
                assert gap.id is not None
                report.escalated.append(gap.id)
    return report


def _fixed_note(gap: ReadinessGap) -> str:
    if gap.kind == GapKind.AUTOMATION:
        return "Fixed in the automation register."
    return "Fixed in the trader's readiness profile."


def _escalate(session: Session, desk: Desk, gap: ReadinessGap, now: datetime) -> bool:
    claimed = session.execute(
        update(ReadinessGap)
        .where(col(ReadinessGap.id) == gap.id, col(ReadinessGap.escalated_at).is_(None))
        .values(escalated_at=now)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        return False
    kind = GAP_ESCALATION[GapKind(gap.kind)]
    esc = escalation.open_standing(
        session=session, desk=desk, trader_id=gap.user_id, kind=kind, detail=gap.detail, now=now
    )
    session.execute(update(ReadinessGap).where(col(ReadinessGap.id) == gap.id).values(escalation_id=esc.id))
    # The trader hears it too, with the buttons to fix it (rendered at delivery: bot.slack.notifications).
    outbox.enqueue(
        session=session,
        dedup_key=f"readiness_gap:{gap.id}:notice",
        kind=Kind.SLACK_DM,
        payload={"user": gap.user_id, "render": {"view": "profile.notice", "gap_id": gap.id}},
        desk_id=desk.id,
        now=now,
    )
    return True


def sync_trader(*, session: Session, user_id: str, now: datetime) -> None:
    """After a trader's profile changes: their desks' gaps now (fixed ones close at once)."""
    mine = {d.id: d for d in desks.desks_of_user(session=session, user_id=user_id)}
    for auto in automations.owned_by(session=session, user_id=user_id):
        if auto.desk_id not in mine:
            desk = session.get(Desk, auto.desk_id)
            if desk is not None:
                mine[desk.id] = desk
    for desk in mine.values():
        sync_desk(session=session, desk=desk, now=now)
    _touch_rosters(session, [d.id for d in mine.values() if d.id is not None], now)


def _open_runs(session: Session, desks_: Iterable[Desk], now: datetime) -> list[int]:
    out = []
    for desk in desks_:
        run = checklist.today_run(session=session, desk=desk, now=now)
        if (
            run is not None
            and run.id is not None
            and run.message_ts is not None
            and not checklist.run_closed(run, desk, now)
        ):
            out.append(run.id)
    return out


def _touch_rosters(session: Session, desk_ids: Sequence[int], now: datetime) -> None:
    """Today's roster messages show profile facts: mark them for the refresher to render again."""
    found = [d for d in (session.get(Desk, i) for i in desk_ids) if d is not None]
    for run_id in _open_runs(session, found, now):
        session.execute(
            update(ChecklistRun)
            .where(col(ChecklistRun.id) == run_id)
            .values(answers_version=ChecklistRun.answers_version + 1)
        )


def rosters_showing(*, session: Session, user_id: str, now: datetime) -> list[int]:
    """Today's open checklist runs whose roster shows ``user_id`` (for the refresher's notify)."""
    return _open_runs(session, desks.desks_of_user(session=session, user_id=user_id, role=Role.TRADER), now)


def gap_by_id(session: Session, gap_id: int) -> ReadinessGap | None:
    return session.get(ReadinessGap, gap_id)


# --- the checklist: what the profile tells it, and what its answers tell the profile -------------


def verified_backup_text(
    status: RecoveryStatus, records: Mapping[SecondFactor, SecondFactorRecord], tz: ZoneInfo
) -> str:
    parts = []
    for method in status.verified:
        at = records[method].last_verified_at
        parts.append(FACTOR_LABEL[method] + (f", verified {at.astimezone(tz):%a %d %b}" if at else ""))
    return "; ".join(parts)


def _checklist_facts(
    session: Session, run: ChecklistRun, traders: Sequence[str]
) -> dict[str, checklist_facts.TraderFacts]:
    """The checklist's view of the profiles (``bot.checklist.facts``): the roster's gap marks,
    who needs not re-declare a backup, and who must confirm the weekly login today."""
    profiles = {
        p.user_id: p
        for p in session.exec(select(TraderProfile).where(col(TraderProfile.user_id).in_(list(traders)))).all()
    }
    if not profiles:
        return {}
    records = factor_records(session, profiles)
    row = policy_row(session, run.desk_id)
    desk = session.get(Desk, run.desk_id)
    tz = calendar.zone(desk.timezone) if desk is not None else ZoneInfo("UTC")
    weekly_day = first_trading_day_of_week(run.trading_date)
    used: dict[str, set[str]] = {u: set() for u in profiles}
    if weekly_day:
        for perm in session.exec(
            select(PlatformPermission).where(col(PlatformPermission.user_id).in_(list(profiles)))
        ).all():
            used[perm.user_id].add(perm.interface)
    out: dict[str, checklist_facts.TraderFacts] = {}
    for user, profile in profiles.items():
        status = status_of(profile, records[user], policy_for(profile, row), run.post_due_at)
        gap = None if status.problem is None else f"{PROBLEM_ICON[status.problem]} {status.describe()} (profile)"
        weekly = weekly_day and needs_weekly_login(
            [profile.primary_interface, profile.secondary_interface, *used[user]]
        )
        out[user] = checklist_facts.TraderFacts(
            recovery_gap=gap,
            verified_backup=verified_backup_text(status, records[user], tz) if status.ok else None,
            weekly_login=weekly,
        )
    return out


checklist_facts.provide(_checklist_facts)


@checklist_events.subscribe
def _on_answer_stored(session: Session, run: ChecklistRun, answer: Answer, now: datetime) -> None:
    """The morning answer and the profile agree: authentication confirmed on the primary device
    verifies the primary method; a device-trust failure (prompt fails, phone lost, IB Key moved)
    marks it unverified until the trader confirms again or records a new date."""
    profile = get_profile(session, answer.user_id)
    if profile is None:
        return
    try:
        primary = SecondFactor(profile.primary_factor)
    except ValueError:
        return
    record = factor_records(session, [answer.user_id])[answer.user_id].get(primary)
    if record is None:
        return
    failed_auth = Check.AUTHENTICATION in answer.checks
    if failed_auth and answer.auth_layer == AuthLayer.DEVICE_TRUST:
        record.last_verified_at, record.verified_by = None, None
        record.unverified_reason = f"reported a device-trust failure on {run.trading_date:%a %d %b}"
        _audit(session, answer.user_id, answer.user_id, "primary_unverified", now, run=run.id)
    elif not failed_auth:
        record.last_verified_at, record.verified_by, record.unverified_reason = now, VerifiedBy.CHECKLIST, None
    else:
        return
    record.updated_at = now
    session.add(record)
    session.flush()


# The same for a first confirmation, as SQL (``bot.checklist.click``): authentication passed, so
# the primary method, if the trader has a record of it, is verified now.
_PROFILE = TraderProfile.__table__  # type: ignore[attr-defined]
_FACTOR = SecondFactorRecord.__table__  # type: ignore[attr-defined]
_PRIMARY = (
    select(_PROFILE.c.primary_factor)
    .where(
        _PROFILE.c.user_id == checklist_events.USER_ID,
        _PROFILE.c.primary_factor.in_([f.value for f in SecondFactor]),
    )
    .scalar_subquery()
)
checklist_events.declare_confirm(
    checklist_events.ConfirmRule(
        name="profile",
        hook=_on_answer_stored,
        applies=exists().where(_FACTOR.c.user_id == checklist_events.USER_ID, _FACTOR.c.method == _PRIMARY),
        statement=update(_FACTOR)
        .where(_FACTOR.c.user_id == checklist_events.USER_ID, _FACTOR.c.method == _PRIMARY)
        .values(
            last_verified_at=checklist_events.NOW,
            verified_by=VerifiedBy.CHECKLIST.value,
            unverified_reason=None,
            updated_at=checklist_events.NOW,
        ),
    )
)


# --- App Home -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeskRecovery:
    desk: Desk
    status: RecoveryStatus


@dataclass(frozen=True)
class AutomationLine:
    automation: Automation
    desk_name: str
    flags: list[AutomationFlag]


@dataclass(frozen=True)
class ProfileCard:
    """Everything App Home (or a manager's view) shows of one trader's profile."""

    user_id: str
    profile: TraderProfile | None
    permissions: list[PlatformPermission]
    factors: dict[SecondFactor, SecondFactorRecord]
    recovery: list[DeskRecovery]
    enrollment: TotpEnrollment | None
    locked_until: datetime | None
    automations: list[AutomationLine]
    desks: list[Desk]
    today: date
    tz: ZoneInfo  # the user's zone (their first desk's): dates in App Home and modals


def card(*, session: Session, user_id: str, now: datetime) -> ProfileCard:
    profile = get_profile(session, user_id)
    records = factor_records(session, [user_id])[user_id]
    trader_desks = desks.desks_of_user(session=session, user_id=user_id, role=Role.TRADER)
    recovery = []
    if profile is not None:
        for desk in trader_desks:
            assert desk.id is not None
            policy = policy_for(profile, policy_row(session, desk.id))
            recovery.append(DeskRecovery(desk, status_of(profile, records, policy, now)))
    enrollment = drill.enrollment(session, user_id)
    autos = automations.owned_by(session=session, user_id=user_id)
    tz = user_zone(session, user_id)
    today = calendar.local_date(now, tz)
    flags = automations.flags(session=session, automations=autos, today=today)
    names = {d.id: d.name for d in desks.list_desks(session=session)}
    return ProfileCard(
        user_id=user_id,
        profile=profile,
        permissions=permissions(session, user_id),
        factors=records,
        recovery=recovery,
        enrollment=enrollment,
        locked_until=drill.locked_until(enrollment, now),
        automations=[AutomationLine(a, names.get(a.desk_id, "?"), flags[a.id or 0]) for a in autos],
        desks=trader_desks,
        today=today,
        tz=tz,
    )


def view_card(*, session: Session, viewer_id: str, trader_id: str, now: datetime) -> ProfileCard:
    check_can_view(session=session, viewer_id=viewer_id, trader_id=trader_id)
    return card(session=session, user_id=trader_id, now=now)


@dataclass(frozen=True)
class TraderLine:
    user_id: str
    tier: RiskTier
    status: RecoveryStatus | None  # None: no profile yet
    automation_flags: int


@dataclass(frozen=True)
class DeskOverview:
    desk: Desk
    standard: TierPolicy
    elevated: TierPolicy
    traders: list[TraderLine]


def desk_overviews(*, session: Session, manager_id: str, now: datetime) -> list[DeskOverview]:
    """The readiness of every desk ``manager_id`` manages (constant statements per desk)."""
    out: list[DeskOverview] = []
    for desk in desks.desks_of_user(session=session, user_id=manager_id, role=Role.MANAGER):
        assert desk.id is not None
        traders = desks.members(session=session, desk_id=desk.id, role=Role.TRADER)
        profiles = {
            p.user_id: p
            for p in session.exec(select(TraderProfile).where(col(TraderProfile.user_id).in_(traders))).all()
        }
        records = factor_records(session, profiles)
        row = policy_row(session, desk.id)
        flagged: dict[str, int] = {}
        for gap in open_gaps(session, desk.id):
            if gap.kind == GapKind.AUTOMATION:
                flagged[gap.user_id] = flagged.get(gap.user_id, 0) + 1
        lines = []
        for user in traders:
            profile = profiles.get(user)
            status = None if profile is None else status_of(profile, records[user], policy_for(profile, row), now)
            tier = RiskTier(profile.risk_tier) if profile is not None else RiskTier.STANDARD
            lines.append(TraderLine(user, tier, status, flagged.get(user, 0)))
        out.append(
            DeskOverview(
                desk=desk,
                standard=policy_for(None, row),
                elevated=tier_policy(
                    RiskTier.ELEVATED,
                    standard_days=row.standard_drill_days if row else None,
                    elevated_days=row.elevated_drill_days if row else None,
                ),
                traders=lines,
            )
        )
    return out


# --- the weekly summary ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WeekFigure:
    """One trader's readiness gaps that were open at some point of a week."""

    recovery: str | None  # e.g. "SMS only", "no recovery path"; None when none
    recovery_since: datetime | None
    automation_flags: int


def week_figures(*, session: Session, desk_id: int, start: datetime, end: datetime) -> dict[str, WeekFigure]:
    """Gaps overlapping [start, end): one statement."""
    rows = session.exec(
        select(ReadinessGap).where(
            ReadinessGap.desk_id == desk_id,
            col(ReadinessGap.opened_at) < end,
            (col(ReadinessGap.closed_at).is_(None)) | (col(ReadinessGap.closed_at) >= start),
        )
    ).all()
    recovery: dict[str, list[ReadinessGap]] = {}
    autos: dict[str, int] = {}
    for gap in rows:
        if gap.kind == GapKind.AUTOMATION:
            autos[gap.user_id] = autos.get(gap.user_id, 0) + 1
        else:
            recovery.setdefault(gap.user_id, []).append(gap)
    out: dict[str, WeekFigure] = {}
    for user in set(recovery) | set(autos):
        gaps = recovery.get(user, [])
        worst = [g for g in gaps if g.kind == GapKind.RECOVERY] or gaps
        out[user] = WeekFigure(
            recovery=None if not worst else ("no recovery path" if worst[0].kind == GapKind.RECOVERY else "SMS only"),
            recovery_since=min((g.opened_at for g in worst), default=None),
            automation_flags=autos.get(user, 0),
        )
    return out


def interfaces_text(profile: TraderProfile | None) -> str:
    if profile is None or not profile.primary_interface:
        return "not recorded"
    primary = interface_label(profile.primary_interface)
    if not profile.secondary_interface:
        return f"{primary} (no secondary)"
    return f"{primary}, secondary {interface_label(profile.secondary_interface)}"


def home_data(*, session: Session, user_id: str, now: datetime) -> tuple[ProfileCard | None, list[DeskOverview]]:
    """App Home's profile part: the user's own card (traders, or anyone with a profile) and
    the desks they manage."""
    own = None
    if desks.desks_of_user(session=session, user_id=user_id, role=Role.TRADER) or get_profile(session, user_id):
        own = card(session=session, user_id=user_id, now=now)
    return own, desk_overviews(session=session, manager_id=user_id, now=now)
