"""``preflight profile policy|gaps``: a desk's drill windows, and the readiness-gap pass by hand."""

from __future__ import annotations

import argparse

from bot.clikit import Parser, database, desk_command, group
from bot.config import Settings
from bot.profile import broker_commands


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    prof = group(sub, "profile", "readiness profiles: drill windows, the readiness-gap pass")
    ppolicy = desk_command(prof, "policy", "a desk's drill windows per risk tier (days)", profile_policy)
    ppolicy.add_argument("--standard-drill-days", type=int, help="standard tier: verify a backup this often (30)")
    ppolicy.add_argument("--elevated-drill-days", type=int, help="elevated tier: verify a backup this often (14)")
    pgaps = prof.add_parser("gaps", help="run the readiness-gap pass now (idempotent) and list open gaps")
    pgaps.add_argument("name", nargs="?", help="one desk (default: every desk)")
    pgaps.set_defaults(handler=profile_gaps)
    broker_commands.register(prof)


def profile_policy(args: argparse.Namespace, settings: Settings) -> int:
    from bot.config import clock_of
    from bot.db import session_scope
    from bot.desks import service as desks
    from bot.profile import reading, saves

    if args.standard_drill_days is None and args.elevated_drill_days is None:
        with session_scope(database(settings)) as session:
            desk = desks.get_desk(session=session, name=args.name)
            row = reading.policy_row(session, desk.id or 0)
            standard = row.standard_drill_days if row else 30
            elevated = row.elevated_drill_days if row else 14
        print(f"Desk {args.name}: standard tier verifies a backup every {standard} days, elevated every {elevated}.")
        return 0
    with session_scope(database(settings)) as session:
        desk = desks.get_desk(session=session, name=args.name)
        row = saves.set_policy(
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


def profile_gaps(args: argparse.Namespace, settings: Settings) -> int:
    from bot.config import clock_of
    from bot.db import session_scope
    from bot.desks import service as desks
    from bot.profile import jobs
    from bot.profile.gaps import open_gaps

    engine = database(settings)
    with session_scope(engine) as session:
        if not args.name and not desks.list_desks(session=session):
            # A command with nothing to show says so (and where it looked).
            print(f"No desks yet in {settings.database_label}: no readiness gaps to look for.")
            return 0
    for line in jobs.profile_pass(engine, now=clock_of(settings)(), desk_name=args.name):
        print(line)
    shown = 0
    with session_scope(engine) as session:
        chosen = [desks.get_desk(session=session, name=args.name)] if args.name else desks.list_desks(session=session)
        for desk in chosen:
            for gap in open_gaps(session, desk.id or 0):
                escalated = f"escalation {gap.escalation_id}" if gap.escalation_id else "not escalated yet"
                print(f"  {desk.name}  {gap.user_id}  {gap.kind}  {gap.detail}  ({escalated})")
                shown += 1
    if not shown:
        print(f"No open readiness gaps on {args.name or 'any desk'}.")
    return 0
