"""Desks and their members (managers, traders)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete
from sqlmodel import Session, col, select

from bot import audit
from bot.calendar import EXCHANGE_TZ, REGULAR_CLOSE, CalendarError, deadline_after_close, parse_hhmm, zone
from bot.crypto import CryptoError, Keyring, keyring
from bot.delivery import pager as pager_mod
from bot.delivery.pager import PagerTarget
from bot.desks.models import MINUTE_RANGES, Desk, DeskMember, Role
from bot.errors import ServiceError
from bot.netguard import Resolver, system_resolver
from bot.secret_text import REFUSAL as SECRET_REFUSAL
from bot.secret_text import looks_like_secret

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_USER = re.compile(r"^[UW][A-Z0-9]{2,31}$")
_CHANNEL = re.compile(r"^[CG][A-Z0-9]{2,31}$")

# ``check(channel_id, field)``: returns when the bot is in the channel, else a ServiceError
# naming ``field`` (bot.slack.channels.channel_check). None: not checked (tests, scripts).
ChannelCheck = Callable[[str, str], None]


def valid_name(name: str) -> bool:
    """Could ``name`` be a desk's name? (Typed text is echoed only when it could be one.)"""
    return bool(_NAME.match(name))


def check_name(name: str) -> str:
    if not _NAME.match(name):
        shown = f" {name!r}" if len(name) <= 80 else ""
        raise ServiceError(
            f"desk name{shown} is invalid: use lowercase letters, digits, '-' or '_' (at most 64)", field="desk_name"
        )
    if looks_like_secret(name):
        raise ServiceError(SECRET_REFUSAL, field="desk_name")
    return name


def check_user_id(value: str, field: str | None = None) -> str:
    if not _USER.match(value):
        raise ServiceError(f"{value[:40]!r} is not a Slack user ID (like U0123ABCD)", field=field)
    return value


def check_channel_id(value: str, field: str | None = "channel") -> str:
    if not _CHANNEL.match(value):
        raise ServiceError(f"{value[:40]!r} is not a Slack channel ID (like C0123ABCD)", field=field)
    return value


def _check_zone(name: str) -> str:
    try:
        zone(name)
    except CalendarError as exc:
        raise ServiceError(str(exc), field="timezone") from None
    return name


def _check_times(post_at: str, deadline: str) -> tuple[str, str]:
    try:
        post = parse_hhmm(post_at)
    except CalendarError as exc:
        raise ServiceError(str(exc), field="post_at") from None
    try:
        due = parse_hhmm(deadline)
    except CalendarError as exc:
        raise ServiceError(str(exc), field="deadline") from None
    if due <= post:
        raise ServiceError(f"the deadline {deadline} must be after the post time {post_at}", field="deadline")
    return post.strftime("%H:%M"), due.strftime("%H:%M")


def _check_unique_name(session: Session, name: str, desk_id: int | None = None) -> None:
    found = session.exec(select(Desk.id).where(Desk.name == name)).first()
    if found is not None and found != desk_id:
        raise ServiceError(f"a desk named {name!r} already exists", field="desk_name")


def parse_user_list(value: str, field: str | None = None) -> list[str]:
    """'U01,U02' -> ['U01', 'U02'], validated and de-duplicated in order (errors name ``field``)."""
    users: list[str] = []
    for part in value.split(","):
        user = check_user_id(part.strip(), field)
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
    actor: str | None = None,
    check_channel: ChannelCheck | None = None,
) -> Desk:
    """Register a desk. Every rule is checked before anything is written; errors carry the
    setting's ``field`` (the CLI names its flag, the Slack modal shows a field error)."""
    check_name(name)
    check_channel_id(channel_id)
    for user in managers:
        check_user_id(user, "managers")
    for user in traders:
        check_user_id(user, "traders")
    if not managers:
        raise ServiceError("a desk needs at least one manager", field="managers")
    if not traders:
        raise ServiceError("a desk needs at least one trader", field="traders")
    _check_zone(timezone)
    post, due = _check_times(post_at, deadline)
    check_deadline_before_close(parse_hhmm(due), timezone, now)
    _check_unique_name(session, name)
    if check_channel is not None:
        check_channel(channel_id, "channel")
    desk = Desk(name=name, channel_id=channel_id, timezone=timezone, post_at=post, deadline=due, created_at=now)
    session.add(desk)
    session.flush()
    assert desk.id is not None
    _add_members(session, desk.id, managers, Role.MANAGER)
    _add_members(session, desk.id, traders, Role.TRADER)
    session.flush()
    record(
        session,
        desk.id,
        actor,
        "desk_created",
        now,
        desk=name,
        channel=channel_id,
        timezone=timezone,
        post_at=post,
        deadline=due,
        managers=list(dict.fromkeys(managers)),
        traders=len(dict.fromkeys(traders)),
    )
    return desk


