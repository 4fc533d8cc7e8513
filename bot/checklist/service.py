"""The morning checklist: runs (one per desk and trading day) and answers. The roster (who has
answered what, and which rosters to draw again) is ``bot.checklist.rosters``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

from sqlalchemy import update
from sqlmodel import Session, col, select

from bot import calendar
from bot.checklist import events
from bot.checklist.models import (
    LEGACY_GAPS,
    LEGACY_PLATFORMS,
    Answer,
    AnswerStatus,
    AuthLayer,
    Check,
    ChecklistRun,
    ContingencyGap,
    PermissionGap,
    Platform,
)
from bot.db import ClaimOutcome, add_at_commit, claim_row, insert_or_skip
from bot.desks.models import Desk, Role
from bot.desks.service import is_member
from bot.errors import ServiceError
from bot.text import text_error

POST_LEASE = timedelta(minutes=2)
NOTE_LIMIT = 500


class PostOutcome(StrEnum):
    CLAIMED = "claimed"  # the caller must post now
    ALREADY_POSTED = "already_posted"
    IN_PROGRESS = "in_progress"  # another process holds the post lease
    NOT_TRADING_DAY = "not_trading_day"
    TOO_LATE = "too_late"  # the deadline (scheduler) or the market close (anyone) has passed
    FUTURE = "future"  # a later trading day: its post belongs to the scheduler on that day
    NOT_YET = "not_yet"  # the scheduler is early (a cron job on a moved clock): the catch-up posts it


@dataclass(frozen=True)
class PostClaim:
    outcome: PostOutcome
    run: ChecklistRun | None = None
    reason: str = ""


def schedule(desk: Desk, day: date) -> calendar.DeskDay | None:
    return calendar.desk_day(
        day,
        calendar.zone(desk.timezone),
        calendar.parse_hhmm(desk.post_at),
        calendar.parse_hhmm(desk.deadline),
    )


def desk_today(desk: Desk, now: datetime) -> date:
    return calendar.local_date(now, calendar.zone(desk.timezone))


def effective_deadline(plan: calendar.DeskDay, posted_at: datetime, grace_minutes: int) -> datetime:
    """A deadline a person could meet: the desk's deadline, or the post time plus the grace
    period when that is later; never after the market close (answers close then)."""
    return min(max(plan.deadline, posted_at + timedelta(minutes=grace_minutes)), plan.market_close)


def get_run(*, session: Session, desk_id: int, day: date) -> ChecklistRun | None:
    return session.exec(
        select(ChecklistRun).where(ChecklistRun.desk_id == desk_id, ChecklistRun.trading_date == day)
    ).first()


def claim_post(
    *, session: Session, desk: Desk, day: date, now: datetime, before_deadline_only: bool = False
) -> PostClaim:
    """Decide whether the caller posts ``day``'s checklist for ``desk``.

    The unique (desk, trading_date) row and a short post lease decide, so concurrent
    schedulers, replicas and the CLI post at most once (``bot.db.claim_row``). The caller's
    ``session_scope`` commits the claim before it calls Slack.
    """
    assert desk.id is not None
    plan = schedule(desk, day)
    if plan is None:
        name = calendar.holiday_name(day)
        why = f"{day:%a %d %b %Y} is not an NYSE trading day" + (f" ({name})" if name else "")
        return PostClaim(PostOutcome.NOT_TRADING_DAY, reason=why)
    tz = calendar.zone(desk.timezone)
    if day > desk_today(desk, now):
        at = plan.post_at.astimezone(tz)
        return PostClaim(
            PostOutcome.FUTURE,
            reason=f"{day} is in the future: the scheduler posts it at {at:%H:%M %Z} on {day:%a %d %b %Y}",
        )
    if now >= plan.market_close:
        close = plan.market_close.astimezone(tz)
        return PostClaim(
            PostOutcome.TOO_LATE,
            reason=f"the market closed at {close:%H:%M %Z} on {day:%a %d %b %Y}: nobody could answer that checklist",
        )
    if before_deadline_only and now < plan.post_at:
        return PostClaim(PostOutcome.NOT_YET, reason="it is not post time yet")
    if before_deadline_only and now >= plan.deadline and not _retrying(session, desk.id, day):
        return PostClaim(PostOutcome.TOO_LATE, reason="the deadline has passed")
    desk_id = desk.id
    deadline = effective_deadline(plan, now, desk.grace_minutes)
    outcome, run = claim_row(
        session,
        find=lambda: get_run(session=session, desk_id=desk_id, day=day),
        make=lambda: ChecklistRun(
            desk_id=desk_id,
            trading_date=day,
            early_close=plan.early_close,
            channel_id=desk.channel_id,
            post_due_at=plan.post_at,
            deadline_at=deadline,
            scheduled_deadline_at=plan.deadline,
            market_close_at=plan.market_close,
            post_claimed_at=now,
            post_attempts=1,
            created_at=now,
        ),
        done=lambda r: r.message_ts is not None,
        column="post_claimed_at",
        now=now,
        lease=POST_LEASE,
        # A retried post is rendered now: its answer window starts now.
        values={"post_attempts": ChecklistRun.post_attempts + 1, "deadline_at": deadline},
    )
    return PostClaim(_POST_OUTCOME[outcome], run)


def _retrying(session: Session, desk_id: int, day: date) -> bool:
    """A post was attempted in its window and failed (Slack down): it is retried until the
    close, with a fresh answer window, rather than leaving the desk without a checklist."""
    run = get_run(session=session, desk_id=desk_id, day=day)
    return run is not None and run.message_ts is None and run.post_attempts > 0


_POST_OUTCOME = {
    ClaimOutcome.CLAIMED: PostOutcome.CLAIMED,
    ClaimOutcome.DONE: PostOutcome.ALREADY_POSTED,
    ClaimOutcome.BUSY: PostOutcome.IN_PROGRESS,
}


def ensure_run(*, session: Session, desk: Desk, plan: calendar.DeskDay, now: datetime) -> ChecklistRun:
    """The day's run row, created unclaimed (nothing posted, no post attempted) when there is
    none: what a desk-wide escalation about a morning that was never posted hangs on. A later
    ``claim_post`` takes it like any unposted run."""
    assert desk.id is not None
    insert_or_skip(
        session,
        ChecklistRun,
        {
            "desk_id": desk.id,
            "trading_date": plan.trading_date,
            "early_close": plan.early_close,
            "channel_id": desk.channel_id,
            "post_due_at": plan.post_at,
            "deadline_at": plan.deadline,
            "scheduled_deadline_at": plan.deadline,
            "market_close_at": plan.market_close,
            "created_at": now,
            "post_attempts": 0,
            "answers_version": 0,
            "rendered_version": 0,
        },
    )
    run = get_run(session=session, desk_id=desk.id, day=plan.trading_date)
    assert run is not None
    return run


def mark_posted(*, session: Session, run_id: int, ts: str, now: datetime) -> None:
    session.execute(
        update(ChecklistRun)
        .where(col(ChecklistRun.id) == run_id)
        .values(message_ts=ts, posted_at=now, post_error=None, post_claimed_at=None)
    )


def adopt_post(*, session: Session, run_id: int, ts: str, now: datetime) -> None:
    """An earlier attempt's message, found in the channel, is the run's message. It was drawn
    then (the answer window has moved since): the roster draws it again from the current state."""
    session.execute(
        update(ChecklistRun)
        .where(col(ChecklistRun.id) == run_id)
        .values(
            message_ts=ts,
            posted_at=now,
            post_error=None,
            post_claimed_at=None,
            answers_version=ChecklistRun.answers_version + 1,
        )
    )


def mark_post_failed(*, session: Session, run_id: int, error: str) -> None:
    """Release the lease so the next tick (or the CLI) tries again."""
    session.execute(
        update(ChecklistRun).where(col(ChecklistRun.id) == run_id).values(post_error=error[:500], post_claimed_at=None)
    )


def unposted_runs(*, session: Session, now: datetime) -> list[ChecklistRun]:
    """Runs whose post failed or was interrupted and whose deadline has not passed."""
    return list(
        session.exec(
            select(ChecklistRun).where(
                col(ChecklistRun.message_ts).is_(None),
                col(ChecklistRun.deadline_at) > now,
                (col(ChecklistRun.post_claimed_at).is_(None)) | (col(ChecklistRun.post_claimed_at) < now - POST_LEASE),
            )
        ).all()
    )


# --- answers -------------------------------------------------------------------------


@dataclass(frozen=True)
class ProblemReport:
    """A trader's structured report. Normalised by ``applicable`` and validated by
    ``validate_report``."""

    failed: frozenset[Check]
    auth_layer: AuthLayer | None = None
    platform: Platform | None = None
    missing_permissions: str | None = None
    permission_gaps: frozenset[PermissionGap] = field(default_factory=frozenset)
    gaps: frozenset[ContingencyGap] = field(default_factory=frozenset)
    note: str | None = None
    # A one-click report (bot.checklist.quick): the failed checks now, their details later.
    details_pending: bool = False


def report_of(answer: Answer) -> ProblemReport:
    """A stored problem answer as a report (the one a one-click report adds a check to)."""
    return ProblemReport(
        failed=frozenset(answer.checks),
        auth_layer=AuthLayer(answer.auth_layer) if answer.auth_layer else None,
        platform=Platform(answer.platform) if answer.platform else None,
        missing_permissions=answer.missing_permissions,
        permission_gaps=frozenset(answer.permission_kinds),
        gaps=frozenset(answer.gaps),
        note=answer.note,
    )


def applicable(report: ProblemReport) -> ProblemReport:
    """Only what applies to the failed checks: the modal shows a check's fields only when
    the check is ticked, and anything left over from a field that no longer applies (a
    box ticked, filled in, then unticked) is dropped rather than refused."""
    failed = report.failed
    return ProblemReport(
        failed=failed,
        auth_layer=report.auth_layer if Check.AUTHENTICATION in failed else None,
        platform=report.platform if failed & {Check.AUTHENTICATION, Check.PERMISSIONS} else None,
        missing_permissions=report.missing_permissions if Check.PERMISSIONS in failed else None,
        permission_gaps=report.permission_gaps if Check.PERMISSIONS in failed else frozenset(),
        gaps=report.gaps if Check.CONTINGENCY in failed else frozenset(),
        note=report.note,
        details_pending=report.details_pending,
    )


def validate_report(report: ProblemReport) -> dict[str, str]:
    """Field errors keyed by field name ('failed', 'auth_layer', ...); empty when valid.
    Call it on ``applicable(report)``: fields of checks that did not fail are not looked at;
    a one-click report (``details_pending``) needs no details, only what it gives is checked."""
    errors: dict[str, str] = {}
    if not report.failed:
        errors["failed"] = "Pick at least one check that failed (or use “All three confirmed”)."
    if not report.details_pending:
        _require_details(report, errors)
    if report.platform in LEGACY_PLATFORMS:
        errors["platform"] = (
            "“API” is no longer offered: close this form, open “Report a problem” again and pick the TWS API "
            "or the Client Portal Web API."
        )
    if report.gaps & LEGACY_GAPS:
        errors["gaps"] = (
            "That choice is no longer offered (IBKR has no recovery codes): close this form and "
            "open “Report a problem” again."
        )
    elif {ContingencyGap.NO_BACKUP_FACTOR, ContingencyGap.SMS_ONLY} <= report.gaps:
        errors["gaps"] = "Pick one: no backup second factor at all, or SMS codes as the only backup."
    for key, value, what in (
        ("note", report.note, "note"),
        ("missing_permissions", report.missing_permissions, "list"),
    ):
        refused = text_error(value, limit=NOTE_LIMIT, what=what, multiline=key == "note")
        if refused:
            errors[key] = refused
    return errors


def _require_details(report: ProblemReport, errors: dict[str, str]) -> None:
    """The details the modal asks for each failed check."""
    if Check.AUTHENTICATION in report.failed and report.auth_layer is None:
        errors["auth_layer"] = "Which layer failed: identity, device trust, or the platform/session?"
    if report.failed & {Check.AUTHENTICATION, Check.PERMISSIONS} and report.platform is None:
        errors["platform"] = "Pick the platform you will trade on."
    if Check.PERMISSIONS in report.failed:
        if not (report.missing_permissions or "").strip():
            errors["missing_permissions"] = "Name the instruments or markets that are missing."
        if not report.permission_gaps:
            errors["permission_gaps"] = "Is it a trading permission, a market-data subscription, or both?"
    if Check.CONTINGENCY in report.failed and not report.gaps:
        errors["gaps"] = "Pick what is missing: a backup second factor, more than SMS, or a secondary interface."


class AnswerOutcome(StrEnum):
    STORED = "stored"
    UNCHANGED = "unchanged"  # same as the current answer (a double click): nothing stored


@dataclass(frozen=True)
class AnswerResult:
    outcome: AnswerOutcome
    answer: Answer
    run: ChecklistRun


class ClosedError(ServiceError):
    pass


class NotOnDeskError(ServiceError):
    pass


def run_closed(run: ChecklistRun, desk: Desk, now: datetime) -> bool:
    """A checklist takes answers on its own trading day until the market closes."""
    return desk_today(desk, now) != run.trading_date or now >= run.market_close_at


def check_can_answer(*, session: Session, run: ChecklistRun, user_id: str, now: datetime) -> Desk:
    """The run's desk, or NotOnDeskError / ClosedError with a sentence for the user."""
    desk = session.get(Desk, run.desk_id)
    assert desk is not None
    if not is_member(session=session, desk_id=run.desk_id, user_id=user_id, role=Role.TRADER):
        raise NotOnDeskError(not_on_desk_message(desk.name))
    if run_closed(run, desk, now):
        raise ClosedError(closed_message(run.trading_date))
    return desk


