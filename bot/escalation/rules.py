"""Escalations follow the live state: the condition behind each kind, and the shared words.

Each kind has a condition on the trader's *current* answer (``kinds_called_for``) — or, for a
morning that could not be posted, on the run — and an open escalation whose condition no
longer holds is resolved automatically, with the system as the actor (``bot.escalation
.resolving``): when the trader's answer changes (``bot.escalation.opening``'s hook on
``bot.checklist.events``, in the transaction that stores it) and at every pass
(``bot.escalation.passes``). Level 2 is decided by the same pass after that check, so it never
fires for an escalation whose condition has gone; a page that was queued but not yet sent when
its escalation resolves is withdrawn instead of being followed by a resolve.

The database decides everything else: an escalation is unique per (run, trader, kind), every
notification is an outbox row with a unique dedup key written in the same transaction as the
change that caused it (``bot.escalation.notices``), and transitions are conditional UPDATEs on
``state`` (a double click makes one transition). ``run_pass`` can therefore run every minute,
from several replicas and from the CLI, and still remind, escalate and page once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.checklist.labels import problem_summary
from bot.checklist.models import Answer, AnswerStatus, Check, ChecklistRun, ContingencyGap
from bot.desks.models import Desk
from bot.escalation.labels import AUTO_REASON
from bot.escalation.models import Escalation, EscalationKind, EscalationState

SYSTEM = "system"  # the audit actor of automatic transitions
OPEN_STATES = (EscalationState.OPEN, EscalationState.ACKNOWLEDGED)
# Opened as soon as the report is stored; every other trader kind waits for the deadline.
AT_ONCE = frozenset({EscalationKind.RECOVERY_PATH})


class Outcome(StrEnum):
    DONE = "done"
    UNCHANGED = "unchanged"  # someone (or a double click) got there first


@dataclass(frozen=True)
class Transition:
    outcome: Outcome
    escalation: Escalation
    desk: Desk


def subject(esc: Escalation) -> str:
    """The escalation's name in the audit trail and the prefix of its outbox dedup keys."""
    return f"escalation:{esc.id}"


def _restricted_otherwise(answer: Answer) -> bool:
    """A failed check that no dedicated kind covers: authentication, permissions, or a
    contingency failure whose gaps open nothing of their own (a recorded "No recovery code")."""
    checks = set(answer.checks)
    if checks & {Check.AUTHENTICATION, Check.PERMISSIONS}:
        return True
    covered = answer.missing_recovery_path or answer.sms_only or answer.missing_secondary_interface
    return Check.CONTINGENCY in checks and not covered


def kinds_called_for(answer: Answer | None) -> frozenset[EscalationKind]:
    """The trader escalations a current answer calls for (before the deadline, only AT_ONCE
    ones are opened). An open escalation of a kind not in here is resolved."""
    if answer is None:
        return frozenset({EscalationKind.SILENT})
    if answer.status != AnswerStatus.PROBLEM:
        return frozenset()
    kinds: set[EscalationKind] = set()
    if answer.missing_recovery_path:
        kinds.add(EscalationKind.RECOVERY_PATH)
    if answer.sms_only:
        kinds.add(EscalationKind.SMS_ONLY)
    if answer.missing_secondary_interface:
        kinds.add(EscalationKind.SECONDARY_INTERFACE)
    if _restricted_otherwise(answer):
        kinds.add(EscalationKind.RESTRICTED)
    return frozenset(kinds)


def detail_for(kind: EscalationKind, answer: Answer | None) -> str:
    """What an escalation of ``kind`` opened on ``answer`` says of the report."""
    if kind is EscalationKind.SILENT or answer is None:
        return ""
    return problem_summary(answer) + (f" — “{answer.note}”" if answer.note else "")


def auto_reason(kind: EscalationKind, answer: Answer | None) -> str:
    """Why an escalation of ``kind`` resolves by itself, given the trader's current answer."""
    if answer is not None and answer.status == AnswerStatus.CONFIRMED:
        return "confirmed"
    if kind is EscalationKind.RECOVERY_PATH and answer is not None and ContingencyGap.RECOVERY_CODE in answer.gaps:
        return "reported only “no recovery code”, which is not a missing recovery path (IBKR has no recovery codes)"
    return AUTO_REASON[kind]


def probe_failed_holds(healthy: Iterable[bool | None]) -> bool:
    """PROBE_FAILED's condition on a trader's endpoints' latest results (None: never probed):
    one probed endpoint is not healthy. It no longer holds once every probed one is."""
    return any(h is False for h in healthy)


def past_deadline(run: ChecklistRun, now: datetime) -> bool:
    return run.message_ts is not None and now >= run.deadline_at


def post_failed_holds(run: ChecklistRun) -> bool:
    return run.message_ts is None