def check_deadline_before_close(deadline: time, timezone: str, now: datetime) -> None:
    """A deadline later than the exchange close is refused: answers close with the market."""
    tz = zone(timezone)
    late = deadline_after_close(deadline, tz, now.astimezone(tz).date())
    if late is not None:
        close = datetime.combine(late, REGULAR_CLOSE, tzinfo=EXCHANGE_TZ).astimezone(tz)
        raise ServiceError(
            f"the deadline {deadline:%H:%M} is after the NYSE close ({close:%H:%M} {timezone} on {late:%a %d %b %Y}): "
            "pick an earlier one",
            field="deadline",
        )


# --- the audit trail of settings ------------------------------------------------------------

SECRET_SETTINGS = frozenset({"pager_secret"})


def record(session: Session, desk_id: int | None, actor: str | None, action: str, now: datetime, **detail: Any) -> None:
    """One audit event about a desk (who — "cli" when no one is named —, what, before -> after).
    Secrets never reach it: callers pass ``shown(...)`` values."""
    subject = f"desk:{desk_id}" if desk_id is not None else f"desk:{detail.get('desk', '?')}"
    audit.record(session, subject=subject, action=action, at=now, actor=actor or "cli", desk_id=desk_id, **detail)


def shown(attr: str, value: Any) -> Any:
    """A setting's value as the audit trail may show it: secrets as (set)/(none), URLs without
    their path or query (a webhook URL may carry a token)."""
    if attr in SECRET_SETTINGS:
        return "(set)" if value else "(none)"
    if attr == "pager_url" and isinstance(value, str) and value:
        parts = urlsplit(value)
        return f"{parts.scheme}://{parts.hostname or ''}/…" if parts.path.strip("/") or parts.query else value
    return value


def _add_members(session: Session, desk_id: int, users: Iterable[str], role: Role) -> None:
    for user in dict.fromkeys(users):
        session.add(DeskMember(desk_id=desk_id, user_id=user, role=role))


def get_desk_by_id(*, session: Session, desk_id: int) -> Desk:
    desk = session.get(Desk, desk_id)
    if desk is None:
        raise ServiceError("this desk no longer exists", field="desk_name")
    return desk


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


def memberships(*, session: Session, user_id: str) -> list[tuple[Desk, Role]]:
    """Every (desk, role) of ``user_id``, by desk name, in one query (``desks_of_user`` for
    every role at once)."""
    rows = session.exec(
        select(Desk, DeskMember.role)
        .join(DeskMember, col(DeskMember.desk_id) == col(Desk.id))
        .where(DeskMember.user_id == user_id)
        .order_by(col(Desk.name), col(DeskMember.role))
    ).all()
    return [(desk, Role(role)) for desk, role in rows]


def is_member(*, session: Session, desk_id: int, user_id: str, role: Role) -> bool:
    row = session.exec(
        select(DeskMember.id).where(
            DeskMember.desk_id == desk_id, DeskMember.user_id == user_id, DeskMember.role == role
        )
    ).first()
    return row is not None


# --- settings: escalation policy, pager, weekly summary ---------------------------------


