"""Saving the readiness profile: each save checks its input (``validate_*`` gives every field
error at once, for a modal), writes, records an audit event, and re-syncs the gaps it may
open or close (``bot.profile.gaps.sync_trader``, which also has today's rosters drawn again).

Domain only: no Slack. Services take ``session`` and ``now``, never commit, and raise
``ServiceError(message, field=...)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from bot import calendar
from bot.audit import record
from bot.desks.models import Desk
from bot.errors import ServiceError
from bot.profile import automation as automations
from bot.profile import broker
from bot.profile.access import check_can_set_tier
from bot.profile.automation import AutomationInput
from bot.profile.gaps import sync_desk, sync_trader
from bot.profile.models import (
    INTERFACES,
    Automation,
    BrokerUsername,
    PlatformPermission,
    Product,
    ProfilePolicy,
    RiskTier,
    SecondFactor,
    SecondFactorRecord,
    TraderProfile,
    VerifiedBy,
)
from bot.profile.policy import DRILL_DAYS_RANGE, normalized_username
from bot.profile.reading import factor_records, get_profile, policy_row, user_zone
from bot.text import text_error, user_text

NOTE_LIMIT = 300


def _ensure(session: Session, user_id: str, now: datetime) -> TraderProfile:
    profile = get_profile(session, user_id)
    if profile is None:
        profile = TraderProfile(user_id=user_id, created_at=now, updated_at=now)
        session.add(profile)
        session.flush()
    return profile


def _record(
    session: Session, user_id: str, action: str, now: datetime, *, actor: str | None = None, **detail: Any
) -> None:
    """An event in the trader's profile trail (``profile:{user_id}``), by the trader unless ``actor`` is given."""
    record(session, subject=f"profile:{user_id}", action=action, at=now, actor=actor or user_id, **detail)


def _saved(
    session: Session, profile: TraderProfile, action: str, now: datetime, *, actor: str | None = None, **detail: Any
) -> TraderProfile:
    """How a save that changes a trader's profile row ends: the row stamped and flushed, an
    event in their trail (``_record``), and their gaps re-synced."""
    profile.updated_at = now
    session.add(profile)
    session.flush()
    _record(session, profile.user_id, action, now, actor=actor, **detail)
    sync_trader(session=session, user_id=profile.user_id, now=now)
    return profile


def _first_error(errors: Mapping[str, str]) -> None:
    if errors:
        key, message = next(iter(errors.items()))
        raise ServiceError(message, field=key)


def _enum_value(value: str | None, members: Iterable[StrEnum]) -> str | None:
    if value is None:
        return None
    return value if value in {m.value for m in members} else None


def validate_interfaces(primary: str | None, secondary: str | None) -> dict[str, str]:
    errors: dict[str, str] = {}
    if primary is None:
        errors["primary_interface"] = "Pick the interface you trade on first."
    elif _enum_value(primary, INTERFACES) is None:
        errors["primary_interface"] = "That's not an interface IB Preflight knows; pick one from the list."
    if secondary is not None:
        if _enum_value(secondary, INTERFACES) is None:
            errors["secondary_interface"] = "That's not an interface IB Preflight knows; pick one from the list."
        elif secondary == primary:
            errors["secondary_interface"] = "The secondary interface must differ from the primary one."
    return errors


def save_interfaces(
    *, session: Session, user_id: str, primary: str | None, secondary: str | None, now: datetime
) -> TraderProfile:
    _first_error(validate_interfaces(primary, secondary))
    profile = _ensure(session, user_id, now)
    before = (profile.primary_interface, profile.secondary_interface)
    profile.primary_interface, profile.secondary_interface = primary, secondary
    return _saved(session, profile, "interfaces_saved", now, before=before, after=(primary, secondary))


