"""Pure rules of the readiness profile: the recovery-path rule, automation hygiene flags and
the week's first trading day. No database, no Slack: data in, verdicts out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from bot import calendar
from bot.profile.labels import FACTOR_LABEL
from bot.profile.models import GapKind, Interface, RiskTier, SecondFactor

# --- tiers ------------------------------------------------------------------------------

DEFAULT_DRILL_DAYS = {RiskTier.STANDARD: 30, RiskTier.ELEVATED: 14}
BACKUPS_REQUIRED = {RiskTier.STANDARD: 1, RiskTier.ELEVATED: 2}
DRILL_DAYS_RANGE = (1, 365)


@dataclass(frozen=True)
class TierPolicy:
    tier: RiskTier
    backups_required: int
    window: timedelta

    def describe(self) -> str:
        backups = "1 backup" if self.backups_required == 1 else f"{self.backups_required} independent backups"
        return f"{self.tier.value} tier: {backups}, verified every {self.window.days} days"


def tier_policy(tier: str, *, standard_days: int | None = None, elevated_days: int | None = None) -> TierPolicy:
    try:
        risk = RiskTier(tier)
    except ValueError:
        risk = RiskTier.STANDARD
    days = {
        RiskTier.STANDARD: standard_days or DEFAULT_DRILL_DAYS[RiskTier.STANDARD],
        RiskTier.ELEVATED: elevated_days or DEFAULT_DRILL_DAYS[RiskTier.ELEVATED],
    }[risk]
    return TierPolicy(tier=risk, backups_required=BACKUPS_REQUIRED[risk], window=timedelta(days=days))


# --- the recovery-path rule -------------------------------------------------------------


class RecoveryProblem(StrEnum):
    NO_BACKUP = "no_backup"  # nothing registered besides the primary method
    SMS_ONLY = "sms_only"  # SMS is the only backup (lower severity)
    TOO_FEW = "too_few"  # fewer independent backups than the tier requires
    UNVERIFIED = "unverified"  # no backup verified within the tier's window


PROBLEM_TEXT = {
    RecoveryProblem.NO_BACKUP: "no backup second factor besides the primary one",
    RecoveryProblem.SMS_ONLY: "SMS is the only backup (IBKR treats SMS as temporary)",
    RecoveryProblem.TOO_FEW: "fewer independent backups than the tier requires",
    RecoveryProblem.UNVERIFIED: "no backup verified within the tier's window",
}

PROBLEM_ICON = {
    RecoveryProblem.NO_BACKUP: "🆘",
    RecoveryProblem.SMS_ONLY: "⚠️",
    RecoveryProblem.TOO_FEW: "🆘",
    RecoveryProblem.UNVERIFIED: "🆘",
}


@dataclass(frozen=True)
class RecoveryStatus:
    """The verdict of the recovery-path rule for one trader at one instant."""

    policy: TierPolicy
    primary: SecondFactor
    backups: tuple[SecondFactor, ...]  # registered methods other than the primary
    verified: tuple[SecondFactor, ...]  # independent backups verified within the window
    problem: RecoveryProblem | None
    lapses_at: datetime | None  # when the most recent backup verification leaves the window

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def gap_kind(self) -> GapKind | None:
        if self.problem is None:
            return None
        return GapKind.SMS_ONLY if self.problem is RecoveryProblem.SMS_ONLY else GapKind.RECOVERY

    def describe(self) -> str:
        if self.problem is None:
            names = ", ".join(FACTOR_LABEL[m] for m in self.verified)
            return f"recovery path ok ({names})"
        if self.problem is RecoveryProblem.TOO_FEW:
            return (
                f"{len([b for b in self.backups if b is not SecondFactor.SMS])} independent backup(s), "
                f"the {self.policy.tier.value} tier requires {self.policy.backups_required}"
            )
        if self.problem is RecoveryProblem.UNVERIFIED:
            return f"no backup verified in the last {self.policy.window.days} days"
        return PROBLEM_TEXT[self.problem]


def recovery_status(
    *,
    primary: SecondFactor,
    verified_at: Mapping[SecondFactor, datetime | None],
    policy: TierPolicy,
    at: datetime,
) -> RecoveryStatus:
    """The recovery-path rule. ``verified_at`` holds every method registered with IBKR (the
    value: when it last proved to work, or None). A trader lacks a recovery path when:

    1. no method other than the primary is registered (``NO_BACKUP``);
    2. the only backup is SMS (``SMS_ONLY``, lower severity: IBKR removes SMS once another
       device is active, so it can't stand beside one — docs/broker-facts.md §1);
    3. fewer independent (non-SMS) backups than the tier requires (``TOO_FEW``; elevated: 2);
    4. no independent backup was verified within the tier's window before ``at`` (``UNVERIFIED``).
    """
    backups = tuple(m for m in SecondFactor if m in verified_at and m is not primary)
    strong = tuple(m for m in backups if m is not SecondFactor.SMS)
    stamps = [verified_at[m] for m in strong if verified_at[m] is not None]
    latest = max((s for s in stamps if s is not None), default=None)
    lapses_at = latest + policy.window if latest is not None else None
    verified = tuple(m for m in strong if (ts := verified_at[m]) is not None and ts + policy.window > at)
    problem: RecoveryProblem | None = None
    if not backups:
        problem = RecoveryProblem.NO_BACKUP
    elif not strong:
        problem = RecoveryProblem.SMS_ONLY
    elif len(strong) < policy.backups_required:
        problem = RecoveryProblem.TOO_FEW
    elif not verified:
        problem = RecoveryProblem.UNVERIFIED
    return RecoveryStatus(policy, primary, backups, verified, problem, lapses_at)


# --- automation hygiene -----------------------------------------------------------------

CREDENTIALS_DAYS = 90
KILL_SWITCH_DAYS = 30


class AutomationFlag(StrEnum):
    CREDENTIALS = "credentials"  # credentials not rotated in 90 days (or never recorded)
    NO_ORDER_LIMIT = "no_order_limit"
    KILL_SWITCH = "kill_switch"  # never tested, or not in 30 days
    SHARED_USERNAME = "shared_username"  # another automation logs in with the same username


FLAG_TEXT = {
    AutomationFlag.CREDENTIALS: f"credentials not rotated in {CREDENTIALS_DAYS} days",
    AutomationFlag.NO_ORDER_LIMIT: "no programmatic order-size limit",
    AutomationFlag.KILL_SWITCH: f"kill switch not tested in {KILL_SWITCH_DAYS} days",
    AutomationFlag.SHARED_USERNAME: "shares its broker username with another automation (one session per username)",
}


def automation_flags(
    *,
    order_size_limit: bool,
    kill_switch_tested_on: date | None,
    credentials_rotated_on: date | None,
    shared_username: bool,
    today: date,
) -> list[AutomationFlag]:
    """Hygiene flags. IBKR allows one brokerage session per username ("Interactive Brokers only
    allows access to one brokerage session at a time",
    https://ibkrcampus.com/ibkr-quant-news/tutorial-web-api-connect-to-brokerage-session/), so two
    automations sharing one username knock each other out; IBKR offers a second user for API use
    (http://ibkb.interactivebrokers.com/node/1004)."""
    flags: list[AutomationFlag] = []
    if credentials_rotated_on is None or (today - credentials_rotated_on).days > CREDENTIALS_DAYS:
        flags.append(AutomationFlag.CREDENTIALS)
    if not order_size_limit:
        flags.append(AutomationFlag.NO_ORDER_LIMIT)
    if kill_switch_tested_on is None or (today - kill_switch_tested_on).days > KILL_SWITCH_DAYS:
        flags.append(AutomationFlag.KILL_SWITCH)
    if shared_username:
        flags.append(AutomationFlag.SHARED_USERNAME)
    return flags


def normalized_username(username: str) -> str:
    return username.strip().lower()


# --- the Monday re-login guard ------------------------------------------------------------

# TWS and IBKR Desktop set to auto-restart "will require manual authentication once a week, the
# first time you log into the platform after the security tokens have been invalidated, a security
# process that occurs each Sunday at 1:00 am ET" (https://ibkrguides.com/traderworkstation/
# auto-restart-considerations.htm; the same sentence on https://ibkrguides.com/ibkrdesktop/login.htm).
# IBC restarts TWS and IB Gateway alike and "cannot automatically complete your login" with a
# second-factor device (IbcAlpha/IBC README), so IB Gateway is covered too; the TWS API runs
# through TWS or IB Gateway (https://interactivebrokers.github.io/tws-api/initial_setup.html).
WEEKLY_LOGIN_INTERFACES = frozenset({Interface.TWS, Interface.IB_GATEWAY, Interface.IBKR_DESKTOP, Interface.TWS_API})


def first_trading_day_of_week(day: date) -> bool:
    """True on the week's first NYSE trading day: Monday, or Tuesday after a Monday holiday."""
    if not calendar.is_trading_day(day):
        return False
    monday = day - timedelta(days=day.weekday())
    return not calendar.trading_days(monday, day - timedelta(days=1))


def needs_weekly_login(interfaces: Iterable[str | None]) -> bool:
    return any(i in WEEKLY_LOGIN_INTERFACES for i in interfaces if i)
