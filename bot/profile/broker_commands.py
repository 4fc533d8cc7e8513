"""``preflight profile broker | automations | automation``: a trader's IBKR usernames and fences,
and the automation register's broker facts (who holds the second factor, paper or live, the
kill switch, the IP restriction).

Bad input is one line on stderr and exit 2 (the ServiceError's field becomes its flag), nothing
stored. Usernames only, never a password: anything that looks like one is refused.
"""

from __future__ import annotations

import argparse
from typing import Any

from bot.clikit import clock, database, plain
from bot.config import Settings

ACTOR = "cli"
YES_NO = ("yes", "no")


def register(prof: argparse._SubParsersAction[Any]) -> None:
    """Add the commands to the ``profile`` group's subparsers ``prof``."""
    pbroker = prof.add_parser("broker", help="a trader's IBKR usernames (never a password) and broker-side fences")
    pbroker.add_argument("user", metavar="UID", help="the trader's Slack user ID")
    pbroker.add_argument("--usernames", help="comma-separated IBKR usernames, replacing the recorded ones ('' clears)")
    pbroker.add_argument(
        "--order-precautions",
        choices=YES_NO,
        help="order precautions (size / value limits) set on every platform they trade, mobile included",
    )
    pbroker.add_argument("--ip-restricted", choices=YES_NO, help="the account's IP restriction covers their username")
    pbroker.set_defaults(handler=profile_broker, field_hints={"usernames": "--usernames"})
    plist = prof.add_parser("automations", help="a desk's automation register: broker facts, flags and fence gaps")
    plist.add_argument("desk", metavar="DESK")
    plist.set_defaults(handler=profile_automations)
    pauto = prof.add_parser("automation", help="change one automation's broker facts (add it in Slack's App Home)")
    pauto.add_argument("desk", metavar="DESK")
    pauto.add_argument("name", metavar="NAME")
    pauto.add_argument(
        "--second-factor",
        choices=("person", "bot"),
        help="who holds its IBKR second factor: a person's device, or the bot / its gateway keeper (flagged)",
    )
    pauto.add_argument("--account", choices=("live", "paper"), help="a live or a paper trading account")
    pauto.add_argument("--kill-switch", metavar="TEXT", help="who can stop it and how ('' clears)")
    pauto.add_argument("--ip-restricted", choices=YES_NO, help="the account's IP restriction covers its username")
    pauto.set_defaults(
        handler=profile_automation,
        field_hints={"kill_switch_how": "--kill-switch", "second_factor_holder": "--second-factor"},
    )


def _yes(value: str | None) -> bool | None:
    return None if value is None else value == "yes"


