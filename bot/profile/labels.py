"""Plain-text names for interfaces, products, second factors and flags (no Slack: the
domain, the weekly summary and the escalation text use them too)."""

from __future__ import annotations

from bot.dbtypes import lookup
from bot.profile.models import Interface, Product, RiskTier, SecondFactor

INTERFACE_LABEL = {
    Interface.TWS: "TWS",
    Interface.IB_GATEWAY: "IB Gateway",
    Interface.IBKR_DESKTOP: "IBKR Desktop",
    Interface.CLIENT_PORTAL: "Client Portal",
    Interface.IBKR_MOBILE: "IBKR Mobile",
    Interface.TWS_API: "TWS API",
    Interface.CP_WEB_API: "Client Portal Web API",
}

PRODUCT_LABEL = {
    Product.US_STOCKS: "US stocks",
    Product.OPTIONS: "Options",
    Product.FUTURES: "Futures",
    Product.FX: "FX",
    Product.BONDS: "Bonds",
    Product.CRYPTO: "Crypto",
    Product.NON_US: "Non-US markets",
}

# IBKR's names (docs/broker-facts.md §1).
FACTOR_LABEL = {
    SecondFactor.IB_KEY: "IB Key (IBKR Mobile)",
    SecondFactor.AUTHENTICATOR: "Mobile Authenticator app (TOTP)",
    SecondFactor.DSC_PLUS: "Digital Security Card+",
    SecondFactor.SECURITY_CODE_CARD: "Security Code Card",
    SecondFactor.SMS: "SMS",
}

FACTOR_HINT = {
    SecondFactor.IB_KEY: "IB Key is active on one phone only; a second phone is a move, not a backup.",
    SecondFactor.AUTHENTICATOR: "Google or Microsoft Authenticator, Authy, 1Password… on a device other than "
    "your primary phone.",
    SecondFactor.DSC_PLUS: "IBKR's physical card for accounts with equity of at least USD 1 million.",
    SecondFactor.SECURITY_CODE_CARD: "IBKR's older paper card, if you still have one active.",
    SecondFactor.SMS: "IBKR removes SMS login once another method is active: beside IB Key, what you have is "
    "most likely the phone number IBKR texts to move IB Key to a new phone.",
}

TIER_LABEL = {RiskTier.STANDARD: "standard", RiskTier.ELEVATED: "elevated"}


def interface_label(value: str | None) -> str:
    if not value:
        return "—"
    return lookup(INTERFACE_LABEL, Interface, value, unknown=value)


def factor_label(value: str) -> str:
    return lookup(FACTOR_LABEL, SecondFactor, value, unknown=value)


def products(csv: str) -> list[Product]:
    out: list[Product] = []
    for part in csv.split(","):
        try:
            out.append(Product(part))
        except ValueError:
            continue
    return out


def product_list(csv: str) -> str:
    names = [PRODUCT_LABEL[p] for p in products(csv)]
    return ", ".join(names) if names else "nothing"
