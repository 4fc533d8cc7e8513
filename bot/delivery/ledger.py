"""Posts whose outcome is unknown: the ledger that lets a retry adopt a post instead of
posting it twice.

Slack's ``chat.postMessage`` has no idempotency key. A call that times out may have reached
Slack (the message is in the channel, its answer was lost), and a process that dies after the
call and before recording its ``ts`` leaves no trace of it at all. So before a post that must
appear once (a checklist, an escalation channel's level-2 post) is sent, its key is written
here in a committed transaction, and it is removed when the outcome is known: Slack's ``ts``
recorded, or a refusal that certainly posted nothing (an ``ok: false``, a 429). A key still
here when the post is tried again means an earlier attempt's outcome is unknown: the caller
first looks for the post in the channel's recent history by its message metadata (from
``started_at`` on, ``bot.delivery.slack.find_posted``) and adopts the ``ts`` it finds.

Rows of posts nobody tries again (a run past the close) are purged after ``KEEP``.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Field, Session, SQLModel, col, select

from bot.db import insert_or_skip
from bot.dbtypes import UTCDateTime

KEEP = timedelta(days=7)
# Slack's clock and ours differ a little; a message is looked for from this long before the
# first attempt started.
SKEW = timedelta(minutes=5)


class PendingPost(SQLModel, table=True):
    """A post attempted and not known to have reached Slack, or known not to have."""

    __tablename__ = "pending_post"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True, description="checklist:{run}, outbox:{id}")
    channel: str = Field(max_length=32)
    started_at: datetime = Field(sa_type=UTCDateTime, index=True, description="the first unsettled attempt")


def pending_since(*, session: Session, key: str) -> datetime | None:
    """When the first attempt whose outcome is unknown started; None when there is none."""
    return session.exec(select(PendingPost.started_at).where(PendingPost.key == key[:200])).first()


def begin(*, session: Session, key: str, channel: str, now: datetime) -> None:
    """An attempt starts: commit this before calling Slack. An earlier unsettled attempt keeps
    its (earlier) start."""
    session.execute(delete(PendingPost).where(col(PendingPost.started_at) < now - KEEP))
    insert_or_skip(session, PendingPost, {"key": key[:200], "channel": channel[:32], "started_at": now})


def settle(*, session: Session, key: str) -> None:
    """The outcome is known (posted and recorded, or certainly not posted)."""
    session.execute(delete(PendingPost).where(col(PendingPost.key) == key[:200]))


def oldest(started_at: datetime, now: datetime, *, wall: float | None = None) -> float:
    """``started_at`` (the app's clock) as Slack's ``oldest`` (epoch seconds on Slack's clock),
    with ``SKEW`` to spare. Computed from the time elapsed since then, so an app clock moved for
    a staging rehearsal (``PREFLIGHT_CLOCK_OFFSET``) still finds what it posted in real time."""
    elapsed = max((now - started_at).total_seconds(), 0.0)
    return max((time.time() if wall is None else wall) - elapsed - SKEW.total_seconds(), 0.0)
