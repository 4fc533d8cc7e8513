"""Escalations: a trader's risk brought to the desk's managers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from bot.dbtypes import UTCDateTime, utcnow


class EscalationKind(StrEnum):
    RECOVERY_PATH = "recovery_path"  # no backup second factor at all: opens at once
    SILENT = "silent"  # no answer by the (effective) deadline
    RESTRICTED = "restricted"  # authentication or permissions failed (at the deadline)
    POST_FAILED = "post_failed"  # the desk's checklist could not be posted by its deadline
    SECONDARY_INTERFACE = "secondary_interface"  # lower severity: no second platform to fall back on
    SMS_ONLY = "sms_only"  # lower severity: SMS is the only second factor (a weak backup)
    # Opened by the readiness profile before the morning, not tied to a checklist run (bot.profile).
    PROFILE_RECOVERY = "profile_recovery"
    PROFILE_SMS_ONLY = "profile_sms_only"
    API_HYGIENE = "api_hygiene"
    BROKER_FENCES = "broker_fences"  # broker-side fences missing for the tier (bot.profile.fences)
    # Opened by a failing broker probe (bot.probe), resolved by the next healthy one.
    PROBE_FAILED = "probe_failed"


class Severity(StrEnum):
    HIGH = "high"  # level 2 after the acknowledgement timeout: escalation channel and pager
    LOW = "low"  # managers are told by DM; never raised to level 2, never paged


SEVERITY = {
    EscalationKind.RECOVERY_PATH: Severity.HIGH,
    EscalationKind.SILENT: Severity.HIGH,
    EscalationKind.RESTRICTED: Severity.HIGH,
    EscalationKind.POST_FAILED: Severity.HIGH,
    EscalationKind.SECONDARY_INTERFACE: Severity.LOW,
    EscalationKind.SMS_ONLY: Severity.LOW,
    EscalationKind.PROFILE_RECOVERY: Severity.HIGH,
    EscalationKind.PROFILE_SMS_ONLY: Severity.LOW,
    EscalationKind.API_HYGIENE: Severity.LOW,
    EscalationKind.BROKER_FENCES: Severity.LOW,
    EscalationKind.PROBE_FAILED: Severity.HIGH,
}
HIGH_KINDS = tuple(k for k, s in SEVERITY.items() if s is Severity.HIGH)
# Lower severity: told to the managers, never raised to level 2 (no channel post, no page).
LOW_SEVERITY = frozenset(k for k, s in SEVERITY.items() if s is Severity.LOW)
DESK_WIDE = ""  # trader_id of an escalation about the desk itself (a checklist not posted)


class EscalationState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


# Standing escalations that a pass re-checks (a failing probe) are open at most once per desk
# and trader: a partial unique index decides, on SQLite and PostgreSQL alike, so two processes
# racing to open one open exactly one (``opening.open_escalation``, ON CONFLICT DO NOTHING).
# Migration 0011 freezes the same condition.
STANDING_ONCE = (EscalationKind.PROBE_FAILED,)
STANDING_OPEN_WHERE = "run_id IS NULL AND kind = 'probe_failed' AND state IN ('open', 'acknowledged')"


class Escalation(SQLModel, table=True):
    """A trader's risk brought to the desk's managers. (run, trader, kind) is unique, so a
    repeated or concurrent pass opens it once. Escalations of the readiness profile have no run
    (``run_id`` NULL): their ``readiness_gap`` row decides that each gap is escalated once. A
    failing probe's (``STANDING_ONCE``) is open at most once per desk and trader
    (``uq_escalation_standing_open``)."""

    __table_args__ = (
        UniqueConstraint("run_id", "trader_id", "kind"),
        Index(
            "uq_escalation_standing_open",
            "desk_id",
            "trader_id",
            "kind",
            unique=True,
            sqlite_where=text(STANDING_OPEN_WHERE),
            postgresql_where=text(STANDING_OPEN_WHERE),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    desk_id: int = Field(foreign_key="desk.id", index=True, ondelete="CASCADE")
    run_id: int | None = Field(default=None, foreign_key="checklist_run.id", index=True, ondelete="CASCADE")
    trader_id: str = Field(max_length=32, index=True, description="'' (DESK_WIDE) for post_failed")
    kind: str = Field(max_length=32)
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

    @property
    def desk_wide(self) -> bool:
        return self.trader_id == DESK_WIDE

    @property
    def resolved_automatically(self) -> bool:
        """Resolved by the bot because its condition no longer held (no manager acted)."""
        return self.resolved_at is not None and self.resolved_by is None
