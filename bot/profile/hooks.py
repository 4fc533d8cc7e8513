"""The readiness profile and the morning checklist, through the checklist's declared
interfaces (the checklist never imports the profile):

- ``bot.checklist.facts``: what the roster shows of a trader's profile (a recovery-path gap,
  a verified backup, the weekly full login due today);
- ``bot.checklist.events``: a stored answer verifies the primary second factor (authentication
  confirmed) or marks it unverified (a device-trust failure), and the same for a first
  confirmation as SQL (``ConfirmRule``, for ``bot.checklist.click``).

Importing this module registers both: ``bot.runtime`` imports it for the bot (and the CLI
commands that build a runtime); scripts and tests that store answers or draw rosters without
a runtime import it themselves. Domain only: no Slack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import exists, update
from sqlmodel import Session, col, select

from bot import calendar
from bot.audit import record
from bot.checklist import events as checklist_events
from bot.checklist import facts as checklist_facts
from bot.checklist.models import Answer, AuthLayer, Check, ChecklistRun
from bot.desks.models import Desk
from bot.profile.labels import FACTOR_LABEL
from bot.profile.models import PlatformPermission, SecondFactor, SecondFactorRecord, TraderProfile, VerifiedBy
from bot.profile.policy import PROBLEM_ICON, RecoveryStatus, first_trading_day_of_week, needs_weekly_login
from bot.profile.reading import (
    drill_times,
    factor_records,
    get_profile,
    policy_for,
    policy_row,
    profiles_of,
    status_of,
)


def verified_backup_text(
    status: RecoveryStatus, records: Mapping[SecondFactor, SecondFactorRecord], tz: ZoneInfo
) -> str:
    parts = []
    for method in status.verified:
        at = records[method].last_verified_at
        parts.append(FACTOR_LABEL[method] + (f", verified {at.astimezone(tz):%a %d %b}" if at else ""))
    if status.drilled_at is not None:
        parts.append(f"backup device drilled {status.drilled_at.astimezone(tz):%a %d %b}")
    return "; ".join(parts)


def _checklist_facts(
    session: Session, run: ChecklistRun, traders: Sequence[str]
) -> dict[str, checklist_facts.TraderFacts]:
    """The checklist's view of the profiles (``bot.checklist.facts``): the roster's gap marks,
    who needs not re-declare a backup, and who must confirm the weekly login today."""
    profiles = profiles_of(session, traders)
    if not profiles:
        return {}
    records = factor_records(session, profiles)
    drilled = drill_times(session, profiles)
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
        status = status_of(profile, records[user], policy_for(profile, row), run.post_due_at, drilled.get(user))
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
    factor = factor_records(session, [answer.user_id])[answer.user_id].get(primary)
    if factor is None:
        return
    failed_auth = Check.AUTHENTICATION in answer.checks
    if failed_auth and answer.auth_layer == AuthLayer.DEVICE_TRUST:
        factor.last_verified_at, factor.verified_by = None, None
        factor.unverified_reason = f"reported a device-trust failure on {run.trading_date:%a %d %b}"
        record(
            session,
            subject=f"profile:{answer.user_id}",
            action="primary_unverified",
            at=now,
            actor=answer.user_id,
            run=run.id,
        )
    elif not failed_auth:
        factor.last_verified_at, factor.verified_by, factor.unverified_reason = now, VerifiedBy.CHECKLIST, None
    else:
        return
    factor.updated_at = now
    session.add(factor)
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
