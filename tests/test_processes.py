"""Several processes: one leader runs the jobs, the Slack pacing is global, and
``preflight serve --workers 2`` (PostgreSQL) answers signed requests from both workers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from bot.cli import main
from bot.db import make_engine, session_scope
from bot.delivery.outbox import Kind, enqueue
from bot.processes import Leadership
from tests.support.factories import make_desk
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import BOT_TOKEN, SIGNING_SECRET, utc
from tests.support.processes import Output, free_port, signed_help

ROOT = Path(__file__).resolve().parent.parent
T0 = utc(2026, 11, 25, 14, 0)


# --- the command line -----------------------------------------------------------------------


def test_workers_on_sqlite_are_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "sqlite:///preflight.db")
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    assert main(["serve", "--workers", "2"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert "--workers > 1 needs PostgreSQL" in err
    assert list(tmp_path.iterdir()) == []  # nothing created, nothing migrated


def test_workers_with_socket_mode_are_refused_in_one_line(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-test")
    assert main(["serve", "--workers", "2"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Socket Mode" in err


@pytest.mark.parametrize("value", ["0", "two", "65"])
def test_workers_must_be_a_sensible_number(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["serve", "--workers", value]) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and "--workers" in err


# --- leadership -----------------------------------------------------------------------------


class Terms:
    """Records a Leadership's elections and depositions."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def elected(self) -> None:
        self.events.append("elected")

    def deposed(self) -> None:
        self.events.append("deposed")


def leadership(engine: Engine, terms: Terms) -> Leadership:
    return Leadership(engine, on_elected=terms.elected, on_deposed=terms.deposed, check_every=0.05)


def test_on_sqlite_the_one_process_leads_at_once(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'one.db'}")
    terms = Terms()
    lead = leadership(engine, terms)
    lead.start()
    assert lead.wait_leading(10) and terms.events == ["elected"]
    lead.stop()
    assert not lead.leading and terms.events == ["elected", "deposed"]
    engine.dispose()


@pytest.fixture
def pg_engines(pg_url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on the test database: two processes' worth of connections."""
    one, two = make_engine(pg_url), make_engine(pg_url)
    yield one, two
    one.dispose()
    two.dispose()


def test_one_leader_at_a_time_and_a_stopped_leader_hands_over(pg_engines: tuple[Engine, Engine]) -> None:
    first_terms, second_terms = Terms(), Terms()
    first, second = leadership(pg_engines[0], first_terms), leadership(pg_engines[1], second_terms)
    first.start()
    assert first.wait_leading(10)
    second.start()
    try:
        time.sleep(0.5)  # ten of the standby's attempts
        assert not second.leading and second_terms.events == []
        first.stop()  # a clean exit releases the lock
        assert first_terms.events == ["elected", "deposed"]
        assert second.wait_leading(10) and second_terms.events == ["elected"]
    finally:
        first.stop()
        second.stop()


def test_a_leader_whose_connection_dies_steps_down(pg_engines: tuple[Engine, Engine], pg_url: str) -> None:
    first_terms, second_terms = Terms(), Terms()
    first, second = leadership(pg_engines[0], first_terms), leadership(pg_engines[1], second_terms)
    first.start()
    assert first.wait_leading(10)
    second.start()
    try:
        # The leader's session dies (as on a network cut or a server restart). pg_locks shows
        # the whole server's locks: only this test database's holder is terminated, never
        # another session's (advisory lock ids are per database).
        own = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with own.connect() as conn:
            killed = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND objid = :id AND granted "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"id": 7_345_002},
            ).all()
        own.dispose()
        assert killed == [(True,)]
        deadline = time.monotonic() + 10
        while not ("deposed" in first_terms.events and (first.leading or second.leading)):
            assert time.monotonic() < deadline, (first_terms.events, second_terms.events)
            time.sleep(0.02)
        assert first_terms.events[:2] == ["elected", "deposed"]  # it noticed and stopped its jobs
        assert first.leading != second.leading  # and exactly one process leads again
    finally:
        first.stop()
        second.stop()


# --- two delivering processes share the Slack budget ------------------------------------------

OUTBOX_PROCESS = "tests.support.outbox_process"
RATE = 20.0  # messages per second: the configured pacing, and the fake Slack's limit


