"""Desk settings from Slack in tests: the settings modal's state, and a desk's stored row."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from bot.desks.models import Desk
from bot.slack.ids import FIELD
from tests.support.harness import Bot


def settings_values(**changes: Any) -> dict[str, Any]:
    """The settings modal's state as Slack submits it (the factory desk's values, then ``changes``)."""
    base: dict[str, dict[str, Any]] = {
        "desk_name": {"type": "plain_text_input", "value": "equities"},
        "channel": {"type": "conversations_select", "selected_conversation": "C0123"},
        "managers": {"type": "multi_users_select", "selected_users": ["UMGR1", "UMGR2"]},
        "traders": {"type": "multi_users_select", "selected_users": ["UTRD1", "UTRD2", "UTRD3"]},
        "timezone": {"type": "static_select", "selected_option": opt("America/New_York")},
        "post_at": {"type": "timepicker", "selected_time": "08:00"},
        "deadline": {"type": "timepicker", "selected_time": "09:00"},
        "reminder_minutes": {"type": "number_input", "value": "30"},
        "grace_minutes": {"type": "number_input", "value": "15"},
        "ack_timeout_minutes": {"type": "number_input", "value": "15"},
        "escalation_channel": {"type": "conversations_select", "selected_conversation": None},
        "pager_kind": {"type": "static_select", "selected_option": opt("none")},
        "pager_url": {"type": "url_text_input", "value": None},
        "pager_secret": {"type": "plain_text_input", "value": None},
        "managers_channel": {"type": "conversations_select", "selected_conversation": None},
        "summary_delay_minutes": {"type": "number_input", "value": "30"},
    }
    for block, value in changes.items():
        key = {
            "channel": "selected_conversation",
            "escalation_channel": "selected_conversation",
            "managers_channel": "selected_conversation",
            "managers": "selected_users",
            "traders": "selected_users",
            "post_at": "selected_time",
            "deadline": "selected_time",
        }.get(block, "value")
        if block in ("timezone", "pager_kind"):
            base[block]["selected_option"] = opt(value)
        else:
            base[block][key] = value
    return {block: {FIELD: element} for block, element in base.items()}


def desk_row(bot: Bot, name: str = "equities") -> Desk | None:
    with Session(bot.runtime.engine) as session:
        return session.exec(select(Desk).where(Desk.name == name)).first()


def opt(value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": value}, "value": value}
