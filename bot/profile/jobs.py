"""The readiness-gap pass as a plain job: run by the scheduler (every desk) and the CLI (one desk)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine

from bot.desks.jobs import each_desk
from bot.profile.gaps import sync_desk


def profile_pass(engine: Engine, *, now: datetime, desk_name: str | None = None) -> list[str]:
    """Bring every desk's readiness gaps up to date, one transaction per desk: gaps open, are
    escalated from the afternoon before the checklist they affect (once per gap), and close —
    resolving their escalation — when fixed. Idempotent; a failing desk doesn't stop the others."""
    return each_desk(
        engine,
        lambda session, desk: sync_desk(session=session, desk=desk, now=now).describe(desk.name),
        what="readiness-gap pass",
        desk_name=desk_name,
    )