def not_on_desk_message(desk_name: str) -> str:
    return f"You're not a trader on the {desk_name} desk, so this checklist isn't yours."


def closed_message(trading_date: date) -> str:
    return f"This checklist ({trading_date:%a %d %b}) has closed. Answer today's checklist instead."


def latest_answer(*, session: Session, run_id: int, user_id: str) -> Answer | None:
    return session.exec(
        select(Answer)
        .where(Answer.run_id == run_id, Answer.user_id == user_id)
        .order_by(col(Answer.version).desc())
        .limit(1)
    ).first()


# The fields that say what an answer is (two versions agreeing on them are the same answer:
# ``_same``), with the values a confirmation gives them (``confirm``; the click path,
# ``bot.checklist.click``, stores exactly these).
CONFIRMATION: dict[str, str | None] = {
    "status": AnswerStatus.CONFIRMED.value,
    "failed_checks": "",
    "auth_layer": None,
    "platform": None,
    "missing_permissions": None,
    "permission_gaps": "",
    "contingency_gaps": "",
    "note": None,
}


def _same(answer: Answer, candidate: Answer) -> bool:
    return all(getattr(answer, k) == getattr(candidate, k) for k in CONFIRMATION)


def _store(session: Session, run: ChecklistRun, candidate: Answer, now: datetime) -> AnswerResult:
    """Store ``candidate`` as the trader's next version unless it changes nothing; subscribers
    of ``bot.checklist.events`` (escalations) react in the same transaction."""
    assert run.id is not None
    latest = latest_answer(session=session, run_id=run.id, user_id=candidate.user_id)
    if latest is not None and _same(latest, candidate):
        return AnswerResult(AnswerOutcome.UNCHANGED, latest, run)
    candidate.version = 1 if latest is None else latest.version + 1
    values = candidate.model_dump(exclude={"id"})
    candidate.id = insert_or_skip(session, Answer, values)
    if candidate.id is None:  # a concurrent click stored this version first
        current = latest_answer(session=session, run_id=run.id, user_id=candidate.user_id)
        assert current is not None
        return AnswerResult(AnswerOutcome.UNCHANGED, current, run)
    add_at_commit(session, ChecklistRun, "answers_version", run.id)  # the roster redraws it
    events.answer_stored(session, run, candidate, now)
    return AnswerResult(AnswerOutcome.STORED, candidate, run)


