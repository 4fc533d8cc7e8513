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
    TWS = "tws"
    IBKR_DESKTOP = "ibkr_desktop"
    CLIENT_PORTAL = "client_portal"
    IBKR_MOBILE = "ibkr_mobile"
    API = "api"


class ContingencyGap(StrEnum):
    SECOND_MFA_DEVICE = "second_mfa_device"
    RECOVERY_CODE = "recovery_code"
    SECONDARY_INTERFACE = "secondary_interface"


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
    deadline_at: datetime = Field(sa_type=UTCDateTime)
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
    def missing_recovery_path(self) -> bool:
        return bool({ContingencyGap.SECOND_MFA_DEVICE, ContingencyGap.RECOVERY_CODE} & set(self.gaps))
