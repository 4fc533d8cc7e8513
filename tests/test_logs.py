"""Structured logs: LOG_FORMAT=json gives one JSON object per line, each with the request id,
the desk and the Slack user where they apply (and the job of a scheduled run); a whole
morning logged at DEBUG holds no token, secret, drill code, pager key or request body; and
``preflight serve`` says at start where it stands."""

from __future__ import annotations

import io
import json
import logging
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from bot import logs
from bot.checklist.models import ChecklistRun
from bot.config import ConfigError, load_settings
from bot.db import session_scope
from bot.delivery.pager import Pager
from bot.desks import service as desks
from bot.escalation.models import EscalationState
from bot.runtime import deliver_due
from bot.scheduler import Scheduler
from bot.slack.ids import Action, Callback, ProfileAction, ProfileCallback
from tests.support.escalation_fixtures import (
    delivery_client,
    escalations,
    fake_pager,  # noqa: F401 - a fixture
    report_values,
    run_pass,
)
from tests.support.factories import make_desk
from tests.support.fakes.pager import FakePager
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import BOT_TOKEN, SIGNING_SECRET, Bot, utc
from tests.support.processes import serve_env, wait_for_health
from tests.support.profile_fixtures import (
    KEY,
    code,
    code_values,
    factors_values,
    finish_enrollment,
    keyed_bot,  # noqa: F401 - a fixture
    opened_views,
    submit,
)

