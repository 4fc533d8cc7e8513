"""Acknowledge / Resolve on escalation DMs, and the resolve-note modal.

The service changes state and queues the in-place updates (and pager events) in the
outbox in the same transaction; the outbox worker delivers them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.errors import ServiceError
from bot.escalation import actions, queries
from bot.escalation import views as escalation_views
from bot.escalation.rules import Outcome, Transition
from bot.interactions import REPLAYED_CLICK, REPLAYED_SUBMISSION, first_time
from bot.people.service import Names
from bot.slack.deps import (
    Deps,
    action_value,
    ephemeral,
    open_modal_now,
    open_view,
    parse_int,
    respond,
    user_id,
)
from bot.slack.ids import FIELD, Action, Block, Callback

STALE = "This escalation no longer exists."


def register(app: App) -> None:
    app.action(Action.ESCALATION_ACK)(on_acknowledge)
    app.action(Action.ESCALATION_ACK_ALL)(on_acknowledge_all)
    app.action(Action.ESCALATION_RESOLVE)(open_modal_now(open_resolve_modal))
    app.view(Callback.RESOLVE_MODAL)(on_resolve_submitted)


def _already(t: Transition, names: Names) -> str:
    return escalation_views.already_text(t.escalation, t.desk, names)


def on_acknowledge(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    """The transition is stored before the acknowledgement; replies go after the response."""
    reply = _acknowledge(body, deps, now)
    ack()
    if reply:
        deps.later(respond, client=client, body=body, text=reply)
    deps.after_home_click(body, client, now)


def _acknowledge(body: dict[str, Any], deps: Deps, now: datetime) -> str | None:
    """Acknowledge; the sentence for the user, or None when it simply worked."""
    esc_id = parse_int(action_value(body))
    if esc_id is None:
        return STALE
    try:
        with deps.db() as session:
            if not first_time(session=session, body=body, now=now):
                return REPLAYED_CLICK
            t = actions.acknowledge(session=session, escalation_id=esc_id, user_id=user_id(body), now=now)
            names = queries.names_of(session=session, escalations=[t.escalation])
    except ServiceError as exc:
        return str(exc)
    return _already(t, names) if t.outcome is Outcome.UNCHANGED else None


def on_acknowledge_all(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    """*Acknowledge all* on a grouped message: stored before the acknowledgement; the message
    is updated once by the outbox."""
    key = action_value(body)
    try:
        with deps.db() as session:
            done, listed = actions.acknowledge_many(session=session, key=key, user_id=user_id(body), now=now)
    except ServiceError as exc:
        reply: str | None = str(exc)
    else:
        reply = None if done else f"All {listed} were already acknowledged or resolved."
    ack()
    if reply:
        deps.later(respond, client=client, body=body, text=reply)


def open_resolve_modal(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    user = user_id(body)
    esc_id = parse_int(action_value(body))
    if esc_id is None:
        respond(client, body, STALE)
        return
    try:
        with deps.read() as session:  # only checks: no write lock, and no Slack call inside
            esc, desk = actions.check_can_act(session=session, escalation_id=esc_id, user_id=user)
            names = queries.names_of(session=session, escalations=[esc])
            already = escalation_views.already_text(esc, desk, names) if esc.state == "resolved" else None
            view = escalation_views.resolve_modal(esc, desk, names)
    except ServiceError as exc:
        respond(client, body, str(exc))
        return
    if already is not None:
        respond(client, body, already)
        return
    open_view(deps, body, view, client=client)


def _escalation_id(view: dict[str, Any]) -> int | None:
    try:
        value = json.loads(view.get("private_metadata") or "{}").get("escalation_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def on_resolve_submitted(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    view = body.get("view") or {}
    user = user_id(body)
    values = (view.get("state") or {}).get("values") or {}
    note = ((values.get(Block.RESOLUTION_NOTE) or {}).get(FIELD) or {}).get("value")
    esc_id = _escalation_id(view)
    try:
        actions.validate_note(note if isinstance(note, str) else None)
    except ServiceError as exc:
        ack(response_action="errors", errors={Block.RESOLUTION_NOTE: str(exc)})
        return
    if esc_id is None:
        ack(response_action="errors", errors={Block.RESOLUTION_NOTE: STALE})
        return
    try:
        with deps.db() as session:
            if not first_time(session=session, body=body, now=now):
                ack(response_action="errors", errors={Block.RESOLUTION_NOTE: REPLAYED_SUBMISSION})
                return
            t = actions.resolve(session=session, escalation_id=esc_id, user_id=user, note=str(note), now=now)
            names = queries.names_of(session=session, escalations=[t.escalation])
    except ServiceError as exc:
        ack(response_action="errors", errors={Block.RESOLUTION_NOTE: str(exc)})
        return
    ack()
    if t.outcome is Outcome.UNCHANGED:
        deps.later(ephemeral, client=client, channel=None, user=user, text=_already(t, names))
