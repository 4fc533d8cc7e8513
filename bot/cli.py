"""The command line: ``preflight`` (or ``python -m bot``).

Each capability registers its own commands (its ``commands.py``, the convention in
``bot.clikit``); this module puts them in one parser, in a fixed order (the help listing's),
and runs the chosen one. Every user error is one line on stderr and exit code 2; nothing is
written.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from bot import deploy_commands, keys_commands
from bot.checklist import commands as checklist_commands
from bot.clikit import EXIT_USAGE, CliError, Handler, Parser
from bot.config import ConfigError, Settings, load_settings
from bot.desks import commands as desk_commands
from bot.errors import ServiceError
from bot.escalation import commands as escalation_commands
from bot.probe import commands as probe_commands
from bot.profile import commands as profile_commands
from bot.summary import commands as summary_commands
from bot.summary import export_commands

# In the order `preflight --help` lists them.
REGISTER: tuple[Callable[[argparse._SubParsersAction[Parser]], None], ...] = (
    deploy_commands.register,  # migrate, serve
    desk_commands.register,
    escalation_commands.register,
    checklist_commands.register,
    summary_commands.register,
    profile_commands.register,
    probe_commands.register,
    export_commands.register,
    keys_commands.register,
)


def build_parser() -> Parser:
    parser = Parser(prog="preflight", description="IB Preflight: the pre-market checklist bot.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for register in REGISTER:
        register(sub)
    return parser


FIELD_HINTS = {"name": "see 'preflight desk list'", "desk_name": ""}


def flag_of(field: str, hints: dict[str, str] | None = None) -> str:
    """The command-line hint for a setting named by a ServiceError's ``field``: its flag
    (empty when the error already says what to change)."""
    hints = {**FIELD_HINTS, **(hints or {})}
    return hints[field] if field in hints else "--" + field.replace("_", "-")


def _outside_error(exc: Exception, settings: Settings | None) -> str | None:
    """One line for a failure of what the CLI depends on (the database, Slack, a file), or
    None for anything else (a bug: let its traceback show)."""
    from slack_sdk.errors import SlackApiError, SlackClientError
    from sqlalchemy.exc import InterfaceError, OperationalError

    def first_line(problem: object) -> str:
        lines = str(problem).strip().splitlines()
        return lines[0] if lines else type(problem).__name__

    if isinstance(exc, (OperationalError, InterfaceError)):
        where = settings.database_label if settings is not None else "the database"
        return f"cannot use the database {where}: {first_line(exc.orig or exc)}"
    if isinstance(exc, SlackApiError):
        return f"Slack refused the call: {exc.response.get('error') or exc.response.status_code}"
    if isinstance(exc, SlackClientError) or (isinstance(exc, OSError) and hasattr(exc, "reason")):
        reason = getattr(exc, "reason", None) or exc  # urllib's URLError wraps the socket error
        where = settings.slack_api_url if settings is not None else "Slack"
        return f"cannot reach Slack at {where}: {getattr(reason, 'strerror', None) or first_line(reason)}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or first_line(exc)}{f': {exc.filename}' if exc.filename else ''}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    # ERROR: the CLI reports what its jobs warn about (a failed post...) itself, in one line;
    # and slack_sdk logs an ERROR before raising a connection error that the CLI reports too.
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    web_api_log = logging.getLogger("slack_sdk.web.base_client")
    web_api_level = web_api_log.level  # put back on the way out (main() also runs in-process, in tests)
    web_api_log.setLevel(logging.CRITICAL)
    settings: Settings | None = None
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(argv)
        settings = load_settings()
        handler: Handler = args.handler
        return handler(args, settings)
    except Exception as exc:
        message = _outside_error(exc, settings)
        if message is None:
            if not isinstance(exc, (CliError, ConfigError, ServiceError)):
                raise
            message = str(exc)
            if isinstance(exc, ServiceError) and message.startswith("there is no desk") and settings is not None:
                message += f" in the database {settings.database_label}"  # the wrong database looks empty
            if isinstance(exc, ServiceError) and exc.field:
                hint = flag_of(exc.field, getattr(args, "field_hints", None))
                if hint:
                    message += f" ({hint})"  # the domain names the setting; the CLI adds its flag
        print(f"preflight: error: {message}" if not message.startswith("preflight") else message, file=sys.stderr)
        return EXIT_USAGE
    finally:
        web_api_log.setLevel(web_api_level)


if __name__ == "__main__":
    sys.exit(main())
