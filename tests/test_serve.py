"""`preflight serve` as a real process: default SQLite file, /healthz, signed requests,
the scheduler catching up on a due checklist, and a clean stop on SIGTERM; the bot and app
tokens checked at start (one line, exit 2), and no request body in the DEBUG logs."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot import calendar
from bot.checklist import posting
from bot.config import ConfigError, Settings
from bot.serve import PAYLOAD_LOGGERS, ServeError, check_slack, logging_configured, socket_mode_url
from bot.slack.ids import Action, Callback
from tests.support.escalation_fixtures import report_values
from tests.support.factories import make_desk
from tests.support.fakes.slack import FakeSlack, Fault
from tests.support.harness import BOT_TOKEN, SIGNING_SECRET, Bot, sign
from tests.support.processes import free_port, serve_env, wait_for_health

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_serve_runs_on_the_default_sqlite_file_and_stops_cleanly(tmp_path: Path, fake_slack: FakeSlack) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SLACK_APP_TOKEN", "LOG_LEVEL")}
    port = free_port()
    env |= {
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.base_url,
        "PORT": str(port),
        "PYTHONPATH": str(ROOT),
    }
    now = datetime.now(UTC)
    post_at, deadline = now - timedelta(minutes=2), now + timedelta(minutes=30)
    # (A deadline must be before the NYSE close on every day of the year: 20:00 UTC in summer.)
    due_today = deadline.date() == post_at.date() and calendar.is_trading_day(post_at.date()) and deadline.hour < 20
    add = [sys.executable, "-m", "bot", "desk", "add", "equities", "--channel", "C0123", "--managers", "UMGR1"]
    # Due now when today (UTC) trades and the window doesn't cross midnight; else a window not due now.
    window = (f"{post_at:%H:%M}", f"{deadline:%H:%M}") if due_today else ("00:00", "00:01")
    add += ["--traders", "UTRD1", "--timezone", "UTC", "--post-at", window[0], "--deadline", window[1]]
    subprocess.run(add, cwd=tmp_path, env=env, check=True, capture_output=True, timeout=60)
    # No DATABASE_URL: a SQLite file in the per-user data directory, not in the working directory.
    assert (tmp_path / "data" / "ib-preflight" / "preflight.db").is_file()
    assert not (tmp_path / "preflight.db").exists()

    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline_s = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline_s:
            try:
                health = httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None and health.status_code == 200
        assert health.json()["database"] == "ok" and health.json()["slack"] == "ok"  # checked at start
        assert fake_slack.of("auth.test")[0].token == BOT_TOKEN

        body = b"command=%2Fibstatus&text=help&user_id=UTRD1&channel_id=C0123&team_id=T1&trigger_id=1"
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": sign(body, ts),
        }
        answer = httpx.post(f"{base}/slack/events", content=body, headers=headers, timeout=5)
        assert answer.status_code == 200 and "/ibstatus desk [NAME]" in answer.json()["text"]
        forged = httpx.post(f"{base}/slack/events", content=body, headers={**headers, "X-Slack-Signature": "v0=0"})
        assert forged.status_code == 401

        if due_today:  # the scheduler's first sync catches up on the checklist that is due now
            assert fake_slack.wait_for(lambda: len(fake_slack.of("chat.postMessage")) == 1, timeout=20)
            assert fake_slack.of("chat.postMessage")[0].params["channel"] == "C0123"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out.decode()[-2000:]
    assert b"Traceback" not in out, out.decode()[-2000:]


def refused_start(tmp_path: Path, env: dict[str, str]) -> str:
    """Run `preflight serve`, which must stop at once: its one line of stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "bot", "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr[-2000:]  # one sentence, no traceback, no log lines
    return done.stderr.strip()


def dead_slack() -> str:
    return f"http://127.0.0.1:{free_port()}/api/"  # nothing listens there


@pytest.mark.slow
def test_a_bot_token_slack_refuses_stops_serve_in_one_line(tmp_path: Path, fake_slack: FakeSlack) -> None:
    fake_slack.script("auth.test", Fault(body={"ok": False, "error": "invalid_auth"}))
    line = refused_start(tmp_path, serve_env(tmp_path, fake_slack.base_url))
    assert line == "preflight: error: " + REFUSED_BOT_TOKEN.format(error="invalid_auth")
    assert BOT_TOKEN not in line


REFUSED_BOT_TOKEN = "SLACK_BOT_TOKEN was refused by Slack ({error}): check the bot token (xoxb-...)"