def validate_permissions(
    interface: str | None, trading: Sequence[str], market_data: Sequence[str], note: str | None
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if interface is None or _enum_value(interface, INTERFACES) is None:
        errors["interface"] = "Pick the platform these permissions are for (an interface IB Preflight knows)."
    known = {p.value for p in Product}
    if any(p not in known for p in trading):
        errors["trading"] = "That choice isn't one of the products; pick again."
    if any(p not in known for p in market_data):
        errors["market_data"] = "That choice isn't one of the products; pick again."
    refused = text_error(note, limit=NOTE_LIMIT)
    if refused:
        errors["note"] = refused
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
    (subscriptions take effect at once; trading permission requests are "generally applied within
    48 hours" — docs/broker-facts.md §4, https://ibkr.info/it/tag/account-mgmt?page=9)."""
    _first_error(validate_permissions(interface, trading, market_data, note))
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
    row.note = user_text(note, field="note", limit=NOTE_LIMIT)
    row.updated_at = now
    if not row.trading and not row.market_data and not row.note:
        if row.id is not None:
            session.delete(row)
    else:
        session.add(row)
    session.flush()
    _record(
        session,
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
    _first_error(validate_second_factors(primary, registered, verified_on, today))
    assert primary is not None
    profile = _ensure(session, user_id, now)
    profile.primary_factor = primary
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
    return _saved(
        session,
        profile,
        "second_factors_saved",
        now,
        primary=primary,
        registered=sorted(registered),
        verified_on={k: v for k, v in verified_on.items() if v},
    )


def set_risk_tier(
    *,
    session: Session,
    manager_id: str,
    trader_id: str | None,
    tier: str | None,
    now: datetime,
    dsc_plus_eligible: bool | None = None,
) -> TraderProfile:
    if trader_id is None:
        raise ServiceError("Pick the trader.", field="trader")
    check_can_set_tier(session=session, manager_id=manager_id, trader_id=trader_id)
    if tier is None or _enum_value(tier, RiskTier) is None:
        raise ServiceError("Pick standard or elevated.", field="tier")
    profile = _ensure(session, trader_id, now)
    before = profile.risk_tier
    profile.risk_tier, profile.risk_tier_set_by, profile.risk_tier_set_at = tier, manager_id, now
    eligible: dict[str, Any] = {}
    if dsc_plus_eligible is not None and dsc_plus_eligible != profile.dsc_plus_eligible:
        eligible = {"dsc_plus_eligible": dsc_plus_eligible}
        profile.dsc_plus_eligible = dsc_plus_eligible
    return _saved(session, profile, "risk_tier_set", now, actor=manager_id, before=before, after=tier, **eligible)


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
    record(
        session,
        subject=f"desk:{desk.id}",
        action="profile_policy_set",
        at=now,
        actor=actor,
        desk_id=desk.id,
        before=before,
        after=(row.standard_drill_days, row.elevated_drill_days),
    )
    sync_desk(session=session, desk=desk, now=now)
    return row


def save_automation(
    *, session: Session, actor: str, automation_id: int | None, data: AutomationInput, today: date, now: datetime
) -> Automation:
    """Add or change an automation in the register (``bot.profile.automation.save``), then
    re-sync its owner's gaps (a fence added or missing opens or closes a hygiene gap)."""
    row = automations.save(session=session, actor=actor, automation_id=automation_id, data=data, today=today, now=now)
    sync_trader(session=session, user_id=data.owner_id or actor, now=now)
    return row


def remove_automation(*, session: Session, actor: str, automation_id: int, now: datetime) -> Automation:
    """Take an automation out of the register; its desk's hygiene gap closes with it."""
    row = automations.remove(session=session, actor=actor, automation_id=automation_id, now=now)
    desk = session.get(Desk, row.desk_id)
    if desk is not None:
        sync_desk(session=session, desk=desk, now=now)
    return row


def save_broker_setup(
    *,
    session: Session,
    user_id: str,
    usernames: Sequence[str],
    order_precautions: bool | None,
    ip_restricted: bool | None,
    now: datetime,
    actor: str | None = None,
) -> TraderProfile:
    """Replace the trader's usernames (checked again here) and set their fences (None: unchanged);
    an audit event; the gaps of their desks re-synced."""
    checked, error = broker.parse_usernames(" ".join(usernames))
    if error:
        raise ServiceError(error, field="usernames")
    profile = get_profile(session, user_id)
    if profile is None:
        profile = TraderProfile(user_id=user_id, created_at=now, updated_at=now)
    before = {
        "usernames": broker.usernames_of(session, [user_id])[user_id],
        "order_precautions": profile.order_precautions,
        "ip_restricted": profile.ip_restricted,
    }
    current = {
        normalized_username(r.username): r
        for r in session.exec(select(BrokerUsername).where(BrokerUsername.user_id == user_id)).all()
    }
    keep = {normalized_username(n) for n in checked}
    for key, row in current.items():
        if key not in keep:
            session.delete(row)
    for name in checked:
        if normalized_username(name) not in current:
            session.add(BrokerUsername(user_id=user_id, username=name, created_at=now))
    if order_precautions is not None:
        profile.order_precautions = order_precautions
    if ip_restricted is not None:
        profile.ip_restricted = ip_restricted
    return _saved(
        session,
        profile,
        "broker_setup_saved",
        now,
        actor=actor,
        before=before,
        after={
            "usernames": checked,
            "order_precautions": profile.order_precautions,
            "ip_restricted": profile.ip_restricted,
        },
    )
