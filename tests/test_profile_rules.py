"""The readiness profile's pure rules: the recovery-path rule for every tier and method
combination, the week's first trading day, automation hygiene flags, and TOTP code checks
(RFC 6238 §5.2: ±1 step, no second use)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pyotp
import pytest

from bot.profile import drill
from bot.profile.drill import CodeOutcome
from bot.profile.models import GapKind, RiskTier, SecondFactor
from bot.profile.policy import (
    AutomationFlag,
    RecoveryProblem,
    automation_flags,
    first_trading_day_of_week,
    needs_weekly_login,
    recovery_status,
    tier_policy,
)

AT = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
BACKUPS = (SecondFactor.AUTHENTICATOR, SecondFactor.DSC_PLUS, SecondFactor.SMS)


def expected(tier: RiskTier, backups: frozenset[SecondFactor], fresh: bool) -> RecoveryProblem | None:
    """The rule written out independently of the implementation."""
    strong = backups - {SecondFactor.SMS}
    if not backups:
        return RecoveryProblem.NO_BACKUP
    if not strong:
        return RecoveryProblem.SMS_ONLY
    if len(strong) < (2 if tier is RiskTier.ELEVATED else 1):
        return RecoveryProblem.TOO_FEW
    return None if fresh else RecoveryProblem.UNVERIFIED


COMBINATIONS = [
    (tier, frozenset(combo), fresh)
    for tier in RiskTier
    for n in range(len(BACKUPS) + 1)
    for combo in itertools.combinations(BACKUPS, n)
    for fresh in (True, False)
]


@pytest.mark.parametrize(("tier", "backups", "fresh"), COMBINATIONS)
def test_recovery_path_rule_for_each_tier_and_method_combination(
    tier: RiskTier, backups: frozenset[SecondFactor], fresh: bool
) -> None:
    policy = tier_policy(tier)
    age = timedelta(days=1) if fresh else policy.window + timedelta(days=1)
    verified = {SecondFactor.IB_KEY: AT} | {m: AT - age for m in backups}
    status = recovery_status(primary=SecondFactor.IB_KEY, verified_at=verified, policy=policy, at=AT)
    assert status.problem == expected(tier, backups, fresh)
    assert status.backups == tuple(m for m in SecondFactor if m in backups)
    if status.problem is RecoveryProblem.SMS_ONLY:
        assert status.gap_kind is GapKind.SMS_ONLY  # the lower-severity escalation
    elif status.problem is not None:
        assert status.gap_kind is GapKind.RECOVERY


def test_the_tier_windows_are_14_and_30_days_and_a_desk_can_change_them() -> None:
    standard, elevated = tier_policy(RiskTier.STANDARD), tier_policy(RiskTier.ELEVATED)
    assert (standard.backups_required, standard.window) == (1, timedelta(days=30))
    assert (elevated.backups_required, elevated.window) == (2, timedelta(days=14))
    assert tier_policy(RiskTier.ELEVATED, elevated_days=7).window == timedelta(days=7)
    assert tier_policy("nonsense").tier is RiskTier.STANDARD


def test_a_backup_verified_exactly_one_window_ago_has_lapsed() -> None:
    policy = tier_policy(RiskTier.STANDARD)
    verified = {SecondFactor.IB_KEY: None, SecondFactor.DSC_PLUS: AT - policy.window}
    status = recovery_status(primary=SecondFactor.IB_KEY, verified_at=verified, policy=policy, at=AT)
    assert status.problem is RecoveryProblem.UNVERIFIED
    assert status.lapses_at == AT
    just_in = {SecondFactor.IB_KEY: None, SecondFactor.DSC_PLUS: AT - policy.window + timedelta(minutes=1)}
    assert recovery_status(primary=SecondFactor.IB_KEY, verified_at=just_in, policy=policy, at=AT).ok


def test_the_primary_method_is_never_its_own_backup() -> None:
    policy = tier_policy(RiskTier.STANDARD)
    only_primary = {SecondFactor.DSC_PLUS: AT}
    status = recovery_status(primary=SecondFactor.DSC_PLUS, verified_at=only_primary, policy=policy, at=AT)
    assert status.problem is RecoveryProblem.NO_BACKUP
    with_ib_key = {SecondFactor.DSC_PLUS: AT, SecondFactor.IB_KEY: AT}
    assert recovery_status(primary=SecondFactor.DSC_PLUS, verified_at=with_ib_key, policy=policy, at=AT).ok


@pytest.mark.parametrize(
    ("day", "first"),
    [
        (date(2026, 11, 30), True),  # a Monday
        (date(2026, 12, 1), False),  # the Tuesday after it
        (date(2026, 5, 25), False),  # Memorial Day 2026: closed
        (date(2026, 5, 26), True),  # the Tuesday after Memorial Day
        (date(2026, 5, 27), False),
        (date(2026, 9, 8), True),  # after Labor Day (Mon 7 Sep 2026)
        (date(2026, 11, 28), False),  # a Saturday
    ],
)
def test_first_trading_day_of_the_week(day: date, first: bool) -> None:
    assert first_trading_day_of_week(day) is first


def test_weekly_login_interfaces() -> None:
    assert needs_weekly_login(["tws", None])
    assert needs_weekly_login(["client_portal", "ib_gateway"])
    assert needs_weekly_login(["ibkr_desktop"])
    assert needs_weekly_login(["tws_api"])  # runs through TWS or IB Gateway
    assert not needs_weekly_login(["client_portal", "ibkr_mobile", "cp_web_api", None])


def test_automation_flags() -> None:
    today = date(2026, 11, 25)
    fine = automation_flags(
        order_size_limit=True,
        kill_switch_tested_on=today - timedelta(days=30),
        credentials_rotated_on=today - timedelta(days=90),
        shared_username=False,
        today=today,
    )
    assert fine == []
    bad = automation_flags(
        order_size_limit=False,
        kill_switch_tested_on=today - timedelta(days=31),
        credentials_rotated_on=today - timedelta(days=91),
        shared_username=True,
        today=today,
    )
    assert bad == [
        AutomationFlag.CREDENTIALS,
        AutomationFlag.NO_ORDER_LIMIT,
        AutomationFlag.KILL_SWITCH,
        AutomationFlag.SHARED_USERNAME,
    ]
    never = automation_flags(
        order_size_limit=True,
        kill_switch_tested_on=None,
        credentials_rotated_on=None,
        shared_username=False,
        today=today,
    )
    assert never == [AutomationFlag.CREDENTIALS, AutomationFlag.KILL_SWITCH]


# --- TOTP -------------------------------------------------------------------------------------

SECRET = pyotp.random_base32()
NOW = datetime(2026, 11, 25, 13, 5, 10, tzinfo=UTC)


def code_at(offset_steps: int, at: datetime = NOW) -> str:
    return pyotp.TOTP(SECRET).at(at, counter_offset=offset_steps)


def test_current_code_and_one_step_either_side_are_accepted() -> None:
    step = pyotp.TOTP(SECRET).timecode(NOW)
    for offset in (-1, 0, 1):
        assert drill.check_code(SECRET, code_at(offset), now=NOW, last_step=None) == (CodeOutcome.OK, step + offset)


def test_a_code_two_steps_old_is_too_old_and_a_random_one_wrong() -> None:
    assert drill.check_code(SECRET, code_at(-2), now=NOW, last_step=None)[0] is CodeOutcome.EXPIRED
    assert drill.check_code(SECRET, code_at(-12), now=NOW, last_step=None)[0] is CodeOutcome.EXPIRED
    wrong = next(c for c in ("000000", "111111", "222222") if c not in {code_at(o) for o in range(-40, 3)})
    assert drill.check_code(SECRET, wrong, now=NOW, last_step=None)[0] is CodeOutcome.WRONG


def test_no_code_at_or_before_the_last_accepted_step_is_accepted_again() -> None:
    step = pyotp.TOTP(SECRET).timecode(NOW)
    outcome, accepted = drill.check_code(SECRET, code_at(0), now=NOW, last_step=None)
    assert (outcome, accepted) == (CodeOutcome.OK, step)
    assert drill.check_code(SECRET, code_at(0), now=NOW, last_step=step)[0] is CodeOutcome.REPLAYED
    assert drill.check_code(SECRET, code_at(-1), now=NOW, last_step=step)[0] is CodeOutcome.REPLAYED
    assert drill.check_code(SECRET, code_at(1), now=NOW, last_step=step) == (CodeOutcome.OK, step + 1)
    # Accepting the next step's code moves the bar: now the current code is spent too.
    assert drill.check_code(SECRET, code_at(0), now=NOW, last_step=step + 1)[0] is CodeOutcome.REPLAYED


def test_codes_are_six_digits_and_spaces_are_forgiven() -> None:
    assert drill.normalize_code(" 123 456 ") == "123456"
    for bad in ("12345", "1234567", "12345a", "١٢٣٤٥٦", ""):
        assert drill.normalize_code(bad) is None


def test_the_provisioning_uri_names_the_issuer_and_the_trader() -> None:
    uri = drill.provisioning_uri(SECRET, "alice")
    assert uri.startswith("otpauth://totp/IB%20Preflight:alice?")
    assert f"secret={SECRET}" in uri and "issuer=IB%20Preflight" in uri
    png = drill.qr_png(uri)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
