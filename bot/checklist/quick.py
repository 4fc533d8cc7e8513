"""One-click problem reports: a failed check recorded from a button, without the modal.

The morning the bot matters most is the one when everyone fails at once, and then Slack's rate
tiers refuse or delay modals (``views.open``, ``views.update``). So a report never depends on a
modal opening in time: the checklist message and the reminder DM carry one button per common
failure; a click stores a problem report with that check failed and its details "not given
yet" (the trader is *restricted* at once, and a "no backup" click is a missing recovery path,
escalated at once like any other), and the full modal, offered afterwards, replaces it with a
new version. Plain domain code: no Slack.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Session

from bot.checklist import service as checklist
from bot.checklist.guidance import guidance_text
from bot.checklist.models import Answer, AnswerStatus, Check, ChecklistRun, ContingencyGap
from bot.checklist.service import AnswerResult, ProblemReport

DETAILS_PENDING = "details not given yet (one-click report)"


class QuickProblem(StrEnum):
    """The common failures, one button each (the value is the button's action id suffix)."""

    CANT_LOG_IN = "cant_log_in"
    PERMISSION_MISSING = "permission_missing"
    NO_BACKUP = "no_backup"


QUICK_LABEL = {
    QuickProblem.CANT_LOG_IN: "🔐 Can't log in",
    QuickProblem.PERMISSION_MISSING: "⛔ Permission missing",
    QuickProblem.NO_BACKUP: "📵 No backup 2nd factor",
}
QUICK_CHECK = {
    QuickProblem.CANT_LOG_IN: Check.AUTHENTICATION,
    QuickProblem.PERMISSION_MISSING: Check.PERMISSIONS,
    QuickProblem.NO_BACKUP: Check.CONTINGENCY,
}
# Said before the usual guidance: what the one click did not tell, and where to say it.
QUICK_HINT = {
    QuickProblem.CANT_LOG_IN: "*Can't log in*: if the second factor fails, log in with your backup second factor "
    "(pick it from the drop-down at login) or call IBKR Client Services; if the password is refused, reset it. "
    "Close competing sessions (one brokerage session per username).",
    QuickProblem.PERMISSION_MISSING: "",  # the permissions guidance covers it
    QuickProblem.NO_BACKUP: "",  # the contingency guidance covers it
}
ADD_DETAILS = (
    "Press *Add details* when you can (which layer failed, the platform, the instruments): your managers see "
    "“details not given yet” until then."
)


def quick_report(kind: QuickProblem, current: Answer | None) -> ProblemReport:
    """The report a click of ``kind`` stores: the trader's current problem report (if any) with
    this check failed too, its details pending. "No backup" is no backup second factor at all
    (it replaces an earlier "SMS is the only backup": the two exclude each other)."""
    base = checklist.report_of(current) if current is not None and current.status == AnswerStatus.PROBLEM else None
    check = QUICK_CHECK[kind]
    failed = (base.failed if base else frozenset()) | {check}
    gaps = base.gaps if base else frozenset()
    if kind is QuickProblem.NO_BACKUP:
        gaps = (gaps - {ContingencyGap.SMS_ONLY}) | {ContingencyGap.NO_BACKUP_FACTOR}
    return ProblemReport(
        failed=failed,
        auth_layer=base.auth_layer if base else None,
        platform=base.platform if base else None,
        missing_permissions=base.missing_permissions if base else None,
        permission_gaps=base.permission_gaps if base else frozenset(),
        gaps=gaps,
        note=(base.note if base and base.note else DETAILS_PENDING),
        details_pending=True,
    )


def report_quick(
    *, session: Session, run: ChecklistRun, user_id: str, kind: QuickProblem, now: datetime
) -> AnswerResult:
    """Store a one-click report (``checklist.report_problem``: the same checks, versions and
    hooks as a modal's report); UNCHANGED when it is already what the trader reported."""
    checklist.check_can_answer(session=session, run=run, user_id=user_id, now=now)
    assert run.id is not None
    current = checklist.latest_answer(session=session, run_id=run.id, user_id=user_id)
    report = quick_report(kind, current)
    return checklist.report_problem(session=session, run=run, user_id=user_id, report=report, now=now)


def quick_guidance(kind: QuickProblem, answer: Answer, *, stored: bool) -> str:
    """What the trader is told after a one-click report: the usual guidance, what to do for a
    failure the click didn't detail, and that the details are still wanted."""
    lines = ["" if stored else "Already recorded.", guidance_text(answer)]
    if QUICK_HINT[kind]:
        lines.append("• " + QUICK_HINT[kind])
    if answer.note == DETAILS_PENDING:
        lines.append(ADD_DETAILS)
    return "\n".join(line for line in lines if line)
