"""Plain-text names of escalation kinds (no Slack: the pager payload and the CLI use them too).

The wording follows IBKR's own documentation (docs/broker-facts.md): a recovery path is a
second active second-factor method (a Mobile Authenticator app, a Digital Security Card+ for
accounts that qualify, or IB Key when the primary is something else — IB Key is active on one
phone only [S6]; several methods can be active at once, "Multiple Two-Factor" [S2]). Without
one, a lost phone is not always a call: IB Key moves to a new phone by self-service, "without the
need of contacting IBKR Client Services", when the trader still has "the mobile phone number you
originally used to activate" it [S6]. Otherwise access comes back by telephone "after the
identity of the named account holder or authorized user has been verbally verified" [S14], and
"The temporary passcode is intended to provide full access to both Client Portal and trading
platforms for a period of 2 days" [S13] (KB69, https://ibkb.interactivebrokers.com/article/69).
SMS login is "temporary" and "will be removed once you activate" another device [S1][S8], so a
trader who reports SMS as their backup most likely has the phone number IBKR texts to move IB
Key: useful, but not a second factor.
"""

from __future__ import annotations

from bot.dbtypes import lookup
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
    EscalationKind.PROFILE_SMS_ONLY: "⚠️ Only SMS as backup (readiness profile)",
    EscalationKind.API_HYGIENE: "🤖 Automation hygiene",
    EscalationKind.BROKER_FENCES: "🚧 Broker-side fences missing",
    EscalationKind.PROBE_FAILED: "🔌 Broker session down (probe)",
}
_LOST_PHONE = (
    "If the primary device is lost, IB Key moves to a new phone on the same SMS number by self-service; anything "
    "else means a phone call to IBKR with identity checks, then a temporary passcode (2 days of trading) — possibly "
    "the whole morning, during a market event."
)
_SMS_NUMBER = (
    "IBKR removes SMS login once another method is active, so what they most likely have is the phone number IBKR "
    "texts to move IB Key to a new phone — worth keeping current, but not a second factor."
)
KIND_WHY = {
    EscalationKind.RECOVERY_PATH: "No backup second factor besides their primary phone. " + _LOST_PHONE,
    EscalationKind.SILENT: "They haven't answered the morning checklist.",
    EscalationKind.RESTRICTED: "They reported a failed authentication or permissions check and trade with lower "
    "ambition today.",
    EscalationKind.POST_FAILED: "Every attempt to post this morning's checklist failed, so traders could not answer "
    "it. It is retried until the close; this resolves itself when it is posted.",
    EscalationKind.SECONDARY_INTERFACE: "Lower severity: they have no second platform to fall back on if theirs "
    "fails today, and trade restricted.",
    EscalationKind.SMS_ONLY: "Lower severity: they report SMS as their only backup. " + _SMS_NUMBER,
    EscalationKind.PROFILE_RECOVERY: "Their readiness profile shows no usable, recently verified backup second "
    "factor for the next checklist. " + _LOST_PHONE,
    EscalationKind.PROFILE_SMS_ONLY: "Lower severity: their readiness profile's only backup is SMS. " + _SMS_NUMBER,
    EscalationKind.API_HYGIENE: "An automation on the desk lacks one of its fences, or its broker username has a "
    "competing session (lower severity).",
    EscalationKind.BROKER_FENCES: "A trader or automation lacks a broker-side fence their risk tier requires: order "
    "precautions on the platforms they trade, a kill switch, or the account's IP restriction (lower severity).",
    EscalationKind.PROBE_FAILED: "A probe of their IBKR session (Client Portal Gateway or TWS / IB Gateway API "
    "socket) found it not usable — whatever they reported. It resolves itself when a later probe is healthy.",
}
# What an automatic resolution says, after the trader's mention: "<@U> confirmed at 09:12".
AUTO_REASON = {
    EscalationKind.RECOVERY_PATH: "reported a backup second factor",
    EscalationKind.SILENT: "answered",
    EscalationKind.RESTRICTED: "reported that authentication and permissions now pass",
    EscalationKind.POST_FAILED: "the checklist was posted",
    EscalationKind.SECONDARY_INTERFACE: "reported a secondary interface",
    EscalationKind.SMS_ONLY: "no longer reports SMS as their only second factor",
    EscalationKind.PROBE_FAILED: "a probe found their session healthy again",
}


def kind_title(kind: str) -> str:
    return lookup(KIND_TITLE, EscalationKind, kind, unknown=kind)


def severity(kind: str) -> Severity:
    return lookup(SEVERITY, EscalationKind, kind, unknown=Severity.HIGH)
