"""Names and workspace roles from the cached ``slack_user`` table: queries only, no Slack.

A name is user-controlled text (a display name can be ``<!channel>``): ``Names`` hands out
plain text, cleaned of invisible characters and cut to ``NAME_LIMIT``; every builder that puts
it in ``mrkdwn`` escapes it (``bot.slack.blocks.escape``). An unknown user shows as their ID.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.db import conflict_insert
from bot.people.models import Person
from bot.people.names import NAME_LIMIT as NAME_LIMIT  # re-exported: the rule lives in bot.people.names
from bot.people.names import NO_NAMES as NO_NAMES
from bot.people.names import Names as Names
from bot.people.names import has_name, shown_name_of

MAX_AGE = timedelta(hours=24)


def shown_name(person: Person) -> str:
    """What people see: display name, else real name, else the @handle, else the ID."""
    return shown_name_of(person.user_id, person.display_name, person.real_name, person.handle, person.deleted)


_NAME_COLUMNS = (
    col(Person.user_id),
    col(Person.display_name),
    col(Person.real_name),
    col(Person.handle),
    col(Person.deleted),
)


def name_of(user_id: str, display_name: str | None, real_name: str | None, handle: str | None, deleted: bool) -> Names:
    """One user's shown name from the columns of ``_NAME_COLUMNS`` (none if never named)."""
    if not has_name(display_name, real_name, handle):  # a failed refresh keeps the name
        return Names()
    return Names({user_id: shown_name_of(user_id, display_name, real_name, handle, deleted)})


def names_for(*, session: Session, user_ids: Iterable[str | None]) -> Names:
    """Shown names of these users in one query (chunked for very long lists)."""
    wanted = sorted({u for u in user_ids if u})
    known: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        # The five columns a name needs, not whole rows: a 2,000-trader roster reads them all.
        rows = session.execute(sa_select(*_NAME_COLUMNS).where(col(Person.user_id).in_(chunk))).all()
        for user_id, display_name, real_name, handle, deleted in rows:
            if has_name(display_name, real_name, handle):  # a failed refresh keeps the name
                known[user_id] = shown_name_of(user_id, display_name, real_name, handle, deleted)
    return Names(known)


def get(*, session: Session, user_id: str) -> Person | None:
    return session.get(Person, user_id)


def is_workspace_admin(*, session: Session, user_id: str) -> bool:
    """A workspace admin or owner, as last seen (``users.info`` flags)."""
    person = session.get(Person, user_id)
    return person is not None and not person.deleted and (person.is_admin or person.is_owner)


def workspace_admins(*, session: Session) -> list[str]:
    rows = session.exec(
        select(Person.user_id).where(
            col(Person.deleted).is_(False), (col(Person.is_admin).is_(True)) | (col(Person.is_owner).is_(True))
        )
    ).all()
    return sorted(rows)


def stale(*, session: Session, user_ids: Iterable[str], now: datetime, max_age: timedelta = MAX_AGE) -> list[str]:
    """Which of ``user_ids`` have no cached profile, or one older than ``max_age``: unknown first."""
    wanted = sorted(set(user_ids))
    seen: dict[str, datetime] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        for uid, at in session.exec(
            select(Person.user_id, Person.fetched_at).where(col(Person.user_id).in_(chunk))
        ).all():
            seen[uid] = at
    missing = [u for u in wanted if u not in seen]
    old = sorted((u for u in wanted if u in seen and seen[u] < now - max_age), key=lambda u: seen[u])
    return missing + old


def unknown(*, session: Session, user_ids: Iterable[str]) -> list[str]:
    """Which of ``user_ids`` have no cached profile at all (sorted)."""
    wanted = sorted(set(user_ids))
    seen: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        seen.update(session.exec(select(Person.user_id).where(col(Person.user_id).in_(chunk))).all())
    return [u for u in wanted if u not in seen]


@dataclass(frozen=True)
class Profile:
    """What the cache keeps of a Slack user object (``users.info`` / ``user_change``): each field
    is the ``Person`` column of the same name."""

    user_id: str
    display_name: str = ""
    real_name: str = ""
    handle: str = ""
    tz: str | None = None
    deleted: bool = False
    is_admin: bool = False
    is_owner: bool = False
    is_bot: bool = False


def profile_from_slack(user: Mapping[str, Any]) -> Profile | None:
    """The Slack user object (https://api.slack.com/types/user) as a Profile; None if it has no id."""
    uid = user.get("id")
    if not isinstance(uid, str) or not uid:
        return None
    profile = user.get("profile") if isinstance(user.get("profile"), dict) else {}
    assert isinstance(profile, dict)

    def text(value: Any) -> str:
        return str(value)[:255] if isinstance(value, str) else ""

    return Profile(
        user_id=uid[:32],
        display_name=text(profile.get("display_name")),
        real_name=text(profile.get("real_name") or user.get("real_name")),
        handle=text(user.get("name")),
        tz=text(user.get("tz"))[:64] or None,
        deleted=bool(user.get("deleted")),
        is_admin=bool(user.get("is_admin")),
        is_owner=bool(user.get("is_owner") or user.get("is_primary_owner")),
        is_bot=bool(user.get("is_bot")),
    )


def _row(session: Session, user_id: str, now: datetime) -> Person:
    """The user's row, inserted first if missing (a concurrent writer may insert it first)."""
    person = session.get(Person, user_id)
    if person is not None:
        return person
    try:
        with session.begin_nested():
            person = Person(user_id=user_id, fetched_at=now)
            session.add(person)
        return person
    except IntegrityError:
        found = session.get(Person, user_id)
        assert found is not None
        return found


def remember(*, session: Session, profile: Profile, now: datetime) -> Person:
    """Insert or replace a user's cached profile."""
    person = _row(session, profile.user_id, now)
    _store(person, profile, now)
    session.add(person)
    return person


def remember_many(*, session: Session, profiles: Iterable[Profile], now: datetime) -> None:
    """``remember`` for a page of users (``users.list``): their rows read in one query per 500,
    the missing ones inserted (a concurrent writer may insert one first: it is then updated)."""
    by_id = {p.user_id: p for p in profiles}
    ids = sorted(by_id)
    rows: dict[str, Person] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows.update((p.user_id, p) for p in session.exec(select(Person).where(col(Person.user_id).in_(chunk))).all())
    missing = [by_id[u] for u in ids if u not in rows]
    for start in range(0, len(missing), 200):
        values = [{**asdict(p), "fetched_at": now, "error": None} for p in missing[start : start + 200]]
        insert = conflict_insert(session.get_bind().dialect.name, Person).values(values)
        inserted = set(session.execute(insert.on_conflict_do_nothing().returning(col(Person.user_id))).scalars())
        for profile in missing[start : start + 200]:
            if profile.user_id not in inserted:  # a concurrent writer inserted it first
                remember(session=session, profile=profile, now=now)
    for user_id, person in rows.items():
        _store(person, by_id[user_id], now)
        session.add(person)


def _store(person: Person, profile: Profile, now: datetime) -> None:
    for column, value in asdict(profile).items():
        setattr(person, column, value)
    person.fetched_at = now
    person.error = None


def remember_failure(*, session: Session, user_id: str, error: str, now: datetime) -> None:
    """Slack said the user doesn't exist (or can't be seen): don't ask again until ``MAX_AGE``;
    a name seen before is kept."""
    person = _row(session, user_id, now)
    person.fetched_at = now
    person.error = error[:64]
    session.add(person)
