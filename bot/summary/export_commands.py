"""``preflight export`` (the hash-chained attestation record as CSV) and ``export verify FILE``."""

from __future__ import annotations

import argparse
import sys

from bot.clikit import CliError, Parser, database, date_arg
from bot.config import Settings


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    exp = sub.add_parser("export", help="the hash-chained attestation record as CSV; 'export verify FILE' checks one")
    exp.add_argument("--desk", help="desk name")
    exp.add_argument("--from", dest="start", type=date_arg, help="first trading date, YYYY-MM-DD")
    exp.add_argument("--to", dest="end", type=date_arg, help="last trading date, YYYY-MM-DD")
    exp.add_argument("--out", help="write here instead of standard output")
    exp.set_defaults(handler=export_csv)
    verify = exp.add_subparsers(dest="export_command", required=False, parser_class=Parser)
    check_file = verify.add_parser(
        "verify",
        help="check an export: 'intact and signed by this instance' (exit 0), 'consistent but unsigned or signed "
        "by another key' (exit 1: origin not proven), or 'tampered at row N' (exit 1)",
    )
    check_file.add_argument("file")
    check_file.set_defaults(handler=export_verify)  # a subcommand's defaults win over its parent's


def export_csv(args: argparse.Namespace, settings: Settings) -> int:
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
    with read_scope(database(settings)) as session:
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


def export_verify(args: argparse.Namespace, settings: Settings) -> int:
    from bot.crypto import Keyring
    from bot.summary import chain

    try:
        with open(args.file, encoding="utf-8", newline="") as handle:
            verdict = chain.verify(handle, keys=Keyring(settings.secret_keys))
    except OSError as exc:
        raise CliError(f"preflight export verify: cannot read {args.file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"preflight export verify: {args.file} is not UTF-8 text") from None
    print(f"{args.file}: {verdict.message}")
    return 0 if verdict.proven else 1
