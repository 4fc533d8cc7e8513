"""Test data built through the real services."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from bot.db import session_scope
from bot.desks import service as desks
from bot.desks.models import Desk

MANAGERS = ("UMGR1", "UMGR2")
TRADERS = ("UTRD1", "UTRD2", "UTRD3")
# Desks in tests exist from well before the weeks they are tested on (never the wall clock).
CREATED = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def make_desk(
    engine: Engine,
    name: str = "equities",
    *,
    channel: str = "C0123",
    managers: Sequence[str] = MANAGERS,
    traders: Sequence[str] = TRADERS,
    timezone: str = "America/New_York",
    post_at: str = "08:00",
    deadline: str = "09:00",
    created_at: datetime = CREATED,
) -> Desk:
    with session_scope(engine) as session:
        return desks.add_desk(
            session=session,
            name=name,
            channel_id=channel,
            managers=list(managers),
            traders=list(traders),
            timezone=timezone,
            post_at=post_at,
            deadline=deadline,
            now=created_at,
        )
