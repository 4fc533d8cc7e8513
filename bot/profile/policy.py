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
    backups_required: int  # the tier's aim; a trader is held to what IBKR lets them hold (``attainable_backups``)
    window: timedelta

    def describe(self) -> str:
        if self.backups_required == 1:
            backups = "1 backup"
        else:
            backups = (
                f"{self.backups_required} independent backups (1 without a Digital Security Card+ "
                "or other physical card)"
            )
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


# --- what a trader can hold ---------------------------------------------------------------

# Anyone can activate IB Key (IBKR Mobile) and a Mobile Authenticator app. That a Mobile
# Authenticator stays active beside IB Key is our reading of M2FS ("maintain more than one active
# security device at the same time"); IBKR's M2FS pages name only IBKR Mobile and physical devices
# (docs/broker-facts.md §1).
ANYONE_CAN_ADD = frozenset({SecondFactor.IB_KEY, SecondFactor.AUTHENTICATOR})


def attainable_backups(
    *, primary: SecondFactor, registered: Iterable[SecondFactor], dsc_plus_eligible: bool
) -> tuple[SecondFactor, ...]:
    """The independent (non-SMS) methods other than the primary that this trader can hold at
    IBKR: IB Key and a Mobile Authenticator app for anyone; a Digital Security Card+ only for
    accounts with equity of at least USD 1 million ("Accounts with equity of at least USD 1 million
    (or equivalent) are eligible for a Digital Security Card+",
    https://ibkrguides.com/advisorportal/sls/secure-login-with-dsc+.htm), declared by the desk or
    evident from a registered one; a Security Code Card only when registered (IBKR still lists it,
    ranked lowest; we found no page offering new ones)."""
    can = set(ANYONE_CAN_ADD) | set(registered)
    if dsc_plus_eligible:
        can.add(SecondFactor.DSC_PLUS)
    return tuple(m for m in SecondFactor if m in can and m is not primary and m is not SecondFactor.SMS)


# --- the recovery-path rule -------------------------------------------------------------


class RecoveryProblem(StrEnum):
    NO_BACKUP = "no_backup"  # nothing registered besides the primary method
    SMS_ONLY = "sms_only"  # SMS is the only backup (lower severity)
    TOO_FEW = "too_few"  # fewer independent backups than the tier requires of this trader
    UNVERIFIED = "unverified"  # no backup verified (or drilled) within the tier's window


