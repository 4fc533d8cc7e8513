"""Plain-text names of escalation kinds (no Slack: the pager payload and the CLI use them too)."""

from __future__ import annotations

from bot.escalation.models import EscalationKind

NOTE_LIMIT = 300

KIND_TITLE = {
    EscalationKind.RECOVERY_PATH: "🆘 Missing recovery path",
    EscalationKind.SILENT: "🔕 No answer by the deadline",
    EscalationKind.RESTRICTED: "🚫 Restricted today",
    EscalationKind.PROFILE_RECOVERY: "🆘 No recovery path (readiness profile)",
    EscalationKind.PROFILE_SMS_ONLY: "⚠️ SMS-only backup (readiness profile)",
    EscalationKind.API_HYGIENE: "🤖 Automation hygiene",
}
KIND_WHY = {
    EscalationKind.RECOVERY_PATH: "No second MFA device or recovery code: losing the only MFA device can lock "
    "them out for days during a market event.",
    EscalationKind.SILENT: "They haven't answered the morning checklist.",
    EscalationKind.RESTRICTED: "They reported a failed check and trade with lower ambition today.",
    EscalationKind.PROFILE_RECOVERY: "Their readiness profile shows no usable, recently verified backup second "
    "factor for the next checklist: losing the primary device means a call to IBKR and a temporary passcode "
    "before trading again.",
    EscalationKind.PROFILE_SMS_ONLY: "Their only backup is SMS, which IBKR treats as temporary and removes once "
    "another device is activated (lower severity).",
    EscalationKind.API_HYGIENE: "An automation on the desk lacks one of its fences (lower severity).",
}


def kind_title(kind: str) -> str:
    return KIND_TITLE.get(EscalationKind(kind), kind)
