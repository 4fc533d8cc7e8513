"""Shown names, as plain text: the rule, without the database (no SQLAlchemy, no SQLModel).

``bot.people.service`` reads ``slack_user`` rows through the ORM and ``bot.desks.listing``
reads them with plain SQL (``preflight desk list``); both turn a row into a name here, so the
two show the same name. A name is user-controlled text (a display name can be
``<!channel>``): it is cleaned of invisible characters and cut to ``NAME_LIMIT``; every
builder that puts it in ``mrkdwn`` escapes it (``bot.slack.blocks.escape``).
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.text import clean

NAME_LIMIT = 40


def _cut(text: str) -> str:
    text = " ".join(clean(text).split())
    return text if len(text) <= NAME_LIMIT else text[: NAME_LIMIT - 1] + "…"


def has_name(display_name: str | None, real_name: str | None, handle: str | None) -> bool:
    """Whether a cached profile holds a name at all (a failed refresh keeps the old one)."""
    return bool(display_name or real_name or handle)


def shown_name_of(
    user_id: str, display_name: str | None, real_name: str | None, handle: str | None, deleted: bool
) -> str:
    """What people see: display name, else real name, else the @handle, else the ID."""
    name = _cut(display_name or real_name or handle or user_id)
    return f"{name} (deactivated)" if deleted else name


class Names:
    """User ID -> shown name (plain text). ``names(uid)`` never fails: unknown IDs show as-is."""

    def __init__(self, known: Mapping[str, str] | None = None) -> None:
        self._known = dict(known or {})

    def __call__(self, user_id: str | None) -> str:
        if not user_id:
            return ""
        return self._known.get(user_id) or user_id

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._known

    def merged(self, other: Names) -> Names:
        return Names({**self._known, **other._known})

    def sort_key(self, user_id: str) -> tuple[str, str]:
        return (self(user_id).casefold(), user_id)


NO_NAMES = Names()
