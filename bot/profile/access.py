"""Who may see and change what in the readiness profile: a trader sees their own, the
managers of a desk they trade on see it too and set their risk tier.

Domain only: no Slack. A refusal is a ``NotAllowedError`` with a sentence for the user.
"""

from __future__ import annotations

from sqlmodel import Session

from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.errors import ServiceError


class NotAllowedError(ServiceError):
    """The user may not see or change this; nothing changed."""


def _managers_desks_of(session: Session, manager_id: str, trader_id: str) -> list[Desk]:
    managed = {d.id for d in desks.desks_of_user(session=session, user_id=manager_id, role=Role.MANAGER)}
    return [d for d in desks.desks_of_user(session=session, user_id=trader_id, role=Role.TRADER) if d.id in managed]


def check_can_view(*, session: Session, viewer_id: str, trader_id: str) -> None:
    """A profile is seen by its trader and by the managers of a desk they trade on."""
    if viewer_id == trader_id:
        return
    if not _managers_desks_of(session, viewer_id, trader_id):
        raise NotAllowedError(f"Only <@{trader_id}> and the managers of their desk can see their readiness profile.")


def is_manager(session: Session, user_id: str) -> bool:
    return bool(desks.desks_of_user(session=session, user_id=user_id, role=Role.MANAGER))


def check_can_set_tier(*, session: Session, manager_id: str, trader_id: str | None = None) -> None:
    if not is_manager(session, manager_id):
        raise NotAllowedError("Only a desk's managers can set a trader's risk tier.")
    if trader_id is not None and not _managers_desks_of(session, manager_id, trader_id):
        raise NotAllowedError(
            f"You don't manage a desk that <@{trader_id}> trades on, so you can't set their risk tier."
        )
