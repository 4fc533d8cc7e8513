"""One weekly summary per desk and ISO week."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.dbtypes import UTCDateTime, utcnow


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
