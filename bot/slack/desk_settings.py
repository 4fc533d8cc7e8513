"""Desk settings and away days in Slack: the *Desk settings* / *New desk* modal, the away
modal, their buttons in App Home. Validation is the CLI's (``bot.desks.service``,
``bot.desks.away``): a refused value comes back as the field's error.

Only a desk's managers and workspace admins/owners open or submit a desk's settings; only
admins/owners create a desk. Anyone else gets an ephemeral sentence and nothing changes.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from sqlmodel import Session

from bot.checklist import rosters
from bot.crypto import Keyring
from bot.desks import away, contact, views
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.errors import ServiceError
from bot.people import service as people
from bot.people import slack_names
from bot.slack import home
from bot.slack.channels import channel_check
from bot.slack.deps import Click, Deps, ephemeral, open_modal_now, open_view, user_id
from bot.slack.ids import FIELD, Action, Callback

log = logging.getLogger(__name__)

FIELDS = {  # a ServiceError's field -> the modal's block_id
    "name": "desk_name",
    "channel_id": "channel",
    "security_contact": "security_contact_text",
}


def register(app: App) -> None:
    app.action(Action.HOME_DESK_SETTINGS)(open_modal_now(open_settings))
    app.action(Action.HOME_NEW_DESK)(open_modal_now(open_settings))
    app.view(Callback.DESK_SETTINGS_MODAL)(on_settings_submitted)
    app.action(Action.HOME_AWAY)(open_modal_now(open_away))
    app.action(Action.HOME_AWAY_CANCEL)(on_away_cancel)
    app.view(Callback.AWAY_MODAL)(on_away_submitted)


# --- who may ------------------------------------------------------------------------------


def know_user(deps: Deps, user: str, now: datetime) -> None:
    """Make sure the cache knows ``user``'s workspace role (one users.info for a stranger)."""
    if deps.names_client is None:
        return
    with deps.read() as session:
        known = people.get(session=session, user_id=user) is not None
    if not known:
        slack_names.ensure(deps.engine, deps.names_client, user, now=now)


def may_configure(session: Session, user: str, desk_id: int | None) -> bool:
    if people.is_workspace_admin(session=session, user_id=user):
        return True
    return desk_id is not None and desks.is_member(session=session, desk_id=desk_id, user_id=user, role=Role.MANAGER)


def settings_form(session: Session, desk: Desk | None) -> views.SettingsForm:
    if desk is None or desk.id is None:
        return views.SettingsForm(desk=None, managers=[], traders=[], names=people.Names())
    managers = desks.members(session=session, desk_id=desk.id, role=Role.MANAGER)
    traders = desks.members(session=session, desk_id=desk.id, role=Role.TRADER)
    return views.SettingsForm(
        desk=desk,
        managers=managers,
        traders=traders,
        names=people.names_for(session=session, user_ids=managers),
        grace_minutes=int(getattr(desk, "grace_minutes", 15) or 0),
    )


def settings_view_for(deps: Deps, user: str, desk_id: int | None, now: datetime) -> tuple[dict[str, Any] | None, str]:
    """The modal to open for ``user`` (None and a sentence when they may not)."""
    know_user(deps, user, now)
    with deps.read() as session:
        desk = session.get(Desk, desk_id) if desk_id is not None else None
        if desk_id is not None and desk is None:
            return None, "That desk no longer exists."
        if not may_configure(session, user, desk_id):
            if desk is None:
                return None, "Only workspace admins and owners can create a desk."
            return None, views.refusal(desk.name)
        return views.settings_modal(settings_form(session, desk)), ""


