"""What a trader is told after answering: ready, or restricted with what to do for each
failure (the broker's own ways back in). Plain mrkdwn text; no Slack imports."""

from __future__ import annotations

from bot.checklist.models import Answer, AnswerStatus, AuthLayer, Check, ContingencyGap, PermissionGap

# Worded after IBKR's own pages (docs/broker-facts.md): several second-factor methods can be
# active at once and chosen from a drop-down at login [S2]; IB Key moves to a new phone
# without a call if the SMS number is still yours [S6][S7]; otherwise replacement access is
# "via telephone and only after the identity ... has been verbally verified" [S14], and "The
# temporary passcode is intended to provide full access to both Client Portal and trading
# platforms for a period of 2 days ... may be used to access Client Portal for an additional
# period of 10 days" (KB69 [S13], https://ibkb.interactivebrokers.com/article/69); "IBKR will
# not issue consecutive temporary passcodes" [S13]. Permissions are "generally applied within
# 48 hours", market data subscriptions "in real time" [S26].
GUIDANCE = {
    AuthLayer.IDENTITY: "*Identity* (password rejected, username locked): reset your password through IBKR's "
    "password reset or call IBKR. Don't trade until it is solved.",
    AuthLayer.DEVICE_TRUST: "*Device trust* (second-factor prompt fails, phone lost, IB Key moved): log in with "
    "your backup second factor (pick it from the second-factor drop-down at login). New phone and still have your "
    "SMS number? Move IB Key to it in IBKR Mobile. Without a backup, call IBKR Client Services: after identity "
    "checks they give a temporary passcode — 2 days of full access, then 10 days of Client Portal only to print an "
    "online security card; IBKR won't issue two in a row.",
    AuthLayer.PLATFORM: "*Platform or session*: try your secondary interface, close competing sessions (one "
    "brokerage session per username: another TWS, Client Portal or IBKR Mobile login on it knocks yours out; API "
    "clients of one TWS / IB Gateway don't), and remember TWS and IBKR Desktop on auto-restart need a full login "
    "with the second factor once a week (tokens are invalidated Sunday 01:00 ET; IB Gateway most likely too).",
}
PERMISSIONS_GUIDANCE = {
    PermissionGap.TRADING: "*Trading permission* (an order rejected for a product or market): request it in Client "
    'Portal; IBKR says requests are "generally applied within 48 hours" (no guaranteed bound). Avoid those '
    "trades today.",
    PermissionGap.MARKET_DATA: "*Market data* (quotes missing, trading works): subscribe in Client Portal; "
    "subscriptions take effect immediately under normal circumstances.",
}
PERMISSIONS_GUIDANCE_ANY = (
    "*Authorization* (product or exchange not permitted, market data missing): request the trading permission in "
    "Client Portal (generally within 48 hours) or subscribe to the market data (immediate). Avoid those trades today."
)
_NO_BACKUP = (
    "add a backup second factor today — a Mobile Authenticator app (choose one with cloud backup), or a Digital "
    "Security Card+ if your account's equity is at least USD 1 million; IBKR's Multiple Two-Factor keeps several "
    "methods active at once (IB Key is active on one phone only: a second phone is a move, not a backup); on a desk "
    "account this may need the account's primary user"
)
GAP_GUIDANCE = {
    ContingencyGap.NO_BACKUP_FACTOR: _NO_BACKUP,
    ContingencyGap.SMS_ONLY: "SMS is temporary at IBKR (removed once another method is active): if you use IB Key, "
    'your "SMS" is most likely just the phone number IBKR texts to move IB Key to a new phone — keep it current '
    "and add a Mobile Authenticator app as your backup; if SMS is how you log in, activate IB Key and a Mobile "
    "Authenticator app",
    ContingencyGap.SECONDARY_INTERFACE: "set up a second interface (e.g. Client Portal in a browser if you "
    "trade on TWS)",
    ContingencyGap.SECOND_MFA_DEVICE: _NO_BACKUP,
    ContingencyGap.RECOVERY_CODE: "IBKR has no recovery codes: your backup is a second active second-factor method",
}


def guidance_text(answer: Answer) -> str:
    if answer.status == AnswerStatus.CONFIRMED:
        if answer.version > 1:
            return "✅ Thanks — your restriction is cleared: you're marked *ready* for today."
        return "✅ Thanks — you're marked *ready* for today."
    lines = ["🚫 You're marked *restricted today*: trade with lower ambition until it's fixed."]
    if Check.AUTHENTICATION in answer.checks and answer.auth_layer:
        lines.append("• " + GUIDANCE[AuthLayer(answer.auth_layer)])
    if Check.PERMISSIONS in answer.checks:
        kinds = answer.permission_kinds
        lines += ["• " + PERMISSIONS_GUIDANCE[k] for k in kinds] or ["• " + PERMISSIONS_GUIDANCE_ANY]
    if answer.gaps:
        lines.append("• *Contingency*: " + "; ".join(GAP_GUIDANCE[g] for g in answer.gaps) + ".")
    if answer.missing_recovery_path:
        lines.append(
            "Without a backup, a lost phone means moving IB Key to a new phone on the same SMS number (self-service) "
            "or, failing that, a call to IBKR and a temporary passcode before you trade again: your managers are "
            "being told."
        )
    lines.append("Fixed it? Press *All three confirmed* on the checklist to clear the restriction.")
    return "\n".join(lines)
