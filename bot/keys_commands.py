"""``preflight keys new|rotate|check``: the secret keys (PREFLIGHT_SECRET_KEYS) and what they
encrypt (``bot.keys``)."""

from __future__ import annotations

import argparse

from bot.clikit import CliError, Parser, database, group
from bot.config import Settings


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    keys = group(sub, "keys", "the secret keys (PREFLIGHT_SECRET_KEYS)")
    keys.add_parser("new", help="print a fresh random key for PREFLIGHT_SECRET_KEYS").set_defaults(handler=keys_new)
    keys.add_parser(
        "rotate",
        help="re-encrypt every stored secret under the first key of PREFLIGHT_SECRET_KEYS "
        "(put the new key first, the old ones after it; drop the old ones afterwards)",
    ).set_defaults(handler=keys_rotate)
    keys.add_parser(
        "check", help="say whether every stored secret can be read with PREFLIGHT_SECRET_KEYS"
    ).set_defaults(handler=keys_check)


def keys_new(args: argparse.Namespace, settings: Settings) -> int:
    from bot.crypto import new_key

    print(new_key())
    return 0


def keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from bot import keys
    from bot.db import session_scope

    with session_scope(database(settings)) as session:
        done = keys.rotate_all(session=session, keys=settings.secret_keys)
    where = ", ".join(f"{name}: {n}" for name, n in done.items())
    print(
        f"Re-encrypted {sum(done.values())} stored secret(s) under the first key ({where}). Keep the old keys in "
        "PREFLIGHT_SECRET_KEYS while exports they signed must verify; otherwise they can go."
    )
    return 0


def keys_check(args: argparse.Namespace, settings: Settings) -> int:
    from bot import keys
    from bot.crypto import Keyring
    from bot.db import read_scope

    ring = Keyring(settings.secret_keys)
    with read_scope(database(settings)) as session:
        found = keys.census(session=session, keys=ring)
    problem = found.problem(ring)
    if problem:
        raise CliError(f"preflight keys check: {problem}")
    print(f"{len(ring.keys)} key(s) configured; all {found.total} stored secret(s) can be read.")
    return 0
