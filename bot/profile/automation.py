"""The API automation register: what runs against IBKR on a desk, who owns it, and its fences.

An automation belongs to a desk and has an owner (a member of that desk). Its owner and the
desk's managers may add, change or remove it; every change is an audit event. Hygiene flags
(``bot.profile.policy.automation_flags``) show in App Home and the weekly summary and open a
lower-severity escalation (``bot.profile.gaps.sync_desk``). Saving through
``bot.profile.saves.save_automation`` / ``remove_automation`` re-syncs those gaps.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session, col, func, select

from bot.audit import record
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.errors import ServiceError
from bot.profile import broker
from bot.profile.models import AccountKind, Automation, Interface, SecondFactorHolder
from bot.profile.policy import (
    AutomationFlag,
    SessionUse,
    automation_flags,
    competing_sessions,
    normalized_username,
)
from bot.text import clean, text_error, user_text

NAME_LIMIT = 64
KILL_SWITCH_LIMIT = 300
SESSION_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
# Automations connect through the TWS API (to TWS or IB Gateway) or the Client Portal Web API.
AUTOMATION_INTERFACES = (Interface.TWS_API, Interface.CP_WEB_API)


@dataclass(frozen=True)
class AutomationInput:
    desk_id: int | None
    owner_id: str | None
    name: str
    interface: str | None
    broker_username: str
    read_only_api: bool
    trusted_ips: bool
    order_size_limit: bool
    kill_switch_tested_on: date | None
    credentials_rotated_on: date | None
    # The gateway it logs in through ("" when not recorded) and whether a person logs in with its
    # username too: what decides whether sessions compete (``bot.profile.policy.competing_sessions``).
    session_host: str = ""
    person_logs_in: bool = False
    # Who holds the IBKR second factor (``SecondFactorHolder``), live or paper (``AccountKind``),
    # its kill switch (who can stop it and how) and the account's IP restriction over its username.
    second_factor_holder: str = SecondFactorHolder.PERSON
    account_kind: str = AccountKind.LIVE
    kill_switch_how: str | None = None
    ip_restricted: bool = False


def validate(data: AutomationInput, *, today: date) -> dict[str, str]:
    """Field errors keyed by field name; empty when valid."""
    errors: dict[str, str] = {}
    refused = text_error(data.name, limit=NAME_LIMIT, what="name")
    if refused:
        errors["name"] = refused
    elif not clean(data.name).strip():
        errors["name"] = "Give the automation a name."
    if data.interface not in {i.value for i in AUTOMATION_INTERFACES}:
        errors["interface"] = (
            "Pick the interface it uses: the TWS API (through TWS or IB Gateway) or the Client Portal Web API."
        )
    if (refused := broker.username_error(data.broker_username)) is not None:
        errors["broker_username"] = (
            refused
            if "password" in refused or "account number" in refused
            else f"Enter the IBKR username it logs in with ({broker.USERNAME_HELP})."
        )
    if data.second_factor_holder not in {h.value for h in SecondFactorHolder}:
        errors["second_factor_holder"] = "Pick who holds its IBKR second factor."
    if data.account_kind not in {k.value for k in AccountKind}:
        errors["account_kind"] = "Pick a live or a paper trading account."
    if refused := text_error(data.kill_switch_how, limit=KILL_SWITCH_LIMIT, what="kill switch"):
        errors["kill_switch_how"] = refused
    host = data.session_host.strip()
    if host and not SESSION_HOST.match(host):
        errors["session_host"] = (
            "Enter the TWS / IB Gateway it connects through as a name or host:port "
            "(letters, digits, '.', '_', ':' or '-')."
        )
    elif host and (refused := text_error(host, limit=64, what="gateway")):
        errors["session_host"] = refused  # a code pasted here is refused like anywhere else
    for field, value in (
        ("kill_switch_tested_on", data.kill_switch_tested_on),
        ("credentials_rotated_on", data.credentials_rotated_on),
    ):
        if value is not None and value > today:
            errors[field] = "That date is in the future."
    if data.desk_id is None:
        errors["desk"] = "Pick the desk it trades for."
    return errors


def _can_manage(session: Session, desk_id: int, user_id: str) -> bool:
    return desks.is_member(session=session, desk_id=desk_id, user_id=user_id, role=Role.MANAGER)


def _is_member(session: Session, desk_id: int, user_id: str) -> bool:
    return any(
        desks.is_member(session=session, desk_id=desk_id, user_id=user_id, role=role)
        for role in (Role.TRADER, Role.MANAGER)
    )


def check_can_edit(*, session: Session, automation_id: int, user_id: str) -> Automation:
    row = session.get(Automation, automation_id)
    if row is None:
        raise ServiceError("This automation no longer exists.")
    if row.owner_id != user_id and not _can_manage(session, row.desk_id, user_id):
        raise ServiceError("Only the automation's owner or the desk's managers can change it.")
    return row


def save(
    *,
    session: Session,
    actor: str,
    automation_id: int | None,
    data: AutomationInput,
    today: date,
    now: datetime,
    operator: bool = False,
) -> Automation:
    """Add (``automation_id`` None) or change an automation. ServiceError(field=...) on bad input
    or when ``actor`` may not; nothing changes then. ``operator``: the CLI (the server's
    operator), who acts as the desk's managers do."""
    errors = validate(data, today=today)
    if errors:
        field, message = next(iter(errors.items()))
        raise ServiceError(message, field=field)
    assert data.desk_id is not None
    desk = session.get(Desk, data.desk_id)
    if desk is None:
        raise ServiceError("That desk no longer exists.", field="desk")
    owner = data.owner_id or actor
    if not _is_member(session, data.desk_id, owner):
        raise ServiceError(f"<@{owner}> isn't on the {desk.name} desk.", field="owner")
    manager = operator or _can_manage(session, data.desk_id, actor)
    if owner != actor and not manager:
        raise ServiceError("Only the desk's managers can register an automation for someone else.", field="owner")
    if not manager and not desks.is_member(session=session, desk_id=data.desk_id, user_id=actor, role=Role.TRADER):
        raise ServiceError(f"You're not on the {desk.name} desk.", field="desk")
    if automation_id is not None:
        found = session.get(Automation, automation_id) if operator else None
        row = found or check_can_edit(session=session, automation_id=automation_id, user_id=actor)
    else:
        row = Automation(
            desk_id=data.desk_id, owner_id=owner, name="", interface="", broker_username="", created_by=actor
        )
        row.created_at = now
    name = user_text(data.name, field="name", limit=NAME_LIMIT, what="name") or ""
    clash = session.exec(
        select(Automation.id).where(
            Automation.desk_id == data.desk_id,
            func.lower(Automation.name) == name.lower(),
            col(Automation.id) != (automation_id or 0),
        )
    ).first()
    if clash is not None:
        raise ServiceError(f"The {desk.name} desk already has an automation named {name!r}.", field="name")
    before = _describe(row) if automation_id is not None else None
    row.desk_id = data.desk_id
    row.owner_id = owner
    row.name = name
    row.interface = str(data.interface)
    row.broker_username = data.broker_username.strip()
    row.session_host = data.session_host.strip()
    row.person_logs_in = data.person_logs_in
    row.read_only_api = data.read_only_api
    row.trusted_ips = data.trusted_ips
    row.order_size_limit = data.order_size_limit
    row.kill_switch_tested_on = data.kill_switch_tested_on
    row.credentials_rotated_on = data.credentials_rotated_on
    row.second_factor_holder = str(data.second_factor_holder)
    row.account_kind = str(data.account_kind)
    row.kill_switch_how = user_text(
        data.kill_switch_how, field="kill_switch_how", limit=KILL_SWITCH_LIMIT, what="kill switch"
    )
    row.ip_restricted = data.ip_restricted
    row.updated_at = now
    session.add(row)
    session.flush()
    assert row.id is not None
    action = "automation_added" if before is None else "automation_changed"
    _record(session, row, action, actor=actor, now=now, before=before, after=_describe(row))
    return row


