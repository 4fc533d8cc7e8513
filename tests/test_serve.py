"""`preflight serve` as a real process: default SQLite file, /healthz, signed requests,
the scheduler catching up on a due checklist, and a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bot import calendar
from tests.fakes.slack import FakeSlack
from tests.harness import BOT_TOKEN, SIGNING_SECRET, sign

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_runs_on_the_default_sqlite_file_and_stops_cleanly(tmp_path: Path, fake_slack: FakeSlack) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    port = free_port()
    env |= {
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
    assert (tmp_path / "preflight.db").is_file()  # no DATABASE_URL: a SQLite file in the working directory

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
        assert health is not None and health.status_code == 200 and health.json() == {"database": "ok"}

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


def test_serve_with_a_clock_offset_warns_and_says_so_on_healthz(tmp_path: Path, fake_slack: FakeSlack) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.base_url,
        "PORT": str(port),
        "PYTHONPATH": str(ROOT),
        "PREFLIGHT_CLOCK_OFFSET": "-86400",
    }
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
