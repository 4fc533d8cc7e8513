"""The readiness-gap pass as a plain job: run by the scheduler (every desk) and the CLI (one desk)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.engine import Engine

from bot.db import session_scope
from bot.desks import service as desks
from bot.profile import service as profile

log = logging.getLogger(__name__)


def profile_pass(engine: Engine, *, now: datetime, desk_name: str | None = None) -> list[str]:
    """Bring every desk's readiness gaps up to date, one transaction per desk: gaps open, are
    escalated from the afternoon before the checklist they affect (once per gap), and close —
    resolving their escalation — when fixed. Idempotent; a failing desk doesn't stop the others."""
    with session_scope(engine) as session:
        names = [desk_name] if desk_name else [d.name for d in desks.list_desks(session=session)]
    lines: list[str] = []
    for name in names:
        try:
            with session_scope(engine) as session:
                desk = desks.get_desk(session=session, name=name)
                report = profile.sync_desk(session=session, desk=desk, now=now)
        except Exception:
            if desk_name:
                raise
            log.exception("readiness-gap pass for %s failed", name)
            continue
        lines.append(report.describe(name))
    return lines
