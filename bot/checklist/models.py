"""The checklist run of a trading day and every answer version."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.dbtypes import UTCDateTime, utcnow


class Check(StrEnum):
    AUTHENTICATION = "authentication"
    PERMISSIONS = "permissions"
    CONTINGENCY = "contingency"


class AuthLayer(StrEnum):
    IDENTITY = "identity"
    DEVICE_TRUST = "device_trust"
    PLATFORM = "platform"


class Platform(StrEnum):
    """IBKR's platforms and APIs by their own names, the one list of them (the profile's
    interfaces are these less the legacy ``API``; docs/broker-facts.md §5:
    https://interactivebrokers.github.io/tws-api/initial_setup.html — "TWS API ... an interface to
    ... TWS and IB Gateway"; https://interactivebrokers.github.io/cpwebapi/ — "Client Portal Web
    API"). The TWS API runs through TWS or IB Gateway; the Client Portal Web API through the
    Client Portal Gateway."""

    TWS = "tws"
    IB_GATEWAY = "ib_gateway"
    IBKR_DESKTOP = "ibkr_desktop"
    CLIENT_PORTAL = "client_portal"
    IBKR_MOBILE = "ibkr_mobile"
    TWS_API = "tws_api"
    CP_WEB_API = "cp_web_api"
    API = "api"  # recorded before the split into the TWS API and the Client Portal Web API


LEGACY_PLATFORMS = frozenset({Platform.API})


class ContingencyGap(StrEnum):
    """What a trader lacks for contingency.

    A recovery path is a *second active second-factor method* besides the primary one (a
    Mobile Authenticator app (TOTP), a Digital Security Card+, or IB Key when the primary is
    something else; several different methods can be active at once: docs/broker-facts.md
    §1, [S2]). IB Key "can only be active on a single smartphone" [S6]: a second phone is a
    move, not a backup. IBKR has no user-held recovery code (broker-facts §1: not found).
    """

    NO_BACKUP_FACTOR = "no_backup_factor"  # no second active second-factor method at all
    SMS_ONLY = "sms_only"  # only SMS codes: temporary at IBKR, SIM swap ([S1], [S8], [S11])
    SECONDARY_INTERFACE = "secondary_interface"
    # Recorded before 2026-12 (they still display and export as recorded):
    SECOND_MFA_DEVICE = "second_mfa_device"  # "No second MFA device": no backup second factor
    RECOVERY_CODE = "recovery_code"  # "No recovery code": not a thing at IBKR; never a missing path


LEGACY_GAPS = frozenset({ContingencyGap.SECOND_MFA_DEVICE, ContingencyGap.RECOVERY_CODE})
# Either of these means no backup second factor at all: a *missing recovery path*.
NO_BACKUP_GAPS = frozenset({ContingencyGap.NO_BACKUP_FACTOR, ContingencyGap.SECOND_MFA_DEVICE})


class PermissionGap(StrEnum):
    """Which kind of access is missing: they are requested and granted differently
    (docs/broker-facts.md §4: permissions "generally applied within 48 hours" [S26],
    market data subscriptions "applied to the account in real time" [S26])."""

    TRADING = "trading_permission"
    MARKET_DATA = "market_data"


class AnswerStatus(StrEnum):
    CONFIRMED = "confirmed"
    PROBLEM = "problem"


class ChecklistRun(SQLModel, table=True):
    """One desk's checklist for one trading day. (desk_id, trading_date) is unique: the
    database, not a scheduler's memory, decides that a day is posted once."""

    __tablename__ = "checklist_run"
    __table_args__ = (UniqueConstraint("desk_id", "trading_date"),)

    id: int | None = Field(default=None, primary_key=True)
    desk_id: int = Field(foreign_key="desk.id", index=True, ondelete="CASCADE")
    trading_date: date
    early_close: bool = False
    channel_id: str = Field(max_length=32)
    post_due_at: datetime = Field(sa_type=UTCDateTime)
    # The effective deadline: the desk's deadline, or at least the post time plus the desk's
    # grace period when posted late (never after the close). Reminders, escalations and the
    # weekly summary all use it; scheduled_deadline_at keeps the desk's own deadline.
    deadline_at: datetime = Field(sa_type=UTCDateTime)
    scheduled_deadline_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    market_close_at: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    message_ts: str | None = Field(default=None, max_length=32)
    posted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    post_claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    post_attempts: int = 0
    post_error: str | None = Field(default=None, max_length=500)
    # Live roster: answers bump answers_version; the roster refresher renders and records
    # rendered_version, at most about once a second per message.
    answers_version: int = 0
    rendered_version: int = 0
    roster_claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Answer(SQLModel, table=True):
    """One version of one trader's attestation for one run. Earlier versions are kept."""

    __table_args__ = (
        UniqueConstraint("run_id", "user_id", "version"),
        Index("ix_answer_run_user", "run_id", "user_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="checklist_run.id", ondelete="CASCADE")
    user_id: str = Field(max_length=32)
    version: int
    status: str = Field(max_length=16)
    failed_checks: str = Field(default="", max_length=64, description="comma-separated Check values")
    auth_layer: str | None = Field(default=None, max_length=16)
    platform: str | None = Field(default=None, max_length=16)
    missing_permissions: str | None = Field(default=None, max_length=500)
    permission_gaps: str = Field(
        default="",
        max_length=64,
        sa_column_kwargs={"server_default": ""},
        description="comma-separated PermissionGap (empty in answers recorded before it was asked)",
    )
    contingency_gaps: str = Field(default="", max_length=100, description="comma-separated ContingencyGap")
    note: str | None = Field(default=None, max_length=500)
    restricted: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    @property
    def checks(self) -> list[Check]:
        return [Check(c) for c in self.failed_checks.split(",") if c]

    @property
    def gaps(self) -> list[ContingencyGap]:
        return [ContingencyGap(c) for c in self.contingency_gaps.split(",") if c]

    @property
    def permission_kinds(self) -> list[PermissionGap]:
        return [PermissionGap(c) for c in self.permission_gaps.split(",") if c]

    @property
    def missing_recovery_path(self) -> bool:
        """No backup second factor at all (a legacy "No recovery code" alone is not one: the
        question then treated either as enough, and IBKR has no recovery codes)."""
        return bool(NO_BACKUP_GAPS & set(self.gaps))

    @property
    def sms_only(self) -> bool:
        """SMS is the only second factor: a weak backup, flagged at lower severity."""
        return ContingencyGap.SMS_ONLY in self.gaps and not self.missing_recovery_path

    @property
    def missing_secondary_interface(self) -> bool:
        return ContingencyGap.SECONDARY_INTERFACE in self.gaps
