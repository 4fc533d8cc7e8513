"""The weekly summary in Slack: the "Download CSV" button (`/ibstatus week` is answered by
``bot.slack.commands`` with ``bot.summary.service.week_status``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import ServiceError
from bot.slack.deps import Deps, ack_then, action_value, respond, user_id
from bot.slack.ids import Action
from bot.summary import posting as weekly
from bot.summary import views as summary_views


def register(app: App) -> None:
    app.action(Action.SUMMARY_DOWNLOAD_CSV)(ack_then(download_csv))


def download_csv(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    user = user_id(body)
    parsed = summary_views.parse_download_value(action_value(body))
    if parsed is None:
        respond(client, body, "This summary is no longer available.")
        return
    desk_id, iso_week = parsed
    try:
        weekly.send_week_csv(deps.engine, client, desk_id=desk_id, iso_week=iso_week, user_id=user, keys=deps.keys)
    except ServiceError as exc:
        respond(client, body, str(exc))
    except SlackApiError as exc:
        respond(client, body, f"Slack refused the upload ({exc.response.get('error')}).")