def open_settings(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    """*Desk settings* (value: the desk's id) or *New desk* (no value) from App Home."""
    clicked = Click.of(body)
    desk_id = clicked.id if clicked.action_id != Action.HOME_NEW_DESK else None
    view, refusal = settings_view_for(deps, clicked.user, desk_id, now)
    if view is None:
        clicked.reply(client, refusal)
        return
    open_view(deps, body, view, client=client)


# --- submission -----------------------------------------------------------------------------


class FieldErrors(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.errors = errors


def _values(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    values = (view.get("state") or {}).get("values") or {}
    out: dict[str, dict[str, Any]] = {}
    for block, actions in values.items():
        field = (actions or {}).get(FIELD) if isinstance(actions, dict) else None
        out[str(block)] = field if isinstance(field, dict) else {}
    return out


def _int(values: dict[str, dict[str, Any]], block: str, errors: dict[str, str]) -> int | None:
    raw = values.get(block, {}).get("value")
    if raw in (None, ""):
        return None
    try:
        return int(str(raw))
    except ValueError:
        errors[block] = "Enter a whole number of minutes."
        return None


def parse_settings(view: dict[str, Any]) -> dict[str, Any]:
    """The modal's values as keyword arguments for the desk service, or FieldErrors."""
    values = _values(view)
    errors: dict[str, str] = {}

    def text(block: str) -> str | None:
        raw = values.get(block, {}).get("value")
        return raw.strip() if isinstance(raw, str) and raw.strip() else None

    def option(block: str) -> str | None:
        chosen = values.get(block, {}).get("selected_option") or {}
        return str(chosen.get("value")) if isinstance(chosen, dict) and chosen.get("value") else None

    def users(block: str) -> list[str]:
        chosen = values.get(block, {}).get("selected_users") or []
        return [str(u) for u in chosen] if isinstance(chosen, list) else []

    def conversation(block: str) -> str | None:
        chosen = values.get(block, {}).get("selected_conversation")
        return str(chosen) if chosen else None

    def ticked(block: str) -> bool | None:
        # A yes/no checkbox (its value is its block id), always in the modal: unticked means no
        # (absent: an older modal, unchanged).
        if block not in values:
            return None
        return any(isinstance(o, dict) and o.get("value") == block for o in values[block].get("selected_options") or [])

    clear = {str(o.get("value")) for o in values.get("clear", {}).get("selected_options") or [] if isinstance(o, dict)}
    parsed: dict[str, Any] = {
        "name": text("desk_name"),
        "channel_id": conversation("channel"),
        "managers": users("managers"),
        "traders": users("traders") if "traders" in values else None,
        "add_traders": users("add_traders"),
        "remove_traders": users("remove_traders"),
        "timezone": option("timezone"),
        "post_at": values.get("post_at", {}).get("selected_time"),
        "deadline": values.get("deadline", {}).get("selected_time"),
        "reminder_minutes": _int(values, "reminder_minutes", errors),
        "grace_minutes": _int(values, "grace_minutes", errors),
        "ack_timeout_minutes": _int(values, "ack_timeout_minutes", errors),
        "summary_delay_minutes": _int(values, "summary_delay_minutes", errors),
        "escalation_channel": conversation("escalation_channel") or ("" if "escalation_channel" in clear else None),
        "managers_channel": conversation("managers_channel") or ("" if "managers_channel" in clear else None),
        "pager_kind": option("pager_kind"),
        "pager_url": text("pager_url"),
        "pager_secret": text("pager_secret"),
        "sunday_evening": ticked(views.SUNDAY_EVENING),
        # Who to ask for security changes: a person or a text, not both (absent: an older modal).
        "security_contact": (
            (values["security_contact_user"].get("selected_user"), text("security_contact_text"))
            if "security_contact_user" in values
            else None
        ),
        "ip_restrictions": ticked(views.IP_RESTRICTIONS),
    }
    for key, block in (
        ("name", "desk_name"),
        ("channel_id", "channel"),
        ("timezone", "timezone"),
        ("post_at", "post_at"),
        ("deadline", "deadline"),
    ):
        if not parsed[key]:
            errors[block] = "This is required."
    if errors:
        raise FieldErrors(errors)
    return parsed


def _metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def save_settings(
    session: Session,
    *,
    user: str,
    desk_id: int | None,
    large: bool,
    values: dict[str, Any],
    keys: Keyring | None,
    now: datetime,
    allow_private_pager: bool = False,
    check_channel: desks.ChannelCheck | None = None,
) -> tuple[Desk, bool]:
    """Create or change a desk through the CLI's service functions, in one transaction:
    (the desk, created?). ServiceError (with ``field``) when a value is refused."""
    if not may_configure(session, user, desk_id):
        desk = session.get(Desk, desk_id) if desk_id is not None else None
        raise ServiceError(
            views.refusal(desk.name if desk else None)
            if desk_id is not None
            else "Only workspace admins and owners can create a desk.",
            field="desk_name",
        )
    created = desk_id is None
    # What a new desk and a changed one are given alike (traders differ: a large desk's modal
    # adds and removes them).
    own = {key: values[key] for key in ("name", "channel_id", "managers", "timezone", "post_at", "deadline")}
    if desk_id is None:
        traders = [*(values["traders"] or []), *values["add_traders"]]
        desk = desks.add_desk(session=session, **own, traders=traders, now=now, actor=user, check_channel=check_channel)
    else:
        desks.update_desk(
            session=session,
            desk_id=desk_id,
            now=now,
            actor=user,
            **own,
            traders=None if large else values["traders"],
            add_traders=values["add_traders"] if large else (),
            remove_traders=values["remove_traders"] if large else (),
            check_channel=check_channel,
        )
        desk = desks.get_desk_by_id(session=session, desk_id=desk_id)
    desks.configure_desk(
        session=session,
        name=desk.name,
        keys=keys,
        reminder_minutes=values["reminder_minutes"],
        ack_timeout_minutes=values["ack_timeout_minutes"],
        grace_minutes=values["grace_minutes"],
        escalation_channel=values["escalation_channel"],
        pager_kind=values["pager_kind"],
        pager_url=values["pager_url"],
        pager_secret=values["pager_secret"],
        managers_channel=values["managers_channel"],
        summary_delay_minutes=values["summary_delay_minutes"],
        sunday_evening=values["sunday_evening"],
        actor=user,
        now=now,
        allow_private_pager=allow_private_pager,
        check_channel=check_channel,
    )
    chosen = values.get("security_contact")
    contact.set_broker_settings(
        session=session,
        desk=desk,
        contact_user=str(chosen[0]) if chosen and chosen[0] else None,
        contact_text=chosen[1] if chosen else None,
        ip_restrictions=values.get("ip_restrictions"),
        change_contact=chosen is not None,
        actor=user,
        now=now,
    )
    return desk, created


def block_of(field: str | None, *, large: bool) -> str:
    block = FIELDS.get(field or "", field or "desk_name")
    if block == "traders" and large:
        return "add_traders"
    return block


def on_settings_submitted(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    view = body.get("view") or {}
    user = user_id(body)
    meta = _metadata(view)
    desk_id = meta.get("desk_id") if isinstance(meta.get("desk_id"), int) else None
    large = bool(meta.get("large"))
    try:
        values = parse_settings(view)
    except FieldErrors as exc:
        ack(response_action="errors", errors=exc.errors)
        return
    try:
        # Asked of Slack before the transaction opens: no Slack call with the write lock held.
        check = channel_check(client)  # the bot must be in the channels it posts to
        for key, field in (("channel_id", "channel"), ("escalation_channel", "escalation_channel")):
            if values.get(key):
                check(str(values[key]), field)
        with deps.db() as session:
            desk, created = save_settings(
                session,
                user=user,
                desk_id=desk_id,
                large=large,
                values=values,
                keys=deps.keys,
                now=now,
                allow_private_pager=deps.allow_private_pager,
            )
            name = desk.name
            everyone = desks.all_member_ids(session=session)
    except ServiceError as exc:
        ack(response_action="errors", errors={block_of(exc.field, large=large): str(exc)})
        return
    ack()
    deps.later(after_save, client=client, deps=deps, user=user, name=name, created=created, members=everyone, now=now)


def after_save(
    client: WebClient, deps: Deps, user: str, name: str, created: bool, members: list[str], now: datetime
) -> None:
    """Tell the manager, refresh their App Home, and learn the names of new members."""
    ephemeral(client, channel=None, user=user, text=views.settings_saved(name, created))
    home.publish(client, deps, user, now)
    if deps.names_client is not None:
        slack_names.refresh(deps.engine, deps.names_client, members, now=now, limit=50)


# --- away days -------------------------------------------------------------------------------


def open_away(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    clicked = Click.of(body)
    user, for_manager = clicked.user, clicked.value == "manager"
    with deps.read() as session:
        today = away.today_for(session=session, user_id=user, now=now)
    open_view(deps, body, views.away_modal(for_manager=for_manager, today=today), client=client)


def on_away_submitted(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    view = body.get("view") or {}
    user = user_id(body)
    values = _values(view)
    meta = _metadata(view)
    target = str(values.get("user", {}).get("selected_user") or "") if meta.get("manager") else user
    if not target:
        ack(response_action="errors", errors={"user": "Pick a trader."})
        return
    try:
        start = away.parse_day(str(values.get("start", {}).get("selected_date") or ""), "start")
        end = away.parse_day(str(values.get("end", {}).get("selected_date") or ""), "end")
        note = values.get("note", {}).get("value")
        with deps.db() as session:
            period = away.set_away(
                session=session,
                actor=user,
                user_id=target,
                start=start,
                end=end,
                note=note if isinstance(note, str) else None,
                now=now,
            )
            touched = rosters.mark_changed(session=session, user_id=target, now=now)
            names = people.names_for(session=session, user_ids=[target])
            on = away.scope_names(session=session, away=period)
    except ServiceError as exc:
        block = exc.field if exc.field in ("start", "end", "note") else ("user" if meta.get("manager") else "start")
        ack(response_action="errors", errors={block: str(exc)})
        return
    ack()
    for run_id in touched:
        deps.refresher.notify(run_id)
    text = views.away_confirmation(target, start, end, names, own=target == user, on=on)
    deps.later(after_away, client=client, deps=deps, user=user, text=text, now=now)


def after_away(client: WebClient, deps: Deps, user: str, text: str, now: datetime) -> None:
    ephemeral(client, channel=None, user=user, text=text)
    home.publish(client, deps, user, now)


def on_away_cancel(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    clicked = Click.of(body)
    user, away_id = clicked.user, clicked.id
    reply = None
    touched: list[int] = []
    try:
        if away_id is None:
            raise ServiceError("That away period no longer exists.")
        with deps.db() as session:
            gone = away.cancel(session=session, actor=user, away_id=away_id, now=now)
            touched = rosters.mark_changed(session=session, user_id=gone.user_id, now=now)
    except ServiceError as exc:
        reply = str(exc)
    ack()
    for run_id in touched:
        deps.refresher.notify(run_id)
    if reply:
        deps.later(clicked.reply, client=client, text=reply)
    deps.after_home_click(body, client, now)
