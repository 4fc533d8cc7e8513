"""What ``preflight desk list`` shows, read two ways that must agree.

- ``read_quick``: plain SQL over a DB-API connection (``bot.dbapi``), importing neither
  SQLAlchemy nor SQLModel, so the command fits its 0.5 s start-up budget (bench/README.md).
  None whenever it is not sure (another URL form, no such file, a database not at head, any
  driver error): the caller then takes ``read_orm`` after migrating.
- ``read_orm``: the desks service and the people cache, through the ORM.

The same rows in the same order either way: desks by name (the database orders them), each
desk's managers and traders in the order they were added (member id), and the shown names of
the people the ``slack_user`` cache knows (``bot.people.names``). ``tests/test_desk_listing.py``
compares the two on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from bot.dbapi import Reader, driver_errors, read_at_head
from bot.people.names import Names, has_name, shown_name_of

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from bot.desks.models import Desk

MANAGER, TRADER = "manager", "trader"  # bot.desks.models.Role's values (that module imports SQLModel)
CHUNK = 500  # user IDs per IN (...) query, as bot.people.service.names_for


@dataclass(frozen=True)
class ListedDesk:
    name: str
    channel_id: str
    timezone: str
    post_at: str
    deadline: str
    managers: list[str]
    traders: list[str]


@dataclass(frozen=True)
class Listing:
    desks: list[ListedDesk]
    names: Names


def read_quick(database_url: str) -> Listing | None:
    """The listing through the driver alone, or None when unsure (see the module's doc)."""
    try:
        with read_at_head(database_url) as reader:
            return None if reader is None else _read(reader)
    except driver_errors(database_url):
        return None


def _read(reader: Reader) -> Listing:
    desks = reader.rows("SELECT id, name, channel_id, timezone, post_at, deadline FROM desk ORDER BY name")
    members: dict[tuple[int, str], list[str]] = {}
    for desk_id, user_id, role in reader.rows("SELECT desk_id, user_id, role FROM desk_member ORDER BY id"):
        members.setdefault((desk_id, role), []).append(user_id)
    listed = [
        ListedDesk(
            name=name,
            channel_id=channel,
            timezone=zone,
            post_at=post,
            deadline=deadline,
            managers=members.get((desk_id, MANAGER), []),
            traders=members.get((desk_id, TRADER), []),
        )
        for desk_id, name, channel, zone, post, deadline in desks
    ]
    wanted = sorted({u for d in listed for u in (*d.managers, *d.traders) if u})
    known: dict[str, str] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        marks = ", ".join("?" for _ in chunk)
        for user_id, display, real, handle, deleted in reader.rows(
            f"SELECT user_id, display_name, real_name, handle, deleted FROM slack_user WHERE user_id IN ({marks})",
            chunk,
        ):
            if has_name(display, real, handle):
                known[user_id] = shown_name_of(user_id, display, real, handle, bool(deleted))
    return Listing(desks=listed, names=Names(known))


def read_orm(engine: Engine) -> Listing:
    """The listing through the desks service and the people cache (the ORM)."""
    from bot.db import session_scope
    from bot.desks import service as desks
    from bot.people import service as people

    with session_scope(engine) as session:
        rows = [desks.describe(session=session, desk=d) for d in desks.list_desks(session=session)]
        names = people.names_for(session=session, user_ids=[u for r in rows for u in (*r.managers, *r.traders)])
    listed = [
        ListedDesk(
            name=r.desk.name,
            channel_id=r.desk.channel_id,
            timezone=r.desk.timezone,
            post_at=r.desk.post_at,
            deadline=r.desk.deadline,
            managers=r.managers,
            traders=r.traders,
        )
        for r in rows
    ]
    return Listing(desks=listed, names=names)


def show_lines(engine: Engine, name: str, now: datetime) -> list[tuple[str, str]]:
    """Every setting of one desk, as ``preflight desk show NAME`` prints them: (label, value).
    The pager secret only as set / not set; a webhook URL without its path (it may carry a
    token), as the audit trail shows it. ServiceError when there is no such desk."""
    from bot.db import session_scope
    from bot.desks import service as desks
    from bot.people import service as people

    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name=name)
        view = desks.describe(session=session, desk=desk)
        names = people.names_for(session=session, user_ids=[*view.managers, *view.traders, desk.security_contact_user])

    def who(users: list[str]) -> str:
        return ", ".join(f"{names(u)} ({u})" if u in names else u for u in users) or "-"

    pager = desk.pager_kind
    if desk.pager_kind != "none":
        url = desks.shown("pager_url", desk.pager_url) or ("default" if desk.pager_kind == "pagerduty" else "-")
        secret = "set, stored encrypted" if desk.pager_secret else "not set"
        pager = f"{desk.pager_kind}, URL {url}, secret {secret}"
    return [
        ("name", desk.name),
        ("channel", desk.channel_id),
        ("time zone", desk.timezone),
        ("post at", desk.post_at),
        ("deadline", desk.deadline),
        ("managers", who(view.managers)),
        ("traders", who(view.traders)),
        ("reminder", f"{desk.reminder_minutes} min before the deadline" if desk.reminder_minutes else "none"),
        ("grace", f"a checklist posted late gets at least {desk.grace_minutes} min"),
        ("level 2 after", f"{desk.ack_timeout_minutes} min unacknowledged"),
        ("escalation channel", desk.escalation_channel_id or "-"),
        ("pager", pager),
        (
            "weekly summary",
            f"{desk.summary_delay_minutes} min after the week's close, to "
            f"{desk.managers_channel_id or 'each manager by DM'}",
        ),
        ("sunday evening", sunday_text(desk, now)),
        (
            "security contact",
            who([desk.security_contact_user])
            if desk.security_contact_user
            else (desk.security_contact_text or "- (the readiness guidance can't name who to ask)"),
        ),
        ("ip restrictions", "yes: elevated traders and automations record theirs" if desk.ip_restrictions else "no"),
    ]


def sunday_text(desk: Desk, now: datetime) -> str:
    """Whether the desk trades Sunday evening, and when its next Sunday probe runs (desk time)."""
    from bot import calendar

    if not desk.sunday_evening:
        return "no (broker probes run at checklist time only)"
    window = calendar.next_sunday_window(now)
    at = window.probe_at.astimezone(calendar.zone(desk.timezone))
    new_york = window.probe_at.astimezone(calendar.EXCHANGE_TZ)
    return (
        f"yes: broker probes also run Sunday {new_york:%H:%M} New York time, after IBKR's weekly "
        f"re-authentication and before its FX week opens (next: {at:%a %d %b %H:%M %Z} desk time)"
    )
