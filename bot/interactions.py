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
as new interactions arrive.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import Field, Session, SQLModel, col

from bot.db import insert_or_skip
from bot.dbtypes import UTCDateTime

RETENTION = timedelta(hours=1)
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


def first_time(*, session: Session, body: dict[str, Any], now: datetime) -> bool:
    """Record this interaction; False when it was recorded before (a replay). Call it in the
    transaction that makes the change, so the record and the change commit together."""
    session.execute(delete(SeenInteraction).where(col(SeenInteraction.seen_at) < now - RETENTION))
    user = body.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    values = {
        "key": interaction_key(body),
        "kind": str(body.get("type") or "")[:32],
        "user_id": str(user_id or "")[:32],
        "seen_at": now,
    }
    return insert_or_skip(session, SeenInteraction, values) is not None
