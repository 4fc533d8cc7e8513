"""What every ``preflight`` command is built from (shared ground: imports no capability).

The convention: each capability's ``commands.py`` has ``register(sub)``, which adds its
parsers to the top parser's subcommands; every leaf parser does ``set_defaults(handler=fn)``
with ``fn(args, settings) -> int`` (the exit code), and ``field_hints`` when a ServiceError's
``field`` needs another flag than ``--field-name``. A handler raises CliError (or lets a
ServiceError through) for a user error: ``bot.cli.main`` prints it in one line and exits with
EXIT_USAGE. Handlers import what they need inside the function: start-up stays lean (no
SQLAlchemy or Slack at module level: ``preflight desk list`` at head has a 0.5 s budget,
bench/README.md).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, NoReturn

from bot.config import Settings, prepare_database

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

EXIT_USAGE = 2
SECRET_LIMIT = 4096  # characters: a longer "secret" is the wrong file


class CliError(Exception):
    """A user error, in one line (``preflight <command>: ...``); nothing was written."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CliError(f"{self.prog}: {message}")


def group(sub: argparse._SubParsersAction[Parser], name: str, help: str) -> argparse._SubParsersAction[Parser]:
    """``preflight NAME ...``: a command made of subcommands (one of them is required)."""
    return sub.add_parser(name, help=help).add_subparsers(dest=f"{name}_command", required=True, parser_class=Parser)


# What a subcommand runs: the parsed arguments and the settings in, the exit code out.
Handler = Callable[[argparse.Namespace, Settings], int]


def desk_command(
    commands: argparse._SubParsersAction[Parser], name: str, help: str, handler: Handler
) -> argparse.ArgumentParser:
    """``preflight GROUP COMMAND NAME ...``: a subcommand about one desk, named by its first argument
    (``args.name``), run by ``handler``."""
    parser = commands.add_parser(name, help=help)
    parser.add_argument("name", metavar="NAME", help="the desk's name")
    parser.set_defaults(handler=handler)
    return parser


def database(settings: Settings) -> Engine:
    """The migrated database: every command that touches data brings the schema up first."""
    from bot.db import make_engine
    from bot.migrate import upgrade

    prepare_database(settings)
    upgrade(settings.database_url)
    return make_engine(settings.database_url)


# --- argparse types --------------------------------------------------------------------


def date_arg(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date in YYYY-MM-DD") from None


_ISO_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def iso_week_arg(value: str) -> str:
    """'2026-W48' (or '2026-w48') -> '2026-W48': the check ``bot.summary.weeks.parse_iso_week``
    makes, in the same words (a test holds them together), without importing the summary."""
    match = _ISO_WEEK.match(value.strip().upper())
    if match is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO week like 2026-W48")
    year, week = int(match.group(1)), int(match.group(2))
    try:
        date.fromisocalendar(year, week, 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: {year} has no ISO week {week}") from None
    return f"{year}-W{week:02d}"


def instant_arg(value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO-8601 instant like 2026-11-25T09:00-05:00") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def workers_arg(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if not 1 <= number <= 64:
        raise argparse.ArgumentTypeError(f"{number} is not between 1 and 64")
    return number


# --- input and output --------------------------------------------------------------------


def read_secret(path: str, *, command: str = "preflight desk set", what: str = "pager secret") -> str:
    """A secret from a file or standard input ('-': a pipe, or a prompt that doesn't echo),
    surrounding whitespace dropped; CliError (worded for ``command``) if it can't be had."""
    where = "standard input" if path == "-" else path
    try:
        if path == "-" and sys.stdin.isatty():
            import getpass

            raw = getpass.getpass(f"{what.capitalize()} (not echoed): ")
        elif path == "-":
            raw = sys.stdin.read(SECRET_LIMIT + 1)
        else:
            with open(path, encoding="utf-8") as handle:
                raw = handle.read(SECRET_LIMIT + 1)
    except OSError as exc:
        raise CliError(f"{command}: cannot read the {what} from {where}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"{command}: the {what} in {where} is not UTF-8 text") from None
    if len(raw) > SECRET_LIMIT:
        raise CliError(f"{command}: {where} holds more than {SECRET_LIMIT} characters: not a secret")
    secret = raw.strip()
    if not secret:
        raise CliError(f"{command}: no {what} in {where} (it is empty)")
    return secret


def plain(text: str) -> str:
    """A name for a terminal: no control characters (a name can't move the cursor or recolour)."""
    return "".join(c for c in text if c.isprintable())


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell, two spaces apart, no trailing blanks."""
    table = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def clock(settings: Settings) -> Callable[[], datetime]:
    """The app's one clock (``bot.config.clock_of``): the real time plus ``PREFLIGHT_CLOCK_OFFSET``."""
    from bot.config import clock_of

    return clock_of(settings)
