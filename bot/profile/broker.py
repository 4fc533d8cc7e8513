"""A trader's broker setup: their IBKR usernames (never a password) and the broker-side fences
they have set (order precautions, the account's IP restriction).

A person and an automation on one username are two brokerage sessions competing: the
automation register looks the usernames up here (``people_on``) to flag it, whatever the
automation's owner declared. Domain only: no Slack; reads take ``session``; saving is
``bot.profile.saves.save_broker_setup``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sqlmodel import Session, col, func, select

from bot.profile.models import Automation, BrokerUsername
from bot.profile.policy import normalized_username
from bot.secret_text import looks_like_secret

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ONLY_DIGITS = re.compile(r"^\d+$")  # a code pasted where the username goes: never a username
ACCOUNT_ID = re.compile(r"^D?[UFI]\d{5,9}$", re.IGNORECASE)  # U1234567, DU1234567: an account, not a user
USERNAMES_LIMIT = 5
_SPLIT = re.compile(r"[\s,;]+")

SECRET_REFUSAL = "That looks like a password or a one-time code, not a username: nothing was stored."
USERNAME_HELP = "letters, digits, '.', '_' or '-'; never a password"


def username_error(value: str) -> str | None:
    """Why ``value`` can't be an IBKR username (None when it can)."""
    name = value.strip()
    if looks_like_secret(name) or ONLY_DIGITS.match(name):
        return SECRET_REFUSAL
    if ACCOUNT_ID.match(name):
        return f"{name} is an account number; enter the username you log in with."
    if not USERNAME.match(name):
        return f"Enter IBKR usernames only ({USERNAME_HELP})."
    return None


def parse_usernames(raw: str | None) -> tuple[list[str], str | None]:
    """Usernames from a comma-, space- or line-separated text: (usernames, error)."""
    names: list[str] = []
    if looks_like_secret(raw):
        return [], SECRET_REFUSAL
    for part in _SPLIT.split(raw or ""):
        if not part:
            continue
        error = username_error(part)
        if error:
            return [], error
        if normalized_username(part) not in {normalized_username(n) for n in names}:
            names.append(part)
    if len(names) > USERNAMES_LIMIT:
        return [], f"At most {USERNAMES_LIMIT} usernames."
    return names, None


def usernames_of(session: Session, user_ids: Sequence[str]) -> dict[str, list[str]]:
    """Each trader's recorded usernames (one statement)."""
    out: dict[str, list[str]] = {u: [] for u in user_ids}
    if not user_ids:
        return out
    rows = session.exec(
        select(BrokerUsername)
        .where(col(BrokerUsername.user_id).in_(list(user_ids)))
        .order_by(col(BrokerUsername.user_id), col(BrokerUsername.id))
    ).all()
    for row in rows:
        out.setdefault(row.user_id, []).append(row.username)
    return out


def people_on(session: Session, usernames: Iterable[str]) -> dict[str, set[str]]:
    """Normalized username -> the traders who record it as theirs (one statement)."""
    wanted = sorted({normalized_username(u) for u in usernames if u.strip()})
    if not wanted:
        return {}
    rows = session.exec(
        select(BrokerUsername.user_id, BrokerUsername.username).where(func.lower(BrokerUsername.username).in_(wanted))
    ).all()
    out: dict[str, set[str]] = {}
    for user_id, username in rows:
        out.setdefault(normalized_username(username), set()).add(user_id)
    return out


def automations_on(session: Session, usernames: Sequence[str]) -> list[tuple[str, str, int]]:
    """(username, automation name, desk id) of every automation logging in with one of
    ``usernames`` (one statement): a person's sessions competing with it."""
    wanted = sorted({normalized_username(u) for u in usernames if u.strip()})
    if not wanted:
        return []
    rows = session.exec(
        select(Automation.broker_username, Automation.name, Automation.desk_id)
        .where(func.lower(Automation.broker_username).in_(wanted))
        .order_by(col(Automation.name))
    ).all()
    return [(u, n, d) for u, n, d in rows]
