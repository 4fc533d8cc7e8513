"""/ibstatus: answered in the acknowledgement itself (ephemeral), well within 3 seconds."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from slack_bolt import Ack, App

from bot.checklist import status, views
from bot.errors import ServiceError
from bot.escalation import service as escalation
from bot.escalation import views as escalation_views
from bot.slack.deps import Deps
from bot.slack.ids import Command
from bot.summary import listeners as summary

_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")


def register(app: App) -> None:
    app.command(Command.IBSTATUS)(on_ibstatus)


def on_ibstatus(ack: Ack, body: dict[str, Any], deps: Deps, now: datetime) -> None:
    user = str(body.get("user_id") or "")
    words = str(body.get("text") or "").split()
    blocks: list[dict[str, Any]] | None = None
    try:
        with deps.read() as session:  # read-only: never waits behind writers
            if not words:
                text = views.own_status_text(status.own_status(session=session, user_id=user, now=now))
                mine = escalation_views.own_escalations_text(escalation.open_for_trader(session=session, user_id=user))
                text = f"{text}\n\n{mine}" if mine else text
            elif words[0].lower() == "escalations" and len(words) == 1:
                managed, items = escalation.open_for_manager(session=session, user_id=user)
                text = escalation_views.manager_escalations_text(items, managed)
            elif words[0].lower() == "desk" and len(words) <= 2:
                name = words[1] if len(words) == 2 else None
                item = status.desk_status(session=session, user_id=user, name=name, now=now)
                text = views.desk_status_text(item)
                about_desk = escalation_views.desk_escalations_text(
                    escalation.open_desk_wide(session=session, desk_ids=[item.desk.id or 0])
                )
                text = f"{text}\n\n{about_desk}" if about_desk else text
            elif words[0].lower() == "week":
                text, blocks = summary.week_status(session=session, user_id=user, args=words[1:], now=now)
            elif len(words) == 1 and (mention := _MENTION.match(words[0])):
                trader = mention.group(1)
                found = status.trader_status(session=session, manager_id=user, trader_id=trader, now=now)
                text = views.trader_status_text(found, trader)
            else:
                text = views.USAGE
    except ServiceError as exc:
        text = f"{exc}\n\n{views.USAGE}" if not words else str(exc)
    ack(text=text, blocks=blocks, response_type="ephemeral")
