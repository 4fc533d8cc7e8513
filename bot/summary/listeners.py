"""The weekly summary in Slack: the "Download CSV" button, and `/ibstatus week` for managers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import Session

from bot.desks import service as desks
from bot.desks.models import Role
from bot.errors import ServiceError
from bot.slack.deps import Deps, ack_then, action_value, channel_id, ephemeral, user_id
from bot.slack.ids import Action
from bot.summary import jobs as weekly
from bot.summary import report as summary
from bot.summary import views as summary_views

Blocks = list[dict[str, Any]]


def register(app: App) -> None:
    app.action(Action.SUMMARY_DOWNLOAD_CSV)(ack_then(download_csv))


def week_status(*, session: Session, user_id: str, args: list[str], now: datetime) -> tuple[str, Blocks | None]:
    """`/ibstatus week [2026-W48] [desk]`: the week so far (default: this week), managers only."""
    managed = desks.desks_of_user(session=session, user_id=user_id, role=Role.MANAGER)
    if not managed:
        return summary_views.REFUSAL, None
    week: str | None = None
    name: str | None = None
    for word in args:
        if word.upper().startswith(tuple("0123456789")):
            week = summary.parse_iso_week(word)
        elif name is None:
            name = word
        else:
            raise ServiceError("Usage: `/ibstatus week [2026-W48] [desk]`.")
    if name is None:
        if len(managed) > 1:
            names = ", ".join(f"`{d.name}`" for d in managed)
            raise ServiceError(f"You manage several desks; name one: {names}.")
        desk = managed[0]
    else:
        found = [d for d in managed if d.name == name]
        if not found:
            raise ServiceError(f"You don't manage a desk named `{name}`.")
        desk = found[0]
    report = summary.build_summary(
        session=session, desk=desk, iso_week=week or summary.current_week(desk, now), now=now
    )
    return summary_views.summary_text(report), summary_views.summary_blocks(report)


def download_csv(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    user, channel = user_id(body), channel_id(body)
    parsed = summary_views.parse_download_value(action_value(body))
    if parsed is None:
        ephemeral(client, channel=channel, user=user, text="This summary is no longer available.")
        return
    desk_id, iso_week = parsed
    try:
        weekly.send_week_csv(deps.engine, client, desk_id=desk_id, iso_week=iso_week, user_id=user, keys=deps.keys)
    except ServiceError as exc:
        ephemeral(client, channel=channel, user=user, text=str(exc))
    except SlackApiError as exc:
        ephemeral(client, channel=channel, user=user, text=f"Slack refused the upload ({exc.response.get('error')}).")
