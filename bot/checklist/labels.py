"""Plain-text labels for checks, layers, platforms and gaps (no Slack: the domain uses them too)."""

from __future__ import annotations

from bot.checklist.models import Answer, AuthLayer, Check, ContingencyGap, Platform

CHECK_LABEL = {
    Check.AUTHENTICATION: "Authentication",
    Check.PERMISSIONS: "Permissions",
    Check.CONTINGENCY: "Contingency",
}


LAYER_LABEL = {
    AuthLayer.IDENTITY: "Identity (password / username)",
    AuthLayer.DEVICE_TRUST: "Device trust (MFA / second factor / device)",
    AuthLayer.PLATFORM: "Platform or session",
}


PLATFORM_LABEL = {
    Platform.TWS: "TWS",
    Platform.IBKR_DESKTOP: "IBKR Desktop",
    Platform.CLIENT_PORTAL: "Client Portal",
    Platform.IBKR_MOBILE: "IBKR Mobile",
    Platform.API: "API",
}


GAP_LABEL = {
    ContingencyGap.SECOND_MFA_DEVICE: "No second MFA device",
    ContingencyGap.RECOVERY_CODE: "No recovery code",
    ContingencyGap.SECONDARY_INTERFACE: "No secondary interface",
}


def problem_summary(answer: Answer) -> str:
    """'Authentication (device trust, TWS); Contingency: no recovery code'."""
    parts: list[str] = []
    for check in answer.checks:
        if check is Check.AUTHENTICATION:
            bits = [LAYER_LABEL[AuthLayer(answer.auth_layer)].split(" (")[0].lower()] if answer.auth_layer else []
            if answer.platform:
                bits.append(PLATFORM_LABEL[Platform(answer.platform)])
            parts.append("Authentication" + (f" ({', '.join(bits)})" if bits else ""))
        elif check is Check.PERMISSIONS:
            where = f" on {PLATFORM_LABEL[Platform(answer.platform)]}" if answer.platform else ""
            parts.append(f"Permissions{where}: {answer.missing_permissions or 'unspecified'}")
        else:
            gaps = ", ".join(GAP_LABEL[g].lower() for g in answer.gaps) or "unspecified"
            parts.append(f"Contingency: {gaps}")
    return "; ".join(parts)
