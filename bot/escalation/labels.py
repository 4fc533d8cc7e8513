"""Plain-text names of escalation kinds (no Slack: the pager payload and the CLI use them too).

The wording follows IBKR's own documentation (docs/broker-facts.md): a recovery path is a
second active second-factor method (a Mobile Authenticator app, a Digital Security Card+,
or IB Key when the primary is something else — IB Key is active on one phone only [S6];
several different methods can be active at once, "Multiple Two-Factor" [S2]);
without one, access comes back only by telephone "after the identity of the named account
holder or authorized user has been verbally verified" [S14], and "The temporary passcode is
intended to provide full access to both Client Portal and trading platforms for a period of
2 days" [S13] (KB69, https://ibkb.interactivebrokers.com/article/69). SMS is "temporary"
at IBKR [S1][S8], so it counts as a weak backup, not a recovery path.
"""

from __future__ import annotations

from bot.escalation.models import SEVERITY, EscalationKind, Severity

NOTE_LIMIT = 300

KIND_TITLE = {
    EscalationKind.RECOVERY_PATH: "🆘 Missing recovery path",
    EscalationKind.SILENT: "🔕 No answer by the deadline",
    EscalationKind.RESTRICTED: "🚫 Restricted today",
    EscalationKind.POST_FAILED: "📭 Checklist not posted",
    EscalationKind.SECONDARY_INTERFACE: "🖥️ No secondary interface",
    EscalationKind.SMS_ONLY: "📱 SMS is the only second factor",
    EscalationKind.PROFILE_RECOVERY: "🆘 No recovery path (readiness profile)",
    EscalationKind.PROFILE_SMS_ONLY: "⚠️ SMS-only backup (readiness profile)",
    EscalationKind.API_HYGIENE: "🤖 Automation hygiene",
}
KIND_WHY = {
    EscalationKind.RECOVERY_PATH: "No backup second factor besides their primary phone. If that phone fails, IBKR "
    "restores access only after a phone call with identity checks, then a temporary passcode (2 days of trading) — "
    "possibly the whole morning, during a market event.",
    EscalationKind.SILENT: "They haven't answered the morning checklist.",
    EscalationKind.RESTRICTED: "They reported a failed authentication or permissions check and trade with lower "
    "ambition today.",
    EscalationKind.POST_FAILED: "Every attempt to post this morning's checklist failed, so traders could not answer "
    "it. It is retried until the close; this resolves itself when it is posted.",
    EscalationKind.SECONDARY_INTERFACE: "Lower severity: they have no second platform to fall back on if theirs "
    "fails today, and trade restricted.",
    EscalationKind.SMS_ONLY: "Lower severity: SMS codes are their only second factor. IBKR treats SMS as "
    "temporary and it is exposed to SIM swaps, so it is a weak backup, not a recovery path.",
    EscalationKind.PROFILE_RECOVERY: "Their readiness profile shows no usable, recently verified backup second "
    "factor for the next checklist: losing the primary device means a call to IBKR and a temporary passcode "
    "before trading again.",
    EscalationKind.PROFILE_SMS_ONLY: "Their only backup is SMS, which IBKR treats as temporary and removes once "
    "another device is activated (lower severity).",
    EscalationKind.API_HYGIENE: "An automation on the desk lacks one of its fences (lower severity).",
}
# What an automatic resolution says, after the trader's mention: "<@U> confirmed at 09:12".
AUTO_REASON = {
    EscalationKind.RECOVERY_PATH: "reported a backup second factor",
    EscalationKind.SILENT: "answered",
    EscalationKind.RESTRICTED: "reported that authentication and permissions now pass",
    EscalationKind.POST_FAILED: "the checklist was posted",
    EscalationKind.SECONDARY_INTERFACE: "reported a secondary interface",
    EscalationKind.SMS_ONLY: "no longer reports SMS as their only second factor",
}


def kind_title(kind: str) -> str:
    try:
        return KIND_TITLE[EscalationKind(kind)]
    except ValueError:
        return kind


def severity(kind: str) -> Severity:
    try:
        return SEVERITY[EscalationKind(kind)]
    except ValueError:
        return Severity.HIGH
