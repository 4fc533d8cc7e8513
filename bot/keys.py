"""Every secret stored encrypted, in one place: what ``preflight keys rotate`` re-encrypts, what
``preflight serve`` checks before it starts, and what ``/healthz`` can report.

A capability that stores secrets under ``bot.crypto`` adds one ``SecretStore`` to ``STORES``:
``tokens`` lists its stored ciphertexts, ``rotate`` re-encrypts them all under the first key
(``Keyring.rotate``) and returns how many it did — the shape of
``rotate_secrets(*, session, keys) -> int``. Rotation runs every store in one transaction and
changes nothing when any stored secret can't be read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.config import ConfigError
from bot.crypto import Keyring, keyring
from bot.db import read_scope
from bot.desks.models import Desk
from bot.profile import drill
from bot.profile.models import TotpEnrollment


@dataclass(frozen=True)
class SecretStore:
    name: str  # in the operator's words, e.g. "desk pager secrets"
    tokens: Callable[[Session], Sequence[str]]  # every stored ciphertext
    rotate: Callable[..., int]  # rotate(*, session, keys: Keyring) -> number re-encrypted


def _desk_tokens(session: Session) -> Sequence[str]:
    return [t for t in session.exec(select(Desk.pager_secret).where(col(Desk.pager_secret).is_not(None))).all() if t]


def rotate_desk_secrets(*, session: Session, keys: Keyring) -> int:
    """Re-encrypt every desk's pager secret under the first key."""
    done = 0
    for desk in session.exec(select(Desk).where(col(Desk.pager_secret).is_not(None))).all():
        if desk.pager_secret:
            desk.pager_secret = keys.rotate(desk.pager_secret)
            session.add(desk)
            done += 1
    session.flush()
    return done


def _totp_tokens(session: Session) -> Sequence[str]:
    rows = session.exec(select(TotpEnrollment.secret, TotpEnrollment.pending_secret)).all()
    return [token for row in rows for token in row if token]


# The one list of stored secrets.
STORES: list[SecretStore] = [
    SecretStore("desk pager secrets", _desk_tokens, rotate_desk_secrets),
    SecretStore("backup-authenticator (TOTP) secrets", _totp_tokens, drill.rotate_secrets),
]


@dataclass(frozen=True)
class Census:
    stored: dict[str, int]  # store name -> stored secrets
    unreadable: dict[str, int]  # store name -> secrets no configured key decrypts

    @property
    def total(self) -> int:
        return sum(self.stored.values())

    @property
    def lost(self) -> int:
        return sum(self.unreadable.values())

    def problem(self, keys: Keyring) -> str | None:
        """One sentence when stored secrets can't be read with ``keys``, else None."""
        if not self.lost:
            return None
        where = ", ".join(f"{name}: {n}" for name, n in self.unreadable.items() if n)
        if not keys.configured:
            return f"PREFLIGHT_SECRET_KEYS is not set, but {self.lost} stored secret(s) need it ({where})"
        return (
            f"{self.lost} stored secret(s) can't be decrypted with PREFLIGHT_SECRET_KEYS ({where}): add the key they "
            "were stored under to the list (after the current one), or set those secrets again"
        )


def census(
    *, session: Session, keys: Keyring | Sequence[str] | str | None, stores: Sequence[SecretStore] = ()
) -> Census:
    ring = keyring(keys)
    stored: dict[str, int] = {}
    unreadable: dict[str, int] = {}
    for store in stores or STORES:
        tokens = store.tokens(session)
        stored[store.name] = len(tokens)
        unreadable[store.name] = sum(1 for t in tokens if not ring.readable(t))
    return Census(stored, unreadable)


def check_at_start(engine: Engine, keys: Keyring | Sequence[str] | str | None) -> None:
    """``serve`` calls this before it starts anything: ConfigError (one line, exit 2) when
    stored secrets exist that no configured key can read."""
    ring = keyring(keys)
    with read_scope(engine) as session:
        problem = census(session=session, keys=ring).problem(ring)
    if problem:
        raise ConfigError(problem)


def rotate_all(*, session: Session, keys: Keyring | Sequence[str] | str | None) -> dict[str, int]:
    """Re-encrypt every stored secret under the first key; {store name: count}. ConfigError,
    and nothing changed, when there is no key or a stored secret can't be read."""
    ring = keyring(keys)
    if not ring.configured:
        raise ConfigError("PREFLIGHT_SECRET_KEYS is not set: put the new key first, then the old ones")
    problem = census(session=session, keys=ring).problem(ring)
    if problem:
        raise ConfigError(problem + "; nothing was re-encrypted")
    return {store.name: store.rotate(session=session, keys=ring) for store in STORES}


def secrets_health(engine: Engine, keys: Keyring | Sequence[str] | str | None) -> dict[str, str]:
    """A ``/healthz`` detail field: {"secrets": "ok" | "N of M stored secrets unreadable"}."""
    ring = keyring(keys)
    try:
        with read_scope(engine) as session:
            found = census(session=session, keys=ring)
    except Exception:  # the database check reports an unreachable database
        return {"secrets": "unknown"}
    if found.lost:
        return {"secrets": f"{found.lost} of {found.total} stored secrets unreadable with PREFLIGHT_SECRET_KEYS"}
    return {"secrets": "ok"}
