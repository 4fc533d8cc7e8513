"""Helpers shared by the escalation, outbox and pager tests (no monkeypatching: real HTTP fakes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.audit import AuditEvent
from bot.checklist import posting
from bot.db import session_scope
from bot.delivery.models import OutboxMessage
from bot.delivery.pager import Pager
from bot.delivery.slack import delivery_client as slack_delivery_client
from bot.desks import service as desks
from bot.escalation import passes
from bot.escalation.models import Escalation
from bot.slack.ids import FIELD, Block
from tests.support.fakes.pager import FakePager
from tests.support.harness import BOT_TOKEN, Bot

TODAY = date(2026, 11, 25)
SECRET_KEY = "test-preflight-secret-key"


@pytest.fixture
def fake_pager() -> Iterator[FakePager]:
    fake = FakePager().start()
    yield fake
    fake.stop()


def make_pager(timeout: float = 2.0) -> Pager:
    return Pager(keys=SECRET_KEY, timeout=timeout, retries=1, backoff=0.01, allow_private=True)


def delivery_client(base_url: str, timeout: int = 5) -> WebClient:
    return slack_delivery_client(WebClient(token=BOT_TOKEN, base_url=base_url, timeout=timeout))


def post_checklist(bot: Bot, name: str = "equities") -> posting.PostResult:
    result = posting.post_checklist(bot.runtime.engine, bot.client, desk_name=name, day=TODAY, now=bot.clock())
    assert result.ts is not None and result.run_id is not None
    return result


def configure(engine: Engine, name: str = "equities", **options: Any) -> None:
    with session_scope(engine) as session:
        # The fake pager listens on http://127.0.0.1: an on-premises pager (PREFLIGHT_ALLOW_PRIVATE_PAGER).
        options.setdefault("allow_private_pager", True)
        desks.configure_desk(session=session, name=name, keys=SECRET_KEY, **options)


def run_pass(engine: Engine, now: Any, name: str = "equities") -> passes.PassReport:
    with session_scope(engine) as session:
        return passes.run_pass(session=session, desk=desks.get_desk(session=session, name=name), now=now)


def escalations(engine: Engine) -> list[Escalation]:
    with Session(engine) as session:
        return list(session.exec(select(Escalation).order_by(col(Escalation.id))).all())


def outbox_rows(engine: Engine) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all())


def audit_actions(engine: Engine, subject: str) -> list[tuple[str, str | None]]:
    with Session(engine) as session:
        rows = session.exec(select(AuditEvent).where(AuditEvent.subject == subject).order_by(col(AuditEvent.id))).all()
        for row in rows:
            assert row.at.utcoffset() is not None and row.at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
        return [(r.action, r.actor) for r in rows]


def report_values(failed: list[str], gaps: list[str] | None = None, **extra: str) -> dict[str, Any]:
    """The report modal's state. ``kinds``: comma-separated permission gaps (default: a
    trading permission when permissions failed)."""

    def opt(v: str) -> dict[str, Any]:
        return {"text": {"type": "plain_text", "text": v}, "value": v}

    kinds = extra.get("kinds", "trading_permission" if "permissions" in failed else "")

    values: dict[str, Any] = {
        Block.FAILED: {FIELD: {"type": "checkboxes", "selected_options": [opt(v) for v in failed]}},
        Block.GAPS: {FIELD: {"type": "checkboxes", "selected_options": [opt(v) for v in gaps or []]}},
        Block.AUTH_LAYER: {FIELD: {"type": "radio_buttons", "selected_option": None}},
        Block.PLATFORM: {
            FIELD: {"type": "static_select", "selected_option": opt(extra["platform"]) if "platform" in extra else None}
        },
        Block.MISSING_PERMISSIONS: {FIELD: {"type": "plain_text_input", "value": extra.get("missing")}},
        Block.PERMISSION_GAPS: {
            FIELD: {"type": "checkboxes", "selected_options": [opt(v) for v in kinds.split(",") if v]}
        },
        Block.NOTE: {FIELD: {"type": "plain_text_input", "value": extra.get("note")}},
    }
    return values


def note_values(note: str | None) -> dict[str, Any]:
    return {Block.RESOLUTION_NOTE: {FIELD: {"type": "plain_text_input", "value": note}}}


def blocks_text(params: dict[str, Any]) -> str:
    return json.dumps(params.get("blocks") or [], ensure_ascii=False) + str(params.get("text") or "")
