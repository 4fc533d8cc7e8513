"""Desks and their members (managers, traders)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlmodel import Session, col, select

from bot.calendar import parse_hhmm, zone
from bot.desks.models import Desk, DeskMember, Role
from bot.errors import ServiceError

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_USER = re.compile(r"^[UW][A-Z0-9]{2,31}$")
_CHANNEL = re.compile(r"^[CG][A-Z0-9]{2,31}$")


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ServiceError(f"desk name {name!r} is invalid: use lowercase letters, digits, '-' or '_' (at most 64)")
    return name


def check_user_id(value: str) -> str:
    if not _USER.match(value):
        raise ServiceError(f"{value!r} is not a Slack user ID (like U0123ABCD)")
    return value


def check_channel_id(value: str) -> str:
    if not _CHANNEL.match(value):
        raise ServiceError(f"{value!r} is not a Slack channel ID (like C0123ABCD)")
    return value


def parse_user_list(value: str) -> list[str]:
    """'U01,U02' -> ['U01', 'U02'], validated and de-duplicated in order."""
    users: list[str] = []
    for part in value.split(","):
        user = check_user_id(part.strip())
        if user not in users:
            users.append(user)
    return users


@dataclass(frozen=True)
class DeskView:
    desk: Desk
    managers: list[str]
    traders: list[str]


def add_desk(
    *,
    session: Session,
    name: str,
    channel_id: str,
    managers: Sequence[str],
    traders: Sequence[str],
    timezone: str,
    post_at: str,
    deadline: str,
) -> Desk:
    check_name(name)
    check_channel_id(channel_id)
    for user in (*managers, *traders):
        check_user_id(user)
    if not traders:
        raise ServiceError("a desk needs at least one trader (--traders U01,U02)")
    if not managers:
        raise ServiceError("a desk needs at least one manager (--managers U01)")
    zone(timezone)
    post, due = parse_hhmm(post_at), parse_hhmm(deadline)
    if due <= post:
        raise ServiceError(f"the deadline {deadline} must be after the post time {post_at}")
    if session.exec(select(Desk).where(Desk.name == name)).first() is not None:
        raise ServiceError(f"a desk named {name!r} already exists")
    desk = Desk(
        name=name,
        channel_id=channel_id,
        timezone=timezone,
        post_at=post.strftime("%H:%M"),
        deadline=due.strftime("%H:%M"),
    )
    session.add(desk)
    session.flush()
    assert desk.id is not None
    _add_members(session, desk.id, managers, Role.MANAGER)
    _add_members(session, desk.id, traders, Role.TRADER)
    session.flush()
    return desk


def _add_members(session: Session, desk_id: int, users: Iterable[str], role: Role) -> None:
    for user in dict.fromkeys(users):
        session.add(DeskMember(desk_id=desk_id, user_id=user, role=role))


def get_desk(*, session: Session, name: str) -> Desk:
    desk = session.exec(select(Desk).where(Desk.name == name)).first()
    if desk is None:
        raise ServiceError(f"no desk named {name!r} (see 'preflight desk list')")
    return desk


def list_desks(*, session: Session) -> list[Desk]:
    return list(session.exec(select(Desk).order_by(col(Desk.name))).all())


def members(*, session: Session, desk_id: int, role: Role) -> list[str]:
    rows = session.exec(
        select(DeskMember.user_id)
        .where(DeskMember.desk_id == desk_id, DeskMember.role == role)
        .order_by(col(DeskMember.id))
    ).all()
    return list(rows)


def describe(*, session: Session, desk: Desk) -> DeskView:
    assert desk.id is not None
    return DeskView(
        desk=desk,
        managers=members(session=session, desk_id=desk.id, role=Role.MANAGER),
        traders=members(session=session, desk_id=desk.id, role=Role.TRADER),
    )


def desks_of_user(*, session: Session, user_id: str, role: Role | None = None) -> list[Desk]:
    query = (
        select(Desk)
        .join(DeskMember, col(DeskMember.desk_id) == col(Desk.id))
        .where(DeskMember.user_id == user_id)
        .distinct()
        .order_by(col(Desk.name))
    )
    if role is not None:
        query = query.where(DeskMember.role == role)
    return list(session.exec(query).all())


def is_member(*, session: Session, desk_id: int, user_id: str, role: Role) -> bool:
    row = session.exec(
        select(DeskMember.id).where(
            DeskMember.desk_id == desk_id, DeskMember.user_id == user_id, DeskMember.role == role
        )
    ).first()
    return row is not None
