"""App Home buttons, the profile modals, enrolment and the drill.

Modals about the user's own profile always act on the user who submits them (never on an id
in the payload). Opening clicks check through read-only sessions and call Slack after; saves
answer in the acknowledgement (field errors) and republish App Home after the response.
Secrets travel only in the trader's DM, through a client whose logger is silenced; codes are
never logged, stored or echoed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import Session

from bot import calendar
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.errors import ServiceError
from bot.profile import automation as automations
from bot.profile import drill, views
from bot.profile import service as profile
from bot.profile.automation import AutomationInput
from bot.profile.models import SecondFactor
from bot.slack.deps import Deps, ack_then, action_value, channel_id, ephemeral, parse_int, user_id
from bot.slack.ids import FIELD, ProfileAction, ProfileBlock, ProfileCallback, verified_block

# Calls that carry a drill secret (the enrolment DM) go through a client with this logger:
# nothing of them is ever logged, whatever the log level.
_SECRET_LOG = logging.getLogger("bot.profile.secret_calls")
_SECRET_LOG.addHandler(logging.NullHandler())
_SECRET_LOG.propagate = False
_SECRET_LOG.setLevel(logging.CRITICAL + 1)

log = logging.getLogger(__name__)

STALE_AUTOMATION = "This automation no longer exists."


def register(app: App) -> None:
    app.action(ProfileAction.EDIT_INTERFACES)(ack_then(open_interfaces))
    app.action(ProfileAction.EDIT_PERMISSIONS)(ack_then(open_permissions))
    app.action(ProfileAction.EDIT_FACTORS)(ack_then(open_factors))
    app.action(ProfileAction.ADD_AUTOMATION)(ack_then(open_automation))
    app.action(ProfileAction.EDIT_AUTOMATION)(ack_then(open_automation))
    app.action(ProfileAction.ENROLL)(ack_then(start_enrollment))
    app.action(ProfileAction.ENTER_ENROLL_CODE)(ack_then(open_enroll))
    app.action(ProfileAction.RUN_DRILL)(ack_then(open_drill))
    app.action(ProfileAction.SET_TIER)(ack_then(open_tier))
    app.action(ProfileAction.VIEW_TRADER)(ack_then(open_view))
    app.view(ProfileCallback.INTERFACES)(on_interfaces)
    app.view(ProfileCallback.PERMISSIONS)(on_permissions)
    app.view(ProfileCallback.FACTORS)(on_factors)
    app.view(ProfileCallback.AUTOMATION)(on_automation)
    app.view(ProfileCallback.ENROLL)(on_enroll_code)
    app.view(ProfileCallback.DRILL)(on_drill_code)
    app.view(ProfileCallback.TIER)(on_tier)
    app.view(ProfileCallback.VIEW)(on_view)


def secret_client(client: WebClient) -> WebClient:
    """The same workspace, for calls that carry a secret: a silenced logger, no retries."""
    return WebClient(token=client.token, base_url=client.base_url, timeout=client.timeout, logger=_SECRET_LOG)


def _refuse(body: dict[str, Any], client: WebClient, text: str) -> None:
    ephemeral(client, channel=channel_id(body), user=user_id(body), text=text)


def _open(body: dict[str, Any], client: WebClient, view: dict[str, Any]) -> None:
    client.views_open(trigger_id=body["trigger_id"], view=view)


def _republish(client: WebClient, deps: Deps, user: str, now: datetime) -> None:
    if deps.home_publisher is not None:  # App Home reads every capability: reached through Deps
        deps.home_publisher(client=client, deps=deps, user=user, now=now)


# --- opening modals -------------------------------------------------------------------------------


def open_interfaces(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    with deps.read() as session:
        view = views.interfaces_modal(profile.card(session=session, user_id=user_id(body), now=now))
    _open(body, client, view)


def open_permissions(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    with deps.read() as session:
        view = views.permissions_modal(profile.card(session=session, user_id=user_id(body), now=now))
    _open(body, client, view)


def open_factors(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    with deps.read() as session:
        view = views.factors_modal(profile.card(session=session, user_id=user_id(body), now=now))
    _open(body, client, view)


def open_automation(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    user = user_id(body)
    editing = str((body.get("actions") or [{}])[0].get("action_id")) == ProfileAction.EDIT_AUTOMATION
    automation_id = parse_int(action_value(body)) if editing else None
    refusal, view = (STALE_AUTOMATION if editing and automation_id is None else None), None
    with deps.read() as session:
        mine = desks.desks_of_user(session=session, user_id=user)
        row = None
        if automation_id is not None:
            try:
                row = automations.check_can_edit(session=session, automation_id=automation_id, user_id=user)
            except ServiceError as exc:
                refusal = str(exc)
        if refusal is None:
            if not mine:
                refusal = "You're not on any desk, so there's no register to add an automation to."
            else:
                managed = desks.desks_of_user(session=session, user_id=user, role=Role.MANAGER)
                view = views.automation_modal(row, mine, owner=user, can_assign=bool(managed))
    if view is None:
        _refuse(body, client, refusal or STALE_AUTOMATION)
        return
    _open(body, client, view)


def start_enrollment(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    """A fresh secret stored encrypted as pending; the QR code and URI go to the trader's DM."""
    user = user_id(body)
    person = body.get("user") or {}
    name = str(person.get("name") or person.get("username") or user)
    try:
        with deps.db() as session:
            new = profile.start_enrollment(session=session, user_id=user, account_name=name, keys=deps.keys, now=now)
    except ServiceError as exc:
        _refuse(body, client, str(exc))
        return
    quiet = secret_client(client)
    try:
        channel = str(quiet.conversations_open(users=user)["channel"]["id"])
        quiet.files_upload_v2(
            channel=channel,
            file=drill.qr_png(new.uri),
            filename="ib-preflight-backup-authenticator.png",
            title="IB Preflight — add to your backup authenticator",
            alt_txt="QR code that adds IB Preflight's drill secret to an authenticator app",
            request_file_info=False,
        )
        text, blocks = views.enrollment_message(new.uri)
        quiet.chat_postMessage(channel=channel, text=text, blocks=blocks, unfurl_links=False)
    except SlackApiError as exc:
        # Only Slack's error code: the request carried the secret.
        log.warning("enrolment DM to %s failed: %s", user, exc.response.get("error"))
        _refuse(body, client, "Slack didn't take the enrolment message: press Enrol again in a moment.")


