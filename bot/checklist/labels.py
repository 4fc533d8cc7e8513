"""Plain-text labels for checks, layers, platforms and gaps (no Slack: the domain uses them too).

Recorded values that are no longer offered (``LEGACY_*`` in ``bot.checklist.models``) keep
their labels here, so past answers still display and export as they were recorded; the
report modal offers only the current choices (``*_CHOICES``).
"""

from __future__ import annotations

from bot.checklist.models import (
    LEGACY_GAPS,
    LEGACY_PLATFORMS,
    Answer,
    AuthLayer,
    Check,
    ContingencyGap,
    PermissionGap,
    Platform,
)
from bot.dbtypes import lookup

CHECK_LABEL = {
    Check.AUTHENTICATION: "Authentication",
    Check.PERMISSIONS: "Permissions",
    Check.CONTINGENCY: "Contingency",
}


LAYER_LABEL = {
    AuthLayer.IDENTITY: "Identity (password / username)",
    AuthLayer.DEVICE_TRUST: "Device trust (second factor / device)",
    AuthLayer.PLATFORM: "Platform or session",
}


# IBKR's own names (docs/broker-facts.md §5: "Trader Workstation (TWS)", "IB Gateway (IBGW)",
# "IBKR Desktop", "Client Portal", "IBKR Mobile"; the "TWS API" is "an interface to IB's
# standalone trading applications, TWS and IB Gateway" [S22]; "Client Portal Web API" [S28]).
PLATFORM_LABEL = {
    Platform.TWS: "TWS",
    Platform.IB_GATEWAY: "IB Gateway",
    Platform.IBKR_DESKTOP: "IBKR Desktop",
    Platform.CLIENT_PORTAL: "Client Portal",
    Platform.IBKR_MOBILE: "IBKR Mobile",
    Platform.TWS_API: "TWS API (through TWS or IB Gateway)",
    Platform.CP_WEB_API: "Client Portal Web API",
    Platform.API: "API",
}
PLATFORM_CHOICES = {p: label for p, label in PLATFORM_LABEL.items() if p not in LEGACY_PLATFORMS}


GAP_LABEL = {
    ContingencyGap.NO_BACKUP_FACTOR: "No backup second factor (only my primary phone)",
    ContingencyGap.SMS_ONLY: "My only backup is SMS codes",
    ContingencyGap.SECONDARY_INTERFACE: "No secondary interface",
    ContingencyGap.SECOND_MFA_DEVICE: "No second MFA device",
    ContingencyGap.RECOVERY_CODE: "No recovery code",
}
GAP_SHORT = {
    ContingencyGap.NO_BACKUP_FACTOR: "no backup second factor",
    ContingencyGap.SMS_ONLY: "SMS is the only second factor",
    ContingencyGap.SECONDARY_INTERFACE: "no secondary interface",
    ContingencyGap.SECOND_MFA_DEVICE: "no second MFA device",
    ContingencyGap.RECOVERY_CODE: "no recovery code",
}
GAP_CHOICES = {g: label for g, label in GAP_LABEL.items() if g not in LEGACY_GAPS}
GAP_HINT = (
    "A backup is another active second-factor method besides your primary one: an authenticator app (TOTP), "
    "a Digital Security Card+ (accounts with at least USD 1 million equity), or IB Key if your primary is something "
    "else (IB Key is active on one phone only). "
    "IBKR has no recovery codes."
)


PERMISSION_GAP_LABEL = {
    PermissionGap.TRADING: "Trading permission (IBKR: generally applied within 48 hours)",
    PermissionGap.MARKET_DATA: "Market-data subscription (takes effect quickly)",
}
PERMISSION_GAP_SHORT = {PermissionGap.TRADING: "trading permission", PermissionGap.MARKET_DATA: "market data"}


def platform_name(value: str) -> str:
    """The label of a recorded platform value (an unknown one is shown as recorded)."""
    label = lookup(PLATFORM_LABEL, Platform, value, unknown=None)
    return value if label is None else label.split(" (")[0]


def problem_summary(answer: Answer) -> str:
    """'Authentication (device trust, TWS); Contingency: no backup second factor'."""
    parts: list[str] = []
    for check in answer.checks:
        if check is Check.AUTHENTICATION:
            bits = [LAYER_LABEL[AuthLayer(answer.auth_layer)].split(" (")[0].lower()] if answer.auth_layer else []
            if answer.platform:
                bits.append(platform_name(answer.platform))
            parts.append("Authentication" + (f" ({', '.join(bits)})" if bits else ""))
        elif check is Check.PERMISSIONS:
            where = f" on {platform_name(answer.platform)}" if answer.platform else ""
            kinds = ", ".join(PERMISSION_GAP_SHORT[k] for k in answer.permission_kinds)
            what = f" ({kinds})" if kinds else ""
            parts.append(f"Permissions{where}{what}: {answer.missing_permissions or 'unspecified'}")
        else:
            gaps = ", ".join(GAP_SHORT[g] for g in answer.gaps) or "unspecified"
            parts.append(f"Contingency: {gaps}")
    return "; ".join(parts)
