"""``preflight desk add|list|show|remove|rename|members|set``: desks, their people and settings.

Handlers import lazily (``bot.clikit``): ``desk list`` at head reads through the DB-API alone."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bot.clikit import CliError, Parser, database, desk_command, group, plain, print_table, read_secret
from bot.config import Settings, prepare_database

if TYPE_CHECKING:
    from datetime import datetime

    from sqlmodel import Session

    from bot.desks.models import Desk
    from bot.desks.service import ChannelCheck


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    desk = group(sub, "desk", "register and list desks")
    add = desk_command(desk, "add", "register a desk", desk_add)
    add.add_argument("--channel", required=True, help="channel ID, e.g. C0123ABCD")
    add.add_argument("--managers", required=True, help="comma-separated user IDs")
    add.add_argument("--traders", required=True, help="comma-separated user IDs")
    add.add_argument("--timezone", required=True, help="IANA zone, e.g. America/New_York")
    add.add_argument("--post-at", required=True, help="desk-local HH:MM")
    add.add_argument("--deadline", required=True, help="desk-local HH:MM")
    desk.add_parser("list", help="list desks (people by name and Slack ID)").set_defaults(handler=desk_list)
    desk_command(desk, "show", "every setting of one desk (the pager secret only as set or not)", desk_show)
    remove = desk_command(desk, "remove", "delete a desk with its history (asks for --yes)", desk_remove)
    remove.add_argument("--yes", action="store_true", help="really delete it")
    rename = desk_command(desk, "rename", "rename a desk", desk_rename)
    rename.add_argument("new_name", metavar="NEW")
    rename.set_defaults(field_hints={"desk_name": "NEW"})
    mem = desk_command(desk, "members", "add or remove a desk's traders and managers", desk_members)
    for flag, what in (
        ("--add-traders", "traders to add"),
        ("--remove-traders", "traders to remove"),
        ("--add-managers", "managers to add"),
        ("--remove-managers", "managers to remove"),
    ):
        mem.add_argument(flag, default="", help=f"comma-separated user IDs: {what}")
    mem.set_defaults(
        field_hints={"traders": "--add-traders/--remove-traders", "managers": "--add-managers/--remove-managers"},
    )
    _register_set(desk)


def _register_set(desk: argparse._SubParsersAction[Parser]) -> None:
    dset = desk_command(
        desk, "set", "change a desk's escalation policy, pager, weekly summary and Sunday-evening probe", desk_set
    )
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
    dset.add_argument(
        "--sunday-evening",
        choices=("yes", "no"),
        help="the desk trades Sunday evening (futures, FX): its broker probes also run on Sunday, after IBKR's "
        "weekly re-authentication and before IBKR's FX week opens (default no)",
    )
    dset.add_argument(
        "--security-contact",
        metavar="@USER-OR-TEXT",
        help="who to ask for security changes such as adding a second factor (the account's primary user): a Slack "
        "user (@U0123ABCD) or a line of text ('' to clear)",
    )
    dset.add_argument(
        "--ip-restrictions",
        choices=("yes", "no"),
        help="the desk restricts logins by IP address: elevated traders and automations record theirs (default no)",
    )


def _channel_check(settings: Settings) -> ChannelCheck:
    """Saving a channel asks Slack whether the bot is in it (bot.slack.channels)."""
    from bot.slack.channels import cli_channel_check

    return cli_channel_check(settings.slack_bot_token, settings.slack_api_url)


def desk_add(args: argparse.Namespace, settings: Settings) -> int:
    from bot.config import clock_of
    from bot.db import session_scope
    from bot.desks import service as desks

    managers = desks.parse_user_list(args.managers, "managers")
    traders = desks.parse_user_list(args.traders, "traders")
    with session_scope(database(settings)) as session:
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
            check_channel=_channel_check(settings),
        )
        print(
            f"Added desk {desk.name}: channel {desk.channel_id}, {len(managers)} manager(s), "
            f"{len(traders)} trader(s), posts {desk.post_at}, deadline {desk.deadline} ({desk.timezone})."
        )
    return 0


def desk_list(args: argparse.Namespace, settings: Settings) -> int:
    # At head, the desks are read through the DB-API driver alone: no SQLAlchemy, no SQLModel
    # (0.5 s start-up budget, bench/README.md); otherwise, or when unsure, migrate and use the ORM.
    from bot.desks.listing import read_orm, read_quick

    prepare_database(settings)
    listing = read_quick(settings.database_url) or read_orm(database(settings))

    def who(users: list[str]) -> str:
        return ",".join(f"{plain(listing.names(u))} ({u})" if u in listing.names else u for u in users)

    if not listing.desks:
        print(f"No desks yet in {settings.database_label}.")
        print("Add one with: preflight desk add NAME --channel ... (see --help)")
        return 0
    print_table(
        ("NAME", "CHANNEL", "TIMEZONE", "POST", "DEADLINE", "MANAGERS", "TRADERS"),
        [
            (d.name, d.channel_id, d.timezone, d.post_at, d.deadline, who(d.managers), who(d.traders))
            for d in listing.desks
        ],
    )
    return 0


def desk_show(args: argparse.Namespace, settings: Settings) -> int:
    from bot.config import clock_of
    from bot.desks.listing import show_lines

    lines = show_lines(database(settings), args.name, clock_of(settings)())
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"{label + ':':<{width + 1}} {plain(value)}")
    return 0


def desk_remove(args: argparse.Namespace, settings: Settings) -> int:
    from bot.config import clock_of
    from bot.db import session_scope
    from bot.desks import service as desks

    engine = database(settings)
    with session_scope(engine) as session:
        desks.get_desk(session=session, name=args.name)  # a missing desk is the error, with or without --yes
    if not args.yes:
        raise CliError(
            f"preflight desk remove: this deletes {args.name} and its whole history; run again with --yes to do it"
        )
    with session_scope(engine) as session:
        desks.remove_desk(session=session, name=args.name, now=clock_of(settings)(), actor="cli")
    print(f"Removed desk {args.name}.")
    return 0


def desk_rename(args: argparse.Namespace, settings: Settings) -> int:
    from bot.config import clock_of
    from bot.db import session_scope
    from bot.desks import service as desks

    with session_scope(database(settings)) as session:
        desk = desks.get_desk(session=session, name=args.name)
        assert desk.id is not None
        desks.update_desk(session=session, desk_id=desk.id, now=clock_of(settings)(), actor="cli", name=args.new_name)
    print(f"Renamed desk {args.name} to {args.new_name}.")
    return 0


def desk_members(args: argparse.Namespace, settings: Settings) -> int:
    from bot.config import clock_of
    from bot.db import session_scope
    from bot.desks import service as desks
    from bot.desks.models import Role

    lists = {
        key: desks.parse_user_list(value, key) if value else []
        for key, value in (
            ("add_traders", args.add_traders),
            ("remove_traders", args.remove_traders),
            ("add_managers", args.add_managers),
            ("remove_managers", args.remove_managers),
        )
    }
    if not any(lists.values()):
        raise CliError("preflight desk members: nothing to change (see preflight desk members --help)")
    with session_scope(database(settings)) as session:
        desk = desks.get_desk(session=session, name=args.name)
        assert desk.id is not None
        changed = desks.update_desk(
            session=session,
            desk_id=desk.id,
            now=clock_of(settings)(),
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


def desk_set(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db import session_scope

    if args.pager_secret_file is not None:
        args.pager_secret = read_secret(args.pager_secret_file)
        args.field_hints = {"pager_secret": "--pager-secret-file"}  # the flag that was used
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
        args.sunday_evening,
        args.security_contact,
        args.ip_restrictions,
    )
    if all(v is None for v in values):
        raise CliError("preflight desk set: nothing to change (see preflight desk set --help)")
    from bot.config import clock_of
    from bot.desks import service as desks

    with session_scope(database(settings)) as session:
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
            sunday_evening=None if args.sunday_evening is None else args.sunday_evening == "yes",
            actor="cli",
            now=clock_of(settings)(),
            allow_private_pager=settings.allow_private_pager,
            check_channel=_channel_check(settings),
        )
        _broker_settings(session, desk, args, clock_of(settings)())
        print(
            f"Desk {desk.name}: reminder {desk.reminder_minutes} min before the deadline, level 2 after "
            f"{desk.ack_timeout_minutes} min, escalation channel {desk.escalation_channel_id or '-'}, pager "
            f"{desk.pager_kind}{' ' + desk.pager_url if desk.pager_url else ''}"
            f"{' (secret set)' if desk.pager_secret else ''}; weekly summary {desk.summary_delay_minutes} min "
            f"after the close to {desk.managers_channel_id or 'each manager by DM'}; a late checklist gets at least "
            f"{desk.grace_minutes} min; Sunday-evening probe {'yes' if desk.sunday_evening else 'no'}; "
            f"security contact {plain(contact_line(session, desk))}; IP restrictions "
            f"{'yes' if desk.ip_restrictions else 'no'}."
        )
    return 0


def contact_line(session: Session, desk: Desk) -> str:
    from bot.desks import contact

    found = contact.contacts(session, [desk])
    if not found:
        return "-"
    return f"{found[0][1]} ({desk.security_contact_user})" if desk.security_contact_user else found[0][1]


def _broker_settings(session: Session, desk: Desk, args: argparse.Namespace, now: datetime) -> None:
    from bot.desks import contact

    if args.security_contact is None and args.ip_restrictions is None:
        return
    user, text = contact.parse_contact(args.security_contact or "")
    contact.set_broker_settings(
        session=session,
        desk=desk,
        contact_user=user,
        contact_text=text,
        ip_restrictions=None if args.ip_restrictions is None else args.ip_restrictions == "yes",
        change_contact=args.security_contact is not None,
        actor="cli",
        now=now,
    )
