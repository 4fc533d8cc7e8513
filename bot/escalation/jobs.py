"""The escalation pass as a plain job: run by the scheduler (all desks) and the CLI (one desk)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.engine import Engine

from bot.db import session_scope
from bot.desks import service as desks
from bot.escalation import service as escalation

log = logging.getLogger(__name__)


def escalation_pass(engine: Engine, *, now: datetime, desk_name: str | None = None) -> list[str]:
    """Run the due pass for one desk (or every desk), one transaction per desk.

    Idempotent: running it again at the same ``now`` (or concurrently) changes nothing.
    A failing desk is logged and does not keep the others from their pass.
    """
    with session_scope(engine) as session:
        names = [desk_name] if desk_name else [d.name for d in desks.list_desks(session=session)]
    lines: list[str] = []
    for name in names:
        try:
            with session_scope(engine) as session:
                desk = desks.get_desk(session=session, name=name)
                report = escalation.run_pass(session=session, desk=desk, now=now)
        except Exception:
            if desk_name:
                raise
            log.exception("escalation pass for %s failed", name)
            continue
        lines.append(report.describe(name))
    return lines
