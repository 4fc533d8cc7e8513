"""What App Home shows of the readiness profile: a trader's own card (or the one a manager
opens) and the readiness of every desk a manager manages.

Domain only: no Slack (``bot.profile.views`` draws these).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bot import calendar
from bot.desks import contact
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.profile import automation as automations
from bot.profile import broker, drill, fences
from bot.profile.access import check_can_view
from bot.profile.gaps import open_gaps
from bot.profile.labels import interface_label
from bot.profile.models import (
    Automation,
    GapKind,
    PlatformPermission,
    RiskTier,
    SecondFactor,
    SecondFactorRecord,
    TotpEnrollment,
    TraderProfile,
)
from bot.profile.policy import AutomationFlag, RecoveryStatus, TierPolicy, tier_policy
from bot.profile.reading import (
    drill_times,
    factor_records,
    get_profile,
    permissions,
    policy_for,
    policy_row,
    profiles_of,
    status_of,
    user_zone,
)


@dataclass(frozen=True)
class DeskRecovery:
    desk: Desk
    status: RecoveryStatus


@dataclass(frozen=True)
class AutomationLine:
    automation: Automation
    desk_name: str
    flags: list[AutomationFlag]
    missing: tuple[fences.Fence, ...] = ()  # broker-side fences its owner's tier asks for


@dataclass(frozen=True)
class BrokerSetup:
    """The trader's IBKR usernames and fences, what their tier asks that is missing, and who
    their desks name for security changes ((desk name, who) — plain text, escape it)."""

    usernames: list[str]
    missing: list[fences.Fence]
    desk_ip_restrictions: bool
    contacts: list[tuple[str, str]]
    shared: tuple[tuple[str, str, str], ...] = ()  # (username, automation, desk name) logging in as them


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
    broker: BrokerSetup = BrokerSetup([], [], False, [])


def card(*, session: Session, user_id: str, now: datetime) -> ProfileCard:
    profile = get_profile(session, user_id)
    records = factor_records(session, [user_id])[user_id]
    trader_desks = desks.desks_of_user(session=session, user_id=user_id, role=Role.TRADER)
    enrollment = drill.enrollment(session, user_id)
    drilled_at = enrollment.last_success_at if enrollment is not None and enrollment.enrolled_at else None
    recovery = []
    if profile is not None:
        for desk in trader_desks:
            assert desk.id is not None
            policy = policy_for(profile, policy_row(session, desk.id))
            recovery.append(DeskRecovery(desk, status_of(profile, records, policy, now, drilled_at)))
    autos = automations.owned_by(session=session, user_id=user_id)
    tz = user_zone(session, user_id)
    today = calendar.local_date(now, tz)
    flags = automations.flags(session=session, automations=autos, today=today)
    every = desks.list_desks(session=session)
    names = {d.id: d.name for d in every}
    ip = {d.id: d.ip_restrictions for d in every}
    lines = [
        AutomationLine(
            a,
            names.get(a.desk_id, "?"),
            flags[a.id or 0],
            tuple(fences.automation_missing(a, profile, desk_ip_restrictions=ip.get(a.desk_id, False))),
        )
        for a in autos
    ]
    desk_ip = any(d.ip_restrictions for d in trader_desks)
    own = broker.usernames_of(session, [user_id])[user_id]
    setup = BrokerSetup(
        usernames=own,
        missing=fences.trader_missing(profile, desk_ip_restrictions=desk_ip),
        desk_ip_restrictions=desk_ip,
        contacts=contact.contacts(session, trader_desks),
        shared=tuple((u, n, names.get(d, "?")) for u, n, d in broker.automations_on(session, own)),
    )
    return ProfileCard(
        user_id=user_id,
        profile=profile,
        permissions=permissions(session, user_id),
        factors=records,
        recovery=recovery,
        enrollment=enrollment,
        locked_until=drill.locked_until(enrollment, now),
        automations=lines,
        desks=trader_desks,
        today=today,
        tz=tz,
        broker=setup,
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
    fence_gaps: int = 0  # open broker-side fence gaps: the trader's own and their automations'


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
        profiles = profiles_of(session, traders)
        records = factor_records(session, profiles)
        drilled = drill_times(session, profiles)
        row = policy_row(session, desk.id)
        flagged: dict[str, int] = {}
        fenced: dict[str, int] = {}
        for gap in open_gaps(session, desk.id):
            if gap.kind == GapKind.AUTOMATION:
                flagged[gap.user_id] = flagged.get(gap.user_id, 0) + 1
            elif gap.kind == GapKind.FENCES:
                fenced[gap.user_id] = fenced.get(gap.user_id, 0) + 1
        lines = []
        for user in traders:
            profile = profiles.get(user)
            status = (
                None
                if profile is None
                else status_of(profile, records[user], policy_for(profile, row), now, drilled.get(user))
            )
            tier = RiskTier(profile.risk_tier) if profile is not None else RiskTier.STANDARD
            lines.append(TraderLine(user, tier, status, flagged.get(user, 0), fenced.get(user, 0)))
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
