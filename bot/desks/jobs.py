"""The per-desk job loop shared by capabilities' passes (escalations, readiness gaps): run by
the scheduler (every desk) and the CLI (one desk)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.db import session_scope
from bot.desks import service as desks
from bot.desks.models import Desk

log = logging.getLogger(__name__)


def each_desk(engine: Engine, work: Callable[[Session, Desk], str], *, what: str, desk_name: str | None) -> list[str]:
    """``work(session, desk)`` for the desk named ``desk_name`` (or every desk, by name), one
    transaction per desk; the lines it returns. With every desk, a failing one is logged
    ("``what`` for NAME failed") and does not keep the others from their turn; with one desk,
    its failure (a ``ServiceError`` for an unknown name) is raised."""
    with session_scope(engine) as session:
        names = [desk_name] if desk_name else [d.name for d in desks.list_desks(session=session)]
    lines: list[str] = []
    for name in names:
        try:
            with session_scope(engine) as session:
                line = work(session, desks.get_desk(session=session, name=name))
        except Exception:
            if desk_name:
                raise
            log.exception("%s for %s failed", what, name)
            continue
        lines.append(line)
    return lines
