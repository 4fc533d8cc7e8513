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
from bot.escalation import service as escalation
from bot.escalation import views as escalation_views
from bot.interactions import REPLAYED_CLICK, REPLAYED_SUBMISSION, first_time
from bot.slack.deps import Deps, ack_then, action_value, channel_id, ephemeral, parse_int, user_id
from bot.slack.ids import FIELD, Action, Block, Callback

STALE = "This escalation no longer exists."


def register(app: App) -> None:
    app.action(Action.ESCALATION_ACK)(on_acknowledge)
    app.action(Action.ESCALATION_RESOLVE)(ack_then(open_resolve_modal))
    app.view(Callback.RESOLVE_MODAL)(on_resolve_submitted)


def _already(t: escalation.Transition) -> str:
    esc = t.escalation
    if esc.state == "resolved":
        return f"Already resolved by <@{esc.resolved_by}>."
    return f"Already acknowledged by <@{esc.acknowledged_by}>."


def on_acknowledge(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    """The transition is stored before the acknowledgement; replies go after the response."""
    reply = _acknowledge(body, deps, now)
    ack()
    if reply:
        deps.later(ephemeral, client=client, channel=channel_id(body), user=user_id(body), text=reply)


def _acknowledge(body: dict[str, Any], deps: Deps, now: datetime) -> str | None:
    """Acknowledge; the sentence for the user, or None when it simply worked."""
    esc_id = parse_int(action_value(body))
    if esc_id is None:
        return STALE
    try:
        with deps.db() as session:
            if not first_time(session=session, body=body, now=now):
                return REPLAYED_CLICK
            t = escalation.acknowledge(session=session, escalation_id=esc_id, user_id=user_id(body), now=now)
    except ServiceError as exc:
        return str(exc)
    return _already(t) if t.outcome is escalation.Outcome.UNCHANGED else None


def open_resolve_modal(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    user, channel = user_id(body), channel_id(body)
    esc_id = parse_int(action_value(body))
    if esc_id is None:
        ephemeral(client, channel=channel, user=user, text=STALE)
        return
    try:
        with deps.read() as session:  # only checks: no write lock, and no Slack call inside
            esc, desk = escalation.check_can_act(session=session, escalation_id=esc_id, user_id=user)
            resolved_by = esc.resolved_by if esc.state == "resolved" else None
            view = escalation_views.resolve_modal(esc, desk)
    except ServiceError as exc:
        ephemeral(client, channel=channel, user=user, text=str(exc))
        return
    if resolved_by is not None:
        ephemeral(client, channel=channel, user=user, text=f"Already resolved by <@{resolved_by}>.")
        return
    client.views_open(trigger_id=body["trigger_id"], view=view)


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
        escalation.validate_note(note if isinstance(note, str) else None)
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
            t = escalation.resolve(session=session, escalation_id=esc_id, user_id=user, note=str(note), now=now)
    except ServiceError as exc:
        ack(response_action="errors", errors={Block.RESOLUTION_NOTE: str(exc)})
        return
    ack()
    if t.outcome is escalation.Outcome.UNCHANGED:
        deps.later(ephemeral, client=client, channel=None, user=user, text=_already(t))
