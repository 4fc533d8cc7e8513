"""``preflight probe add | list | remove | run``: register probe endpoints and ask them.

Bad input is one line on stderr and exit 2 (the ServiceError's field becomes its flag),
nothing stored.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.clikit import clock, database, group
from bot.config import Settings

# Imported on use (SQLModel behind them): ``preflight desk list`` at head builds this parser
# without loading SQLAlchemy (docs/architecture.md, start-up).
ACTOR = "cli"


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``probe`` and its commands to the top-level subparsers ``sub``."""
    probe = group(
        sub, "probe", "ask a trader's Client Portal Gateway / IBeam or TWS API socket whether the session is alive"
    )

    add = probe.add_parser("add", help="register an endpoint (loopback or private addresses only)")
    add.add_argument("desk", metavar="DESK")
    add.add_argument("--trader", required=True, metavar="UID", help="the trader's Slack user ID")
    target = add.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--url", metavar="URL", help="Client Portal Gateway / IBeam base URL, e.g. https://127.0.0.1:5000"
    )
    target.add_argument("--tws", metavar="HOST:PORT", help="TWS / IB Gateway API socket, e.g. 127.0.0.1:7497")
    add.add_argument("--label", required=True, metavar="TEXT", help="a name for the endpoint, unique on the desk")
    tls = add.add_mutually_exclusive_group()
    tls.add_argument("--ca-bundle", metavar="FILE", help="PEM CA bundle that signed the gateway's certificate")
    tls.add_argument(
        "--allow-self-signed",
        action="store_true",
        help="accept the gateway's certificate unverified (loopback and private hosts only)",
    )
    add.add_argument("--automation", metavar="NAME", help="the endpoint serves this automation (owned by --trader)")
    add.set_defaults(handler=_add)

    listing = probe.add_parser("list", help="list a desk's endpoints and their latest result")
    listing.add_argument("desk", metavar="DESK")
    listing.set_defaults(handler=_list)

    remove = probe.add_parser("remove", help="remove an endpoint and its results")
    remove.add_argument("desk", metavar="DESK")
    remove.add_argument("--label", required=True, metavar="TEXT")
    remove.set_defaults(handler=_remove)

    run = probe.add_parser("run", help="ask every endpoint of a desk now (or one trader's) and store the results")
    run.add_argument("desk", metavar="DESK")
    run.add_argument("--trader", metavar="UID", help="only this trader's endpoints")
    run.set_defaults(handler=_run)


def _add(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db import session_scope
    from bot.desks import service as desks
    from bot.probe import service
    from bot.probe.outcome import tidy

    data = service.EndpointInput(
        trader_id=args.trader,
        label=args.label,
        url=args.url,
        tws=args.tws,
        ca_bundle=args.ca_bundle,
        allow_self_signed=args.allow_self_signed,
        automation=args.automation,
    )
    with session_scope(database(settings)) as session:
        desk = desks.get_desk(session=session, name=args.desk)
        row = service.add_endpoint(session=session, desk=desk, data=data, actor=ACTOR, now=clock(settings)())
        tls = service.tls_text(row)
        print(
            f"Probe {row.label} added to {desk.name} for {row.trader_id}: {service.target_text(row)}"
            f"{f' ({tidy(tls, 200)})' if tls else ''}."
        )
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db import read_scope
    from bot.desks import service as desks
    from bot.probe import service
    from bot.probe.labels import state_text
    from bot.probe.outcome import tidy

    with read_scope(database(settings)) as session:
        desk = desks.get_desk(session=session, name=args.desk)
        assert desk.id is not None
        rows = service.list_endpoints(session=session, desk_id=desk.id)
        latest = {
            s.endpoint_id: s for group in service.latest(session=session, desk_id=desk.id).values() for s in group
        }
    if not rows:
        print(f"No probe endpoints on {desk.name} (preflight probe add).")
        return 0
    header = ("LABEL", "TRADER", "TARGET", "TLS", "LAST RESULT")
    table = [header]
    for row in rows:
        assert row.id is not None
        last = latest.get(row.id)
        seen = "never run"
        if last is not None and last.state is not None and last.checked_at is not None:
            seen = f"{state_text(row.kind, last.state)} at {_utc(last.checked_at)}"
        table.append(
            (row.label, row.trader_id, service.target_text(row), tidy(service.tls_text(row), 200) or "-", seen)
        )
    _print_table(table)
    return 0


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    from bot.db import session_scope
    from bot.desks import service as desks
    from bot.probe import service

    with session_scope(database(settings)) as session:
        desk = desks.get_desk(session=session, name=args.desk)
        row = service.remove_endpoint(session=session, desk=desk, label=args.label, actor=ACTOR, now=clock(settings)())
        print(f"Probe {row.label} removed from {desk.name} ({service.target_text(row)}), with its results.")
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.desks.service import check_user_id
    from bot.probe import service
    from bot.probe.jobs import run_probes
    from bot.probe.labels import state_text
    from bot.probe.models import TlsMode
    from bot.probe.outcome import tidy

    trader = check_user_id(args.trader.strip(), field="trader") if args.trader is not None else None
    probed = run_probes(database(settings), desk_name=args.desk, clock=clock(settings), trader_id=trader)
    if not probed:
        print(f"No probe endpoints on {args.desk}{f' for {trader}' if trader else ''} (preflight probe add).")
        return 0
    table: list[tuple[str, str, str, str]] = []
    for item in probed:
        row, outcome = item.endpoint, item.outcome
        target = service.target_text(row) + (" (self-signed)" if row.tls == TlsMode.SELF_SIGNED else "")
        detail = outcome.detail
        if item.expires_at is not None:
            minutes = max(0, round((item.expires_at - item.checked_at).total_seconds() / 60))
            detail += f"; session expires {_utc(item.expires_at)} (in {minutes} min)"
        table.append((row.label, target, state_text(row.kind, outcome.state), tidy(detail, 400)))
    _print_table(table)
    return 0


def _utc(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M}Z"


def _print_table(table: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)] + [row[-1]]
        print("  ".join(cells).rstrip())
