"""Events API: App Home (per role) and ``user_change`` (the names cache).

App Home is drawn from the cache and the database only (no Slack call but ``views.publish``);
after a click in App Home that changes something (an answer, an acknowledgement, away days),
the listener asks for it to be drawn again (``Deps.after_home_click``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from sqlmodel import Session

from bot.checklist import status
from bot.desks import service as desks
from bot.desks.models import Role
from bot.escalation import queries as escalation
from bot.people import service as people
from bot.people import slack_names
from bot.probe import home as probe_home
from bot.profile import views as profile_views
from bot.profile.home import home_data
from bot.slack.deps import Deps, ack_then
from bot.slack.home_views import HomeData, ManagedDesk, home_view
from bot.slack.ids import Event
from bot.summary import report as summary
from bot.summary.weeks import current_week

log = logging.getLogger(__name__)


def register(app: App) -> None:
    app.event(Event.APP_HOME_OPENED)(ack_then(publish_home))
    app.event(Event.USER_CHANGE)(ack_then(on_user_change))


def gather(session: Session, user: str, now: datetime) -> HomeData:
    """Everything App Home shows ``user``, from the database and the names cache."""
    data = HomeData(user=user, admin=people.is_workspace_admin(session=session, user_id=user))
    mine = status.overview(session=session, user_id=user, now=now, flags=escalation.OVERVIEW_FLAGS)
    data.trading = mine.trading
    if data.trading:
        escalated = mine.flags[escalation.ESCALATED]
        data.about_me = escalation.open_for_trader(session=session, user_id=user) if escalated else []
        data.away = mine.upcoming
        trading = [item.desk for item in data.trading]
        data.probes = probe_home.own_cards(session=session, user_id=user, now=now, trading=trading)
    if mine.managing:
        data.probe_counts = probe_home.desk_counts(session=session, managing=mine.managing)
    mentioned: list[Any] = [e for e, _ in data.about_me]
    for desk_status in status.managed_status(session=session, user_id=user, now=now, managing=mine.managing):
        desk = desk_status.desk
        assert desk.id is not None
        open_ = escalation.open_for_desk(session=session, desk_id=desk.id)
        mentioned += open_
        week = summary.build_summary(session=session, desk=desk, iso_week=current_week(desk, now), now=now)
        traders = len(desks.members(session=session, desk_id=desk.id, role=Role.TRADER))
        data.managed.append(ManagedDesk(status=desk_status, escalations=open_, week=week, traders=traders))
    names = escalation.names_of(session=session, escalations=mentioned)
    for item in data.managed:
        if item.status.roster is not None:
            names = names.merged(item.status.roster.names)
    if not data.trading and not data.managed:
        data.contacts = people.workspace_admins(session=session)[:10]
        names = names.merged(people.names_for(session=session, user_ids=data.contacts))
    data.names = names
    return data


def publish(client: WebClient, deps: Deps, user: str, now: datetime) -> None:
    """Today's checklist status and the desks they manage, then their readiness profile
    (``bot.profile.views.profile_home_blocks``)."""
    with deps.read() as session:
        card, overviews = home_data(session=session, user_id=user, now=now)
        extra = profile_views.profile_home_blocks(card, overviews, keys_configured=deps.keys.configured)
        view = home_view(gather(session, user, now), extra)
    client.views_publish(user_id=user, view=view)


def publish_home(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    event = body.get("event") or {}
    if event.get("tab", "home") != "home":
        return
    user = str(event["user"])
    if deps.names_client is not None:  # a first visit: learn who they are (role, name) first
        with deps.read() as session:
            known = people.get(session=session, user_id=user) is not None
        if not known:
            slack_names.ensure(deps.engine, deps.names_client, user, now=now)
    publish(client, deps, user, now)


def on_user_change(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    """https://api.slack.com/events/user_change carries the whole user: no users.info needed."""
    user = (body.get("event") or {}).get("user")
    if isinstance(user, dict):
        slack_names.remember_event_user(deps.engine, user, now=now)
