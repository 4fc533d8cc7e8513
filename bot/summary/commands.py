"""``preflight summary post``: post a desk's weekly summary (never twice), or preview any week."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TYPE_CHECKING

from bot.clikit import CliError, Parser, database, desk_command, group, iso_week_arg
from bot.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    weekly = group(sub, "summary", "the weekly readiness summary")
    spost = desk_command(weekly, "post", "post a desk's weekly summary to its managers (never twice)", summary_post)
    spost.add_argument(
        "--week",
        type=iso_week_arg,
        help="ISO week, e.g. 2026-W48 (default: the latest one due; with --preview: this week)",
    )
    spost.add_argument(
        "--preview",
        action="store_true",
        help="print the summary and write the chart to a file; nothing is posted or marked (any week)",
    )
    spost.add_argument("--chart", help="with --preview: where to write the chart (default readiness-NAME-WEEK.png)")


def summary_post(args: argparse.Namespace, settings: Settings) -> int:
    from bot.config import clock_of
    from bot.db import session_scope
    from bot.desks import service as desks
    from bot.errors import ServiceError
    from bot.runtime import make_client
    from bot.summary import posting, service, weeks

    if args.chart and not args.preview:
        raise CliError("preflight summary post: --chart goes with --preview")
    engine = database(settings)
    now = clock_of(settings)()
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name=args.name)
        week = args.week or (weeks.current_week(desk, now) if args.preview else weeks.latest_due_week(desk, now))
    if args.preview:
        return _preview(args, engine, week, now)
    try:
        service.check_due(desk=desk, iso_week=week, now=now)
    except service.UnfinishedWeek as exc:  # posting it would block the real one
        raise CliError(f"preflight summary post: {exc} (see it now with --preview)") from None
    except ServiceError as exc:
        raise CliError(f"preflight summary post: {exc}") from None
    client = make_client(settings)
    result = posting.post_summary(engine, client, desk_name=args.name, iso_week=week, now=now)
    if result.outcome == posting.UNREACHABLE:
        raise CliError(f"preflight summary post: {result.message}; nothing posted, try again")
    print(result.message)
    return 1 if result.outcome == "failed" else 0


def _preview(args: argparse.Namespace, engine: Engine, week: str, now: datetime) -> int:
    from bot.summary import posting
    from bot.summary import views as summary_views

    report, png = posting.preview_summary(engine, desk_name=args.name, iso_week=week, now=now)
    path = args.chart or f"readiness-{args.name}-{week}.png"
    try:
        with open(path, "wb") as out:
            out.write(png)
    except OSError as exc:
        raise CliError(f"preflight summary post: cannot write the chart to {path}: {exc.strerror}") from None
    print(summary_views.preview_text(report))
    print(f"\nChart written to {path}. Nothing was posted.")
    return 0
