"""The append-only audit trail (shared ground: every capability records transitions here)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from bot.dbtypes import UTCDateTime, utcnow


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
