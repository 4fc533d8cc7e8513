"""Reading a trader's stored profile: the row, their second-factor records and platform
permissions, their desk's drill windows, the recovery status those give, and their zone.

Domain only: no Slack. Every other profile module reads through these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from bot import calendar
from bot.desks import service as desks
from bot.profile.models import (
    INTERFACES,
    PlatformPermission,
    ProfilePolicy,
    RiskTier,
    SecondFactor,
    SecondFactorRecord,
    TotpEnrollment,
    TraderProfile,
)
from bot.profile.policy import RecoveryStatus, TierPolicy, recovery_status, tier_policy


def get_profile(session: Session, user_id: str) -> TraderProfile | None:
    return session.exec(select(TraderProfile).where(TraderProfile.user_id == user_id)).first()


def profiles_of(session: Session, user_ids: Iterable[str]) -> dict[str, TraderProfile]:
    """The stored profiles of ``user_ids`` (one statement), by user; who has none is absent."""
    users = list(user_ids)
    return {
        p.user_id: p for p in session.exec(select(TraderProfile).where(col(TraderProfile.user_id).in_(users))).all()
    }


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
    order = {i.value: n for n, i in enumerate(INTERFACES)}
    return sorted(rows, key=lambda r: order.get(r.interface, 99))


def policy_row(session: Session, desk_id: int) -> ProfilePolicy | None:
    return session.exec(select(ProfilePolicy).where(ProfilePolicy.desk_id == desk_id)).first()


def policy_for(profile: TraderProfile | None, row: ProfilePolicy | None) -> TierPolicy:
    return tier_policy(
        profile.risk_tier if profile else RiskTier.STANDARD,
        standard_days=row.standard_drill_days if row else None,
        elevated_days=row.elevated_drill_days if row else None,
    )


def drill_times(session: Session, user_ids: Iterable[str]) -> dict[str, datetime | None]:
    """Each user's last drill pass (enrolled users only): a separate fact from IBKR verification."""
    users = sorted(set(user_ids))
    if not users:
        return {}
    rows = session.exec(
        select(TotpEnrollment.user_id, TotpEnrollment.last_success_at).where(
            col(TotpEnrollment.user_id).in_(users), col(TotpEnrollment.enrolled_at).is_not(None)
        )
    ).all()
    return dict(rows)


def status_of(
    profile: TraderProfile,
    records: Mapping[SecondFactor, SecondFactorRecord],
    policy: TierPolicy,
    at: datetime,
    drilled_at: datetime | None = None,
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
        drilled_at=drilled_at,
        dsc_plus_eligible=profile.dsc_plus_eligible,
    )


def user_zone(session: Session, user_id: str) -> ZoneInfo:
    """The zone of the user's first desk (UTC for someone on none): 'today' and dates in modals."""
    mine = desks.desks_of_user(session=session, user_id=user_id)
    return calendar.zone(mine[0].timezone) if mine else ZoneInfo("UTC")
