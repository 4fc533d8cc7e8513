"""An Events API event is handled once across replicas: Slack's retries of it (same event_id,
``X-Slack-Retry-Num``), wherever they land, are acknowledged and skipped (bot.events_once)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot import events_once
from bot.events_once import SlackEvent
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot, FakeClock, sign

USER = "UTRD1"


@pytest.fixture
def replicas(engine: Engine, fake_slack: FakeSlack, clock: FakeClock) -> Iterator[list[Bot]]:
    """Three app instances (as behind a load balancer) on one database."""
    fake_slack.add_user(USER, "Alice", "Alice Trader")
    bots = [Bot(engine, fake_slack.base_url, clock) for _ in range(3)]
    yield bots
    for bot in bots:
        bot.close()


def home_opened(event_id: str, user: str = USER) -> dict[str, Any]:
    return {
        "token": "legacy",
        "team_id": "T1",
        "api_app_id": "A1",
        "event": {"type": "app_home_opened", "user": user, "channel": "D0123", "tab": "home", "event_ts": "1.0"},
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
    }


def deliver(bot: Bot, payload: dict[str, Any], retry: int = 0) -> httpx.Response:
    """One delivery as Slack makes it: signed, and from the second on with the retry headers."""
    body = json.dumps(payload).encode()
    ts = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sign(body, ts)}
    if retry:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    return bot.http.post("/slack/events", content=body, headers=headers)


def settle(bots: list[Bot]) -> None:
    for bot in bots:
        bot.settle()


def published(fake: FakeSlack) -> list[str]:
    return [str(c.params["user_id"]) for c in fake.of("views.publish")]


def test_a_retried_event_on_three_replicas_publishes_app_home_once(replicas: list[Bot], fake_slack: FakeSlack) -> None:
    payload = home_opened("Ev0ONCE1")
    for retry, bot in enumerate(replicas):
        response = deliver(bot, payload, retry)
        assert response.status_code == 200, response.text  # acknowledged: Slack stops retrying
    settle(replicas)
    assert published(fake_slack) == [USER]


def test_retries_arriving_together_publish_once(replicas: list[Bot], fake_slack: FakeSlack) -> None:
    """A retry landing while the first delivery is still being handled on another replica."""
    payload = home_opened("Ev0RACE1")
    statuses: list[int] = []
    start = threading.Barrier(len(replicas))

    def send(bot: Bot, retry: int) -> None:
        start.wait()
        statuses.append(deliver(bot, payload, retry).status_code)

    threads = [threading.Thread(target=send, args=(bot, n)) for n, bot in enumerate(replicas)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    settle(replicas)
    assert statuses == [200, 200, 200]
    assert published(fake_slack) == [USER]


def test_distinct_events_are_each_handled(replicas: list[Bot], fake_slack: FakeSlack) -> None:
    for n, bot in enumerate(replicas):
        assert deliver(bot, home_opened(f"Ev0DIST{n}")).status_code == 200
    settle(replicas)
    assert published(fake_slack) == [USER, USER, USER]


def test_clicks_and_commands_are_not_events(replicas: list[Bot], fake_slack: FakeSlack, engine: Engine) -> None:
    bot = replicas[0]
    assert bot.command(USER, "help").status_code == 200
    bot.settle()
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(SlackEvent)).scalar_one() == 0


def test_event_ids_are_kept_for_the_retention_window_then_purged(engine: Engine, clock: FakeClock) -> None:
    now = clock()
    assert events_once.first_delivery(engine, event_id="Ev0KEEP1", now=now)
    assert not events_once.first_delivery(engine, event_id="Ev0KEEP1", now=now + timedelta(minutes=5))
    later = now + events_once.RETENTION + events_once.PURGE_EVERY + timedelta(seconds=1)
    assert events_once.first_delivery(engine, event_id="Ev0OTHER", now=later)  # purges on the way
    with Session(engine) as session:
        kept = session.execute(select(SlackEvent.event_id)).scalars().all()  # type: ignore[call-overload]
    assert sorted(kept) == ["Ev0OTHER"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"type": "event_callback", "event_id": "Ev1"}, "Ev1"),
        ({"type": "event_callback"}, None),
        ({"type": "event_callback", "event_id": 12}, None),
        ({"type": "event_callback", "event_id": "E" * 65}, None),
        ({"type": "block_actions", "event_id": "Ev1"}, None),
        ({"type": "url_verification", "challenge": "x"}, None),
    ],
)
def test_event_id_of(body: dict[str, Any], expected: str | None) -> None:
    assert events_once.event_id_of(body) == expected
