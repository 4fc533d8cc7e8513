"""What the outbox has done: delivered, waiting, failed for good (``preflight escalations list``).

Generic over outbox rows: a caller names the messages it speaks of by dedup-key prefix (and
may add rows it found otherwise, e.g. grouped messages listing an escalation).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlmodel import Session, col, func, select

from bot.delivery.models import OutboxMessage


@dataclass(frozen=True)
class Delivery:
    delivered: int
    waiting: list[OutboxMessage]
    failed: list[OutboxMessage]

    @classmethod
    def of(cls, rows: Iterable[OutboxMessage]) -> Delivery:
        rows = list(rows)
        return cls(
            delivered=sum(1 for r in rows if r.delivered_at is not None),
            waiting=[r for r in rows if r.delivered_at is None and r.failed_at is None],
            failed=[r for r in rows if r.failed_at is not None],
        )

    def describe(self) -> str:
        parts = [f"{self.delivered} delivered"]
        if self.waiting:
            first = self.waiting[0]
            why = f": {first.last_error}" if first.last_error else ""
            parts.append(f"{len(self.waiting)} waiting (attempts {first.attempts}{why})")
        if self.failed:
            parts.append(f"{len(self.failed)} failed ({self.failed[0].last_error})")
        return ", ".join(parts)


def with_prefix(session: Session, prefix: str, *, kind: str | None = None) -> list[OutboxMessage]:
    """The messages whose dedup key starts with ``prefix`` (of ``kind``, if given), in id order."""
    query = select(OutboxMessage).where(col(OutboxMessage.dedup_key).startswith(prefix))
    if kind is not None:
        query = query.where(OutboxMessage.kind == kind)
    return list(session.exec(query.order_by(col(OutboxMessage.id))).all())


def delivery_of(session: Session, prefix: str, *, also: Iterable[OutboxMessage] = ()) -> Delivery:
    """The delivery of the messages whose dedup key starts with ``prefix``, then of ``also``."""
    return Delivery.of([*with_prefix(session, prefix), *also])


def waiting_messages(*, session: Session) -> list[OutboxMessage]:
    """Everything not yet delivered (nor given up on), oldest first."""
    return list(
        session.exec(
            select(OutboxMessage)
            .where(col(OutboxMessage.delivered_at).is_(None), col(OutboxMessage.failed_at).is_(None))
            .order_by(col(OutboxMessage.id))
        ).all()
    )


def outbox_counts(*, session: Session) -> dict[str, int]:
    rows = session.exec(
        select(
            func.count(col(OutboxMessage.id)),
            func.count(col(OutboxMessage.delivered_at)),
            func.count(col(OutboxMessage.failed_at)),
        )
    ).one()
    total, delivered, failed = (int(x) for x in rows)
    return {"total": total, "delivered": delivered, "failed": failed, "waiting": total - delivered - failed}
