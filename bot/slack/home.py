"""Events API: App Home."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.checklist import status, views
from bot.profile import service as profile
from bot.profile import views as profile_views
from bot.slack.deps import Deps, ack_then
from bot.slack.ids import Event


def register(app: App) -> None:
    app.event(Event.APP_HOME_OPENED)(ack_then(publish_home))


def publish_home(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    event = body.get("event") or {}
    if event.get("tab", "home") != "home":
        return
    publish_for(user=str(event["user"]), client=client, deps=deps, now=now)


def publish_for(*, user: str, client: WebClient, deps: Deps, now: datetime) -> None:
    """Publish ``user``'s Home: today's checklist status, then their readiness profile and the
    desks they manage (``bot.profile.views.profile_home_blocks``)."""
    with deps.read() as session:
        view = views.home_view(status.own_status(session=session, user_id=user, now=now))
        card, overviews = profile.home_data(session=session, user_id=user, now=now)
        view["blocks"] += profile_views.profile_home_blocks(card, overviews, keys_configured=deps.keys.configured)
    client.views_publish(user_id=user, view=view)