@pytest.mark.parametrize("error", ["invalid_auth", "not_authed", "account_inactive", "token_revoked"])
def test_each_way_slack_refuses_a_bot_token_is_that_one_line(fake_slack: FakeSlack, error: str) -> None:
    """The start's check (``check_slack``; the process above shows how its line reaches the
    operator) for every refusal Slack documents for ``auth.test``."""
    fake_slack.script("auth.test", Fault(body={"ok": False, "error": error}))
    settings = Settings(
        slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.base_url
    )
    with pytest.raises(ConfigError) as refused:
        check_slack(settings)
    assert str(refused.value) == REFUSED_BOT_TOKEN.format(error=error)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "needle"),
    [
        (Fault(body={"ok": False, "error": "invalid_auth"}), "SLACK_APP_TOKEN was refused by Slack (invalid_auth)"),
        (None, "Socket Mode could not connect to Slack's WebSocket"),
    ],
    ids=["invalid_auth", "websocket-unreachable"],
)
def test_socket_mode_that_cannot_connect_stops_serve_in_one_line(
    tmp_path: Path, fake_slack: FakeSlack, script: Fault | None, needle: str
) -> None:
    if script is None:  # Slack hands out a WebSocket URL that does not answer
        script = Fault(body={"ok": True, "url": f"ws://127.0.0.1:{free_port()}/link"})
    fake_slack.script("apps.connections.open", *[script] * 4)  # retries included
    env = serve_env(tmp_path, fake_slack.base_url, SLACK_APP_TOKEN="xapp-test")
    line = refused_start(tmp_path, env)
    assert needle in line and "xapp-test" not in line
    assert fake_slack.rejected and fake_slack.rejected[0].method == "apps.connections.open"
    assert fake_slack.rejected[0].token == "xapp-test"


@pytest.mark.parametrize(
    ("script", "error", "needle"),
    [
        (
            Fault(body={"ok": False, "error": "invalid_auth"}),
            ConfigError,
            "SLACK_APP_TOKEN was refused by Slack (invalid_auth)",
        ),
        (
            Fault(body={"ok": False, "error": "not_authed"}),
            ConfigError,
            "SLACK_APP_TOKEN was refused by Slack (not_authed)",
        ),
        (Fault(status=503), ServeError, "Socket Mode could not connect to Slack at"),
    ],
    ids=["invalid_auth", "not_authed", "slack-503"],
)
def test_each_way_apps_connections_open_fails_is_one_sentence(
    fake_slack: FakeSlack, script: Fault, error: type[Exception], needle: str
) -> None:
    """What ``socket_mode_url`` (asked before anything starts) makes of each failure of
    ``apps.connections.open``; the processes above show the sentence reaching the operator."""
    fake_slack.script("apps.connections.open", *[script] * 4)  # retries included
    settings = Settings(slack_bot_token=BOT_TOKEN, slack_app_token="xapp-test", slack_api_url=fake_slack.base_url)
    with pytest.raises(error) as failed:
        socket_mode_url(settings, "xapp-test")
    assert needle in str(failed.value) and "xapp-test" not in str(failed.value)
    assert len(str(failed.value).splitlines()) == 1


@pytest.mark.slow
def test_socket_mode_with_slack_unreachable_stops_serve_in_one_line(tmp_path: Path) -> None:
    dead = dead_slack()
    line = refused_start(tmp_path, serve_env(tmp_path, dead, SLACK_APP_TOKEN="xapp-test"))
    assert line == f"preflight serve: Socket Mode needs Slack, which is unreachable at {dead}: Connection refused"


@pytest.mark.slow
def test_http_mode_keeps_serving_when_slack_is_unreachable_and_healthz_says_so(tmp_path: Path) -> None:
    env = serve_env(tmp_path, dead_slack())
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        health = wait_for_health(f"http://127.0.0.1:{env['PORT']}")
        assert health.status_code == 200  # the database answers: the bot stays in service
        body = health.json()
        assert body["database"] == "ok" and body["slack"] == "unreachable"
        assert body["slack_error"] == "Connection refused" and body["slack_checked_at"]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out.decode()[-2000:]
    text = out.decode()
    assert "WARNING bot.serve: Slack is unreachable at" in text and "serving anyway" in text
    assert "Traceback" not in text


# --- no request bodies in the logs ---------------------------------------------------------

MARKER = "ZQX-trader-note-7731"


