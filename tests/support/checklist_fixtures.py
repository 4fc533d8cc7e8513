"""The checklist seen from its tests: a posted run, the answers stored, what a trader was told,
the roster Slack shows now, and the report modal's state."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from bot.checklist import posting
from bot.checklist.models import Answer
from bot.slack.ids import FIELD, Block
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot

TODAY = date(2026, 11, 25)


def post(bot: Bot, day: date = TODAY) -> posting.PostResult:
    result = posting.post_checklist(bot.runtime.engine, bot.client, desk_name="equities", day=day, now=bot.clock())
    assert result.ts is not None and result.run_id is not None
    return result


def answers(bot: Bot, user: str | None = None) -> list[Answer]:
    with Session(bot.runtime.engine) as session:
        query = select(Answer).order_by(col(Answer.id))
        if user:
            query = query.where(Answer.user_id == user)
        return list(session.exec(query).all())


def ephemerals(fake: FakeSlack, user: str) -> list[str]:
    return fake.told(user)


def last_roster(fake: FakeSlack) -> str:
    updates = fake.of("chat.update")
    assert updates, "the roster was never updated"
    return json.dumps(updates[-1].params["blocks"], ensure_ascii=False)


def report_values(
    failed: list[str],
    layer: str | None = None,
    platform: str | None = None,
    missing: str | None = None,
    gaps: list[str] | None = None,
    note: str | None = None,
    kinds: list[str] | None = None,
) -> dict[str, Any]:
    def opt(v: str) -> dict[str, Any]:
        return {"text": {"type": "plain_text", "text": v}, "value": v}

    if kinds is None:
        kinds = ["trading_permission"] if "permissions" in failed and missing else []

    return {
        Block.FAILED: {FIELD: {"type": "checkboxes", "selected_options": [opt(v) for v in failed]}},
        Block.AUTH_LAYER: {FIELD: {"type": "radio_buttons", "selected_option": opt(layer) if layer else None}},
        Block.PLATFORM: {FIELD: {"type": "static_select", "selected_option": opt(platform) if platform else None}},
        Block.MISSING_PERMISSIONS: {FIELD: {"type": "plain_text_input", "value": missing}},
        Block.PERMISSION_GAPS: {FIELD: {"type": "checkboxes", "selected_options": [opt(v) for v in kinds]}},
        Block.GAPS: {FIELD: {"type": "checkboxes", "selected_options": [opt(v) for v in gaps or []]}},
        Block.NOTE: {FIELD: {"type": "plain_text_input", "value": note}},
    }
