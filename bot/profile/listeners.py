"""App Home buttons, the profile modals, enrolment and the drill.

Modals about the user's own profile always act on the user who submits them (never on an id
in the payload). Opening clicks check through read-only sessions and call Slack after; saves
answer in the acknowledgement (field errors) and republish App Home after the response.
Secrets travel only in the trader's DM, through a client whose logger is silenced; codes are
never logged, stored or echoed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import Session

from bot import calendar
from bot.checklist import rosters
from bot.desks import service as desks
from bot.desks.models import Role
from bot.errors import ServiceError
from bot.profile import access, broker, drill, home, modals, reading, saves, views
from bot.profile import automation as automations
from bot.profile.automation import AutomationInput
from bot.profile.home import ProfileCard
from bot.profile.models import AccountKind, SecondFactor, SecondFactorHolder
from bot.slack.deps import Deps, Work, ack_then, action_value, ephemeral, parse_int, respond, user_id
from bot.slack.ids import ProfileAction, ProfileBlock, ProfileCallback, verified_block
from bot.slack.modal_submit import NO_ERRORS, Plan, Submission, handler, refused

# Calls that carry a drill secret (the enrolment DM) go through a client with this logger:
# nothing of them is ever logged, whatever the log level.
_SECRET_LOG = logging.getLogger("bot.profile.secret_calls")
_SECRET_LOG.addHandler(logging.NullHandler())
_SECRET_LOG.propagate = False
_SECRET_LOG.setLevel(logging.CRITICAL + 1)

log = logging.getLogger(__name__)

STALE_AUTOMATION = "This automation no longer exists."


def register(app: App) -> None:
    app.action(ProfileAction.EDIT_INTERFACES)(ack_then(_own_card_modal(modals.interfaces_modal)))
    app.action(ProfileAction.EDIT_PERMISSIONS)(ack_then(_own_card_modal(modals.permissions_modal)))
    app.action(ProfileAction.EDIT_FACTORS)(ack_then(_own_card_modal(modals.factors_modal)))
    app.action(ProfileAction.EDIT_BROKER)(ack_then(_own_card_modal(modals.broker_modal)))
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
    app.view(ProfileCallback.BROKER)(on_broker)
    app.view(ProfileCallback.AUTOMATION)(on_automation)
    app.view(ProfileCallback.ENROLL)(on_enroll_code)
    app.view(ProfileCallback.DRILL)(on_drill_code)
    app.view(ProfileCallback.TIER)(on_tier)
    app.view(ProfileCallback.VIEW)(on_view)


def secret_client(client: WebClient) -> WebClient:
    """The same workspace, for calls that carry a secret: a silenced logger, no retries."""
    return type(client)(token=client.token, base_url=client.base_url, timeout=client.timeout, logger=_SECRET_LOG)


def _refuse(body: dict[str, Any], client: WebClient, text: str) -> None:
    respond(client, body, text)


def _open(body: dict[str, Any], client: WebClient, view: dict[str, Any]) -> None:
    client.views_open(trigger_id=body["trigger_id"], view=view)


def _republish(client: WebClient, deps: Deps, user: str, now: datetime) -> None:
    if deps.home_publisher is not None:  # App Home reads every capability: reached through Deps
        deps.home_publisher(client=client, deps=deps, user=user, now=now)


# --- opening modals -------------------------------------------------------------------------------


def _own_card_modal(build: Callable[[ProfileCard], dict[str, Any]]) -> Work:
    """Open the modal ``build`` draws from the clicking user's own profile card."""

    def open_modal(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
        with deps.read() as session:
            view = build(home.card(session=session, user_id=user_id(body), now=now))
        _open(body, client, view)

    open_modal.__name__ = f"open_{getattr(build, '__name__', 'modal')}"
    return open_modal


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
                view = modals.automation_modal(row, mine, owner=user, can_assign=bool(managed))
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
            new = drill.start_enrollment(session=session, user_id=user, account_name=name, keys=deps.keys, now=now)
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
    _open(body, client, modals.enroll_modal())


def open_drill(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    with deps.read() as session:
        row = drill.enrollment(session, user_id(body))
        until = drill.locked_until(row, now)
        enrolled = row is not None and row.secret is not None
        tz = reading.user_zone(session, user_id(body))
    if not enrolled:
        _refuse(body, client, "Enrol your backup authenticator first (App Home → Enrol backup authenticator).")
        return
    if until is not None:
        _refuse(body, client, f"Too many wrong codes: the drill is locked until {until.astimezone(tz):%H:%M %Z}.")
        return
    _open(body, client, modals.drill_modal())


def open_tier(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    try:
        with deps.read() as session:
            access.check_can_set_tier(session=session, manager_id=user_id(body))
    except ServiceError as exc:
        _refuse(body, client, str(exc))
        return
    _open(body, client, modals.tier_modal(parse_int(action_value(body))))


def open_view(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    with deps.read() as session:
        allowed = access.is_manager(session, user_id(body))
    if not allowed:
        _refuse(body, client, "Only a desk's managers can open another trader's readiness profile.")
        return
    _open(body, client, modals.view_trader_modal())


# --- saving: each submission a declaration for the pipeline (bot.slack.modal_submit) ---------------


def _today(sub: Submission) -> date:
    """The submitter's today (their first desk's date): dates in modals are theirs."""
    with sub.deps.read() as session:
        return calendar.local_date(sub.now, reading.user_zone(session, sub.user))


def _profile_change(
    sub: Submission,
    field: str,
    work: Callable[[Session], object],
    *,
    errors: Mapping[str, str] = NO_ERRORS,
    affected: str | None = None,
) -> Plan[list[int]]:
    """A change to a trader's profile or automations (the submitter's, or ``affected``'s): saved
    by ``work`` (the service re-syncs gaps and bumps rosters); after the acknowledgement, today's
    rosters showing that trader are marked for the refresher and App Home is drawn again."""

    def run(session: Session) -> list[int]:
        work(session)
        return rosters.rosters_showing(session=session, user_id=affected or sub.user, now=sub.now)

    return Plan(work=run, field=field, errors=errors, after=lambda runs: _changed(sub, runs))


def _changed(sub: Submission, runs: list[int]) -> None:
    for run_id in runs:
        sub.deps.refresher.notify(run_id)
    sub.deps.later(_republish, client=sub.client, deps=sub.deps, user=sub.user, now=sub.now)


@handler
def on_interfaces(sub: Submission) -> Plan[list[int]]:
    primary, secondary = sub.one(ProfileBlock.PRIMARY_INTERFACE), sub.one(ProfileBlock.SECONDARY_INTERFACE)
    return _profile_change(
        sub,
        ProfileBlock.PRIMARY_INTERFACE,
        lambda s: saves.save_interfaces(session=s, user_id=sub.user, primary=primary, secondary=secondary, now=sub.now),
        errors=saves.validate_interfaces(primary, secondary),
    )


@handler
def on_permissions(sub: Submission) -> Plan[list[int]]:
    interface = sub.one(ProfileBlock.INTERFACE)
    trading, market = sub.many(ProfileBlock.TRADING), sub.many(ProfileBlock.MARKET_DATA)
    note = sub.text(ProfileBlock.NOTE)
    return _profile_change(
        sub,
        ProfileBlock.INTERFACE,
        lambda s: saves.save_permissions(
            session=s,
            user_id=sub.user,
            interface=interface,
            trading=trading,
            market_data=market,
            note=note,
            now=sub.now,
        ),
        errors=saves.validate_permissions(interface, trading, market, note),
    )


@handler
def on_factors(sub: Submission) -> Plan[list[int]]:
    primary = sub.one(ProfileBlock.PRIMARY_FACTOR)
    registered = sub.many(ProfileBlock.REGISTERED)
    verified = {m.value: sub.date(verified_block(m.value)) for m in SecondFactor}
    return _profile_change(
        sub,
        ProfileBlock.REGISTERED,
        lambda s: saves.save_second_factors(
            session=s, user_id=sub.user, primary=primary, registered=registered, verified_on=verified, now=sub.now
        ),
        errors=saves.validate_second_factors(primary, registered, verified, _today(sub)),
    )


@handler
def on_broker(sub: Submission) -> Plan[list[int]]:
    names, error = broker.parse_usernames(sub.text(ProfileBlock.USERNAMES))
    ticked = set(sub.many(ProfileBlock.BROKER_FENCES))
    return _profile_change(
        sub,
        ProfileBlock.USERNAMES,
        lambda s: saves.save_broker_setup(
            session=s,
            user_id=sub.user,
            usernames=names,
            order_precautions="order_precautions" in ticked,
            ip_restricted="ip_restricted" in ticked,
            now=sub.now,
        ),
        errors={ProfileBlock.USERNAMES: error} if error else NO_ERRORS,
    )


@handler
def on_automation(sub: Submission) -> Plan[list[int]]:
    automation_id = sub.metadata.get("automation_id") if isinstance(sub.metadata.get("automation_id"), int) else None
    if automation_id is not None and "remove" in sub.many(ProfileBlock.REMOVE):
        return _profile_change(
            sub,
            ProfileBlock.REMOVE,
            lambda s: saves.remove_automation(session=s, actor=sub.user, automation_id=automation_id, now=sub.now),
        )
    desk_value = sub.one(ProfileBlock.DESK)
    fences = set(sub.many(ProfileBlock.FENCES))
    data = AutomationInput(
        desk_id=int(desk_value) if desk_value and desk_value.isdigit() else None,
        owner_id=sub.chosen_user(ProfileBlock.OWNER),
        name=sub.text(ProfileBlock.NAME) or "",
        interface=sub.one(ProfileBlock.INTERFACE),
        broker_username=sub.text(ProfileBlock.BROKER_USERNAME) or "",
        session_host=sub.text(ProfileBlock.SESSION_HOST) or "",
        person_logs_in="person_logs_in" in set(sub.many(ProfileBlock.PERSON_LOGS_IN)),
        read_only_api="read_only_api" in fences,
        trusted_ips="trusted_ips" in fences,
        order_size_limit="order_size_limit" in fences,
        kill_switch_tested_on=sub.date(ProfileBlock.KILL_SWITCH),
        credentials_rotated_on=sub.date(ProfileBlock.CREDENTIALS),
        second_factor_holder=sub.one(ProfileBlock.SECOND_FACTOR_HOLDER) or SecondFactorHolder.PERSON,
        account_kind=sub.one(ProfileBlock.ACCOUNT_KIND) or AccountKind.LIVE,
        kill_switch_how=sub.text(ProfileBlock.KILL_SWITCH_HOW),
        ip_restricted="ip_restricted" in fences,
    )
    today = _today(sub)
    return _profile_change(
        sub,
        ProfileBlock.NAME,
        lambda s: saves.save_automation(
            session=s, actor=sub.user, automation_id=automation_id, data=data, today=today, now=sub.now
        ),
        errors=automations.validate(data, today=today),
    )


@handler
def on_tier(sub: Submission) -> Plan[list[int]]:
    trader, tier = sub.chosen_user(ProfileBlock.TRADER), sub.one(ProfileBlock.TIER)
    eligible = "dsc_plus_eligible" in set(sub.many(ProfileBlock.DSC_PLUS_ELIGIBLE))
    return _profile_change(
        sub,
        ProfileBlock.TRADER,
        lambda s: saves.set_risk_tier(
            session=s, manager_id=sub.user, trader_id=trader, tier=tier, now=sub.now, dsc_plus_eligible=eligible
        ),
        affected=trader,
    )


@dataclass(frozen=True)
class _CodeChecked:
    result: drill.CodeResult
    recorded: bool  # the trader has a Mobile Authenticator app record (the drill leaves it as it is)
    tz: ZoneInfo
    runs: list[int]


def _code(sub: Submission, purpose: drill.Purpose) -> Plan[_CodeChecked]:
    """Enrolment or drill: a rejected code is a field error (the attempt is stored all the same,
    for the lockout); a passed one closes the modal and tells the trader in their DM."""
    code = sub.text(ProfileBlock.CODE) or ""

    def check(session: Session) -> _CodeChecked:
        result = drill.submit_code(
            session=session,
            user_id=sub.user,
            code=code,
            purpose=purpose,
            keys=sub.deps.keys,
            now=sub.now,
            wall=sub.deps.wall_now(),  # the authenticator app's time: the real one, never the offset clock
        )
        return _CodeChecked(
            result=result,
            recorded=SecondFactor.AUTHENTICATOR in reading.factor_records(session, [sub.user])[sub.user],
            tz=reading.user_zone(session, sub.user),
            runs=rosters.rosters_showing(session=session, user_id=sub.user, now=sub.now) if result.ok else [],
        )

    def passed(done: _CodeChecked) -> None:
        text = (
            views.enrolled_text()
            if purpose is drill.Purpose.ENROLL
            else views.drill_passed_text(done.result, recorded=done.recorded, tz=done.tz)
        )
        for run_id in done.runs:
            sub.deps.refresher.notify(run_id)
        sub.deps.later(ephemeral, client=sub.client, channel=None, user=sub.user, text=text)
        sub.deps.later(_republish, client=sub.client, deps=sub.deps, user=sub.user, now=sub.now)

    return Plan(
        work=check,
        field=ProfileBlock.CODE,
        refuse=lambda done: None if done.result.ok else {ProfileBlock.CODE: views.code_error(done.result, done.tz)},
        after=passed,
    )


@handler
def on_enroll_code(sub: Submission) -> Plan[_CodeChecked]:
    return _code(sub, drill.Purpose.ENROLL)


@handler
def on_drill_code(sub: Submission) -> Plan[_CodeChecked]:
    return _code(sub, drill.Purpose.DRILL)


@handler
def on_view(sub: Submission) -> Plan[Any]:
    trader = sub.chosen_user(ProfileBlock.TRADER)
    if trader is None:
        return refused(ProfileBlock.TRADER, "Pick the trader.")
    return Plan(
        work=lambda s: views.profile_view(home.view_card(session=s, viewer_id=sub.user, trader_id=trader, now=sub.now)),
        field=ProfileBlock.TRADER,
        read_only=True,
        reply=lambda view: {"response_action": "update", "view": view},
    )