def remove(*, session: Session, actor: str, automation_id: int, now: datetime) -> Automation:
    row = check_can_edit(session=session, automation_id=automation_id, user_id=actor)
    _record(session, row, "automation_removed", actor=actor, now=now, before=_describe(row))
    session.delete(row)
    session.flush()
    return row


def _record(session: Session, row: Automation, action: str, *, actor: str, now: datetime, **detail: object) -> None:
    """An automation's audit event (``automation:{id}``, on its desk)."""
    record(session, subject=f"automation:{row.id}", action=action, at=now, actor=actor, desk_id=row.desk_id, **detail)


def _describe(row: Automation) -> dict[str, object]:
    return {
        "name": row.name,
        "owner": row.owner_id,
        "interface": row.interface,
        "broker_username": row.broker_username,
        "session_host": row.session_host,
        "person_logs_in": row.person_logs_in,
        "read_only_api": row.read_only_api,
        "trusted_ips": row.trusted_ips,
        "order_size_limit": row.order_size_limit,
        "kill_switch_tested_on": row.kill_switch_tested_on,
        "credentials_rotated_on": row.credentials_rotated_on,
        "second_factor_holder": row.second_factor_holder,
        "account_kind": row.account_kind,
        "kill_switch_how": row.kill_switch_how,
        "ip_restricted": row.ip_restricted,
    }


def on_desks(*, session: Session, desk_ids: Sequence[int]) -> list[Automation]:
    if not desk_ids:
        return []
    return list(
        session.exec(
            select(Automation)
            .where(col(Automation.desk_id).in_(list(desk_ids)))
            .order_by(col(Automation.desk_id), col(Automation.name))
        ).all()
    )


def owned_by(*, session: Session, user_id: str) -> list[Automation]:
    return list(
        session.exec(select(Automation).where(Automation.owner_id == user_id).order_by(col(Automation.name))).all()
    )


def flags(*, session: Session, automations: Sequence[Automation], today: date) -> dict[int, list[AutomationFlag]]:
    """Each automation's flags. Competing sessions are looked for across the whole register (one
    brokerage session per username, whatever the desk): one statement. Sharing a username is no
    flag by itself — API clients of one TWS / IB Gateway session don't compete — but a person
    logging in with it (declared on the automation, or found among the traders' recorded
    usernames: ``bot.profile.broker``), or another automation on a different (or unrecorded)
    gateway, is."""
    if not automations:
        return {}
    names = sorted({normalized_username(a.broker_username) for a in automations})
    register = session.exec(select(Automation).where(func.lower(Automation.broker_username).in_(names))).all()
    competing = competing_sessions(
        SessionUse(r.id, r.broker_username, r.interface, r.session_host) for r in register if r.id is not None
    )
    with_person = {normalized_username(r.broker_username) for r in register if r.person_logs_in}
    with_person |= set(broker.people_on(session, names))
    out: dict[int, list[AutomationFlag]] = {}
    for a in automations:
        assert a.id is not None
        out[a.id] = automation_flags(
            order_size_limit=a.order_size_limit,
            kill_switch_tested_on=a.kill_switch_tested_on,
            credentials_rotated_on=a.credentials_rotated_on,
            shared_with_person=normalized_username(a.broker_username) in with_person,
            competing_session=a.id in competing,
            today=today,
            paper=a.account_kind == AccountKind.PAPER,
            bot_holds_second_factor=a.second_factor_holder == SecondFactorHolder.BOT,
            read_only=a.read_only_api,
        )
    return out
