"""The append-only audit trail (shared ground: every capability records transitions here)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Text
from sqlmodel import Field, Session, SQLModel

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


def record(
    session: Session,
    *,
    subject: str,
    action: str,
    at: datetime,
    actor: str | None = None,
    desk_id: int | None = None,
    **detail: Any,
) -> AuditEvent:
    """Add one audit event to ``session`` (the caller's transaction commits it): the one writer
    of the trail. ``at`` is the bot's clock (``now``), never the wall clock, so a staging offset
    orders the export rightly. ``detail`` is stored as sorted JSON; callers never pass secrets."""
    event = AuditEvent(
        desk_id=desk_id,
        at=at,
        actor=actor[:32] if actor is not None else None,
        subject=subject[:64],
        action=action[:32],
        detail=json.dumps(detail, default=str, sort_keys=True),
    )
    session.add(event)
    return event
