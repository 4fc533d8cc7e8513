"""Three ``preflight serve`` replicas on one PostgreSQL database — what a firm runs behind a
load balancer — as real processes against the fake Slack: one of them leads (the scheduler and
the outbox), an event Slack retries onto each replica is handled once, a click Slack delivers to
each is stored once, and clicks spread over all three are each stored once with every roster
drawn right. The same guarantees as one process, now across processes."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from slack_sdk import WebClient
from sqlmodel import Session, col, select

from bot import calendar
from bot.checklist import posting
from bot.checklist.models import Answer
from bot.db import make_engine
from bot.slack.ids import Action
from tests.conftest import empty_postgresql
from tests.support.factories import make_desk
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import BOT_TOKEN, click_payload
from tests.support.processes import Output, serve_env, signed_post, wait_for_health

TRADERS = [f"UR{i:03d}" for i in range(30)]


def _trading_morning() -> datetime:
    """15:00 UTC (10:00 or 11:00 in New York: after the desk's deadline, before the close) on the
    latest trading day before today: the replicas' clock is pinned there (PREFLIGHT_CLOCK_OFFSET)."""
    day = datetime.now(UTC).date() - timedelta(days=1)
    while not calendar.is_trading_day(day):
        day -= timedelta(days=1)
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC).replace(hour=15)


@pytest.fixture
def replicas(pg_url: str, fake_slack: FakeSlack, tmp_path: Path) -> Iterator[tuple[list[str], list[Output], datetime]]:
    engine = make_engine(pg_url)
    with engine.begin() as conn:
        empty_postgresql(conn)
    engine.dispose()
    morning = _trading_morning()
    offset = int((morning - datetime.now(UTC)).total_seconds())
    procs: list[subprocess.Popen[bytes]] = []
    outputs: list[Output] = []
    bases: list[str] = []
    for _ in range(3):
        env = serve_env(tmp_path, fake_slack.base_url, DATABASE_URL=pg_url, PREFLIGHT_CLOCK_OFFSET=str(offset))
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        outputs.append(Output(proc))
        bases.append(f"http://127.0.0.1:{env['PORT']}")
    try:
        for base, output in zip(bases, outputs, strict=True):
            assert wait_for_health(base, seconds=60).status_code == 200, output.text()[-3000:]
        yield bases, outputs, morning
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output.text()[-3000:]
        assert "Traceback" not in output.text(), output.text()[-3000:]


def home_opened(event_id: str, user: str) -> bytes:
    event = {"type": "app_home_opened", "user": user, "channel": "D0123", "tab": "home", "event_ts": "1.0"}
    payload = {"token": "legacy", "team_id": "T1", "api_app_id": "A1", "event": event, "type": "event_callback"}
    return json.dumps(payload | {"event_id": event_id, "event_time": int(time.time())}).encode()


def click_body(fake: FakeSlack, user: str, run_id: int, ts: str) -> bytes:
    payload = click_payload(
        user, Action.CONFIRM_ALL, str(run_id), channel="C0123", message_ts=ts, response_url=fake.response_url(user)
    )
    return urlencode({"payload": json.dumps(payload)}).encode()


FORM = "application/x-www-form-urlencoded"


def wait_until(predicate: object, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return bool(predicate())  # type: ignore[operator]


@pytest.mark.slow
def test_three_replicas_on_one_database_keep_slacks_rules(
    replicas: tuple[list[str], list[Output], datetime], pg_url: str, fake_slack: FakeSlack
) -> None:
    bases, outputs, morning = replicas
    engine = make_engine(pg_url)
    try:
        # One leader among the three: the scheduler and the outbox run once.
        assert wait_until(lambda: sum(len(re.findall(r"process \d+ leads", o.text())) for o in outputs) == 1)

        # An event Slack retries (X-Slack-Retry-Num 1, 2) lands on each replica: App Home once.
        fake_slack.add_user("UR000", "Ana", "Ana Trader")
        event = home_opened("Ev0REPLICA1", "UR000")
        for retry, base in enumerate(bases):
            retried = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} if retry else {}
            assert signed_post(base, event, "application/json", **retried).status_code == 200
        assert wait_until(lambda: len(fake_slack.of("views.publish")) >= 1)
        time.sleep(1.0)  # a second publish, if any replica made one, would have arrived by now
        assert [c.params["user_id"] for c in fake_slack.of("views.publish")] == ["UR000"]

        # The morning's checklist, posted as the leader would; clicks then reach every replica.
        make_desk(engine, traders=TRADERS, created_at=morning - timedelta(days=30))
        client = WebClient(token=BOT_TOKEN, base_url=fake_slack.base_url)
        day: date = morning.date()
        posted = posting.post_checklist(engine, client, desk_name="equities", day=day, now=morning)
        assert posted.run_id is not None and posted.ts is not None
        run_id, ts = posted.run_id, posted.ts

        # The same click delivered to all three (a retried request): stored once, the other two told.
        same = click_body(fake_slack, "UR000", run_id, ts)
        assert [signed_post(base, same, FORM).status_code for base in bases] == [200, 200, 200]

        # Thirty traders' clicks, spread over the replicas at once: each stored once.
        def send(n: int) -> int:
            user = TRADERS[n]
            return signed_post(bases[n % 3], click_body(fake_slack, user, run_id, ts), FORM).status_code

        with ThreadPoolExecutor(max_workers=9) as pool:
            assert set(pool.map(send, range(1, len(TRADERS)))) == {200}

        with Session(engine) as session:
            stored = session.exec(select(Answer.user_id, Answer.version).order_by(col(Answer.user_id))).all()
        assert [(u, v) for u, v in stored] == [(t, 1) for t in TRADERS]
        assert wait_until(lambda: any("handled" in t for t in fake_slack.told("UR000")), seconds=10)

        # Every roster ends right: the channel message shows all thirty ready, whichever replica drew it last.
        def all_ready() -> bool:
            (message,) = [m for m in fake_slack.messages.get("C0123", []) if m["ts"] == ts]
            return ": 30 ready, 0 restricted, 0 pending" in str(message["text"])

        assert wait_until(all_ready, seconds=30), json.dumps(fake_slack.messages.get("C0123", [])[-1])[:2000]
    finally:
        engine.dispose()
