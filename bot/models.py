"""Database tables. No Slack imports here: these are domain records.

Every timestamp is UTC (``UTCDateTime``); desk-local times exist only as the
desk's ``HH:MM`` settings and are converted at the edges (``bot.calendar``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.dbtypes import UTCDateTime


def utcnow() -> datetime:
    return datetime.now(UTC)


class Role(StrEnum):
    MANAGER = "manager"
    TRADER = "trader"


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


class Desk(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    channel_id: str = Field(max_length=32)
    timezone: str = Field(max_length=64)
    post_at: str = Field(max_length=5, description="desk-local HH:MM")
    deadline: str = Field(max_length=5, description="desk-local HH:MM")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Escalation policy.
    reminder_minutes: int = Field(default=30, description="reminder DM this long before the deadline")
    ack_timeout_minutes: int = Field(default=15, description="unacknowledged escalations go to level 2")
    escalation_channel_id: str | None = Field(default=None, max_length=32)
    pager_kind: str = Field(default="none", max_length=16, description="none | pagerduty | webhook")
    pager_url: str | None = Field(default=None, max_length=500)
    pager_secret: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Weekly summary.
    managers_channel_id: str | None = Field(default=None, max_length=32)
    summary_delay_minutes: int = Field(default=30, description="weekly summary this long after the close")


class DeskMember(SQLModel, table=True):
    __tablename__ = "desk_member"
    __table_args__ = (UniqueConstraint("desk_id", "user_id", "role"),)

    id: int | None = Field(default=None, primary_key=True)
    desk_id: int = Field(foreign_key="desk.id", index=True, ondelete="CASCADE")
    user_id: str = Field(max_length=32, index=True)
    role: str = Field(max_length=16)


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


class EscalationKind(StrEnum):
    RECOVERY_PATH = "recovery_path"
    SILENT = "silent"
    RESTRICTED = "restricted"


class EscalationState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Escalation(SQLModel, table=True):
    """A trader's risk brought to the desk's managers. (run, trader, kind) is unique, so a
    repeated or concurrent pass opens it once."""

    __table_args__ = (UniqueConstraint("run_id", "trader_id", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    desk_id: int = Field(foreign_key="desk.id", index=True, ondelete="CASCADE")
    run_id: int = Field(foreign_key="checklist_run.id", index=True, ondelete="CASCADE")
    trader_id: str = Field(max_length=32, index=True)
    kind: str = Field(max_length=16)
    level: int = 1
    state: str = Field(default=EscalationState.OPEN, max_length=16)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    opened_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    acknowledged_by: str | None = Field(default=None, max_length=32)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_by: str | None = Field(default=None, max_length=32)
    resolution_note: str | None = Field(default=None, max_length=500)
    level2_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class OutboxMessage(SQLModel, table=True):
    """A notification written in the same transaction as the change that caused it and
    delivered later by the outbox worker. ``dedup_key`` is unique: enqueuing twice is a no-op."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    dedup_key: str = Field(max_length=200, unique=True)
    kind: str = Field(max_length=32)
    desk_id: int | None = Field(default=None, foreign_key="desk.id", index=True, ondelete="CASCADE")
    payload: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = 0
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    failed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=500)
    result: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class AuditEvent(SQLModel, table=True):
    """Append-only trail of transitions (escalations, pages, deliveries), UTC timestamps."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    desk_id: int | None = Field(default=None, foreign_key="desk.id", index=True, ondelete="CASCADE")
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    actor: str | None = Field(default=None, max_length=32)
    subject: str = Field(max_length=64, index=True, description="e.g. escalation:12")
    action: str = Field(max_length=32)
    detail: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))


class WeeklySummary(SQLModel, table=True):
    """One desk's summary for one ISO week; (desk_id, iso_week) is unique so it posts once."""

    __tablename__ = "weekly_summary"
    __table_args__ = (UniqueConstraint("desk_id", "iso_week"),)

    id: int | None = Field(default=None, primary_key=True)
    desk_id: int = Field(foreign_key="desk.id", index=True, ondelete="CASCADE")
    iso_week: str = Field(max_length=8, description="e.g. 2026-W48")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    posted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    message_ts: str | None = Field(default=None, max_length=32)
