"""Events are processed once, whichever replica Slack delivers them to.

Slack retries an Events API delivery it thinks failed (no 200 within 3 seconds, a 5xx, a
refused connection): at once, after a minute and after five minutes, each retry carrying the
same ``event_id`` and an ``X-Slack-Retry-Num`` header. Behind a load balancer a retry lands on
any replica, often while the first delivery is still being handled elsewhere, so a memory of
what this process saw is not enough: the ``event_id`` is inserted into ``slack_event`` (its
primary key) when the event arrives, and ``INSERT ... ON CONFLICT DO NOTHING`` decides, on
SQLite and PostgreSQL alike. The replica whose insert wins handles the event; every other
delivery is acknowledged (200, so Slack stops retrying) and skipped.

The id is recorded when the event arrives, before it is handled (``ack_then`` work runs after
the acknowledgement): a process that dies in between loses that event (App Home is drawn again
at the next visit; a missed ``user_change`` is caught by the daily names refresh). Handling
twice is what this prevents.

Rows are kept for ``RETENTION`` (far beyond Slack's retry schedule) and purged as new events
arrive, at most once per ``PURGE_EVERY`` of the domain clock per process and database.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Insert, Table, bindparam, delete
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from bot.db import PurgeSchedule, conflict_insert, write_connection
from bot.dbtypes import UTCDateTime

RETENTION = timedelta(hours=1)
PURGE_EVERY = timedelta(minutes=1)
EVENT_ID_LIMIT = 64  # Slack's are like "Ev08MFMKH6HN" (about a dozen characters)


class SlackEvent(SQLModel, table=True):
    """One Events API delivery that was handled (kept for ``RETENTION``)."""

    __tablename__ = "slack_event"

    event_id: str = Field(primary_key=True, max_length=EVENT_ID_LIMIT)
    received_at: datetime = Field(sa_type=UTCDateTime, index=True)


_TABLE = cast(Table, SlackEvent.__table__)  # type: ignore[attr-defined]
_PURGE = delete(_TABLE).where(_TABLE.c.received_at < bindparam("before", type_=UTCDateTime()))
_RECORD: dict[str, Insert] = {}  # dialect -> INSERT ... ON CONFLICT DO NOTHING RETURNING event_id

_purge = PurgeSchedule(PURGE_EVERY)


def _record(dialect: str) -> Insert:
    if dialect not in _RECORD:  # built on first use (no dialect module imported at start)
        insert = conflict_insert(dialect, _TABLE).on_conflict_do_nothing()
        _RECORD[dialect] = insert.returning(_TABLE.c.event_id)
    return _RECORD[dialect]


def event_id_of(body: dict[str, Any]) -> str | None:
    """The ``event_id`` of an Events API callback; None for anything else (clicks, commands,
    ``url_verification``) or an id too long to be Slack's."""
    if body.get("type") != "event_callback":
        return None
    event_id = body.get("event_id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > EVENT_ID_LIMIT:
        return None
    return event_id


def first_delivery(engine: Engine, *, event_id: str, now: datetime) -> bool:
    """Record ``event_id``; False when some replica recorded it before (a retry, or Slack
    delivering twice). One short transaction of its own, committed before the event is handled."""
    with write_connection(engine) as conn:
        if _purge.due(str(engine.url), now):
            conn.execute(_PURGE, {"before": now - RETENTION})
        inserted = conn.execute(_record(conn.dialect.name), {"event_id": event_id, "received_at": now})
        return inserted.scalar_one_or_none() is not None