@pytest.fixture
def debug_logging(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """LOG_LEVEL=DEBUG as `preflight serve` sets it (and puts back afterwards)."""
    caplog.set_level(logging.DEBUG)
    with logging_configured("DEBUG"):
        yield caplog


def test_debug_logs_name_methods_statuses_and_ids_never_a_trader_note(
    bot: Bot, fake_slack: FakeSlack, debug_logging: pytest.LogCaptureFixture
) -> None:
    make_desk(bot.runtime.engine)
    day = date(2026, 11, 25)
    posted = posting.post_checklist(bot.runtime.engine, bot.client, desk_name="equities", day=day, now=bot.clock())
    assert posted.run_id is not None
    assert bot.click("UTRD2", Action.REPORT_PROBLEM, str(posted.run_id)).status_code == 200
    bot.settle()
    meta = str(fake_slack.of("views.open")[-1].params["view"]["private_metadata"])
    values = report_values(["permissions"], platform="tws", missing=f"ES futures {MARKER}", note=f"call me {MARKER}")
    assert bot.submit_view("UTRD2", Callback.REPORT_MODAL, values, meta).status_code == 200
    bot.settle()
    assert bot.command("UTRD2", f"desk {MARKER}").status_code == 200
    bot.settle()
    # The note did travel (in and out): what is logged about it is not vacuous.
    assert any(MARKER in json.dumps(call.params) for call in fake_slack.of("chat.update"))
    records = debug_logging.records
    assert records, "nothing was logged at DEBUG"
    leaked = [r for r in records if MARKER in r.getMessage() or MARKER in str(r.args) or MARKER in (r.exc_text or "")]
    assert leaked == [], [f"{r.name}: {r.getMessage()[:200]}" for r in leaked]
    messages = [r.getMessage() for r in records]
    assert any(m.startswith("Slack Web API call ") and m.endswith("chat.update") for m in messages), messages
    assert any(m == "Slack Web API answered HTTP 200" for m in messages)
    submitted = "slack request view_submission checklist_report_modal user=UTRD2 team=T1 -> 200"
    assert submitted in messages, [m for m in messages if m.startswith("slack request")]


def test_serve_puts_the_log_levels_back_when_it_returns(caplog: pytest.LogCaptureFixture) -> None:
    names = ["", *PAYLOAD_LOGGERS, "slack_sdk.web.base_client"]
    before = {name: logging.getLogger(name).level for name in names}
    with logging_configured("DEBUG"):
        assert logging.getLogger("slack_sdk").level == logging.INFO
        assert logging.getLogger().level == logging.DEBUG
    assert {name: logging.getLogger(name).level for name in names} == before
    assert logging.getLogger("slack_sdk.web.base_client").filters == []


# --- several processes (gunicorn, PostgreSQL) ------------------------------------------------


@pytest.mark.slow
def test_with_workers_a_refused_token_stops_serve_in_one_line(
    pg_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    fake_slack.script("auth.test", Fault(body={"ok": False, "error": "invalid_auth"}))
    env = serve_env(tmp_path, fake_slack.base_url, DATABASE_URL=pg_url)
    done = subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--workers", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "preflight: error: SLACK_BOT_TOKEN was refused by Slack (invalid_auth): check the bot token (xoxb-...)"
    ]


@pytest.mark.slow
def test_each_worker_reports_slack_on_healthz(pg_url: str, fake_slack: FakeSlack, tmp_path: Path) -> None:
    env = serve_env(tmp_path, fake_slack.base_url, DATABASE_URL=pg_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--workers", "2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_health(f"http://127.0.0.1:{env['PORT']}")
        bodies = [
            httpx.get(f"http://127.0.0.1:{env['PORT']}/healthz", headers={"Connection": "close"}, timeout=5).json()
            for _ in range(6)
        ]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode()[-3000:]
    assert all(b["database"] == "ok" and b["slack"] == "ok" and b["slack_checked_at"] for b in bodies), bodies
    assert len(fake_slack.of("auth.test")) == 1  # the master's check at start; the workers' come a minute later


@pytest.mark.slow
def test_serve_with_a_clock_offset_warns_and_says_so_on_healthz(tmp_path: Path, fake_slack: FakeSlack) -> None:
    env = serve_env(tmp_path, fake_slack.base_url, PREFLIGHT_CLOCK_OFFSET="-86400")
    port = int(env["PORT"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        health = None
        until = time.monotonic() + 30
        while time.monotonic() < until:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None and health.status_code == 200
        assert health.json()["clock_offset_seconds"] == "-86400"
        shown = datetime.fromisoformat(health.json()["clock"])
        assert abs(shown - (datetime.now(UTC) - timedelta(days=1))) < timedelta(minutes=1)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out.decode()[-2000:]
    assert b"PREFLIGHT_CLOCK_OFFSET=-86400" in out and b"staging only" in out
