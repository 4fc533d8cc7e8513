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


class PacerBudget(SQLModel, table=True):
    """The sending budget of one service (``slack``), shared by every thread, process and
    replica that delivers: ``bot.delivery.pacing.SharedPacer`` reserves the next call's slot
    with one atomic ``UPDATE ... RETURNING``. Times are the database's clock, epoch seconds."""

    __tablename__ = "delivery_pacer"

    service: str = Field(primary_key=True, max_length=32)
    next_at: float = 0.0  # the earliest start of the next call
    spacing: float = 0.0  # seconds between calls now: the configured rate's, longer after a 429
    limited_at: float = 0.0  # when the service last answered 429
    busy_until: float = 0.0  # a call is in flight until its done() (at the latest this: a sender that died)
