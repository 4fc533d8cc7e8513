"""``preflight migrate`` and ``preflight serve``: the deployment's two commands (the Procfile's
release and web)."""

from __future__ import annotations

import argparse

from bot.clikit import CliError, Parser, workers_arg
from bot.config import Settings, prepare_database


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    sub.add_parser("migrate", help="bring the database schema up to date").set_defaults(handler=migrate)
    serve = sub.add_parser("serve", help="run the bot: HTTP (or Socket Mode) and the scheduler")
    serve.add_argument(
        "--workers",
        type=workers_arg,
        default=1,
        help="serving processes (PostgreSQL only; more than 1 runs gunicorn gthread workers); default 1",
    )
    serve.set_defaults(handler=serve_bot)


def migrate(args: argparse.Namespace, settings: Settings) -> int:
    from bot.migrate import upgrade

    prepare_database(settings)
    upgrade(settings.database_url)
    print(f"Database {settings.database_label} is up to date.")
    return 0


def serve_bot(args: argparse.Namespace, settings: Settings) -> int:
    if args.workers > 1 and not settings.database_url.startswith("postgresql"):
        raise CliError(
            "preflight serve: --workers > 1 needs PostgreSQL (SQLite's write lock is per process); "
            "set DATABASE_URL=postgresql://... or serve with one process"
        )
    if args.workers > 1 and settings.slack_app_token:
        raise CliError("preflight serve: --workers > 1 serves HTTP; Socket Mode (SLACK_APP_TOKEN) runs in one process")
    from bot.serve import ServeError, serve

    try:
        serve(settings, workers=args.workers)
    except ServeError as exc:
        raise CliError(f"preflight serve: {exc}") from None
    return 0
