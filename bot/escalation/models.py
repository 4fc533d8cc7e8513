"""Escalations: a trader's risk brought to the desk's managers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.dbtypes import UTCDateTime, utcnow


class EscalationKind(StrEnum):
    RECOVERY_PATH = "recovery_path"
    SILENT = "silent"
    RESTRICTED = "restricted"
    # Opened by the readiness profile before the morning, not tied to a checklist run (bot.profile).
    PROFILE_RECOVERY = "profile_recovery"
    PROFILE_SMS_ONLY = "profile_sms_only"
    API_HYGIENE = "api_hygiene"


# Lower severity: told to the managers, never raised to level 2 (no channel post, no page).
LOW_SEVERITY = frozenset({EscalationKind.PROFILE_SMS_ONLY, EscalationKind.API_HYGIENE})


class EscalationState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Escalation(SQLModel, table=True):
    """A trader's risk brought to the desk's managers. (run, trader, kind) is unique, so a
    repeated or concurrent pass opens it once. Escalations of the readiness profile have no run
    (``run_id`` NULL): their ``readiness_gap`` row decides that each gap is escalated once."""

    __table_args__ = (UniqueConstraint("run_id", "trader_id", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    desk_id: int = Field(foreign_key="desk.id", index=True, ondelete="CASCADE")
    run_id: int | None = Field(default=None, foreign_key="checklist_run.id", index=True, ondelete="CASCADE")
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
