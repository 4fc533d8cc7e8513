"""Test data built through the real services."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Engine

from bot.db import session_scope
from bot.desks import service as desks
from bot.desks.models import Desk

MANAGERS = ("UMGR1", "UMGR2")
TRADERS = ("UTRD1", "UTRD2", "UTRD3")


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
        )