def _in_range(value: int | None, what: str, field: str) -> None:
    low, high = MINUTE_RANGES[field]
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
    grace_minutes: int | None = None,
    sunday_evening: bool | None = None,
    actor: str | None = None,
    now: datetime | None = None,
    allow_private_pager: bool = False,
    resolve: Resolver = system_resolver,
    check_channel: ChannelCheck | None = None,
) -> Desk:
    """Change a desk's escalation policy (reminder, acknowledgement timeout, the grace period
    of a checklist posted late), pager and weekly summary settings, and whether it trades
    Sunday evening (its broker probes then run on Sunday too); every value is
    checked before anything changes. Errors name the setting in words and carry ``field``
    (the CLI turns it into a flag, the Slack modal into a field error). A change is an audit
    event (before -> after, secrets masked) when ``now`` is given. The pager URL goes through
    ``bot.delivery.pager.check_url`` (``allow_private_pager``: PREFLIGHT_ALLOW_PRIVATE_PAGER)."""
    desk = get_desk(session=session, name=name)
    _in_range(reminder_minutes, "The reminder lead time", "reminder_minutes")
    _in_range(ack_timeout_minutes, "The acknowledgement timeout", "ack_timeout_minutes")
    _in_range(summary_delay_minutes, "The weekly summary delay", "summary_delay_minutes")
    _in_range(grace_minutes, "The grace period of a late checklist", "grace_minutes")
    for value, field in ((escalation_channel, "escalation_channel"), (managers_channel, "managers_channel")):
        if value:
            check_channel_id(value, field)
    if pager_kind is not None and pager_kind not in pager_mod.PAGER_KINDS:
        raise ServiceError(
            f"the pager kind must be one of {', '.join(pager_mod.PAGER_KINDS)}, got {pager_kind!r}", field="pager_kind"
        )
    try:
        encrypted = keyring(keys).encrypt(pager_secret) if pager_secret else None
    except CryptoError as exc:
        raise ServiceError(str(exc), field="pager_secret") from None
    if pager_url:  # the webhook, or the PagerDuty base URL: https, public unless allowed (bot.netguard)
        pager_mod.check_url(pager_url, allow_private=allow_private_pager, resolve=resolve)
    kind = pager_kind or desk.pager_kind
    if kind == "pagerduty" and not (encrypted or desk.pager_secret):
        raise ServiceError("a PagerDuty desk needs its routing key", field="pager_secret")
    if kind == "webhook" and not (pager_url or desk.pager_url):
        raise ServiceError("a webhook desk needs the webhook's URL (https://...)", field="pager_url")
    if escalation_channel and check_channel is not None:
        check_channel(escalation_channel, "escalation_channel")
    changes: dict[str, Any] = {
        "reminder_minutes": reminder_minutes,
        "ack_timeout_minutes": ack_timeout_minutes,
        "escalation_channel_id": None if escalation_channel is None else (escalation_channel or None),
        "pager_kind": pager_kind,
        "pager_url": None if pager_url is None else (pager_url or None),
        "pager_secret": encrypted,
        "managers_channel_id": None if managers_channel is None else (managers_channel or None),
        "summary_delay_minutes": summary_delay_minutes,
        "grace_minutes": grace_minutes,
        "sunday_evening": sunday_evening,
    }
    clear = {
        "escalation_channel_id": escalation_channel,
        "pager_url": pager_url,
        "managers_channel_id": managers_channel,
    }
    diff: dict[str, list[Any]] = {}
    for attr, value in changes.items():
        if value is not None or clear.get(attr) == "":
            before = getattr(desk, attr)
            if before != value:
                diff[attr] = [shown(attr, before), "(changed)" if attr in SECRET_SETTINGS else shown(attr, value)]
            setattr(desk, attr, value)
    session.add(desk)
    session.flush()
    if diff and now is not None:
        assert desk.id is not None
        record(session, desk.id, actor, "settings_changed", now, desk=desk.name, changes=diff)
    return desk


# --- the desk itself: name, channel, schedule, members, removal ----------------------------


