"""Desks and their members (managers, traders)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from bot.calendar import parse_hhmm, zone
from bot.crypto import CryptoError, Keyring, keyring
from bot.delivery import pager as pager_mod
from bot.delivery.pager import PagerTarget
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
    now: datetime,
) -> Desk:
    check_name(name)
    check_channel_id(channel_id)
    for user in (*managers, *traders):
        check_user_id(user)
    if not traders:
        raise ServiceError("a desk needs at least one trader", field="traders")
    if not managers:
        raise ServiceError("a desk needs at least one manager", field="managers")
    zone(timezone)
    post, due = parse_hhmm(post_at), parse_hhmm(deadline)
    if due <= post:
        raise ServiceError(f"the deadline {deadline} must be after the post time {post_at}", field="deadline")
    if session.exec(select(Desk).where(Desk.name == name)).first() is not None:
        raise ServiceError(f"a desk named {name!r} already exists")
    desk = Desk(
        name=name,
        channel_id=channel_id,
        timezone=timezone,
        post_at=post.strftime("%H:%M"),
        deadline=due.strftime("%H:%M"),
        created_at=now,
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
        # Echo the name only when it could be one: typed text never comes back unfiltered.
        shown = f" named {name!r}" if _NAME.match(name) else " with that name"
        raise ServiceError(f"there is no desk{shown}", field="name")
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


# --- settings: escalation policy, pager, weekly summary ---------------------------------


def _in_range(value: int | None, low: int, high: int, what: str, field: str) -> None:
    if value is not None and not low <= value <= high:
        raise ServiceError(f"{what} must be between {low} and {high} minutes, got {value}", field=field)


def configure_desk(
    *,
    session: Session,
    name: str,
    keys: Keyring | Sequence[str] | str | None,
    reminder_minutes: int | None = None,
    ack_timeout_minutes: int | None = None,
    escalation_channel: str | None = None,
    pager_kind: str | None = None,
    pager_url: str | None = None,
    pager_secret: str | None = None,
    managers_channel: str | None = None,
    summary_delay_minutes: int | None = None,
) -> Desk:
    """Change a desk's escalation policy, pager and weekly summary settings; every value is
    checked before anything changes. Errors name the setting in words and carry ``field``
    (the CLI turns it into a flag, the Slack modal into a field error)."""
    desk = get_desk(session=session, name=name)
    _in_range(reminder_minutes, 0, 600, "The reminder lead time", "reminder_minutes")
    _in_range(ack_timeout_minutes, 1, 1440, "The acknowledgement timeout", "ack_timeout_minutes")
    _in_range(summary_delay_minutes, 0, 1440, "The weekly summary delay", "summary_delay_minutes")
    for value, field in ((escalation_channel, "escalation_channel"), (managers_channel, "managers_channel")):
        if value:
            try:
                check_channel_id(value)
            except ServiceError as exc:
                raise ServiceError(str(exc), field=field) from None
    if pager_kind is not None and pager_kind not in pager_mod.PAGER_KINDS:
        raise ServiceError(
            f"the pager kind must be one of {', '.join(pager_mod.PAGER_KINDS)}, got {pager_kind!r}", field="pager_kind"
        )
    if pager_url and (problem := pager_mod.url_problem(pager_url)):
        raise ServiceError(problem, field="pager_url")
    try:
        encrypted = keyring(keys).encrypt(pager_secret) if pager_secret else None
    except CryptoError as exc:
        raise ServiceError(str(exc), field="pager_secret") from None
    kind = pager_kind or desk.pager_kind
    if kind == "pagerduty" and not (encrypted or desk.pager_secret):
        raise ServiceError("a PagerDuty desk needs its routing key", field="pager_secret")
    if kind == "webhook" and not (pager_url or desk.pager_url):
        raise ServiceError("a webhook desk needs the webhook's URL (https://...)", field="pager_url")
    changes: dict[str, Any] = {
        "reminder_minutes": reminder_minutes,
        "ack_timeout_minutes": ack_timeout_minutes,
        "escalation_channel_id": None if escalation_channel is None else (escalation_channel or None),
        "pager_kind": pager_kind,
        "pager_url": None if pager_url is None else (pager_url or None),
        "pager_secret": encrypted,
        "managers_channel_id": None if managers_channel is None else (managers_channel or None),
        "summary_delay_minutes": summary_delay_minutes,
    }
    clear = {
        "escalation_channel_id": escalation_channel,
        "pager_url": pager_url,
        "managers_channel_id": managers_channel,
    }
    for attr, value in changes.items():
        if value is not None or clear.get(attr) == "":
            setattr(desk, attr, value)
    session.add(desk)
    session.flush()
    return desk


def pager_target(session: Session, desk_id: int) -> PagerTarget | None:
    """The desk's pager settings as delivery reads them (``bot.delivery.worker.PagerLookup``)."""
    desk = session.get(Desk, desk_id)
    if desk is None:
        return None
    return PagerTarget(desk_name=desk.name, kind=desk.pager_kind, url=desk.pager_url, secret_token=desk.pager_secret)
