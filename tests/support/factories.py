"""Test data built through the real services."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from bot.db import session_scope
from bot.desks import service as desks
from bot.desks.models import Desk
from bot.people import service as people

MANAGERS = ("UMGR1", "UMGR2")
TRADERS = ("UTRD1", "UTRD2", "UTRD3")
# The names cache as users.info would fill it (bot.people): display names of the usual people.
NAMES = {
    "UMGR1": "Mia Manager",
    "UMGR2": "Max Manager",
    "UTRD1": "Alice",
    "UTRD2": "Bob",
    "UTRD3": "Carol",
}
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
    named: bool = True,
) -> Desk:
    if named:
        name_people(engine, {u: NAMES[u] for u in (*managers, *traders) if u in NAMES})
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


def name_people(engine: Engine, names: dict[str, str], *, admins: Sequence[str] = ()) -> None:
    """Put people in the names cache as ``users.info`` would (display name; admin flag)."""
    profiles = [
        people.Profile(user_id=user, display_name=name, real_name=name, is_admin=user in admins)
        for user, name in names.items()
    ]
    with session_scope(engine) as session:  # in bulk, as a users.list page is
        people.remember_many(session=session, profiles=profiles, now=CREATED)
