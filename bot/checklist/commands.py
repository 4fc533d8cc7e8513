"""``preflight checklist post``: post a desk's checklist by hand (never twice)."""

from __future__ import annotations

import argparse

from bot.clikit import CliError, Parser, database, date_arg, desk_command, group
from bot.config import Settings


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    check = group(sub, "checklist", "post a checklist by hand")
    post = desk_command(check, "post", "post a desk's checklist (never twice)", checklist_post)
    post.add_argument(
        "--date", type=date_arg, help="trading date (default: today, desk-local); not a future one, not after its close"
    )


def checklist_post(args: argparse.Namespace, settings: Settings) -> int:
    from bot.checklist import posting
    from bot.checklist import service as checklist
    from bot.config import clock_of
    from bot.db import session_scope
    from bot.desks import service as desks
    from bot.runtime import make_client

    client = make_client(settings)
    engine = database(settings)
    now = clock_of(settings)()
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name=args.name)
        day = args.date or checklist.desk_today(desk, now)
    result = posting.post_checklist(engine, client, desk_name=args.name, day=day, now=now)
    if result.outcome in (checklist.PostOutcome.FUTURE, checklist.PostOutcome.TOO_LATE):
        # A manual post can't spend a future day's slot, nor post what nobody could answer.
        raise CliError(f"preflight checklist post: {result.message}")
    if result.outcome == posting.UNREACHABLE:
        raise CliError(f"preflight checklist post: {result.message}; nothing posted, try again")
    print(result.message)
    return 1 if result.outcome == "failed" else 0