# Beside another method, "SMS" can't be a second factor: IBKR removes SMS login "once you activate one
# of the digital or physical security devices" (https://www.interactivebrokers.com/en/index.php?f=56685).
# A trader who still answers "SMS" most likely means the phone number on the account, which IBKR texts
# to move IB Key to a new phone (KB3073, https://ibkb.interactivebrokers.com/ru/tag/account-security?page=5).
PROBLEM_TEXT = {
    RecoveryProblem.NO_BACKUP: "no backup second factor besides the primary one",
    RecoveryProblem.SMS_ONLY: "only SMS as backup: that is most likely the phone number IBKR texts to move IB Key "
    "to a new phone, not a second login method",
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
    verified: tuple[SecondFactor, ...]  # independent backups that worked for an IBKR login within the window
    problem: RecoveryProblem | None
    lapses_at: datetime | None  # when the most recent backup verification (or drill) leaves the window
    required: int = 1  # independent backups required of this trader: the tier's aim, or all they can hold
    drilled_at: datetime | None = None  # a drill pass within the window that counts (a separate fact)

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
            evidence = [FACTOR_LABEL[m] for m in self.verified]
            if self.drilled_at is not None:
                evidence.append("backup device drilled")
            return f"recovery path ok ({'; '.join(evidence)})"
        if self.problem is RecoveryProblem.TOO_FEW:
            return (
                f"{len([b for b in self.backups if b is not SecondFactor.SMS])} independent backup(s), "
                f"the {self.policy.tier.value} tier requires {self.required}"
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
    drilled_at: datetime | None = None,
    dsc_plus_eligible: bool = False,
) -> RecoveryStatus:
    """The recovery-path rule. ``verified_at`` holds every method registered with IBKR (the
    value: when it last worked for an IBKR login, or None); ``drilled_at`` the trader's last drill
    pass (their backup device produced IB Preflight's own code — a separate fact, never an IBKR
    method's verification). A trader lacks a recovery path when:

    1. no method other than the primary is registered (``NO_BACKUP``);
    2. the only backup is SMS (``SMS_ONLY``, lower severity: IBKR removes SMS once another
       device is active, so it can't stand beside one — docs/broker-facts.md §1);
    3. fewer independent (non-SMS) backups than required (``TOO_FEW``): the tier's aim (elevated:
       2), capped at what IBKR lets this trader hold (``attainable_backups``), so every tier can be
       met without a Digital Security Card+;
    4. no independent backup worked for an IBKR login within the tier's window before ``at``, and
       no drill passed within it while a Mobile Authenticator app is a registered backup (the drill
       is done on that backup device) (``UNVERIFIED``).
    """
    backups = tuple(m for m in SecondFactor if m in verified_at and m is not primary)
    strong = tuple(m for m in backups if m is not SecondFactor.SMS)
    eligible = dsc_plus_eligible or SecondFactor.DSC_PLUS in verified_at
    attainable = attainable_backups(primary=primary, registered=verified_at, dsc_plus_eligible=eligible)
    required = min(policy.backups_required, len(attainable))
    drill = drilled_at if SecondFactor.AUTHENTICATOR in strong else None
    stamps = [verified_at[m] for m in strong if verified_at[m] is not None] + ([drill] if drill else [])
    latest = max((s for s in stamps if s is not None), default=None)
    lapses_at = latest + policy.window if latest is not None else None
    verified = tuple(m for m in strong if (ts := verified_at[m]) is not None and ts + policy.window > at)
    drilled = drill if drill is not None and drill + policy.window > at else None
    problem: RecoveryProblem | None = None
    if not backups:
        problem = RecoveryProblem.NO_BACKUP
    elif not strong:
        problem = RecoveryProblem.SMS_ONLY
    elif len(strong) < required:
        problem = RecoveryProblem.TOO_FEW
    elif not verified and drilled is None:
        problem = RecoveryProblem.UNVERIFIED
    return RecoveryStatus(policy, primary, backups, verified, problem, lapses_at, required, drilled)


# --- automation hygiene -----------------------------------------------------------------

CREDENTIALS_DAYS = 90
KILL_SWITCH_DAYS = 30


class AutomationFlag(StrEnum):
    CREDENTIALS = "credentials"  # credentials not rotated in 90 days (or never recorded)
    NO_ORDER_LIMIT = "no_order_limit"
    KILL_SWITCH = "kill_switch"  # never tested, or not in 30 days
    SHARED_WITH_PERSON = "shared_with_person"  # a person also logs in with its username
    COMPETING_SESSION = "competing_session"  # another automation's session on the same username
    BOT_HOLDS_SECOND_FACTOR = "bot_holds_second_factor"  # the bot / its gateway keeper holds the IBKR 2FA secret


FLAG_TEXT = {
    AutomationFlag.CREDENTIALS: f"credentials not rotated in {CREDENTIALS_DAYS} days",
    AutomationFlag.NO_ORDER_LIMIT: "no programmatic order-size limit",
    AutomationFlag.KILL_SWITCH: f"kill switch not tested in {KILL_SWITCH_DAYS} days",
    AutomationFlag.SHARED_WITH_PERSON: "a person also logs in with its username (one brokerage session per "
    "username: each login knocks the other out)",
    AutomationFlag.COMPETING_SESSION: "another automation logs in with the same username through a different "
    "or unrecorded gateway (their sessions compete; API clients sharing one TWS / IB Gateway session don't)",
    AutomationFlag.BOT_HOLDS_SECOND_FACTOR: "the bot or its gateway keeper holds the username's IBKR second-factor "
    "secret: whoever runs it can log in without a person, which defeats both the second factor and the backup",
}


def automation_flags(
    *,
    order_size_limit: bool,
    kill_switch_tested_on: date | None,
    credentials_rotated_on: date | None,
    shared_with_person: bool,
    competing_session: bool,
    today: date,
    paper: bool = False,
    bot_holds_second_factor: bool = False,
    read_only: bool = False,
) -> list[AutomationFlag]:
    """Hygiene flags. IBKR allows one brokerage session per username ("Interactive Brokers only
    allows access to one brokerage session at a time",
    https://ibkrcampus.com/ibkr-quant-news/tutorial-web-api-connect-to-brokerage-session/): a person
    and an automation, or two automations on different gateways, logging in with one username
    knock each other out. One TWS / IB Gateway session, though, serves several API clients ("each
    TWS session can receive up to 32 different client applications simultaneously",
    https://interactivebrokers.github.io/tws-api/connection.html), so a shared username alone is
    no flag. IBKR offers a second user for API use (http://ibkb.interactivebrokers.com/node/1004).

    A ``paper`` automation trades no money: no order-size limit or kill-switch test is asked of
    it (its sessions still compete, and its credentials still get rotated); nor of a ``read_only``
    one (Read-Only API on: "API programs cannot submit, modify or cancel orders", IbcAlpha/IBC
    config.ini — docs/broker-facts.md §6). A second-factor
    secret held by the bot (IBeam's 2FA handlers can hand it the codes,
    https://github.com/Voyz/ibeam/wiki/Two-Factor-Authentication) is flagged on any account."""
    flags: list[AutomationFlag] = []
    if credentials_rotated_on is None or (today - credentials_rotated_on).days > CREDENTIALS_DAYS:
        flags.append(AutomationFlag.CREDENTIALS)
    trades = not paper and not read_only
    if not order_size_limit and trades:
        flags.append(AutomationFlag.NO_ORDER_LIMIT)
    if trades and (kill_switch_tested_on is None or (today - kill_switch_tested_on).days > KILL_SWITCH_DAYS):
        flags.append(AutomationFlag.KILL_SWITCH)
    if shared_with_person:
        flags.append(AutomationFlag.SHARED_WITH_PERSON)
    if competing_session:
        flags.append(AutomationFlag.COMPETING_SESSION)
    if bot_holds_second_factor:
        flags.append(AutomationFlag.BOT_HOLDS_SECOND_FACTOR)
    return flags


def normalized_username(username: str) -> str:
    return username.strip().lower()


@dataclass(frozen=True)
class SessionUse:
    """How one automation logs in: the username, the interface and the gateway it goes through."""

    automation_id: int
    username: str
    interface: str
    session_host: str

    def session(self) -> tuple[str, str] | None:
        """The brokerage session it uses, or None when the gateway isn't recorded."""
        host = self.session_host.strip().lower()
        return (self.interface, host) if host else None


def competing_sessions(uses: Iterable[SessionUse]) -> set[int]:
    """The automations that share a username with another automation on a different brokerage
    session. Two automations are on one session only when both record the same gateway for the
    same interface (API clients of one TWS / IB Gateway, with different client ids); an unrecorded
    gateway can't be shown to be shared, so it counts as a different one."""
    by_username: dict[str, list[SessionUse]] = {}
    for use in uses:
        by_username.setdefault(normalized_username(use.username), []).append(use)
    out: set[int] = set()
    for group in by_username.values():
        for a in group:
            for b in group:
                if a.automation_id != b.automation_id and (a.session() is None or a.session() != b.session()):
                    out.update((a.automation_id, b.automation_id))
    return out


# --- the Monday re-login guard ------------------------------------------------------------

# TWS and IBKR Desktop set to auto-restart "will require manual authentication once a week, the
# first time you log into the platform after the security tokens have been invalidated, a security
# process that occurs each Sunday at 1:00 am ET" (https://ibkrguides.com/traderworkstation/
# auto-restart-considerations.htm; the same sentence on https://ibkrguides.com/ibkrdesktop/login.htm).
# IB Gateway is an inference, not IBKR's word: we found no Gateway page saying so, but "From the
# perspective of an API application, IB Gateway and TWS are identical" and "Both TWS and IBGW were
# designed to be restarted daily" (https://interactivebrokers.github.io/tws-api/initial_setup.html),
# and IBC restarts both alike and "cannot automatically complete your login" with a second-factor
# device (IbcAlpha/IBC README). The TWS API runs through TWS or IB Gateway, so it is covered too.
WEEKLY_LOGIN_INTERFACES = frozenset({Interface.TWS, Interface.IB_GATEWAY, Interface.IBKR_DESKTOP, Interface.TWS_API})


def first_trading_day_of_week(day: date) -> bool:
    """True on the week's first NYSE trading day: Monday, or Tuesday after a Monday holiday."""
    if not calendar.is_trading_day(day):
        return False
    monday = day - timedelta(days=day.weekday())
    return not calendar.trading_days(monday, day - timedelta(days=1))


def needs_weekly_login(interfaces: Iterable[str | None]) -> bool:
    return any(i in WEEKLY_LOGIN_INTERFACES for i in interfaces if i)
