"""Helpers for the readiness-profile tests: modal values as Slack sends them, App Home, enrolment."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.audit import AuditEvent
from bot.slack.ids import FIELD, ProfileAction, ProfileBlock, ProfileCallback, verified_block
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot, FakeClock

KEY = "test-profile-key-one"


@pytest.fixture
def keyed_bot(engine: Engine, fake_slack: FakeSlack, clock: FakeClock) -> Iterator[Bot]:
    """The bot with a secret key configured (enrolment needs one)."""
    running = Bot(engine, fake_slack.base_url, clock, secret_keys=(KEY,))
    yield running
    running.close()


@pytest.fixture
def keyless_bot(engine: Engine, fake_slack: FakeSlack, clock: FakeClock) -> Iterator[Bot]:
    """The bot with no secret key at all (enrolment is refused, the rest works)."""
    running = Bot(engine, fake_slack.base_url, clock, secret_keys=())
    yield running
    running.close()


def opt(value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": value}, "value": value}


def select_(value: str | None) -> dict[str, Any]:
    return {FIELD: {"type": "static_select", "selected_option": opt(value) if value else None}}


def checks(values: list[str]) -> dict[str, Any]:
    return {FIELD: {"type": "checkboxes", "selected_options": [opt(v) for v in values]}}


def text(value: str | None) -> dict[str, Any]:
    return {FIELD: {"type": "plain_text_input", "value": value}}


def day(value: date | None) -> dict[str, Any]:
    return {FIELD: {"type": "datepicker", "selected_date": value.isoformat() if value else None}}


def user(value: str | None) -> dict[str, Any]:
    return {FIELD: {"type": "users_select", "selected_user": value}}


def radio(value: str | None) -> dict[str, Any]:
    return {FIELD: {"type": "radio_buttons", "selected_option": opt(value) if value else None}}


def interfaces_values(primary: str | None, secondary: str | None = None) -> dict[str, Any]:
    return {ProfileBlock.PRIMARY_INTERFACE: select_(primary), ProfileBlock.SECONDARY_INTERFACE: select_(secondary)}


def permissions_values(
    interface: str | None, trading: list[str], market: list[str] | None = None, note: str | None = None
) -> dict[str, Any]:
    return {
        ProfileBlock.INTERFACE: select_(interface),
        ProfileBlock.TRADING: checks(trading),
        ProfileBlock.MARKET_DATA: checks(market or []),
        ProfileBlock.NOTE: text(note),
    }


def factors_values(primary: str | None, registered: list[str], dates: dict[str, date] | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {
        ProfileBlock.PRIMARY_FACTOR: select_(primary),
        ProfileBlock.REGISTERED: checks(registered),
    }
    for method in ("ib_key", "authenticator_app", "dsc_plus", "sms"):
        values[verified_block(method)] = day((dates or {}).get(method))
    return values


def automation_values(
    *,
    name: str = "mean-reversion",
    desk_id: int = 1,
    interface: str = "tws_api",
    username: str = "algo_mr1",
    fences: list[str] | None = None,
    kill_switch: date | None = None,
    rotated: date | None = None,
    owner: str | None = None,
) -> dict[str, Any]:
    values: dict[str, Any] = {
        ProfileBlock.NAME: text(name),
        ProfileBlock.DESK: select_(str(desk_id)),
        ProfileBlock.INTERFACE: select_(interface),
        ProfileBlock.BROKER_USERNAME: text(username),
        ProfileBlock.FENCES: checks(fences or []),
        ProfileBlock.KILL_SWITCH: day(kill_switch),
        ProfileBlock.CREDENTIALS: day(rotated),
    }
    if owner is not None:
        values[ProfileBlock.OWNER] = user(owner)
    return values


def code_values(code: str) -> dict[str, Any]:
    return {ProfileBlock.CODE: text(code)}


def submit(bot: Bot, who: str, callback: str, values: dict[str, Any], meta: str = "") -> dict[str, Any]:
    """Submit a modal; the acknowledgement's body ({} for a plain ack that closes the modal)."""
    response: httpx.Response = bot.submit_view(who, callback, values, meta)
    assert response.status_code == 200, response.text
    bot.settle()
    return response.json() if response.content else {}


def errors_of(body: dict[str, Any]) -> dict[str, str]:
    assert body.get("response_action") == "errors", body
    errors = body["errors"]
    assert isinstance(errors, dict)
    return errors


def open_home(bot: Bot, who: str) -> None:
    assert bot.event({"type": "app_home_opened", "user": who, "tab": "home", "event_ts": "1.0"}).status_code == 200
    bot.settle()


def home_of(fake: FakeSlack, who: str) -> dict[str, Any]:
    published = [c for c in fake.of("views.publish") if c.params["user_id"] == who]
    assert published, f"no Home published for {who}"
    view = published[-1].params["view"]
    assert isinstance(view, dict)
    return view


def home_text(fake: FakeSlack, who: str) -> str:
    return json.dumps(home_of(fake, who)["blocks"], ensure_ascii=False)


def opened_views(fake: FakeSlack) -> list[dict[str, Any]]:
    return [c.params["view"] for c in fake.of("views.open")]


def ephemerals(fake: FakeSlack, who: str) -> list[str]:
    return fake.told(who)


def dm_texts(fake: FakeSlack, channel: str) -> list[str]:
    return [
        json.dumps(c.params.get("blocks") or [], ensure_ascii=False) + str(c.params.get("text") or "")
        for c in fake.of("chat.postMessage")
        if c.params["channel"] == channel
    ]


def enroll(bot: Bot, fake: FakeSlack, who: str = "UTRD1") -> str:
    """Press Enrol and read the secret from the DM, as the trader's authenticator would."""
    assert bot.click(who, ProfileAction.ENROLL, "").status_code == 200
    bot.settle()
    for message in reversed(dm_texts(fake, "D" + who[1:])):
        found = re.search(r"otpauth://totp/[^`\s\"]*secret=([A-Z2-7]+)", message)
        if found:
            return found.group(1)
    raise AssertionError("no enrolment DM")


def code(secret: str, bot: Bot, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(bot.clock(), counter_offset=steps)


def finish_enrollment(bot: Bot, fake: FakeSlack, who: str = "UTRD1") -> str:
    secret = enroll(bot, fake, who)
    assert submit(bot, who, ProfileCallback.ENROLL, code_values(code(secret, bot))) == {}
    bot.clock.advance(seconds=30)  # the next drill code is a new step
    return secret


def audit_actions(engine: Engine, subject: str) -> list[tuple[str, str | None]]:
    with Session(engine) as session:
        rows = session.exec(select(AuditEvent).where(AuditEvent.subject == subject).order_by(col(AuditEvent.id))).all()
        return [(r.action, r.actor) for r in rows]
