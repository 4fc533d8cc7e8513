"""``preflight escalations run|list``: a desk's escalation pass by hand, and what is open."""

from __future__ import annotations

import argparse

from bot.clikit import CliError, Parser, database, desk_command, group, instant_arg, plain, print_table
from bot.config import Settings


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    esc = group(sub, "escalations", "run the escalation pass, list escalations")
    erun = desk_command(esc, "run", "run a desk's due escalation pass now (idempotent), then deliver", escalations_run)
    erun.add_argument(
        "--at",
        type=instant_arg,
        help="replay the pass as of this past instant, ISO-8601 (e.g. 2026-11-25T09:00-05:00); without a zone it "
        "is taken as UTC. A future instant is refused: the scheduler runs the pass every 30 seconds",
    )
    elist = esc.add_parser("list", help="escalations with state, level and delivery status; what waits and why")
    elist.add_argument("--open", action="store_true", help="only open or acknowledged escalations")
    elist.set_defaults(handler=escalations_list)


def escalations_run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.config import clock_of
    from bot.delivery.pacing import INFINITE
    from bot.delivery.pager import Pager
    from bot.delivery.slack import delivery_client
    from bot.delivery.tiers import SlackBudgets
    from bot.escalation.jobs import escalation_pass
    from bot.runtime import deliver_due, make_client

    clock = clock_of(settings)
    if args.at is not None and args.at > clock():
        # It would queue real reminders, escalations and pages for a time that hasn't come.
        raise CliError(
            f"preflight escalations run: --at {args.at:%Y-%m-%dT%H:%M:%SZ} is in the future: the scheduler runs "
            "the pass every 30 seconds (leave out --at, or replay a past instant)"
        )
    engine = database(settings)
    for line in escalation_pass(engine, now=args.at or clock(), desk_name=args.name):
        print(line)
    if not settings.slack_bot_token:
        print("SLACK_BOT_TOKEN is not set here: the running bot's outbox worker will deliver what was queued.")
        return 0
    pager = Pager(keys=settings.secret_keys, allow_private=settings.allow_private_pager)
    client = delivery_client(make_client(settings))
    # The same database-held budgets as the running bot's outbox: together they stay within Slack's
    # rate. This one-off pass waits for each slot (the bot's worker does other work meanwhile).
    budgets = SlackBudgets(engine)
    done = deliver_due(engine, client, pager, now=clock(), limit=1000, budgets=budgets, wait_at_most=INFINITE)
    pager.close()
    print(f"Delivered {done.delivered}, deferred {done.deferred}, failed {done.failed} (preflight escalations list).")
    return 0


def escalations_list(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db import session_scope
    from bot.delivery import status as outbox_status
    from bot.escalation import queries as escalation
    from bot.escalation.views import when_utc

    with session_scope(database(settings)) as session:
        rows = escalation.listing(session=session, open_only=args.open)
        waiting = outbox_status.waiting_messages(session=session)
        counts = outbox_status.outbox_counts(session=session)
        names = escalation.names_of(session=session, escalations=[e for e, _, _ in rows])

    def who(user: str | None) -> str:
        if not user:
            return "-"
        return f"{plain(names(user))} ({user})" if user in names else user

    if not rows:
        print(f"No {'open ' if args.open else ''}escalations in {settings.database_label}.")
    else:
        print_table(
            ("ID", "DESK", "TRADER", "KIND", "STATE", "LEVEL", "OPENED (UTC)", "BY", "DELIVERY"),
            [
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
            ],
        )
    print(
        f"\nOutbox: {counts['delivered']} delivered, {counts['waiting']} waiting, {counts['failed']} failed for good."
    )
    for m in waiting[:50]:
        why = m.last_error or "not attempted yet"
        print(f"  waiting #{m.id} {m.dedup_key}: {m.attempts} attempt(s), next {when_utc(m.next_attempt_at)} — {why}")
    if len(waiting) > 50:
        print(f"  ... and {len(waiting) - 50} more")
    return 0
