"""/ibstatus: answered in the acknowledgement itself (ephemeral), well within 3 seconds.

What it answers depends on who asks: a trader gets their own status; a manager (who may not
trade at all) their desks' state; anyone else what the bot is and who can add them. Text it
doesn't understand gets one sentence and the usage (typed text is never echoed back).
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.checklist import rosters, status, status_views
from bot.desks import away
from bot.desks import service as desks
from bot.desks import views as desk_views
from bot.desks.models import Role
from bot.errors import ServiceError
from bot.escalation import queries as escalation
from bot.escalation import views as escalation_views
from bot.people import service as people
from bot.probe import wiring as probe_wiring
from bot.slack import desk_settings
from bot.slack.blocks import MESSAGE_CHARS, cut, escape
from bot.slack.deps import RECEIVED, Deps, open_view, respond
from bot.slack.ids import Command
from bot.summary import service as summary
from bot.summary import views as summary_views

_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
NOT_UNDERSTOOD = "Sorry, I didn't understand that."
PROBING = "🔌 Asking your broker sessions now (a probe never logs in); the answer follows here."


def register(app: App) -> None:
    app.command(Command.IBSTATUS)(on_ibstatus)


def on_ibstatus(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    body[RECEIVED] = time.monotonic()
    user = str(body.get("user_id") or "")
    words = str(body.get("text") or "").split()
    verb = words[0].lower() if words else ""
    blocks: list[dict[str, Any]] | None = None
    if verb in ("away", "back"):
        text = _away(deps, user, words[1:], back=verb == "back", now=now)
    elif verb == "setup":
        text = _setup(deps, body, client, user, words[1:], now)
    elif verb == "probe" and len(words) == 1:
        # Probes take seconds: the answer follows through the command's response_url (bot.probe.wiring).
        deps.later(_probe_reply, client=client, deps=deps, body=body, user=user)
        text = PROBING
    else:
        try:
            with deps.read() as session:  # read-only: never waits behind writers
                text, blocks = _answer(session, user, words, now)
        except ServiceError as exc:
            text = str(exc)
    if not text and blocks is None:
        ack()  # a modal is opening: nothing to say
        return
    # Slack truncates a message's text beyond 40,000 characters; builders stay far below.
    ack(text=cut(text, MESSAGE_CHARS + 1000), blocks=blocks, response_type="ephemeral")


def _probe_reply(*, client: WebClient, deps: Deps, body: dict[str, Any], user: str) -> None:
    """``/ibstatus probe``: the caller's own endpoints, or the desks they manage, probed now."""
    try:
        found = probe_wiring.probe_for(deps.engine, user_id=user, clock=deps.clock)
    except ServiceError as exc:
        text = escape(str(exc))
    else:
        text = "🔌 *Probe*\n" + "\n".join(escape(line) for line in probe_wiring.status_lines(found))
    respond(client, body, cut(text, MESSAGE_CHARS))


def _answer(session: Any, user: str, words: list[str], now: datetime) -> tuple[str, list[dict[str, Any]] | None]:
    verb = words[0].lower() if words else ""
    if not words:
        return _overview(session, user, now), None
    if verb == "help" and len(words) == 1:
        return status_views.USAGE, None
    if verb == "escalations" and len(words) == 1:
        managed, items = escalation.open_for_manager(session=session, user_id=user)
        names = escalation.names_of(session=session, escalations=[e for e, _ in items])
        return escalation_views.manager_escalations_text(items, managed, names), None
    if verb == "desk" and len(words) <= 2:
        name = words[1] if len(words) == 2 else None
        item = status.desk_status(session=session, user_id=user, name=name, now=now)
        text = status_views.desk_status_text(item)
        # Desk-wide escalations (a morning that could not be posted) belong to the desk's state.
        about_desk = escalation_views.desk_escalations_text(
            escalation.open_desk_wide(session=session, desk_ids=[item.desk.id or 0])
        )
        return (f"{text}\n\n{about_desk}" if about_desk else text), None
    if verb == "week":
        report = summary.week_status(session=session, user_id=user, args=words[1:], now=now)
        return summary_views.summary_text(report), summary_views.summary_blocks(report)
    if len(words) == 1 and (mention := _MENTION.match(words[0])):
        trader = mention.group(1)
        found = status.trader_status(session=session, manager_id=user, trader_id=trader, now=now)
        return status_views.trader_status_text(found, trader), None
    return f"{NOT_UNDERSTOOD}\n\n{status_views.USAGE}", None


