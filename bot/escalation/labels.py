"""Plain-text names of escalation kinds (no Slack: the pager payload and the CLI use them too)."""

from __future__ import annotations

from bot.escalation.models import EscalationKind

NOTE_LIMIT = 300

KIND_TITLE = {
    EscalationKind.RECOVERY_PATH: "🆘 Missing recovery path",
    EscalationKind.SILENT: "🔕 No answer by the deadline",
    EscalationKind.RESTRICTED: "🚫 Restricted today",
}
KIND_WHY = {
    EscalationKind.RECOVERY_PATH: "No second MFA device or recovery code: losing the only MFA device can lock "
    "them out for days during a market event.",
    EscalationKind.SILENT: "They haven't answered the morning checklist.",
    EscalationKind.RESTRICTED: "They reported a failed check and trade with lower ambition today.",
}


def kind_title(kind: str) -> str:
    return KIND_TITLE.get(EscalationKind(kind), kind)
