"""Lanes of the outbox: which due messages a delivery pass takes, in what order.

Slack's posts (channel posts and DMs) of a desk are one lane, Slack's updates of a desk
another, a desk's pager events a third: within a lane messages go in id order, and a lane
waits behind its earliest undelivered message (in backoff, claimed by another worker, or left
for a later pass by its budget). A pass takes posts and pages before updates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select as sa_select
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.db import claim_lease, session_scope
from bot.delivery.models import OutboxMessage
from bot.delivery.outbox import Kind, service_of

LEASE = timedelta(minutes=2)
SCAN = 2000  # pending rows looked at per pass (lanes are walked in id order)


@dataclass(frozen=True)
class _Row:
    id: int
    kind: str
    desk_id: int | None
    next_attempt_at: datetime
    claimed_at: datetime | None


Lane = tuple[str, int | None, str]


def lane_of(kind: str, desk_id: int | None) -> Lane:
    """Slack's posts and its updates are two lanes of a desk: an update never holds up a post."""
    service = service_of(kind)
    if service != "slack":
        return (service, desk_id, "")
    return (service, desk_id, "update" if kind == Kind.SLACK_UPDATE else "post")


def due_ids(session: Session, now: datetime, limit: int, skip: frozenset[str] = frozenset()) -> list[int]:
    """Due messages that no earlier undelivered message of their lane blocks: posts (and pages)
    first, then updates, each in id order. Kinds in ``skip`` (their budget is known to be
    spent) are left for a later pass, blocking their lane."""
    rows = session.execute(
        sa_select(
            col(OutboxMessage.id),
            col(OutboxMessage.kind),
            col(OutboxMessage.desk_id),
            col(OutboxMessage.next_attempt_at),
            col(OutboxMessage.claimed_at),
        )
        .where(col(OutboxMessage.delivered_at).is_(None), col(OutboxMessage.failed_at).is_(None))
        .order_by(col(OutboxMessage.id))
        .limit(SCAN)
    ).all()
    blocked: set[Lane] = set()
    due: list[_Row] = []
    for row in (_Row(*r) for r in rows):
        lane = lane_of(row.kind, row.desk_id)
        if lane in blocked:
            continue
        claimed = row.claimed_at is not None and row.claimed_at > now - LEASE
        if claimed or row.next_attempt_at > now or row.kind in skip:
            blocked.add(lane)
            continue
        due.append(row)
    due.sort(key=lambda r: (r.kind == Kind.SLACK_UPDATE, r.id))
    return [r.id for r in due[:limit]]


def claim(engine: Engine, message_id: int, now: datetime) -> bool:
    with session_scope(engine) as session:
        return claim_lease(
            session,
            OutboxMessage,
            message_id,
            column="claimed_at",
            now=now,
            lease=LEASE,
            where=(
                col(OutboxMessage.delivered_at).is_(None),
                col(OutboxMessage.failed_at).is_(None),
                col(OutboxMessage.next_attempt_at) <= now,
            ),
            values={"attempts": OutboxMessage.attempts + 1},
        )


def release(engine: Engine, message_id: int, now: datetime) -> None:
    """Give back a claim made at ``now`` that was not used (no Slack budget for it this pass):
    the message is free again at once, its attempt not counted."""
    with session_scope(engine) as session:
        session.execute(
            update(OutboxMessage)
            .where(
                col(OutboxMessage.id) == message_id,
                col(OutboxMessage.claimed_at) == now,
                col(OutboxMessage.delivered_at).is_(None),
            )
            .values(claimed_at=None, attempts=OutboxMessage.attempts - 1)
        )


def next_due(engine: Engine) -> datetime | None:
    with session_scope(engine) as session:
        return session.exec(
            select(OutboxMessage.next_attempt_at)
            .where(col(OutboxMessage.delivered_at).is_(None), col(OutboxMessage.failed_at).is_(None))
            .order_by(col(OutboxMessage.next_attempt_at))
            .limit(1)
        ).first()
