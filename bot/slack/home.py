"""Events API: App Home."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.checklist import status, views
from bot.slack.deps import Deps, ack_then
from bot.slack.ids import Event


def register(app: App) -> None:
    app.event(Event.APP_HOME_OPENED)(ack_then(publish_home))


def publish_home(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    event = body.get("event") or {}
    if event.get("tab", "home") != "home":
        return
    user = str(event["user"])
    with deps.read() as session:
        view = views.home_view(status.own_status(session=session, user_id=user, now=now))
    client.views_publish(user_id=user, view=view)
