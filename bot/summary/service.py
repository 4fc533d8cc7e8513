"""The weekly summary's rules: which weeks are due, that a week is posted once (a claim with a
lease, marked posted or released), that an unfinished week is never posted, who may see a
week (`/ibstatus week`) and download its record. Used by the scheduler's job, the CLI and
Slack alike; no Slack here. Functions take ``session``/``now`` and never commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import update
from sqlmodel import Session, col, select

from bot import calendar
from bot.db import ClaimOutcome, claim_row
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.errors import ServiceError
from bot.summary.models import WeeklySummary
from bot.summary.report import WeeklyReport, build_summary
from bot.summary.weeks import current_week, due_at, parse_iso_week, previous_week, week_bounds

SUMMARY_LEASE = timedelta(minutes=5)
REFUSAL = "The weekly summary is for the desk's managers; you're not a manager of a desk."


class UnfinishedWeek(ServiceError):
    """The week's summary isn't due yet: posting it now would take the real one's place."""


def check_due(*, desk: Desk, iso_week: str, now: datetime) -> None:
    """A week's summary is posted once, after the week: ServiceError for a week without
    trading days, UnfinishedWeek for one whose summary isn't due at ``now``."""
    due = due_at(desk, iso_week)
    if due is None:
        raise ServiceError(f"{iso_week} has no NYSE trading day, so it has no summary")
    if due > now:
        at = due.astimezone(calendar.zone(desk.timezone))
        raise UnfinishedWeek(f"{iso_week} isn't finished: the scheduler posts its summary at {at:%a %d %b %Y %H:%M %Z}")


class SummaryOutcome(StrEnum):
    CLAIMED = "claimed"
    ALREADY_POSTED = "already_posted"
    IN_PROGRESS = "in_progress"


@dataclass(frozen=True)
class SummaryClaim:
    outcome: SummaryOutcome
    summary: WeeklySummary


def _get(session: Session, desk_id: int, iso_week: str) -> WeeklySummary | None:
    return session.exec(
        select(WeeklySummary).where(WeeklySummary.desk_id == desk_id, WeeklySummary.iso_week == iso_week)
    ).first()


def claim_post(*, session: Session, desk: Desk, iso_week: str, now: datetime) -> SummaryClaim:
    """Decide whether the caller posts the week's summary: the unique (desk, iso_week) row
    plus a lease (``bot.db.claim_row``). The caller's ``session_scope`` commits the claim."""
    assert desk.id is not None
    desk_id = desk.id
    outcome, row = claim_row(
        session,
        find=lambda: _get(session, desk_id, iso_week),
        make=lambda: WeeklySummary(desk_id=desk_id, iso_week=iso_week, claimed_at=now, created_at=now),
        done=lambda r: r.posted_at is not None,
        column="claimed_at",
        now=now,
        lease=SUMMARY_LEASE,
    )
    assert row is not None
    return SummaryClaim(_SUMMARY_OUTCOME[outcome], row)


_SUMMARY_OUTCOME = {
    ClaimOutcome.CLAIMED: SummaryOutcome.CLAIMED,
    ClaimOutcome.DONE: SummaryOutcome.ALREADY_POSTED,
    ClaimOutcome.BUSY: SummaryOutcome.IN_PROGRESS,
}


def mark_posted(*, session: Session, summary_id: int, ts: str | None, now: datetime) -> None:
    session.execute(
        update(WeeklySummary)
        .where(col(WeeklySummary.id) == summary_id)
        .values(posted_at=now, message_ts=ts, claimed_at=None)
    )


def release_post(*, session: Session, summary_id: int) -> None:
    """A failed post: let the next tick (or the CLI) try again."""
    session.execute(update(WeeklySummary).where(col(WeeklySummary.id) == summary_id).values(claimed_at=None))


def due_posts(*, session: Session, desks: list[Desk], now: datetime) -> list[tuple[str, str]]:
    """(desk name, iso week) of summaries due at ``now`` and not yet posted: the current and
    the previous week (a bot down over a weekend catches up), never a week that ended before
    the desk existed."""
    posted = {
        (d, w)
        for d, w in session.execute(
            select(WeeklySummary.desk_id, WeeklySummary.iso_week).where(col(WeeklySummary.posted_at).is_not(None))
        ).all()
    }
    due: list[tuple[str, str]] = []
    for desk in desks:
        week = current_week(desk, now)
        for candidate in (previous_week(week), week):
            at = due_at(desk, candidate)
            if at is None or at > now or (desk.id, candidate) in posted:
                continue
            if week_bounds(desk, candidate)[1] <= desk.created_at.astimezone(UTC):
                continue
            due.append((desk.name, candidate))
    return due


def week_status(*, session: Session, user_id: str, args: list[str], now: datetime) -> WeeklyReport:
    """`/ibstatus week [2026-W48] [desk]`: the week so far (default: this week), for the desk's
    managers only (else ServiceError, ``REFUSAL`` for someone who manages no desk)."""
    managed = desks.desks_of_user(session=session, user_id=user_id, role=Role.MANAGER)
    if not managed:
        raise ServiceError(REFUSAL)
    week: str | None = None
    name: str | None = None
    for word in args:
        if word.upper().startswith(tuple("0123456789")):
            week = parse_iso_week(word)
        elif name is None:
            name = word
        else:
            raise ServiceError("Usage: `/ibstatus week [2026-W48] [desk]`.")
    if name is None:
        if len(managed) > 1:
            names = ", ".join(f"`{d.name}`" for d in managed)
            raise ServiceError(f"You manage several desks; name one: {names}.")
        desk = managed[0]
    else:
        found = [d for d in managed if d.name == name]
        if not found:
            raise ServiceError(f"You don't manage a desk named `{name}`.")
        desk = found[0]
    return build_summary(session=session, desk=desk, iso_week=week or current_week(desk, now), now=now)


def managed_desk(*, session: Session, desk_id: int, user_id: str) -> Desk:
    """The desk whose weekly record ``user_id`` may download: only its managers may."""
    desk = session.get(Desk, desk_id)
    if desk is None or not desks.is_member(session=session, desk_id=desk_id, user_id=user_id, role=Role.MANAGER):
        raise ServiceError("Only the desk's managers can download its weekly record.")
    return desk
