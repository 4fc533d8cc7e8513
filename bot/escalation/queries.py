"""Reading escalations: what is open for a manager, a trader, a desk; names; the CLI's listing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, exists, or_
from sqlmodel import Session, col, select

from bot.checklist import status
from bot.delivery.models import OutboxMessage
from bot.delivery.status import Delivery, delivery_of
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.escalation.models import DESK_WIDE, Escalation
from bot.escalation.notices import grouped
from bot.escalation.rules import OPEN_STATES, subject
from bot.people import service as people


def _open_where(session: Session, *conditions: Any) -> list[tuple[Escalation, Desk]]:
    rows = session.exec(
        select(Escalation, Desk)
        .join(Desk, col(Desk.id) == col(Escalation.desk_id))
        .where(col(Escalation.state).in_(OPEN_STATES), *conditions)
        .order_by(col(Escalation.opened_at), col(Escalation.id))
    ).all()
    return [(e, d) for e, d in rows]


def open_for_manager(*, session: Session, user_id: str) -> tuple[int, list[tuple[Escalation, Desk]]]:
    """(number of desks managed, open escalations on them)."""
    managed = [d.id for d in desks.desks_of_user(session=session, user_id=user_id, role=Role.MANAGER)]
    if not managed:
        return 0, []
    return len(managed), _open_where(session, col(Escalation.desk_id).in_(managed))


_OPEN_FOR_TRADER = (
    select(Escalation, Desk)
    .join(Desk, col(Desk.id) == col(Escalation.desk_id))
    .where(col(Escalation.state).in_(OPEN_STATES), col(Escalation.trader_id) == bindparam("open_for_trader"))
    .order_by(col(Escalation.opened_at), col(Escalation.id))
)  # built once: every trader's /ibstatus asks


# ``status.overview``'s flag "the user asking has an open escalation": asked in the overview's
# own query, so ``open_for_trader`` runs only for a trader who has one.
ESCALATED = "escalated"
OVERVIEW_FLAGS = {
    ESCALATED: exists().where(
        col(Escalation.trader_id) == status.USER, or_(*(col(Escalation.state) == s for s in OPEN_STATES))
    )
}


def open_for_trader(*, session: Session, user_id: str) -> list[tuple[Escalation, Desk]]:
    rows = session.execute(_OPEN_FOR_TRADER, {"open_for_trader": user_id}).all()
    return [(e, d) for e, d in rows]


def open_desk_wide(*, session: Session, desk_ids: Iterable[int]) -> list[tuple[Escalation, Desk]]:
    """Open escalations about desks themselves (a checklist that could not be posted)."""
    return _open_where(session, Escalation.trader_id == DESK_WIDE, col(Escalation.desk_id).in_(list(desk_ids)))


def open_for_desk(*, session: Session, desk_id: int) -> list[Escalation]:
    return [e for e, _ in _open_where(session, Escalation.desk_id == desk_id)]


def names_of(*, session: Session, escalations: Iterable[Escalation]) -> people.Names:
    """The names of everyone these escalations mention (traders and the managers who acted)."""
    ids: set[str | None] = set()
    for esc in escalations:
        ids |= {esc.trader_id, esc.acknowledged_by, esc.resolved_by}
    return people.names_for(session=session, user_ids=ids)


def listing(*, session: Session, open_only: bool) -> list[tuple[Escalation, Desk, Delivery]]:
    """Escalations with the delivery of every message about them (their own and the grouped ones)."""
    query = select(Escalation, Desk).join(Desk, col(Desk.id) == col(Escalation.desk_id))
    if open_only:
        query = query.where(col(Escalation.state).in_(OPEN_STATES))
    rows = session.exec(query.order_by(col(Escalation.id))).all()
    listed_in: dict[int, list[OutboxMessage]] = {}
    for message, ids in grouped(session):
        for esc_id in ids:
            listed_in.setdefault(esc_id, []).append(message)
    out: list[tuple[Escalation, Desk, Delivery]] = []
    for esc, desk in rows:
        messages = delivery_of(session, f"{subject(esc)}:", also=listed_in.get(esc.id or 0, []))
        out.append((esc, desk, messages))
    return out
