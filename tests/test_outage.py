"""A request the bot can't complete — the database locked by another process, or gone — is
answered within Slack's 3 seconds with one sentence (bot.outage): a click hears it through its
response_url, a slash command in the acknowledgement, a modal as a field error. Never a bare
500, never a 30-second hang; /healthz answers in under a second. Through the real endpoint."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.checklist.models import Answer
from bot.db import make_engine
from bot.outage import NOT_SAVED
from bot.slack.ids import Action, Block, Callback
from tests.support.escalation_fixtures import post_checklist, report_values
from tests.support.factories import make_desk
from tests.support.fakes.slack import RESPONSE_URL, FakeSlack
from tests.support.harness import Bot, FakeClock


@contextmanager
def write_lock_held(engine: Engine) -> Iterator[None]:
    """Another process's connection holding SQLite's write lock (as the CLI might)."""
    other = sqlite3.connect(str(engine.url.database), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def told(fake: FakeSlack, user: str) -> list[str]:
    return [
        str(c.params.get("text"))
        for c in fake.of(RESPONSE_URL)
        if c.params["_url"].rsplit("/", 1)[-1].split("-", 1)[0] == user
    ]


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_a_locked_sqlite_database_is_answered_in_time(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's write lock")
    make_desk(engine)
    run = post_checklist(bot)
    bot.click("UTRD2", Action.REPORT_PROBLEM, str(run.run_id))
    bot.settle()
    meta = fake_slack.of("views.open")[-1].params["view"]["private_metadata"]
    with write_lock_held(engine):
        clicked, took = timed(lambda: bot.click("UTRD1", Action.CONFIRM_ALL, str(run.run_id)))
        assert clicked.status_code == 200 and took < 3.0
        assert fake_slack.wait_for(lambda: told(fake_slack, "UTRD1") == [NOT_SAVED], timeout=3)
        values = report_values(["contingency"], ["no_backup_factor"], note="phone lost")
        submitted, took = timed(lambda: bot.submit_view("UTRD2", Callback.REPORT_MODAL, values, meta))
        assert submitted.status_code == 200 and took < 3.0
        assert submitted.json() == {"response_action": "errors", "errors": {Block.FAILED: NOT_SAVED}}
        health, took = timed(lambda: bot.http.get("/healthz"))
        assert health.status_code == 200 and took < 1.0
    bot.settle()
    with Session(engine) as session:
        assert session.exec(select(Answer)).all() == []  # nothing recorded: the user retries
    bot.click("UTRD1", Action.CONFIRM_ALL, str(run.run_id))
    bot.settle()
    with Session(engine) as session:
        assert [a.user_id for a in session.exec(select(Answer)).all()] == ["UTRD1"]


@pytest.fixture
def gone_bot(fake_slack: FakeSlack, clock: FakeClock) -> Iterator[Bot]:
    """The bot pointed at a PostgreSQL that isn't there (a closed port)."""
    engine = make_engine("postgresql+psycopg://preflight@127.0.0.1:9/preflight")
    running = Bot(engine, fake_slack.base_url, clock)
    yield running
    running.close()
    engine.dispose()


def test_postgresql_unreachable_is_answered_with_the_same_sentences(gone_bot: Bot, fake_slack: FakeSlack) -> None:
    bot = gone_bot
    clicked, took = timed(lambda: bot.click("UTRD1", Action.CONFIRM_ALL, "1"))
    assert clicked.status_code == 200 and took < 3.0
    assert fake_slack.wait_for(lambda: told(fake_slack, "UTRD1") == [NOT_SAVED], timeout=3)
    status, took = timed(lambda: bot.command("UTRD1", ""))
    assert status.status_code == 200 and took < 3.0
    assert status.json() == {"response_type": "ephemeral", "text": NOT_SAVED}
    values = report_values(["contingency"], ["no_backup_factor"], note="phone lost")
    submitted, took = timed(lambda: bot.submit_view("UTRD1", Callback.REPORT_MODAL, values, '{"run_id": 1}'))
    assert submitted.status_code == 200 and took < 3.0
    assert submitted.json() == {"response_action": "errors", "errors": {Block.FAILED: NOT_SAVED}}
    health, took = timed(lambda: bot.http.get("/healthz"))
    assert health.status_code == 503 and health.json()["database"] == "unreachable" and took < 1.0
