"""The escalation pass as a plain job: run by the scheduler (all desks) and the CLI (one desk)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine

from bot.desks.jobs import each_desk
from bot.escalation import passes


def escalation_pass(engine: Engine, *, now: datetime, desk_name: str | None = None) -> list[str]:
    """Run the due pass for one desk (or every desk), one transaction per desk.

    Idempotent: running it again at the same ``now`` (or concurrently) changes nothing.
    A failing desk is logged and does not keep the others from their pass.
    """
    return each_desk(
        engine,
        lambda session, desk: passes.run_pass(session=session, desk=desk, now=now).describe(desk.name),
        what="escalation pass",
        desk_name=desk_name,
    )
