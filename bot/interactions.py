"""Replayed interactions change nothing: every state-changing click or modal submission is
recorded once, in the database, and a second delivery of the same one is refused.

Slack's request signature only proves that Slack sent a request within the last five minutes
(``bot.web`` refuses older timestamps); a captured request replayed byte for byte inside that
window carries a valid signature. So a listener that changes state first records the
interaction's identity here, in the same transaction as the change: the SHA-256 of the signed
payload, which holds the interaction's own ``trigger_id`` (new for every interaction) and, for
a click, its ``action_ts``. A genuine new click or submission always differs; a replay is the
same payload, so its key is already there — on every replica, since the unique key lives in the
shared database — and the listener answers with a sentence instead of acting.

Rows are kept for ``RETENTION`` (far beyond the five-minute window, and clock skew) and purged
as new interactions arrive (at most once per ``PURGE_EVERY`` of the domain clock per process:
a purge is a DELETE, not something every click should pay for).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CTE, ColumnElement, Connection, Insert, Table, bindparam, delete, select
from sqlmodel import Field, Session, SQLModel, col

from bot.db import PurgeSchedule, conflict_insert, insert_or_skip
from bot.dbtypes import UTCDateTime

RETENTION = timedelta(hours=1)
PURGE_EVERY = timedelta(minutes=1)
REPLAYED_CLICK = "That click was already handled (a repeated request): nothing changed."
REPLAYED_SUBMISSION = "This form was already submitted (a repeated request): nothing changed."


class SeenInteraction(SQLModel, table=True):
    """One state-changing interaction that was acted on (kept for ``RETENTION``)."""

    __tablename__ = "seen_interaction"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, unique=True, description="sha256 of the signed payload")
    kind: str = Field(max_length=32, description="block_actions, view_submission, ...")
    user_id: str = Field(max_length=32)
    seen_at: datetime = Field(sa_type=UTCDateTime, index=True)


def interaction_key(body: dict[str, Any]) -> str:
    """The interaction's identity: a digest of its whole payload (trigger_id, action_ts, user,
    values). The same bytes give the same payload, so a replay gives the same key."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


_purge = PurgeSchedule(PURGE_EVERY)


def _values(body: dict[str, Any], now: datetime) -> dict[str, Any]:
    user = body.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    return {
        "key": interaction_key(body),
        "kind": str(body.get("type") or "")[:32],
        "user_id": str(user_id or "")[:32],
        "seen_at": now,
    }


def first_time(*, session: Session, body: dict[str, Any], now: datetime) -> bool:
    """Record this interaction; False when it was recorded before (a replay). Call it in the
    transaction that makes the change, so the record and the change commit together."""
    if _purge.due(str(session.get_bind().engine.url), now):
        session.execute(delete(SeenInteraction).where(col(SeenInteraction.seen_at) < now - RETENTION))
    return insert_or_skip(session, SeenInteraction, _values(body, now)) is not None


_TABLE = cast(Table, SeenInteraction.__table__)  # type: ignore[attr-defined]
_PURGE = delete(_TABLE).where(_TABLE.c.seen_at < bindparam("before", type_=UTCDateTime()))
_RECORD: dict[str, Insert] = {}  # dialect -> INSERT ... ON CONFLICT DO NOTHING RETURNING id


def _record(dialect: str) -> Insert:
    if dialect not in _RECORD:  # built on first use (no dialect module imported at start)
        _RECORD[dialect] = conflict_insert(dialect, _TABLE).on_conflict_do_nothing().returning(_TABLE.c.id)
    return _RECORD[dialect]


def purge_core(conn: Connection, *, now: datetime) -> None:
    """The purge of ``first_time``, when it is due, on a Core connection."""
    if _purge.due(str(conn.engine.url), now):
        conn.execute(_PURGE, {"before": now - RETENTION})


def first_time_core(conn: Connection, *, body: dict[str, Any], now: datetime) -> bool:
    """``first_time`` on a Core connection (the click's fast path): one prebuilt INSERT."""
    purge_core(conn, now=now)
    return conn.execute(_record(conn.dialect.name), _values(body, now)).scalar_one_or_none() is not None


# PostgreSQL can run the record inside another statement (a data-modifying WITH), so a hot path
# pays one round trip for the record and the rest of its work: ``record_cte`` is
# ``INSERT ... SELECT <these bind parameters> [WHERE when] ON CONFLICT DO NOTHING RETURNING id``;
# it returns no row for a replay (nor when ``when`` is false: nothing is recorded then). The
# caller runs ``purge_core`` first.
_RECORD_PARAMS = {"key": "seen_key", "kind": "seen_kind", "user_id": "seen_user", "seen_at": "seen_time"}


def record_cte(name: str = "seen", when: ColumnElement[bool] | None = None) -> CTE:
    values = [bindparam(param, type_=_TABLE.c[column].type) for column, param in _RECORD_PARAMS.items()]
    rows = select(*values) if when is None else select(*values).where(when)
    insert = conflict_insert("postgresql", _TABLE).from_select(list(_RECORD_PARAMS), rows)
    return insert.on_conflict_do_nothing().returning(_TABLE.c.id).cte(name)


def record_params(body: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {_RECORD_PARAMS[column]: value for column, value in _values(body, now).items()}