def deliver_with_two_processes(engine: Engine, fake: FakeSlack, tmp_path: Path, services: tuple[str, str]) -> None:
    url = engine.url.render_as_string(hide_password=False)
    go = tmp_path / "go"
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", OUTBOX_PROCESS, url, fake.base_url, token, service, str(RATE), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for token, service in zip(("xoxb-process-a", "xoxb-process-b"), services, strict=True)
    ]
    ready = [tmp_path / f"go.ready-{token}" for token in ("xoxb-process-a", "xoxb-process-b")]
    deadline = time.monotonic() + 60
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()  # both start delivering together, once both have imported (however long each took)
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out.decode()[-2000:]


def queue_dms(engine: Engine, users: list[str], desks: int = 4) -> None:
    """DMs spread over ``desks`` desks: each desk's posts are a lane delivered in order, so one
    lane is sequential by design and processes share the work across lanes (a firm's desks)."""
    ids = [make_desk(engine, f"desk-{n}", channel=f"C{n:04d}").id for n in range(desks)]
    with session_scope(engine) as session:
        for n, user in enumerate(users):
            payload = {"user": user, "text": f"hello {user}"}
            desk_id = ids[n % desks]
            enqueue(
                session=session, dedup_key=f"dm:{user}", kind=Kind.SLACK_DM, payload=payload, desk_id=desk_id, now=T0
            )


@pytest.fixture
def limited_slack(fake_slack: FakeSlack) -> FakeSlack:
    """The fake answers 429 to any chat.postMessage less than 1/RATE s after the last one it accepted."""
    fake_slack.rate_limit("chat.postMessage", per_second=RATE, retry_after=1)
    return fake_slack


@pytest.mark.slow
def test_two_processes_send_at_the_configured_rate_and_each_message_once(
    engine: Engine, limited_slack: FakeSlack, tmp_path: Path
) -> None:
    users = [f"U{n:08d}" for n in range(40)]
    queue_dms(engine, users)
    deliver_with_two_processes(engine, limited_slack, tmp_path, services=("slack", "slack"))
    calls = limited_slack.of("chat.postMessage")
    assert sorted(str(c.params["channel"]) for c in calls) == sorted(users)  # every message, exactly once
    assert limited_slack.rejected == []  # never faster than the rate, across both processes
    assert {c.token for c in calls} == {"xoxb-process-a", "xoxb-process-b"}  # both processes sent


@pytest.mark.slow
def test_control_two_budgets_send_at_twice_the_rate(engine: Engine, limited_slack: FakeSlack, tmp_path: Path) -> None:
    """The previous test's detector works: two processes pacing on budgets of their own
    (each at the rate, as an in-process pacer would) together exceed it and meet 429s."""
    users = [f"U{n:08d}" for n in range(40)]
    queue_dms(engine, users)
    deliver_with_two_processes(engine, limited_slack, tmp_path, services=("slack-a", "slack-b"))
    calls = limited_slack.of("chat.postMessage")
    assert sorted(str(c.params["channel"]) for c in calls) == sorted(users)  # still exactly once
    assert len(limited_slack.rejected) > 0


# --- preflight serve --workers 2 ----------------------------------------------------------------


@pytest.mark.slow
def test_serve_with_two_workers_answers_from_both(pg_url: str, fake_slack: FakeSlack, tmp_path: Path) -> None:
    """PostgreSQL only: SQLite refuses --workers > 1 (test_workers_on_sqlite_are_refused_in_one_line)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env |= {
        "DATABASE_URL": pg_url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.base_url,
        "PORT": str(port),
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "DEBUG",  # gunicorn's access log names the worker (pid) that answered
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--workers", "2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = Output(proc)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        healthy = False
        while not healthy and time.monotonic() < deadline and proc.poll() is None:
            try:
                healthy = httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                time.sleep(0.1)
        assert healthy, output.text()[-3000:]

        answers: list[httpx.Response] = []
        while len(output.pids_answering()) < 2 and time.monotonic() < deadline:
            with ThreadPoolExecutor(max_workers=8) as pool:  # concurrent: a busy worker leaves the next to the other
                answers += list(pool.map(signed_help, [base] * 8))
            time.sleep(0.1)  # let the access log lines arrive
        assert answers and all(a.status_code == 200 and "/ibstatus desk [NAME]" in a.json()["text"] for a in answers)
        assert len(output.pids_answering()) == 2, output.text()[-3000:]
        forged = httpx.post(f"{base}/slack/events", content=b"x=1", headers={"X-Slack-Signature": "v0=0"})
        assert forged.status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    logs = output.text()
    assert proc.returncode == 0, logs[-3000:]
    assert "Traceback" not in logs, logs[-3000:]
    assert len(re.findall(r"process \d+ leads", logs)) == 1  # one process ran the scheduler and the outbox
