"""The command line: ``preflight`` (or ``python -m bot``).

Every user error is one line on stderr and exit code 2; nothing is written.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, NoReturn

from bot.clikit import CliError  # probe (issue 19): one CliError for every capability's commands
from bot.config import ConfigError, Settings, load_settings, prepare_database
from bot.errors import ServiceError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CliError(f"{self.prog}: {message}")


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date in YYYY-MM-DD") from None


def _iso_week(value: str) -> str:
    from bot.summary.report import parse_iso_week

    try:
        return parse_iso_week(value)
    except ServiceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _instant(value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO-8601 instant like 2026-11-25T09:00-05:00") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _workers(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if not 1 <= number <= 64:
        raise argparse.ArgumentTypeError(f"{number} is not between 1 and 64")
    return number


def build_parser() -> Parser:
    parser = Parser(prog="preflight", description="IB Preflight: the pre-market checklist bot.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    sub.add_parser("migrate", help="bring the database schema up to date")
    serve = sub.add_parser("serve", help="run the bot: HTTP (or Socket Mode) and the scheduler")
    serve.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="serving processes (PostgreSQL only; more than 1 runs gunicorn gthread workers); default 1",
    )

    desk = sub.add_parser("desk", help="register and list desks").add_subparsers(
        dest="desk_command", required=True, parser_class=Parser
    )
    add = desk.add_parser("add", help="register a desk")
    add.add_argument("name")
    add.add_argument("--channel", required=True, help="channel ID, e.g. C0123ABCD")
    add.add_argument("--managers", required=True, help="comma-separated user IDs")
    add.add_argument("--traders", required=True, help="comma-separated user IDs")
    add.add_argument("--timezone", required=True, help="IANA zone, e.g. America/New_York")
    add.add_argument("--post-at", required=True, help="desk-local HH:MM")
    add.add_argument("--deadline", required=True, help="desk-local HH:MM")
    desk.add_parser("list", help="list desks (people by name and Slack ID)")
    remove = desk.add_parser("remove", help="delete a desk with its history (asks for --yes)")
    remove.add_argument("name")
    remove.add_argument("--yes", action="store_true", help="really delete it")
    rename = desk.add_parser("rename", help="rename a desk")
    rename.add_argument("name")
    rename.add_argument("new_name", metavar="NEW")
    rename.set_defaults(field_hints={"desk_name": "NEW"})
    mem = desk.add_parser("members", help="add or remove a desk's traders and managers")
    mem.add_argument("name")
    for flag, what in (
        ("--add-traders", "traders to add"),
        ("--remove-traders", "traders to remove"),
        ("--add-managers", "managers to add"),
        ("--remove-managers", "managers to remove"),
    ):
        mem.add_argument(flag, default="", help=f"comma-separated user IDs: {what}")
    mem.set_defaults(
        field_hints={"traders": "--add-traders/--remove-traders", "managers": "--add-managers/--remove-managers"}
    )
    dset = desk.add_parser("set", help="change a desk's escalation policy, pager and weekly summary")
    dset.add_argument("name")
    dset.add_argument("--reminder-minutes", type=int, help="reminder DM this long before the deadline (0: none)")
    dset.add_argument("--ack-timeout-minutes", type=int, help="unacknowledged escalations go to level 2 after this")
    dset.add_argument("--escalation-channel", help="channel ID for level 2, e.g. C0123ABCD ('' to clear)")
    dset.add_argument("--pager-kind", choices=("none", "pagerduty", "webhook"), help="where level 2 pages go")
    dset.add_argument("--pager-url", help="PagerDuty base URL (default https://events.pagerduty.com) or webhook URL")
    secret = dset.add_mutually_exclusive_group()
    secret.add_argument(
        "--pager-secret",
        help="PagerDuty routing key or webhook HMAC secret (stored encrypted under PREFLIGHT_SECRET_KEYS); "
        "visible in shell history and to 'ps': prefer --pager-secret-file",
    )
    secret.add_argument(
        "--pager-secret-file",
        metavar="PATH",
        help="read the pager secret from this file, or from standard input with '-' (a pipe, or a prompt "
        "that doesn't echo); surrounding whitespace is dropped",
    )
    dset.add_argument("--managers-channel", help="channel ID for the weekly summary ('' to clear: DM each manager)")
    dset.add_argument("--summary-delay-minutes", type=int, help="weekly summary this long after the week's close")
    dset.add_argument(
        "--grace-minutes", type=int, help="a checklist posted late gets at least this long to be answered (default 15)"
    )

    esc = sub.add_parser("escalations", help="run the escalation pass, list escalations").add_subparsers(
        dest="escalations_command", required=True, parser_class=Parser
    )
    erun = esc.add_parser("run", help="run a desk's due escalation pass now (idempotent), then deliver")
    erun.add_argument("name")
    erun.add_argument(
        "--at",
        type=_instant,
        help="replay the pass as of this past instant, ISO-8601 (e.g. 2026-11-25T09:00-05:00); without a zone it "
        "is taken as UTC. A future instant is refused: the scheduler runs the pass every 30 seconds",
    )
    elist = esc.add_parser("list", help="escalations with state, level and delivery status; what waits and why")
    elist.add_argument("--open", action="store_true", help="only open or acknowledged escalations")

    check = sub.add_parser("checklist", help="post a checklist by hand").add_subparsers(
        dest="checklist_command", required=True, parser_class=Parser
    )
    post = check.add_parser("post", help="post a desk's checklist (never twice)")
    post.add_argument("name")
    post.add_argument(
        "--date", type=_date, help="trading date (default: today, desk-local); not a future one, not after its close"
    )

    weekly = sub.add_parser("summary", help="the weekly readiness summary").add_subparsers(
        dest="summary_command", required=True, parser_class=Parser
    )
    spost = weekly.add_parser("post", help="post a desk's weekly summary to its managers (never twice)")
    spost.add_argument("name")
    spost.add_argument(
        "--week",
        type=_iso_week,
        help="ISO week, e.g. 2026-W48 (default: the latest one due; with --preview: this week)",
    )
    spost.add_argument(
        "--preview",
        action="store_true",
        help="print the summary and write the chart to a file; nothing is posted or marked (any week)",
    )
    spost.add_argument("--chart", help="with --preview: where to write the chart (default readiness-NAME-WEEK.png)")

    prof = sub.add_parser("profile", help="readiness profiles: drill windows, the readiness-gap pass").add_subparsers(
        dest="profile_command", required=True, parser_class=Parser
    )
    ppolicy = prof.add_parser("policy", help="a desk's drill windows per risk tier (days)")
    ppolicy.add_argument("name")
    ppolicy.add_argument("--standard-drill-days", type=int, help="standard tier: verify a backup this often (30)")
    ppolicy.add_argument("--elevated-drill-days", type=int, help="elevated tier: verify a backup this often (14)")
    pgaps = prof.add_parser("gaps", help="run the readiness-gap pass now (idempotent) and list open gaps")
    pgaps.add_argument("name", nargs="?", help="one desk (default: every desk)")

    exp = sub.add_parser("export", help="the hash-chained attestation record as CSV; 'export verify FILE' checks one")
    exp.add_argument("--desk", help="desk name")
    exp.add_argument("--from", dest="start", type=_date, help="first trading date, YYYY-MM-DD")
    exp.add_argument("--to", dest="end", type=_date, help="last trading date, YYYY-MM-DD")
    exp.add_argument("--out", help="write here instead of standard output")
    verify = exp.add_subparsers(dest="export_command", required=False, parser_class=Parser)
    check_file = verify.add_parser(
        "verify",
        help="check an export: 'intact and signed by this instance' (exit 0), 'consistent but unsigned or signed "
        "by another key' (exit 1: origin not proven), or 'tampered at row N' (exit 1)",
    )
    check_file.add_argument("file")

    keys = sub.add_parser("keys", help="the secret keys (PREFLIGHT_SECRET_KEYS)").add_subparsers(
        dest="keys_command", required=True, parser_class=Parser
    )
    keys.add_parser("new", help="print a fresh random key for PREFLIGHT_SECRET_KEYS")
    keys.add_parser(
        "rotate",
        help="re-encrypt every stored secret under the first key of PREFLIGHT_SECRET_KEYS "
        "(put the new key first, the old ones after it; drop the old ones afterwards)",
    )
    keys.add_parser("check", help="say whether every stored secret can be read with PREFLIGHT_SECRET_KEYS")
    from bot.probe.commands import register as register_probe  # probe (issue 19): a capability's own commands

    register_probe(sub)
    return parser


Handler = Callable[[argparse.Namespace, Settings], int]


def _database(settings: Settings) -> Engine:
    """The migrated database: every command that touches data brings the schema up first."""
    from bot.db import make_engine
    from bot.migrate import upgrade

    prepare_database(settings)
    upgrade(settings.database_url)
    return make_engine(settings.database_url)


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from bot.migrate import upgrade

    prepare_database(settings)
    upgrade(settings.database_url)
    print(f"Database {settings.database_label} is up to date.")
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
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


def _desk_add(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db import session_scope
    from bot.desks import service as desks
    from bot.runtime import clock_of

    managers = desks.parse_user_list(args.managers)
    traders = desks.parse_user_list(args.traders)
    with session_scope(_database(settings)) as session:
        desk = desks.add_desk(
            session=session,
            name=args.name,
            channel_id=args.channel,
            managers=managers,
            traders=traders,
            timezone=args.timezone,
            post_at=args.post_at,
            deadline=args.deadline,
            now=clock_of(settings)(),
        )
        print(
            f"Added desk {desk.name}: channel {desk.channel_id}, {len(managers)} manager(s), "
            f"{len(traders)} trader(s), posts {desk.post_at}, deadline {desk.deadline} ({desk.timezone})."
        )
    return 0


def _desk_list(args: argparse.Namespace, settings: Settings) -> int:
    # At head, the desks are read through the DB-API driver alone: no SQLAlchemy, no SQLModel
    # (0.5 s start-up budget, bench/README.md); otherwise, or when unsure, migrate and use the ORM.
    from bot.desks.listing import read_orm, read_quick

    prepare_database(settings)
    listing = read_quick(settings.database_url) or read_orm(_database(settings))

    def who(users: list[str]) -> str:
        return ",".join(f"{_plain(listing.names(u))} ({u})" if u in listing.names else u for u in users)

    if not listing.desks:
        print(f"No desks yet in {settings.database_label}.")
        print("Add one with: preflight desk add NAME --channel ... (see --help)")
        return 0
    header = ("NAME", "CHANNEL", "TIMEZONE", "POST", "DEADLINE", "MANAGERS", "TRADERS")
    table = [header] + [
        (d.name, d.channel_id, d.timezone, d.post_at, d.deadline, who(d.managers), who(d.traders))
        for d in listing.desks
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _plain(text: str) -> str:
    """A name for a terminal: no control characters (a name can't move the cursor or recolour)."""
    return "".join(c for c in text if c.isprintable())


def _desk_remove(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db import session_scope
    from bot.desks import service as desks
    from bot.runtime import utc_now

    engine = _database(settings)
    with session_scope(engine) as session:
        desks.get_desk(session=session, name=args.name)  # a missing desk is the error, with or without --yes
    if not args.yes:
        raise CliError(
            f"preflight desk remove: this deletes {args.name} and its whole history; run again with --yes to do it"
        )
    with session_scope(engine) as session:
        desks.remove_desk(session=session, name=args.name, now=utc_now(), actor="cli")
    print(f"Removed desk {args.name}.")
    return 0


def _desk_rename(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db import session_scope
    from bot.desks import service as desks
    from bot.runtime import utc_now

    with session_scope(_database(settings)) as session:
        desk = desks.get_desk(session=session, name=args.name)
        assert desk.id is not None
        desks.update_desk(session=session, desk_id=desk.id, now=utc_now(), actor="cli", name=args.new_name)
    print(f"Renamed desk {args.name} to {args.new_name}.")
    return 0


def _desk_members(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db import session_scope
    from bot.desks import service as desks
    from bot.desks.models import Role
    from bot.runtime import utc_now

    lists = {
        key: desks.parse_user_list(value) if value else []
        for key, value in (
            ("add_traders", args.add_traders),
            ("remove_traders", args.remove_traders),
            ("add_managers", args.add_managers),
            ("remove_managers", args.remove_managers),
        )
    }
    if not any(lists.values()):
        raise CliError("preflight desk members: nothing to change (see preflight desk members --help)")
    with session_scope(_database(settings)) as session:
        desk = desks.get_desk(session=session, name=args.name)
        assert desk.id is not None
        changed = desks.update_desk(
            session=session,
            desk_id=desk.id,
            now=utc_now(),
            actor="cli",
            add_traders=lists["add_traders"],
            remove_traders=lists["remove_traders"],
            add_managers=lists["add_managers"],
            remove_managers=lists["remove_managers"],
        )
        traders = len(desks.members(session=session, desk_id=desk.id, role=Role.TRADER))
        managers = len(desks.members(session=session, desk_id=desk.id, role=Role.MANAGER))
    what = ", ".join(
        f"{label} {len(change[kind])} {role}"
        for role, change in changed.items()
        for kind, label in (("added", "added"), ("removed", "removed"))
        if change[kind]
    )
    print(f"Desk {args.name}: {what or 'nothing changed'}; now {managers} manager(s), {traders} trader(s).")
    return 0


def _checklist_post(args: argparse.Namespace, settings: Settings) -> int:
    from bot.checklist import jobs
    from bot.checklist import service as checklist
    from bot.db import session_scope
    from bot.desks import service as desks
    from bot.runtime import clock_of, make_client

    client = make_client(settings)
    engine = _database(settings)
    now = clock_of(settings)()
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name=args.name)
        day = args.date or checklist.desk_today(desk, now)
    result = jobs.post_checklist(engine, client, desk_name=args.name, day=day, now=now)
    if result.outcome in (checklist.PostOutcome.FUTURE, checklist.PostOutcome.TOO_LATE):
        # A manual post can't spend a future day's slot, nor post what nobody could answer.
        raise CliError(f"preflight checklist post: {result.message}")
    if result.outcome == jobs.UNREACHABLE:
        raise CliError(f"preflight checklist post: {result.message}; nothing posted, try again")
    print(result.message)
    return 1 if result.outcome == "failed" else 0


def _summary_post(args: argparse.Namespace, settings: Settings) -> int:
    from bot import calendar
    from bot.db import session_scope
    from bot.desks import service as desks
    from bot.runtime import clock_of, make_client
    from bot.summary import jobs as weekly
    from bot.summary import report as summary

    if args.chart and not args.preview:
        raise CliError("preflight summary post: --chart goes with --preview")
    engine = _database(settings)
    now = clock_of(settings)()
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name=args.name)
        week = args.week or (summary.current_week(desk, now) if args.preview else summary.latest_due_week(desk, now))
    if args.preview:
        return _summary_preview(args, engine, week, now)
    due = summary.due_at(desk, week)
    if due is None:
        raise CliError(f"preflight summary post: {week} has no NYSE trading day, so it has no summary")
    if due > now:  # an unfinished (or future) week: posting it would block the real one
        at = due.astimezone(calendar.zone(desk.timezone))
        raise CliError(
            f"preflight summary post: {week} isn't finished: the scheduler posts its summary at "
            f"{at:%a %d %b %Y %H:%M %Z} (see it now with --preview)"
        )
    client = make_client(settings)
    result = weekly.post_summary(engine, client, desk_name=args.name, iso_week=week, now=now)
    if result.outcome == weekly.UNREACHABLE:
        raise CliError(f"preflight summary post: {result.message}; nothing posted, try again")
    print(result.message)
    return 1 if result.outcome == "failed" else 0


def _summary_preview(args: argparse.Namespace, engine: Engine, week: str, now: datetime) -> int:
    from bot.summary import jobs as weekly
    from bot.summary import views as summary_views

    report, png = weekly.preview_summary(engine, desk_name=args.name, iso_week=week, now=now)
    path = args.chart or f"readiness-{args.name}-{week}.png"
    try:
        with open(path, "wb") as out:
            out.write(png)
    except OSError as exc:
        raise CliError(f"preflight summary post: cannot write the chart to {path}: {exc.strerror}") from None
    print(summary_views.preview_text(report))
    print(f"\nChart written to {path}. Nothing was posted.")
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    from bot.crypto import Keyring
    from bot.db import read_scope
    from bot.desks import service as desks
    from bot.summary import export

    missing = [flag for flag, value in (("--desk", args.desk), ("--from", args.start), ("--to", args.end)) if not value]
    if missing:
        raise CliError(f"preflight export: {', '.join(missing)} required (or: preflight export verify FILE)")
    export.check_range(args.start, args.end)
    keys = Keyring(settings.secret_keys)
    # A long read: on SQLite a read-only snapshot doesn't hold the running bot's write lock.
    with read_scope(_database(settings)) as session:
        desk = desks.get_desk(session=session, name=args.desk)
        if args.out:
            with open(args.out, "w", encoding="utf-8", newline="") as out:
                result = export.write_csv(
                    session=session, desk=desk, start=args.start, end=args.end, out=out, keys=keys
                )
        else:
            result = export.write_csv(
                session=session, desk=desk, start=args.start, end=args.end, out=sys.stdout, keys=keys
            )
    if args.out:
        signed = f"signed with key {result.signed_by}" if result.signed_by else "unsigned"
        print(f"Wrote {result.rows} events to {args.out}; chain head {result.head}; {signed}.")
    if not result.signed_by:
        print(
            "preflight: warning: the export is unsigned (PREFLIGHT_SECRET_KEYS is not set): "
            "'export verify' can show it is consistent, not that this instance wrote it",
            file=sys.stderr,
        )
    return 0


def _export_verify(args: argparse.Namespace, settings: Settings) -> int:
    from bot.crypto import Keyring
    from bot.summary import export

    try:
        with open(args.file, encoding="utf-8", newline="") as handle:
            verdict = export.verify(handle, keys=Keyring(settings.secret_keys))
    except OSError as exc:
        raise CliError(f"preflight export verify: cannot read {args.file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"preflight export verify: {args.file} is not UTF-8 text") from None
    print(f"{args.file}: {verdict.message}")
    return 0 if verdict.proven else 1


def _keys_new(args: argparse.Namespace, settings: Settings) -> int:
    from bot.crypto import new_key

    print(new_key())
    return 0


def _keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from bot import keys
    from bot.db import session_scope

    with session_scope(_database(settings)) as session:
        done = keys.rotate_all(session=session, keys=settings.secret_keys)
    where = ", ".join(f"{name}: {n}" for name, n in done.items())
    print(
        f"Re-encrypted {sum(done.values())} stored secret(s) under the first key ({where}). Keep the old keys in "
        "PREFLIGHT_SECRET_KEYS while exports they signed must verify; otherwise they can go."
    )
    return 0


def _keys_check(args: argparse.Namespace, settings: Settings) -> int:
    from bot import keys
    from bot.crypto import Keyring
    from bot.db import read_scope

    ring = Keyring(settings.secret_keys)
    with read_scope(_database(settings)) as session:
        found = keys.census(session=session, keys=ring)
    problem = found.problem(ring)
    if problem:
        raise CliError(f"preflight keys check: {problem}")
    print(f"{len(ring.keys)} key(s) configured; all {found.total} stored secret(s) can be read.")
    return 0


PAGER_SECRET_LIMIT = 4096


def _read_secret(path: str) -> str:
    """The pager secret from a file or standard input ('-'), surrounding whitespace dropped."""
    where = "standard input" if path == "-" else path
    try:
        if path == "-" and sys.stdin.isatty():
            import getpass

            raw = getpass.getpass("Pager secret (not echoed): ")
        elif path == "-":
            raw = sys.stdin.read(PAGER_SECRET_LIMIT + 1)
        else:
            with open(path, encoding="utf-8") as handle:
                raw = handle.read(PAGER_SECRET_LIMIT + 1)
    except OSError as exc:
        raise CliError(f"preflight desk set: cannot read the pager secret from {where}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"preflight desk set: the pager secret in {where} is not UTF-8 text") from None
    if len(raw) > PAGER_SECRET_LIMIT:
        raise CliError(f"preflight desk set: {where} holds more than {PAGER_SECRET_LIMIT} characters: not a secret")
    secret = raw.strip()
    if not secret:
        raise CliError(f"preflight desk set: no pager secret in {where} (it is empty)")
    return secret


def _desk_set(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db import session_scope

    if args.pager_secret_file is not None:
        args.pager_secret = _read_secret(args.pager_secret_file)
    values = (
        args.reminder_minutes,
        args.ack_timeout_minutes,
        args.escalation_channel,
        args.pager_kind,
        args.pager_url,
        args.pager_secret,
        args.managers_channel,
        args.summary_delay_minutes,
        args.grace_minutes,
    )
    if all(v is None for v in values):
        raise CliError("preflight desk set: nothing to change (see preflight desk set --help)")
    from bot.desks import service as desks
    from bot.runtime import utc_now

    with session_scope(_database(settings)) as session:
        desk = desks.configure_desk(
            session=session,
            name=args.name,
            keys=settings.secret_keys,
            reminder_minutes=args.reminder_minutes,
            ack_timeout_minutes=args.ack_timeout_minutes,
            escalation_channel=args.escalation_channel,
            pager_kind=args.pager_kind,
            pager_url=args.pager_url,
            pager_secret=args.pager_secret,
            managers_channel=args.managers_channel,
            summary_delay_minutes=args.summary_delay_minutes,
            grace_minutes=args.grace_minutes,
            actor="cli",
            now=utc_now(),
        )
        print(
            f"Desk {desk.name}: reminder {desk.reminder_minutes} min before the deadline, level 2 after "
            f"{desk.ack_timeout_minutes} min, escalation channel {desk.escalation_channel_id or '-'}, pager "
            f"{desk.pager_kind}{' ' + desk.pager_url if desk.pager_url else ''}"
            f"{' (secret set)' if desk.pager_secret else ''}; weekly summary {desk.summary_delay_minutes} min "
            f"after the close to {desk.managers_channel_id or 'each manager by DM'}; a late checklist gets at least "
            f"{desk.grace_minutes} min."
        )
    return 0


def _escalations_run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.delivery.pacing import SharedPacer
    from bot.delivery.pager import Pager
    from bot.delivery.slack import delivery_client
    from bot.delivery.worker import SLACK_RATE, Pacer
    from bot.escalation.jobs import escalation_pass
    from bot.runtime import clock_of, deliver_due, make_client

    clock = clock_of(settings)
    if args.at is not None and args.at > clock():
        # It would queue real reminders, escalations and pages for a time that hasn't come.
        raise CliError(
            f"preflight escalations run: --at {args.at:%Y-%m-%dT%H:%M:%SZ} is in the future: the scheduler runs "
            "the pass every 30 seconds (leave out --at, or replay a past instant)"
        )
    engine = _database(settings)
    for line in escalation_pass(engine, now=args.at or clock(), desk_name=args.name):
        print(line)
    if not settings.slack_bot_token:
        print("SLACK_BOT_TOKEN is not set here: the running bot's outbox worker will deliver what was queued.")
        return 0
    pager = Pager(keys=settings.secret_keys)
    client = delivery_client(make_client(settings))
    # The same database-held budget as the running bot's outbox: together they stay within Slack's rate.
    pacers: dict[str, Pacer] = {"slack": SharedPacer(engine, "slack", SLACK_RATE)}
    done = deliver_due(engine, client, pager, now=clock(), limit=1000, pacers=pacers)
    pager.close()
    print(f"Delivered {done.delivered}, deferred {done.deferred}, failed {done.failed} (preflight escalations list).")
    return 0


def _escalations_list(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db import session_scope
    from bot.escalation import service as escalation
    from bot.escalation.views import when_utc

    with session_scope(_database(settings)) as session:
        rows = escalation.listing(session=session, open_only=args.open)
        waiting = escalation.waiting_messages(session=session)
        counts = escalation.outbox_counts(session=session)
        names = escalation.names_of(session=session, escalations=[e for e, _, _ in rows])

    def who(user: str | None) -> str:
        if not user:
            return "-"
        return f"{_plain(names(user))} ({user})" if user in names else user

    if not rows:
        print(f"No {'open ' if args.open else ''}escalations in {settings.database_label}.")
    else:
        header = ("ID", "DESK", "TRADER", "KIND", "STATE", "LEVEL", "OPENED (UTC)", "BY", "DELIVERY")
        table = [header] + [
            (
                str(e.id),
                d.name,
                who(e.trader_id) if e.trader_id else "-",
                e.kind,
                e.state,
                str(e.level),
                when_utc(e.opened_at),
                who(e.resolved_by or e.acknowledged_by),
                delivery.describe(),
            )
            for e, d, delivery in rows
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for row in table:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(
        f"\nOutbox: {counts['delivered']} delivered, {counts['waiting']} waiting, {counts['failed']} failed for good."
    )
    for m in waiting[:50]:
        why = m.last_error or "not attempted yet"
        print(f"  waiting #{m.id} {m.dedup_key}: {m.attempts} attempt(s), next {when_utc(m.next_attempt_at)} — {why}")
    if len(waiting) > 50:
        print(f"  ... and {len(waiting) - 50} more")
    return 0


def _profile_policy(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db import session_scope
    from bot.desks import service as desks
    from bot.profile import service as profile
    from bot.runtime import clock_of

    if args.standard_drill_days is None and args.elevated_drill_days is None:
        with session_scope(_database(settings)) as session:
            desk = desks.get_desk(session=session, name=args.name)
            row = profile.policy_row(session, desk.id or 0)
            standard = row.standard_drill_days if row else 30
            elevated = row.elevated_drill_days if row else 14
        print(f"Desk {args.name}: standard tier verifies a backup every {standard} days, elevated every {elevated}.")
        return 0
    with session_scope(_database(settings)) as session:
        desk = desks.get_desk(session=session, name=args.name)
        row = profile.set_policy(
            session=session,
            desk=desk,
            standard_days=args.standard_drill_days,
            elevated_days=args.elevated_drill_days,
            actor=None,
            now=clock_of(settings)(),
        )
        print(
            f"Desk {desk.name}: standard tier verifies a backup every {row.standard_drill_days} days "
            f"(1 backup), elevated every {row.elevated_drill_days} days (2 independent backups)."
        )
    return 0


def _profile_gaps(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db import session_scope
    from bot.desks import service as desks
    from bot.profile import jobs
    from bot.profile import service as profile
    from bot.runtime import clock_of

    engine = _database(settings)
    for line in jobs.profile_pass(engine, now=clock_of(settings)(), desk_name=args.name):
        print(line)
    with session_scope(engine) as session:
        chosen = [desks.get_desk(session=session, name=args.name)] if args.name else desks.list_desks(session=session)
        for desk in chosen:
            for gap in profile.open_gaps(session, desk.id or 0):
                escalated = f"escalation {gap.escalation_id}" if gap.escalation_id else "not escalated yet"
                print(f"  {desk.name}  {gap.user_id}  {gap.kind}  {gap.detail}  ({escalated})")
    return 0


HANDLERS: dict[tuple[str, str | None], Handler] = {
    ("migrate", None): _migrate,
    ("serve", None): _serve,
    ("desk", "add"): _desk_add,
    ("desk", "list"): _desk_list,
    ("desk", "set"): _desk_set,
    ("desk", "remove"): _desk_remove,
    ("desk", "rename"): _desk_rename,
    ("desk", "members"): _desk_members,
    ("escalations", "run"): _escalations_run,
    ("escalations", "list"): _escalations_list,
    ("checklist", "post"): _checklist_post,
    ("summary", "post"): _summary_post,
    ("profile", "policy"): _profile_policy,
    ("profile", "gaps"): _profile_gaps,
    ("export", None): _export,
    ("export", "verify"): _export_verify,
    ("keys", "new"): _keys_new,
    ("keys", "rotate"): _keys_rotate,
    ("keys", "check"): _keys_check,
}


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
        if getattr(args, "handler", None) is not None:  # probe (issue 19): commands registered by a capability
            return int(args.handler(args, settings))
        sub = getattr(args, f"{args.command}_command", None)
        return HANDLERS[(args.command, sub)](args, settings)
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
