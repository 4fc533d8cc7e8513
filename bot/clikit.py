"""What every capability's command line shares (minimal: what the probe's commands need).

Another branch grows this module (the parser class, the one-line error handling, the field
hints); this is the part ``bot.probe.commands`` imports. It must not import ``bot.runtime``
(which imports the Slack app and so every capability's listeners): a capability's commands
importing it would break the layers contract.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bot.config import Settings, prepare_database

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


class CliError(Exception):
    """A user error on the command line: one line on stderr, exit 2."""


def database(settings: Settings) -> Engine:
    """The migrated database: every command that touches data brings the schema up first."""
    from bot.db import make_engine
    from bot.migrate import upgrade

    prepare_database(settings)
    upgrade(settings.database_url)
    return make_engine(settings.database_url)


def clock(settings: Settings) -> Callable[[], datetime]:
    """The app's one clock, as ``bot.runtime.clock_of`` makes it: the real time (UTC) plus
    ``PREFLIGHT_CLOCK_OFFSET``. (Kept here so commands need not import ``bot.runtime``; one of
    the two should call the other once both branches are in.)"""
    offset = timedelta(seconds=settings.clock_offset or 0)

    def now() -> datetime:
        return datetime.now(UTC) + offset

    return now
