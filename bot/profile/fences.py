"""Broker-side fences: what each risk tier asks a trader and an automation to have set at IBKR.
Pure rules, no database, no Slack (docs/broker-facts.md §9).

- **Order precautions** (traders): IBKR's precautionary settings — size limit, total value
  limit, percentage and ticks off the market — set on every platform the trader uses, manual
  and mobile trading included. In TWS they are soft checks: an order that breaks one asks the
  trader to confirm before it is sent.
- **Kill switch** (automations): who can stop it and how, written down (its last test is the
  hygiene flag ``AutomationFlag.KILL_SWITCH``).
- **IP restriction** (traders and automations): the account's restriction of logins by IP
  address, asked only where the desk uses IP restrictions (``Desk.ip_restrictions``).

The tiers: *elevated* (traders who run algorithms or carry significant intraday margin) asks
for all three — the IP restriction only where the desk uses IP restrictions; a missing one is a
readiness gap, told to the managers at lower severity. *Standard* asks for none as a gap: App
Home shows what is recorded and what elevated would ask, as advice (a standard trader's live
automations still carry the hygiene flags: an order-size limit, a kill-switch test). An
automation is held to its owner's tier. A paper automation trades no money and is asked for
none (it has its own username at IBKR); one with Read-Only API on can't place orders, so it
is asked for no kill switch.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from bot.profile.models import AccountKind, Automation, RiskTier, TraderProfile


class Fence(StrEnum):
    ORDER_PRECAUTIONS = "order_precautions"
    KILL_SWITCH = "kill_switch"
    IP_RESTRICTION = "ip_restriction"


FENCE_TEXT = {
    Fence.ORDER_PRECAUTIONS: "no order precautions (size / value limits) recorded on the platforms traded, "
    "manual and mobile included",
    Fence.KILL_SWITCH: "no kill switch recorded (who can stop it, and how)",
    Fence.IP_RESTRICTION: "the account's IP restriction isn't recorded as covering this username",
}


def _tier(tier: str | None) -> RiskTier:
    return RiskTier.ELEVATED if tier == RiskTier.ELEVATED else RiskTier.STANDARD


def trader_missing(profile: TraderProfile | None, *, desk_ip_restrictions: bool) -> list[Fence]:
    """The fences a trader lacks on their tier (none asked of the standard tier, nor of a
    trader without a profile)."""
    if profile is None or _tier(profile.risk_tier) is not RiskTier.ELEVATED:
        return []
    missing = [] if profile.order_precautions else [Fence.ORDER_PRECAUTIONS]
    if desk_ip_restrictions and not profile.ip_restricted:
        missing.append(Fence.IP_RESTRICTION)
    return missing


def automation_missing(auto: Automation, owner: TraderProfile | None, *, desk_ip_restrictions: bool) -> list[Fence]:
    """The fences an automation lacks on its owner's tier (none for a paper automation, none
    asked of the standard tier; no kill switch of one with Read-Only API on, which can't
    place orders — its login still reaches the account, so the IP restriction is asked)."""
    tier = owner.risk_tier if owner is not None else None
    if auto.account_kind == AccountKind.PAPER or _tier(tier) is not RiskTier.ELEVATED:
        return []
    missing = [] if (auto.kill_switch_how or "").strip() or auto.read_only_api else [Fence.KILL_SWITCH]
    if desk_ip_restrictions and not auto.ip_restricted:
        missing.append(Fence.IP_RESTRICTION)
    return missing


def describe(missing: Sequence[Fence]) -> str:
    return "; ".join(FENCE_TEXT[f] for f in missing)


def tiers_text(desk_ip_restrictions: bool) -> str:
    """What the desk's tiers ask, in one sentence (App Home, the broker-setup modal)."""
    ip = ", and the account's IP restriction over each username" if desk_ip_restrictions else ""
    return (
        "The elevated tier asks for order precautions (size / value limits) on every platform traded, manual and "
        f"mobile included, a kill switch for each live automation{ip}; the standard tier asks for none, but they help."
    )
