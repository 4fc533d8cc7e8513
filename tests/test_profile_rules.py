"""The readiness profile's pure rules: the recovery-path rule for every tier and method
combination (every tier can be met without a Digital Security Card+; a drill pass is a separate
fact from an IBKR method's verification), the week's first trading day, automation hygiene
flags (a shared username is no flag by itself, a competing session is), and TOTP code checks
(RFC 6238 §5.2: ±1 step, no second use)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pyotp
import pytest

from bot.checklist.models import Platform
from bot.profile import drill
from bot.profile.drill import CodeOutcome
from bot.profile.labels import interface_label
from bot.profile.models import INTERFACES, GapKind, RiskTier, SecondFactor
from bot.profile.policy import (
    FLAG_TEXT,
    AutomationFlag,
    RecoveryProblem,
    SessionUse,
    attainable_backups,
    automation_flags,
    competing_sessions,
    first_trading_day_of_week,
    needs_weekly_login,
    recovery_status,
    tier_policy,
)
from bot.profile.saves import validate_interfaces

AT = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
BACKUPS = (SecondFactor.AUTHENTICATOR, SecondFactor.DSC_PLUS, SecondFactor.SECURITY_CODE_CARD, SecondFactor.SMS)


def expected(tier: RiskTier, backups: frozenset[SecondFactor], fresh: bool, eligible: bool) -> RecoveryProblem | None:
    """The rule written out independently of the implementation (the primary is IB Key)."""
    strong = backups - {SecondFactor.SMS}
    if not backups:
        return RecoveryProblem.NO_BACKUP
    if not strong:
        return RecoveryProblem.SMS_ONLY
    # What this trader can hold besides IB Key: an authenticator app always; a DSC+ when the
    # account qualifies (or one is registered); a Security Code Card only when registered.
    can_hold = {SecondFactor.AUTHENTICATOR} | (strong & {SecondFactor.DSC_PLUS, SecondFactor.SECURITY_CODE_CARD})
    if eligible:
        can_hold.add(SecondFactor.DSC_PLUS)
    if len(strong) < min(2 if tier is RiskTier.ELEVATED else 1, len(can_hold)):
        return RecoveryProblem.TOO_FEW
    return None if fresh else RecoveryProblem.UNVERIFIED


COMBINATIONS = [
    (tier, frozenset(combo), fresh, eligible)
    for tier in RiskTier
    for n in range(len(BACKUPS) + 1)
    for combo in itertools.combinations(BACKUPS, n)
    for fresh in (True, False)
    for eligible in (True, False)
]


@pytest.mark.parametrize(("tier", "backups", "fresh", "eligible"), COMBINATIONS)
def test_recovery_path_rule_for_each_tier_and_method_combination(
    tier: RiskTier, backups: frozenset[SecondFactor], fresh: bool, eligible: bool
) -> None:
    policy = tier_policy(tier)
    age = timedelta(days=1) if fresh else policy.window + timedelta(days=1)
    verified = {SecondFactor.IB_KEY: AT} | {m: AT - age for m in backups}
    status = recovery_status(
        primary=SecondFactor.IB_KEY, verified_at=verified, policy=policy, at=AT, dsc_plus_eligible=eligible
    )
    assert status.problem == expected(tier, backups, fresh, eligible)
    assert status.backups == tuple(m for m in SecondFactor if m in backups)
    if status.problem is RecoveryProblem.SMS_ONLY:
        assert status.gap_kind is GapKind.SMS_ONLY  # the lower-severity escalation
    elif status.problem is not None:
        assert status.gap_kind is GapKind.RECOVERY


@pytest.mark.parametrize("tier", list(RiskTier))
@pytest.mark.parametrize("primary", [SecondFactor.IB_KEY, SecondFactor.AUTHENTICATOR])
def test_every_tier_can_be_met_by_a_trader_without_a_digital_security_card(
    tier: RiskTier, primary: SecondFactor
) -> None:
    """Without a DSC+ (account equity under USD 1 million) and without a legacy card, a trader
    can hold IB Key and a Mobile Authenticator app: that meets every tier."""
    policy = tier_policy(tier)
    other = SecondFactor.AUTHENTICATOR if primary is SecondFactor.IB_KEY else SecondFactor.IB_KEY
    verified = {primary: AT, other: AT - timedelta(days=1)}
    status = recovery_status(primary=primary, verified_at=verified, policy=policy, at=AT, dsc_plus_eligible=False)
    assert status.ok, status.describe()
    assert status.required == 1
    # With nothing but the primary registered, they are told to add a backup — one they can get.
    assert recovery_status(primary=primary, verified_at={primary: AT}, policy=policy, at=AT).problem is (
        RecoveryProblem.NO_BACKUP
    )
    assert attainable_backups(primary=primary, registered=[primary], dsc_plus_eligible=False) == (other,)


def test_the_elevated_tier_asks_two_backups_of_a_trader_who_can_hold_them() -> None:
    policy = tier_policy(RiskTier.ELEVATED)
    two = {SecondFactor.IB_KEY: AT, SecondFactor.AUTHENTICATOR: AT}
    eligible = recovery_status(
        primary=SecondFactor.IB_KEY, verified_at=two, policy=policy, at=AT, dsc_plus_eligible=True
    )
    assert (eligible.problem, eligible.required) == (RecoveryProblem.TOO_FEW, 2)
    assert eligible.describe() == "1 independent backup(s), the elevated tier requires 2"
    with_card = two | {SecondFactor.DSC_PLUS: None}
    assert recovery_status(primary=SecondFactor.IB_KEY, verified_at=with_card, policy=policy, at=AT).ok
    # A registered DSC+ shows the account qualifies; so does a legacy Security Code Card count.
    assert (
        recovery_status(
            primary=SecondFactor.IB_KEY,
            verified_at={SecondFactor.IB_KEY: AT, SecondFactor.DSC_PLUS: AT},
            policy=policy,
            at=AT,
        ).problem
        is RecoveryProblem.TOO_FEW
    )
    card = two | {SecondFactor.SECURITY_CODE_CARD: None}
    assert recovery_status(primary=SecondFactor.IB_KEY, verified_at=card, policy=policy, at=AT).ok
    assert "1 without a Digital Security Card+" in policy.describe()


def test_a_drill_pass_is_a_separate_fact_from_an_ibkr_methods_verification() -> None:
    policy = tier_policy(RiskTier.STANDARD)
    stale = AT - policy.window - timedelta(days=1)
    registered = {SecondFactor.IB_KEY: AT, SecondFactor.AUTHENTICATOR: stale}
    drilled = AT - timedelta(days=2)
    status = recovery_status(
        primary=SecondFactor.IB_KEY, verified_at=registered, policy=policy, at=AT, drilled_at=drilled
    )
    # The backup device produced IB Preflight's code recently: the rule is met, but the IBKR
    # method itself is not marked verified by it.
    assert status.ok and status.verified == () and status.drilled_at == drilled
    assert status.describe() == "recovery path ok (backup device drilled)"
    assert status.lapses_at == drilled + policy.window
    # A drill too long ago doesn't count.
    old = recovery_status(primary=SecondFactor.IB_KEY, verified_at=registered, policy=policy, at=AT, drilled_at=stale)
    assert (old.problem, old.drilled_at) == (RecoveryProblem.UNVERIFIED, None)
    # Nor does a drill while no Mobile Authenticator app is a registered backup: the drill is
    # done on that backup device, and a card or an SMS number is not it.
    others: list[dict[SecondFactor, datetime | None]] = [{SecondFactor.DSC_PLUS: stale}, {SecondFactor.SMS: None}]
    for other in others:
        status = recovery_status(
            primary=SecondFactor.IB_KEY,
            verified_at={SecondFactor.IB_KEY: AT} | other,
            policy=policy,
            at=AT,
            drilled_at=drilled,
        )
        assert status.drilled_at is None and not status.ok
    # Both facts: the login-verified method is named, and the drill too.
    both = recovery_status(
        primary=SecondFactor.IB_KEY,
        verified_at={SecondFactor.IB_KEY: AT, SecondFactor.AUTHENTICATOR: AT - timedelta(days=3)},
        policy=policy,
        at=AT,
        drilled_at=drilled,
    )
    assert both.describe() == "recovery path ok (Mobile Authenticator app (TOTP); backup device drilled)"


def test_sms_as_the_only_backup_is_described_as_what_it_most_likely_is() -> None:
    policy = tier_policy(RiskTier.STANDARD)
    status = recovery_status(
        primary=SecondFactor.IB_KEY, verified_at={SecondFactor.IB_KEY: AT, SecondFactor.SMS: AT}, policy=policy, at=AT
    )
    assert status.problem is RecoveryProblem.SMS_ONLY
    assert "phone number IBKR texts to move IB Key" in status.describe()


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
        shared_with_person=False,
        competing_session=False,
        today=today,
    )
    assert fine == []
    bad = automation_flags(
        order_size_limit=False,
        kill_switch_tested_on=today - timedelta(days=31),
        credentials_rotated_on=today - timedelta(days=91),
        shared_with_person=True,
        competing_session=True,
        today=today,
    )
    assert bad == [
        AutomationFlag.CREDENTIALS,
        AutomationFlag.NO_ORDER_LIMIT,
        AutomationFlag.KILL_SWITCH,
        AutomationFlag.SHARED_WITH_PERSON,
        AutomationFlag.COMPETING_SESSION,
    ]
    never = automation_flags(
        order_size_limit=True,
        kill_switch_tested_on=None,
        credentials_rotated_on=None,
        shared_with_person=False,
        competing_session=False,
        today=today,
    )
    assert never == [AutomationFlag.CREDENTIALS, AutomationFlag.KILL_SWITCH]
    assert "API clients sharing one TWS / IB Gateway session don't" in FLAG_TEXT[AutomationFlag.COMPETING_SESSION]


def use(automation_id: int, username: str, interface: str = "tws_api", host: str = "") -> SessionUse:
    return SessionUse(automation_id, username, interface, host)


def test_a_shared_username_competes_only_across_brokerage_sessions() -> None:
    """One TWS / IB Gateway session serves up to 32 API clients with different client ids: two
    automations on one username through the same gateway share its session. On different
    gateways, or through different interfaces, they are two sessions and knock each other out;
    an unrecorded gateway can't be shown to be shared."""
    assert competing_sessions([use(1, "algo", host="gw1:4001"), use(2, "ALGO ", host="GW1:4001")]) == set()
    assert competing_sessions([use(1, "algo", host="gw1:4001"), use(2, "algo", host="gw2:4001")]) == {1, 2}
    assert competing_sessions([use(1, "algo", host="gw1:4001"), use(2, "algo")]) == {1, 2}
    assert competing_sessions([use(1, "algo"), use(2, "algo")]) == {1, 2}
    assert competing_sessions([use(1, "algo", host="gw1"), use(2, "algo", "cp_web_api", host="gw1")]) == {1, 2}
    assert competing_sessions([use(1, "algo"), use(2, "other"), use(3, "third", host="gw1")]) == set()
    three = [use(1, "algo", host="gw1"), use(2, "algo", host="gw1"), use(3, "algo", host="gw2")]
    assert competing_sessions(three) == {1, 2, 3}


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


def test_the_profile_offers_the_checklists_platforms_but_not_the_legacy_api() -> None:
    """One list of IBKR's platforms (checklist.models.Platform): the profile takes every current
    one and refuses the "api" that only answers recorded before the API split carry."""
    assert {i.value for i in INTERFACES} == {p.value for p in Platform} - {"api"}
    assert validate_interfaces("tws_api", "cp_web_api") == {}
    assert set(validate_interfaces("api", "api")) == {"primary_interface", "secondary_interface"}
    assert interface_label("api") == "api"  # recorded by another version: shown as stored, no crash