def open_enroll(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    with deps.read() as session:
        row = drill.enrollment(session, user_id(body))
        pending = row is not None and row.pending_secret is not None
    if not pending:
        _refuse(body, client, "There's no enrolment waiting for a code: press Enrol in App Home to start one.")
        return
    _open(body, client, views.enroll_modal())


def open_drill(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    with deps.read() as session:
        row = drill.enrollment(session, user_id(body))
        until = drill.locked_until(row, now)
        enrolled = row is not None and row.secret is not None
        tz = profile.user_zone(session, user_id(body))
    if not enrolled:
        _refuse(body, client, "Enrol your backup authenticator first (App Home → Enrol backup authenticator).")
        return
    if until is not None:
        _refuse(body, client, f"Too many wrong codes: the drill is locked until {until.astimezone(tz):%H:%M %Z}.")
        return
    _open(body, client, views.drill_modal())


def open_tier(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    try:
        with deps.read() as session:
            profile.check_can_set_tier(session=session, manager_id=user_id(body))
    except ServiceError as exc:
        _refuse(body, client, str(exc))
        return
    _open(body, client, views.tier_modal(parse_int(action_value(body))))


def open_view(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    with deps.read() as session:
        allowed = profile.is_manager(session, user_id(body))
    if not allowed:
        _refuse(body, client, "Only a desk's managers can open another trader's readiness profile.")
        return
    _open(body, client, views.view_trader_modal())


# --- reading submissions ------------------------------------------------------------------------


def _values(body: dict[str, Any]) -> dict[str, Any]:
    values = ((body.get("view") or {}).get("state") or {}).get("values") or {}
    return values if isinstance(values, dict) else {}


def _field(values: dict[str, Any], block: str) -> dict[str, Any]:
    value = (values.get(block) or {}).get(FIELD) or {}
    return value if isinstance(value, dict) else {}


def _one(values: dict[str, Any], block: str) -> str | None:
    option = _field(values, block).get("selected_option")
    value = option.get("value") if isinstance(option, dict) else None
    return value if isinstance(value, str) else None


def _many(values: dict[str, Any], block: str) -> list[str]:
    options = _field(values, block).get("selected_options") or []
    return [str(o.get("value")) for o in options if isinstance(o, dict)]


def _text(values: dict[str, Any], block: str) -> str | None:
    value = _field(values, block).get("value")
    return value if isinstance(value, str) and value.strip() else None


def _user(values: dict[str, Any], block: str) -> str | None:
    value = _field(values, block).get("selected_user")
    return value if isinstance(value, str) and value else None


def _date(values: dict[str, Any], block: str, errors: dict[str, str]) -> date | None:
    value = _field(values, block).get("selected_date")
    if not value:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        errors[block] = "That isn't a date."
        return None


def _metadata(body: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads((body.get("view") or {}).get("private_metadata") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _errors(ack: Ack, errors: dict[str, str]) -> None:
    ack(response_action="errors", errors=errors)


def _save(
    ack: Ack,
    body: dict[str, Any],
    client: WebClient,
    deps: Deps,
    now: datetime,
    work: Callable[[Session], object],
    fallback: str,
    *,
    affected: str | None = None,
) -> bool:
    """Run ``work(session)`` in a transaction; a ServiceError becomes a field error (its field,
    else ``fallback``) and nothing is stored. On success: acknowledge, bring today's rosters
    showing ``affected`` (default: the submitter) up to date, and republish App Home."""
    user = user_id(body)
    try:
        with deps.db() as session:
            work(session)
            runs = profile.rosters_showing(session=session, user_id=affected or user, now=now)
    except ServiceError as exc:
        _errors(ack, {exc.field or fallback: str(exc)})
        return False
    ack()
    for run_id in runs:
        deps.refresher.notify(run_id)
    deps.later(_republish, client=client, deps=deps, user=user, now=now)
    return True


# --- saving ---------------------------------------------------------------------------------------


def on_interfaces(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    values = _values(body)
    primary, secondary = _one(values, ProfileBlock.PRIMARY_INTERFACE), _one(values, ProfileBlock.SECONDARY_INTERFACE)
    errors = profile.validate_interfaces(primary, secondary)
    if errors:
        _errors(ack, errors)
        return
    _save(
        ack,
        body,
        client,
        deps,
        now,
        lambda s: profile.save_interfaces(
            session=s, user_id=user_id(body), primary=primary, secondary=secondary, now=now
        ),
        ProfileBlock.PRIMARY_INTERFACE,
    )


def on_permissions(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    values = _values(body)
    interface = _one(values, ProfileBlock.INTERFACE)
    trading, market = _many(values, ProfileBlock.TRADING), _many(values, ProfileBlock.MARKET_DATA)
    note = _text(values, ProfileBlock.NOTE)
    errors = profile.validate_permissions(interface, trading, market, note)
    if errors:
        _errors(ack, errors)
        return
    _save(
        ack,
        body,
        client,
        deps,
        now,
        lambda s: profile.save_permissions(
            session=s,
            user_id=user_id(body),
            interface=interface,
            trading=trading,
            market_data=market,
            note=note,
            now=now,
        ),
        ProfileBlock.INTERFACE,
    )


def on_factors(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    values = _values(body)
    user = user_id(body)
    errors: dict[str, str] = {}
    primary = _one(values, ProfileBlock.PRIMARY_FACTOR)
    registered = _many(values, ProfileBlock.REGISTERED)
    verified = {m.value: _date(values, verified_block(m.value), errors) for m in SecondFactor}
    with deps.read() as session:
        today = calendar.local_date(now, profile.user_zone(session, user))
    errors = {**profile.validate_second_factors(primary, registered, verified, today), **errors}
    if errors:
        _errors(ack, errors)
        return
    _save(
        ack,
        body,
        client,
        deps,
        now,
        lambda s: profile.save_second_factors(
            session=s, user_id=user, primary=primary, registered=registered, verified_on=verified, now=now
        ),
        ProfileBlock.REGISTERED,
    )


def on_automation(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    values = _values(body)
    user = user_id(body)
    meta = _metadata(body)
    automation_id = meta.get("automation_id") if isinstance(meta.get("automation_id"), int) else None
    if automation_id is not None and "remove" in _many(values, ProfileBlock.REMOVE):
        _save(
            ack,
            body,
            client,
            deps,
            now,
            lambda s: _remove_automation(s, user, automation_id, now),
            ProfileBlock.REMOVE,
        )
        return
    errors: dict[str, str] = {}
    desk_value = _one(values, ProfileBlock.DESK)
    fences = set(_many(values, ProfileBlock.FENCES))
    data = AutomationInput(
        desk_id=int(desk_value) if desk_value and desk_value.isdigit() else None,
        owner_id=_user(values, ProfileBlock.OWNER),
        name=_text(values, ProfileBlock.NAME) or "",
        interface=_one(values, ProfileBlock.INTERFACE),
        broker_username=_text(values, ProfileBlock.BROKER_USERNAME) or "",
        read_only_api="read_only_api" in fences,
        trusted_ips="trusted_ips" in fences,
        order_size_limit="order_size_limit" in fences,
        kill_switch_tested_on=_date(values, ProfileBlock.KILL_SWITCH, errors),
        credentials_rotated_on=_date(values, ProfileBlock.CREDENTIALS, errors),
    )
    with deps.read() as session:
        today = calendar.local_date(now, profile.user_zone(session, user))
    errors = {**automations.validate(data, today=today), **errors}
    if errors:
        _errors(ack, errors)
        return
    _save(
        ack,
        body,
        client,
        deps,
        now,
        lambda s: _save_automation(s, user, automation_id, data, today, now),
        ProfileBlock.NAME,
    )


def _remove_automation(session: Session, user: str, automation_id: int, now: datetime) -> None:
    row = automations.remove(session=session, actor=user, automation_id=automation_id, now=now)
    desk = session.get(Desk, row.desk_id)
    if desk is not None:  # its hygiene gap closes with it
        profile.sync_desk(session=session, desk=desk, now=now)


def _save_automation(
    session: Session, user: str, automation_id: int | None, data: AutomationInput, today: date, now: datetime
) -> None:
    automations.save(session=session, actor=user, automation_id=automation_id, data=data, today=today, now=now)
    profile.sync_trader(session=session, user_id=data.owner_id or user, now=now)


def _code(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime, purpose: drill.Purpose) -> None:
    """Enrolment or drill: a rejected code is a field error (the attempt is stored all the same,
    for the lockout); a passed one closes the modal and tells the trader in their DM."""
    user = user_id(body)
    code = _text(_values(body), ProfileBlock.CODE) or ""
    try:
        with deps.db() as session:
            result = profile.submit_code(
                session=session, user_id=user, code=code, purpose=purpose, keys=deps.keys, now=now
            )
            recorded = SecondFactor.AUTHENTICATOR in profile.factor_records(session, [user])[user]
            tz = profile.user_zone(session, user)
            runs = profile.rosters_showing(session=session, user_id=user, now=now) if result.ok else []
    except ServiceError as exc:
        _errors(ack, {ProfileBlock.CODE: str(exc)})
        return
    if not result.ok:
        _errors(ack, {ProfileBlock.CODE: views.code_error(result, tz)})
        return
    ack()
    for run_id in runs:
        deps.refresher.notify(run_id)
    text = (
        views.enrolled_text()
        if purpose is drill.Purpose.ENROLL
        else views.drill_passed_text(result, recorded=recorded, tz=tz)
    )
    deps.later(ephemeral, client=client, channel=None, user=user, text=text)
    deps.later(_republish, client=client, deps=deps, user=user, now=now)


def on_enroll_code(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    _code(ack, body, client, deps, now, drill.Purpose.ENROLL)


def on_drill_code(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    _code(ack, body, client, deps, now, drill.Purpose.DRILL)


def on_tier(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    values = _values(body)
    trader, tier = _user(values, ProfileBlock.TRADER), _one(values, ProfileBlock.TIER)
    _save(
        ack,
        body,
        client,
        deps,
        now,
        lambda s: profile.set_risk_tier(session=s, manager_id=user_id(body), trader_id=trader, tier=tier, now=now),
        ProfileBlock.TRADER,
        affected=trader,
    )


def on_view(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    trader = _user(_values(body), ProfileBlock.TRADER)
    if trader is None:
        _errors(ack, {ProfileBlock.TRADER: "Pick the trader."})
        return
    try:
        with deps.read() as session:
            card = profile.view_card(session=session, viewer_id=user_id(body), trader_id=trader, now=now)
            view = views.profile_view(card)
    except ServiceError as exc:
        _errors(ack, {ProfileBlock.TRADER: str(exc)})
        return
    ack(response_action="update", view=view)
