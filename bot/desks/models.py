"""Desks and their members."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.dbtypes import UTCDateTime, utcnow

# The settings counted in minutes: the whole numbers each takes (bot.desks.service refuses the
# others; the settings modal offers these).
MINUTE_RANGES: dict[str, tuple[int, int]] = {
    "reminder_minutes": (0, 600),
    "grace_minutes": (0, 240),
    "ack_timeout_minutes": (1, 1440),
    "summary_delay_minutes": (0, 1440),
}


class Role(StrEnum):
    MANAGER = "manager"
    TRADER = "trader"


class Desk(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    channel_id: str = Field(max_length=32)
    timezone: str = Field(max_length=64)
    post_at: str = Field(max_length=5, description="desk-local HH:MM")
    deadline: str = Field(max_length=5, description="desk-local HH:MM")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # A checklist posted late gets at least this long to answer (effective deadline).
    grace_minutes: int = Field(
        default=15, sa_column_kwargs={"server_default": "15"}, description="minimum answer window of a late post"
    )
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
    # Trades Sunday evening (futures, FX): broker probes also run on Sunday (bot.probe.sunday).
    sunday_evening: bool = Field(default=False, description="probe broker sessions on Sunday before IBKR's FX open")
    # Who to ask for security changes (adding a second factor may need the account's primary user):
    # a Slack user, or a line of text (bot.desks.contact). Named in the readiness guidance.
    security_contact_user: str | None = Field(default=None, max_length=32)
    security_contact_text: str | None = Field(default=None, max_length=120)
    # The desk uses the account's IP restrictions: elevated traders and automations record theirs.
    ip_restrictions: bool = Field(default=False, description="the desk restricts logins by IP address")


class DeskMember(SQLModel, table=True):
    __tablename__ = "desk_member"
    __table_args__ = (UniqueConstraint("desk_id", "user_id", "role"),)

    id: int | None = Field(default=None, primary_key=True)
    desk_id: int = Field(foreign_key="desk.id", index=True, ondelete="CASCADE")
    user_id: str = Field(max_length=32, index=True)
    role: str = Field(max_length=16)


class Away(SQLModel, table=True):
    """A trader away from ``start`` to ``end`` (inclusive, desk-local trading dates): no reminder,
    no escalation, not counted in the weekly figures. ``desks`` NULL: set by the trader, it
    applies on every desk they trade on; else set by a manager, it applies only on the desks
    listed (",3,7,": that manager's desks the trader trades on) — a manager acts on their own desks."""

    __tablename__ = "away"
    __table_args__ = (Index("ix_away_user_end", "user_id", "end"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=32)
    start: date
    end: date
    note: str | None = Field(default=None, max_length=200)
    set_by: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    desks: str | None = Field(default=None, max_length=500)
