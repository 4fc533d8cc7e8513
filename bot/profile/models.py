"""Readiness profiles, second factors, the TOTP drill, automations and readiness gaps."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.checklist.models import LEGACY_PLATFORMS, Platform
from bot.dbtypes import UTCDateTime, utcnow

# The profile's interfaces are the checklist's platforms: one list of IBKR's platforms and APIs by
# IBKR's own names (docs/broker-facts.md §5), less the ones only old answers carry.
Interface = Platform
INTERFACES: tuple[Platform, ...] = tuple(p for p in Platform if p not in LEGACY_PLATFORMS)


class Product(StrEnum):
    """What a trader expects to trade (or see quotes for) on a platform."""

    US_STOCKS = "us_stocks"
    OPTIONS = "options"
    FUTURES = "futures"
    FX = "fx"
    BONDS = "bonds"
    CRYPTO = "crypto"
    NON_US = "non_us"


class SecondFactor(StrEnum):
    """Second-factor methods of IBKR's Secure Login System (docs/broker-facts.md §1).

    - IB Key lives in IBKR Mobile and "can only be active on a single smartphone"; moving it to
      another phone is a migration that removes it from the first
      (https://ibkb.interactivebrokers.com/ru/tag/account-security?page=5, KB3073). So there is no
      "IB Key on a second device" as a backup: a second phone is a move, not a second factor.
    - Third-party TOTP apps are supported as the "Mobile Authenticator app"
      (https://ibkrguides.com/kb/how-to-activate-a-mobile-authenticator-app.htm).
    - Digital Security Card+: "Accounts with equity of at least USD 1 million (or equivalent) are
      eligible" (https://ibkrguides.com/advisorportal/sls/secure-login-with-dsc+.htm), so not
      every trader can have one (``TraderProfile.dsc_plus_eligible``).
    - Security Code Card: the older paper card, still listed and ranked lowest ("Lowest Security
      Code Card (SLS card)", https://ibkr.info/tag/sls?page=1). We found no IBKR page offering new
      ones, so it counts only for a trader who registers one.
    - SMS is temporary: "will be removed once you activate one of the digital or physical
      security devices" (https://www.interactivebrokers.com/en/index.php?f=56685), so it is never
      a backup beside another method.
    - Several devices may be active at once (M2FS,
      https://ibkrguides.com/securelogin/sls/multiple-two-factor.htm).
    """

    IB_KEY = "ib_key"
    AUTHENTICATOR = "authenticator_app"
    DSC_PLUS = "dsc_plus"
    SECURITY_CODE_CARD = "security_code_card"
    SMS = "sms"


class RiskTier(StrEnum):
    STANDARD = "standard"
    ELEVATED = "elevated"  # runs algorithms or carries significant intraday margin


class VerifiedBy(StrEnum):
    DECLARED = "declared"  # the trader gave a date in their profile
    # Legacy: a drill pass once stamped the Mobile Authenticator app as verified. A drill proves the
    # trader's backup device produces IB Preflight's own codes, not that IBKR's entry is active, so
    # it is a separate fact now (TotpEnrollment.last_success_at); migration 0008 cleared the stamps.
    DRILL = "drill"
    CHECKLIST = "checklist"  # confirmed authentication on the primary device in the morning checklist


class TraderRows(SQLModel):
    """What a table of many rows per trader starts with (not a table itself): its id, and the
    trader's Slack user id, indexed."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=32, index=True)


class TraderProfile(SQLModel, table=True):
    """One trader's setup (a trader on several desks has one profile)."""

    __tablename__ = "trader_profile"

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=32, unique=True)
    primary_interface: str | None = Field(default=None, max_length=16)
    secondary_interface: str | None = Field(default=None, max_length=16)
    primary_factor: str = Field(default=SecondFactor.IB_KEY, max_length=24)
    risk_tier: str = Field(default=RiskTier.STANDARD, max_length=16)
    risk_tier_set_by: str | None = Field(default=None, max_length=32)
    risk_tier_set_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Declared by the desk: the account's equity is at least USD 1 million, so IBKR offers it a
    # Digital Security Card+ (docs/broker-facts.md §1). A registered DSC+ shows it too.
    dsc_plus_eligible: bool = False
    # Broker-side fences the trader records (``bot.profile.fences``): precautionary order settings
    # (size / total value limits) on every platform they trade, manual and mobile included; and the
    # account's IP restriction covering their username (where the desk uses IP restrictions).
    order_precautions: bool = False
    ip_restricted: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PlatformPermission(TraderRows, table=True):
    """What a trader expects to trade on one platform, and (apart) which market data they have."""

    __tablename__ = "profile_permission"
    __table_args__ = (UniqueConstraint("user_id", "interface"),)

    interface: str = Field(max_length=16)
    trading: str = Field(default="", max_length=120, description="comma-separated Product values")
    market_data: str = Field(default="", max_length=120, description="comma-separated Product values")
    note: str | None = Field(default=None, max_length=300)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SecondFactorRecord(TraderRows, table=True):
    """A second-factor method the trader has registered with IBKR, and when it last proved to work."""

    __tablename__ = "second_factor"
    __table_args__ = (UniqueConstraint("user_id", "method"),)

    method: str = Field(max_length=24)
    last_verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    verified_by: str | None = Field(default=None, max_length=16)
    unverified_reason: str | None = Field(default=None, max_length=200)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TotpEnrollment(SQLModel, table=True):
    """The bot's own TOTP secret in a trader's backup authenticator, encrypted at rest
    (``bot.crypto.Keyring``). Never an IBKR secret."""

    __tablename__ = "totp_enrollment"

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=32, unique=True)
    secret: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    pending_secret: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    pending_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    enrolled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_step: int | None = Field(default=None, description="RFC 6238 time step of the last accepted code")
    last_success_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)


class DrillAttempt(TraderRows, table=True):
    """Every code submitted (the outcome, never the code): the lockout counts these."""

    __tablename__ = "drill_attempt"

    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    purpose: str = Field(max_length=16, description="enroll | drill")
    outcome: str = Field(max_length=16)


class ProfilePolicy(SQLModel, table=True):
    """A desk's drill windows per risk tier (absent: 30 days standard, 14 days elevated)."""

    __tablename__ = "profile_policy"

    id: int | None = Field(default=None, primary_key=True)
    desk_id: int = Field(foreign_key="desk.id", unique=True, ondelete="CASCADE")
    standard_drill_days: int = 30
    elevated_drill_days: int = 14
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Automation(SQLModel, table=True):
    """An API automation on a desk: who owns it, how it connects, and its fences."""

    __table_args__ = (UniqueConstraint("desk_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    desk_id: int = Field(foreign_key="desk.id", index=True, ondelete="CASCADE")
    owner_id: str = Field(max_length=32, index=True)
    name: str = Field(max_length=64)
    interface: str = Field(max_length=16)
    broker_username: str = Field(max_length=64)
    # The TWS / IB Gateway (or Client Portal Gateway) it logs in through, e.g. "gw-prod-1:4001"; "" when
    # not recorded. One TWS / IB Gateway session serves up to 32 API clients with different client ids,
    # so automations sharing one don't compete; a second session on the username does
    # (docs/broker-facts.md §6).
    session_host: str = Field(default="", max_length=64)
    # A person also logs in with this username (TWS, Client Portal, IBKR Mobile): competing sessions.
    person_logs_in: bool = False
    read_only_api: bool = False
    trusted_ips: bool = False
    order_size_limit: bool = False
    kill_switch_tested_on: date | None = None
    credentials_rotated_on: date | None = None
    # Who holds the IBKR second factor of its username: a person's device, or the bot / its gateway
    # keeper (IBeam's 2FA handlers, some IBC forks) — the latter defeats the second factor and the
    # backup alike, and is flagged (``SecondFactorHolder``).
    second_factor_holder: str = Field(default="person", max_length=8)
    # A paper trading account has its own username and trades no money: no live fences asked of it.
    account_kind: str = Field(default="live", max_length=8)
    # Its kill switch: who can stop it and how (user text, secret-filtered); None: not recorded.
    kill_switch_how: str | None = Field(default=None, max_length=300)
    # The account's IP restriction covers its username (where the desk uses IP restrictions).
    ip_restricted: bool = False
    created_by: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SecondFactorHolder(StrEnum):
    PERSON = "person"  # a person's device (IB Key, an authenticator app, a card)
    BOT = "bot"  # the bot or its gateway keeper holds the secret: flagged


class AccountKind(StrEnum):
    LIVE = "live"
    PAPER = "paper"


class BrokerUsername(TraderRows, table=True):
    """An IBKR username a trader logs in with (never a password). A person and an automation on
    one username are two brokerage sessions competing (``bot.profile.automation.flags``)."""

    __tablename__ = "broker_username"
    __table_args__ = (UniqueConstraint("user_id", "username"),)

    username: str = Field(max_length=64, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class GapKind(StrEnum):
    RECOVERY = "recovery"  # no usable, recently verified backup second factor
    SMS_ONLY = "sms_only"  # the only backup is SMS (lower severity)
    AUTOMATION = "automation"  # an automation's hygiene flags (lower severity)
    FENCES = "fences"  # broker-side fences the tier requires are missing (lower severity)


class ReadinessGap(SQLModel, table=True):
    """A period during which the profile shows a gap, for one desk. ``open_key`` is '1' while it
    is open and NULL once closed, so the unique key allows one *open* gap per (desk, subject,
    kind) on SQLite and PostgreSQL alike (NULLs are distinct) while closed ones accumulate. A gap
    is escalated once (``escalated_at``, claimed by a conditional UPDATE), however many days it lasts."""

    __tablename__ = "readiness_gap"
    __table_args__ = (UniqueConstraint("desk_id", "subject", "kind", "open_key"),)

    id: int | None = Field(default=None, primary_key=True)
    desk_id: int = Field(foreign_key="desk.id", index=True, ondelete="CASCADE")
    user_id: str = Field(max_length=32, index=True)
    kind: str = Field(max_length=16)
    subject: str = Field(max_length=48, description="profile:USER or automation:ID")
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    opened_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    open_key: str | None = Field(default="1", max_length=1)
    escalated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    escalation_id: int | None = Field(default=None, foreign_key="escalation.id", ondelete="SET NULL")