MARKER = "ZQX-trader-note-7731"  # in a trader's note, a permission text and a command: request bodies
PAGER_KEY = "routing-key-5f1e-do-not-log"


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """What `preflight serve` with LOG_LEVEL=DEBUG and LOG_FORMAT=json writes, in a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with logs.logging_configured("DEBUG", "json"):
            yield stream
    finally:
        root.removeHandler(handler)


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line is one JSON object


def wait(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_morning_at_debug_logs_fields_and_no_secret(
    keyed_bot: Bot,  # noqa: F811
    fake_slack: FakeSlack,
    fake_pager: FakePager,  # noqa: F811
    json_logs: io.StringIO,
) -> None:
    bot = keyed_bot
    engine = bot.runtime.engine
    desk = make_desk(engine)
    with session_scope(engine) as session:
        desks.configure_desk(
            session=session,
            name="equities",
            keys=KEY,
            escalation_channel="CESCAL",
            pager_kind="pagerduty",
            pager_url=fake_pager.url,
            pager_secret=PAGER_KEY,
            allow_private_pager=True,  # the fake pager listens on http://127.0.0.1
        )

    # Before the post: a trader enrols a backup authenticator and drills it (a wrong code, a right one).
    submit(bot, "UTRD1", ProfileCallback.FACTORS, factors_values("ib_key", ["ib_key", "authenticator_app"]))
    secret = finish_enrollment(bot, fake_slack)
    codes = [code(secret, bot, steps=-1)]
    bot.click("UTRD1", ProfileAction.RUN_DRILL, "")
    bot.settle()
    assert opened_views(fake_slack)[-1]["callback_id"] == ProfileCallback.DRILL
    wrong = next(c for c in ("918273", "564738", "192837") if c not in (code(secret, bot), code(secret, bot, steps=-1)))
    submit(bot, "UTRD1", ProfileCallback.DRILL, code_values(wrong))
    codes.append(code(secret, bot))
    assert submit(bot, "UTRD1", ProfileCallback.DRILL, code_values(codes[-1])) == {}

    # 08:05: the scheduler posts the checklist (a job of its own, as at a desk's post time).
    rt = bot.runtime
    scheduler = Scheduler(rt.engine, rt.client, rt.refresher, rt.deps.clock)
    scheduler.aps.add_job(
        scheduler.post_due, id=f"checklist:{desk.id}", args=["equities"], next_run_time=datetime.now(UTC)
    )
    scheduler.aps.start()
    try:
        wait(lambda: any(c.params.get("channel") == "C0123" for c in fake_slack.of("chat.postMessage")))
        wait(lambda: any("scheduled post equities" in r.get("message", "") for r in records(json_logs)))
    finally:
        scheduler.shutdown()
    with Session(engine) as session:
        run_id = str(session.exec(select(ChecklistRun.id)).one())

    # Clicks: a confirmation, a problem report with a note, a status command with free text.
    assert bot.click("UTRD1", Action.CONFIRM_ALL, run_id).status_code == 200
    assert bot.click("UTRD2", Action.REPORT_PROBLEM, run_id).status_code == 200
    bot.settle()
    meta = str(fake_slack.of("views.open")[-1].params["view"]["private_metadata"])
    values = report_values(["permissions"], platform="tws", missing=f"ES futures {MARKER}", note=f"call me {MARKER}")
    assert bot.submit_view("UTRD2", Callback.REPORT_MODAL, values, meta).status_code == 200
    bot.settle()
    assert bot.command("UTRD2", f"desk {MARKER}").status_code == 200
    bot.settle()

    # 09:00 the deadline: escalations; 09:15 level 2: the escalation channel and the pager.
    pager = Pager(keys=KEY, timeout=2.0, retries=1, backoff=0.01, allow_private=True)
    client = delivery_client(fake_slack.base_url)
    try:
        for at in (utc(2026, 11, 25, 14, 0), utc(2026, 11, 25, 14, 15)):
            bot.clock.set(at)
            run_pass(engine, bot.clock())
            deliver_due(engine, client, pager, now=bot.clock(), limit=1000)
        silent = next(e for e in escalations(engine) if e.trader_id == "UTRD3")
        assert bot.click("UMGR1", Action.ESCALATION_ACK, str(silent.id), channel="DUMGR1").status_code == 200
        bot.settle()
        deliver_due(engine, client, pager, now=bot.clock(), limit=1000)
    finally:
        pager.close()
    assert escalations(engine)[0].level == 2
    assert next(e for e in escalations(engine) if e.id == silent.id).state == EscalationState.ACKNOWLEDGED
    assert [e["event_action"] for e in fake_pager.events()][-1] == "acknowledge"
    assert fake_pager.events()[0]["routing_key"] == PAGER_KEY  # it did travel, to the pager only

    # The secrets and bodies did travel (in and out): their absence from the logs means something.
    assert any(MARKER in json.dumps(c.params) for c in fake_slack.of("chat.update"))
    text = json_logs.getvalue()
    lines = records(json_logs)
    assert len(lines) > 50
    for needle in (BOT_TOKEN, SIGNING_SECRET, KEY, secret, secret.lower(), PAGER_KEY, MARKER):
        assert needle not in text, needle
    # Six digits stand alone (not the fraction of a Slack ts), outside the time field.
    untimed = json.dumps([{k: v for k, v in line.items() if k != "time"} for line in lines])
    for digits in (*codes, wrong):
        assert not re.search(rf"(?<![\d.]){digits}(?!\d)", untimed), digits
    for body_part in ("payload=", '"actions"', "trigger_id", "response_url", "private_metadata", "v0="):
        assert body_part not in text, body_part

    # Each line: time, level, logger, pid, message; and the fields that apply.
    assert all({"time", "level", "logger", "pid", "message"} <= line.keys() for line in lines)
    submitted = [line for line in lines if line["message"].startswith("slack request view_submission")]
    assert submitted and all(len(line["request_id"]) == 16 and line["user"] for line in submitted)
    clicked = [line for line in lines if line["message"].startswith("slack request block_actions")]
    assert any(line["user"] == "UTRD2" and line["desk"] == "equities" for line in clicked)  # in the desk's channel
    assert any(line["user"] == "UMGR1" and "desk" not in line for line in clicked)  # in a DM: no desk
    # Work handed to the background pools keeps the request's fields (the modal opened after the ack).
    opened = [line for line in lines if line["message"].endswith("/views.open") and line.get("user") == "UTRD2"]
    assert opened and all(line["request_id"] and line["desk"] == "equities" for line in opened)
    posted = [line for line in lines if "scheduled post equities" in line["message"]]
    assert posted and all(line["job"] == "checklist" and line["desk"] == "equities" for line in posted)
    ids = {line["request_id"] for line in lines if "request_id" in line}
    assert len(ids) >= 10  # one per request, not one for all


def test_log_format_is_text_or_json() -> None:
    assert load_settings({}, env_file=None).log_format == "text"
    assert load_settings({"LOG_FORMAT": "JSON"}, env_file=None).log_format == "json"
    with pytest.raises(ConfigError, match="LOG_FORMAT must be text or json, got 'xml'"):
        load_settings({"LOG_FORMAT": "xml"}, env_file=None)


def test_logging_configured_puts_the_formatters_back() -> None:
    handler = logging.StreamHandler(io.StringIO())
    text = logging.Formatter("%(message)s")
    handler.setFormatter(text)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with logs.logging_configured("INFO", "json"):
            assert handler.formatter is not text and handler.filters
            with logs.bound(request_id="r1", desk="equities"), logs.bound(user="U1", desk=None):
                logging.getLogger("bot.test").warning("hello %s", "there")
        assert handler.formatter is text and handler.filters == []
    finally:
        root.removeHandler(handler)
    (line,) = handler.stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "hello there" and record["level"] == "WARNING" and record["logger"] == "bot.test"
    assert (record["request_id"], record["desk"], record["user"]) == ("r1", "equities", "U1")
    assert "job" not in record  # fields that don't apply are left out


@pytest.mark.slow
def test_serve_says_where_it_stands_in_json(tmp_path: Path, fake_slack: FakeSlack) -> None:
    env = serve_env(tmp_path, fake_slack.base_url, LOG_FORMAT="json", PREFLIGHT_CLOCK_OFFSET="-3600")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        assert wait_for_health(f"http://127.0.0.1:{env['PORT']}").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{env['PORT']}/metrics", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out.decode()[-2000:]
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]  # every line JSON
    said = {line["message"]: line["level"] for line in lines if line["logger"] == "bot.serve"}
    assert said[f"database: {tmp_path / 'preflight.db'}"] == "INFO"
    assert said[f"processes: one process (waitress, 8 threads) on :{env['PORT']}"] == "INFO"
    assert said["Slack workspace: Fake Workspace (T1) at https://fake/, bot user UBOT"] == "INFO"
    offset = [m for m in said if m.startswith("PREFLIGHT_CLOCK_OFFSET=-3600")]
    assert offset and "staging only" in offset[0]