def confirm(*, session: Session, run: ChecklistRun, user_id: str, now: datetime) -> AnswerResult:
    check_can_answer(session=session, run=run, user_id=user_id, now=now)
    assert run.id is not None
    candidate = Answer(run_id=run.id, user_id=user_id, version=0, status=AnswerStatus.CONFIRMED, created_at=now)
    return _store(session, run, candidate, now)


def report_problem(
    *, session: Session, run: ChecklistRun, user_id: str, report: ProblemReport, now: datetime
) -> AnswerResult:
    check_can_answer(session=session, run=run, user_id=user_id, now=now)
    report = applicable(report)
    errors = validate_report(report)
    if errors:
        raise ServiceError(" ".join(errors.values()))
    assert run.id is not None
    candidate = Answer(
        run_id=run.id,
        user_id=user_id,
        version=0,
        status=AnswerStatus.PROBLEM,
        failed_checks=",".join(c.value for c in Check if c in report.failed),
        auth_layer=report.auth_layer.value if report.auth_layer else None,
        platform=report.platform.value if report.platform else None,
        missing_permissions=(report.missing_permissions or "").strip() or None,
        permission_gaps=",".join(p.value for p in PermissionGap if p in report.permission_gaps),
        contingency_gaps=",".join(g.value for g in ContingencyGap if g in report.gaps),
        note=(report.note or "").strip() or None,
        restricted=bool(report.failed),
        created_at=now,
    )
    return _store(session, run, candidate, now)