def _overview(session: Any, user: str, now: datetime) -> str:
    """`/ibstatus` alone, by role: a trader's own status; a manager's desks; else who to ask."""
    parts: list[str] = []
    mine = status.overview(session=session, user_id=user, now=now, flags=escalation.OVERVIEW_FLAGS)
    if mine.trading:
        parts.append(status_views.own_status_text(mine.trading))
        escalated = mine.flags[escalation.ESCALATED]
        about_me = escalation.open_for_trader(session=session, user_id=user) if escalated else []
        if about_me:
            names = escalation.names_of(session=session, escalations=[e for e, _ in about_me])
            parts.append(escalation_views.own_escalations_text(about_me, names))
        periods = desk_views.away_text(mine.upcoming)
        if periods:
            parts.append(periods)
    managed = status.managed_status(session=session, user_id=user, now=now, managing=mine.managing)
    if managed:
        used = sum(len(p) for p in parts)
        parts.append(status_views.managed_status_text(managed, chars=MESSAGE_CHARS - used - 200))
        count, items = escalation.open_for_manager(session=session, user_id=user)
        if items:
            parts.append(f"⚠️ {len(items)} open escalation(s) on your desks: `/ibstatus escalations`.")
    if not parts:
        admins = people.workspace_admins(session=session)[:5]
        managers = sorted({m for d in desks.list_desks(session=session) for m in _managers(session, d.id)})[:5]
        names = people.names_for(session=session, user_ids=[*managers, *admins])
        return status_views.not_on_a_desk_text(managers, admins, names) + "\n\n" + status_views.USAGE
    return "\n\n".join(parts)


def _managers(session: Any, desk_id: int | None) -> list[str]:
    return desks.members(session=session, desk_id=desk_id or 0, role=Role.MANAGER)


def _away(deps: Deps, user: str, args: list[str], *, back: bool, now: datetime) -> str:
    """`/ibstatus away [@user] 2026-12-01 2026-12-05 [note]` and `/ibstatus back [@user]`."""
    target = user
    if args and (mention := _MENTION.match(args[0])):
        target, args = mention.group(1), args[1:]
    try:
        with deps.db() as session:
            if back:
                if args:
                    raise ServiceError("Usage: `/ibstatus back` (managers: `/ibstatus back @user`).")
                changed = away.back(session=session, actor=user, user_id=target, now=now)
                touched = rosters.mark_changed(session=session, user_id=target, now=now)
                names = people.names_for(session=session, user_ids=[target])
                text = desk_views.back_confirmation(target, names, own=target == user, changed=bool(changed))
            else:
                if len(args) < 2:
                    raise ServiceError("Usage: `/ibstatus away 2026-12-01 2026-12-05 [note]`.")
                start = away.parse_day(args[0], "start")
                end = away.parse_day(args[1], "end")
                period = away.set_away(
                    session=session, actor=user, user_id=target, start=start, end=end, note=" ".join(args[2:]), now=now
                )
                touched = rosters.mark_changed(session=session, user_id=target, now=now)
                names = people.names_for(session=session, user_ids=[target])
                text = desk_views.away_confirmation(
                    target, start, end, names, own=target == user, on=away.scope_names(session=session, away=period)
                )
    except ServiceError as exc:
        return str(exc)
    for run_id in touched:
        deps.refresher.notify(run_id)
    return text


def _setup(deps: Deps, body: dict[str, Any], client: WebClient, user: str, args: list[str], now: datetime) -> str:
    """`/ibstatus setup [DESK]` (or `setup new`): open the settings modal at once, or say why not."""
    if len(args) > 1:
        return "Usage: `/ibstatus setup [DESK]` or `/ibstatus setup new`."
    with deps.read() as session:
        managed = desks.desks_of_user(session=session, user_id=user, role=Role.MANAGER)
        if args and args[0].lower() == "new":
            desk_id = None
        elif args:
            try:
                desk_id = desks.get_desk(session=session, name=args[0]).id
            except ServiceError as exc:
                return str(exc)
        elif len(managed) == 1:
            desk_id = managed[0].id
        elif managed:
            names = ", ".join(f"`{d.name}`" for d in managed)
            return f"You manage several desks; name one: `/ibstatus setup NAME` ({names})."
        else:
            desk_id = None  # nothing managed: the New desk flow (workspace admins)
    view, refusal = desk_settings.settings_view_for(deps, user, desk_id, now)
    if view is None:
        return refusal
    deps.urgent(_open, deps=deps, body=body, view=view, client=client)
    return ""


def _open(deps: Deps, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
    open_view(deps, body, view, client=client)
