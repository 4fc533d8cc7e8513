"""PREFLIGHT_CLOCK_OFFSET: rehearsing a morning on a staging workspace. The app's clock moves;
Slack's signature window stays on the real time (Slack signs with it)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bot.checklist import posting, rosters
from bot.config import ConfigError, clock_of, load_settings
from bot.db import session_scope
from bot.desks import service as desks
from bot.scheduler import Scheduler
from bot.slack.blocks import local_datetime
from tests.support.factories import make_desk
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot, FakeClock, sign, utc

WEEK = 7 * 24 * 3600
NO_FILE = Path("/nonexistent/.env")


@pytest.fixture
def offset_bot(engine: Engine, fake_slack: FakeSlack) -> Iterator[Bot]:
    running = Bot(engine, fake_slack.base_url, None, clock_offset=WEEK)
    yield running
    running.close()


def test_the_setting_is_read_and_checked() -> None:
    assert load_settings({}, env_file=NO_FILE).clock_offset == 0
    assert load_settings({"PREFLIGHT_CLOCK_OFFSET": " -3600 "}, env_file=NO_FILE).clock_offset == -3600
    for bad in ("soon", "1.5", str(400 * 86400)):
        with pytest.raises(ConfigError) as refused:
            load_settings({"PREFLIGHT_CLOCK_OFFSET": bad}, env_file=NO_FILE)
        assert "PREFLIGHT_CLOCK_OFFSET" in str(refused.value) and "\n" not in str(refused.value)


def test_every_process_with_the_same_offset_agrees_on_the_time() -> None:
    settings = load_settings({"PREFLIGHT_CLOCK_OFFSET": str(WEEK)}, env_file=NO_FILE)
    one, other = clock_of(settings), clock_of(settings)
    real = datetime.now(UTC)
    assert abs(one() - (real + timedelta(seconds=WEEK))) < timedelta(seconds=30)
    assert abs(one() - other()) < timedelta(seconds=30)
    assert clock_of(load_settings({}, env_file=NO_FILE))().tzinfo is UTC


def test_the_app_runs_on_the_moved_clock_but_checks_signatures_on_the_real_one(offset_bot: Bot, engine: Engine) -> None:
    make_desk(engine)
    health = offset_bot.http.get("/healthz").json()
    assert health["database"] == "ok" and health["clock_offset_seconds"] == str(WEEK)
    shown = datetime.fromisoformat(health["clock"])
    assert abs(shown - (datetime.now(UTC) + timedelta(seconds=WEEK))) < timedelta(seconds=30)

    # Signed with the real time: accepted, and answered as of the moved clock.
    response = offset_bot.command("UTRD1")
    assert response.status_code == 200
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name="equities")
        moved = local_datetime(rosters.next_post_time(desk, datetime.now(UTC) + timedelta(seconds=WEEK)), desk)
        real = local_datetime(rosters.next_post_time(desk, datetime.now(UTC)), desk)
    assert moved != real
    assert f"next checklist {moved}" in response.json()["text"]
    # Signed with the moved time: outside Slack's five-minute window.
    body = b"token=legacy&command=%2Fibstatus&user_id=UTRD1&text="
    moved_ts = str(int(time.time()) + WEEK)
    refused = offset_bot.post(
        body, "application/x-www-form-urlencoded", timestamp=moved_ts, signature=sign(body, moved_ts)
    )
    assert refused.status_code == 401


def test_a_cron_job_firing_before_post_time_on_a_moved_clock_posts_nothing(
    engine: Engine, fake_slack: FakeSlack, bot: Bot
) -> None:
    """The per-desk cron jobs fire on the real time; with an offset they come at the wrong
    moment. They post nothing early; the minute-by-minute catch-up posts at post time."""
    make_desk(engine)
    clock = FakeClock(utc(2026, 11, 25, 12, 0))  # 07:00 New York
    scheduler = Scheduler(engine, bot.client, bot.runtime.refresher, clock)
    scheduler.post_due("equities")
    assert fake_slack.of("chat.postMessage") == []
    with session_scope(engine) as session:
        assert (
            rosters.today_run(session=session, desk=desks.get_desk(session=session, name="equities"), now=clock())
            is None
        )
    (posted,) = posting.catch_up(engine, bot.client, now=utc(2026, 11, 25, 13, 0, 30))
    assert posted.ts is not None and len(fake_slack.of("chat.postMessage")) == 1