def profile_broker(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db import session_scope
    from bot.errors import ServiceError
    from bot.profile import broker, saves
    from bot.profile.reading import get_profile

    with session_scope(database(settings)) as session:
        changing = (args.usernames, args.order_precautions, args.ip_restricted) != (None, None, None)
        if changing:
            names = broker.usernames_of(session, [args.user])[args.user]
            if args.usernames is not None:
                names, error = broker.parse_usernames(args.usernames)
                if error:
                    raise ServiceError(error, field="usernames")
            saves.save_broker_setup(
                session=session,
                user_id=args.user,
                usernames=names,
                order_precautions=_yes(args.order_precautions),
                ip_restricted=_yes(args.ip_restricted),
                now=clock(settings)(),
                actor=ACTOR,
            )
        profile = get_profile(session, args.user)
        names = broker.usernames_of(session, [args.user])[args.user]
        precautions = "yes" if profile is not None and profile.order_precautions else "no"
        restricted = "yes" if profile is not None and profile.ip_restricted else "no"
        print(
            f"{args.user}: IBKR usernames {', '.join(names) or '-'}; order precautions {precautions}; "
            f"IP restriction {restricted}."
        )
    return 0


def _line(auto: Any, flags: list[str], fence_gaps: str) -> str:
    fences = [
        name
        for name, on in (
            ("read-only API", auto.read_only_api),
            ("trusted IPs", auto.trusted_ips),
            ("order-size limit", auto.order_size_limit),
            ("IP restriction", auto.ip_restricted),
        )
        if on
    ]
    return (
        f"  {auto.name}  owner {auto.owner_id}  {auto.account_kind}  user {auto.broker_username}  "
        f"2FA held by {'the bot (flagged)' if auto.second_factor_holder == 'bot' else 'a person'}  "
        f"kill switch: {auto.kill_switch_how or '-'}  fences: {', '.join(fences) or 'none'}  "
        f"flags: {'; '.join(flags) or 'none'}" + (f"  fence gaps: {fence_gaps}" if fence_gaps else "")
    )


def profile_automations(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db import session_scope
    from bot.desks import service as desks
    from bot.profile import automation as automations
    from bot.profile.gaps import open_gaps
    from bot.profile.models import GapKind

    with session_scope(database(settings)) as session:
        desk = desks.get_desk(session=session, name=args.desk)
        assert desk.id is not None
        rows = automations.on_desks(session=session, desk_ids=[desk.id])
        if not rows:
            print(f"No automations registered on {desk.name}.")
            return 0
        from bot import calendar

        today = calendar.local_date(clock(settings)(), calendar.zone(desk.timezone))
        flags = automations.flags(session=session, automations=rows, today=today)
        gaps = {g.subject: g.detail for g in open_gaps(session, desk.id) if g.kind == GapKind.FENCES}
        print(f"{desk.name}: {len(rows)} automation(s)")
        for auto in rows:
            detail = gaps.get(f"automation:{auto.id}", "")
            print(plain(_line(auto, [str(f) for f in flags[auto.id or 0]], detail.partition(": ")[2])))
    return 0


def profile_automation(args: argparse.Namespace, settings: Settings) -> int:
    import dataclasses

    from sqlmodel import func, select

    from bot import calendar
    from bot.clikit import CliError
    from bot.db import session_scope
    from bot.desks import service as desks
    from bot.profile import automation as automations
    from bot.profile.automation import AutomationInput
    from bot.profile.gaps import sync_trader
    from bot.profile.models import Automation

    changes = (args.second_factor, args.account, args.kill_switch, args.ip_restricted)
    if all(v is None for v in changes):
        raise CliError("preflight profile automation: nothing to change (see --help)")
    now = clock(settings)()
    with session_scope(database(settings)) as session:
        desk = desks.get_desk(session=session, name=args.desk)
        row = session.exec(
            select(Automation).where(Automation.desk_id == desk.id, func.lower(Automation.name) == args.name.lower())
        ).first()
        if row is None or row.id is None:
            raise CliError(f"preflight profile automation: no automation named {args.name!r} on {desk.name}")
        data = AutomationInput(
            desk_id=row.desk_id,
            owner_id=row.owner_id,
            name=row.name,
            interface=row.interface,
            broker_username=row.broker_username,
            read_only_api=row.read_only_api,
            trusted_ips=row.trusted_ips,
            order_size_limit=row.order_size_limit,
            kill_switch_tested_on=row.kill_switch_tested_on,
            credentials_rotated_on=row.credentials_rotated_on,
            session_host=row.session_host,
            person_logs_in=row.person_logs_in,
            second_factor_holder=row.second_factor_holder,
            account_kind=row.account_kind,
            kill_switch_how=row.kill_switch_how,
            ip_restricted=row.ip_restricted,
        )
        data = dataclasses.replace(
            data,
            second_factor_holder=args.second_factor or data.second_factor_holder,
            account_kind=args.account or data.account_kind,
            kill_switch_how=data.kill_switch_how if args.kill_switch is None else (args.kill_switch.strip() or None),
            ip_restricted=data.ip_restricted if args.ip_restricted is None else args.ip_restricted == "yes",
        )
        today = calendar.local_date(now, calendar.zone(desk.timezone))
        saved = automations.save(
            session=session, actor=ACTOR, automation_id=row.id, data=data, today=today, now=now, operator=True
        )
        sync_trader(session=session, user_id=saved.owner_id, now=now)  # as bot.profile.saves.save_automation
        print(
            plain(
                f"{desk.name}: {saved.name} ({saved.account_kind}) — second factor held by "
                f"{'the bot (flagged)' if saved.second_factor_holder == 'bot' else 'a person'}; kill switch: "
                f"{saved.kill_switch_how or 'not recorded'}; IP restriction {'yes' if saved.ip_restricted else 'no'}."
            )
        )
    return 0