def update_desk(
    *,
    session: Session,
    desk_id: int,
    now: datetime,
    actor: str | None = None,
    name: str | None = None,
    channel_id: str | None = None,
    timezone: str | None = None,
    post_at: str | None = None,
    deadline: str | None = None,
    managers: Sequence[str] | None = None,
    traders: Sequence[str] | None = None,
    add_managers: Sequence[str] = (),
    remove_managers: Sequence[str] = (),
    add_traders: Sequence[str] = (),
    remove_traders: Sequence[str] = (),
    check_channel: ChannelCheck | None = None,
) -> dict[str, Any]:
    """Change a desk's name, channel, time zone, times or members (a full list, or additions
    and removals). Everything is checked before anything changes; the change is one audit
    event. Returns what changed (empty when nothing did)."""
    desk = get_desk_by_id(session=session, desk_id=desk_id)
    if name is not None and name != desk.name:
        check_name(name)
        _check_unique_name(session, name, desk_id)
    if channel_id is not None:
        check_channel_id(channel_id)
    if timezone is not None:
        _check_zone(timezone)
    post, due = _check_times(post_at or desk.post_at, deadline or desk.deadline)
    if deadline is not None or timezone is not None:
        check_deadline_before_close(parse_hhmm(due), timezone or desk.timezone, now)
    current = {role: members(session=session, desk_id=desk_id, role=role) for role in Role}
    wanted: dict[Role, list[str]] = {}
    for role, full, add, remove, field in (
        (Role.MANAGER, managers, add_managers, remove_managers, "managers"),
        (Role.TRADER, traders, add_traders, remove_traders, "traders"),
    ):
        for user in (*(full or ()), *add, *remove):
            check_user_id(user, field)
        base = list(full) if full is not None else list(current[role])
        after = [u for u in dict.fromkeys([*base, *add]) if u not in set(remove)]
        if not after:
            raise ServiceError(f"a desk needs at least one {role.value}", field=field)
        wanted[role] = after
    if channel_id is not None and check_channel is not None:
        check_channel(channel_id, "channel")
    diff: dict[str, Any] = {}
    for attr, value in (
        ("name", name),
        ("channel_id", channel_id),
        ("timezone", timezone),
        ("post_at", post),
        ("deadline", due),
    ):
        if value is not None and getattr(desk, attr) != value:
            diff[attr] = [getattr(desk, attr), value]
            setattr(desk, attr, value)
    for role, label in ((Role.MANAGER, "managers"), (Role.TRADER, "traders")):
        before, after = current[role], wanted[role]
        added = [u for u in after if u not in set(before)]
        removed = [u for u in before if u not in set(after)]
        if added or removed:
            diff[label] = {"added": added, "removed": removed}
            if removed:
                session.execute(
                    delete(DeskMember).where(
                        col(DeskMember.desk_id) == desk_id,
                        col(DeskMember.role) == role,
                        col(DeskMember.user_id).in_(removed),
                    )
                )
            _add_members(session, desk_id, added, role)
    if diff:
        session.add(desk)
        session.flush()
        record(session, desk_id, actor, "desk_changed", now, desk=desk.name, changes=diff)
    return diff


def remove_desk(*, session: Session, name: str, now: datetime, actor: str | None = None) -> None:
    """Delete a desk with its runs, answers, escalations and queued notifications. The audit
    event that says so is kept (it names the desk; it no longer belongs to one)."""
    desk = get_desk(session=session, name=name)
    assert desk.id is not None
    counts = {role.value + "s": len(members(session=session, desk_id=desk.id, role=role)) for role in Role}
    session.delete(desk)
    session.flush()
    record(session, None, actor, "desk_removed", now, desk=name, former_id=desk.id, **counts)


def all_member_ids(*, session: Session) -> list[str]:
    """Every user on any desk, and every desk's security contact (for the names cache)."""
    contacts = session.exec(select(Desk.security_contact_user).where(col(Desk.security_contact_user).is_not(None)))
    return sorted(set(session.exec(select(DeskMember.user_id)).all()) | {c for c in contacts.all() if c})


def pager_target(session: Session, desk_id: int) -> PagerTarget | None:
    """The desk's pager settings as delivery reads them (``bot.delivery.worker.PagerLookup``)."""
    desk = session.get(Desk, desk_id)
    if desk is None:
        return None
    return PagerTarget(desk_name=desk.name, kind=desk.pager_kind, url=desk.pager_url, secret_token=desk.pager_secret)
