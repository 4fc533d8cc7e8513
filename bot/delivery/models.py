"""Persisted notifications (the outbox)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from bot.dbtypes import UTCDateTime, utcnow


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
