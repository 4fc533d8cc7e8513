"""GET /metrics: Slack's requests by kind and outcome (through the real HTTP app), ack()
timing, Slack Web API calls by result (against the fake Slack), scheduler job events, the
outbox and escalations read from the database (both databases), the probe hook, and
``preflight serve --workers 2`` adding up both workers (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from slack_bolt.request import BoltRequest
from slack_sdk.errors import SlackApiError

from bot import logs, metrics
from bot.checklist import posting
from bot.db import make_engine, session_scope
from bot.delivery.models import OutboxMessage
from bot.delivery.outbox import Kind, enqueue
from bot.escalation.models import Escalation, EscalationKind, EscalationState
from bot.scheduler import Scheduler
from bot.slack.ids import Action, Callback
from tests.support.escalation_fixtures import report_values
from tests.support.factories import make_desk
from tests.support.fakes.slack import FakeSlack, Fault
from tests.support.harness import BOT_TOKEN, SIGNING_SECRET, Bot, FakeClock, sign
from tests.support.processes import Output, free_port

ROOT = Path(__file__).resolve().parent.parent
DAY = date(2026, 11, 25)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels (prometheus_client's own parser)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(bot: Bot) -> Samples:
    response = bot.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


# --- Slack's requests ----------------------------------------------------------------------


def test_requests_are_counted_by_kind_and_outcome_and_timed(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    posted = posting.post_checklist(bot.runtime.engine, bot.client, desk_name="equities", day=DAY, now=bot.clock())
    assert posted.run_id is not None
    before = scrape(bot)

    answered = bot.command("UTRD1", "help")
    assert answered.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{16}", answered.headers["x-request-id"])  # the id its log lines carry
    assert bot.click("UTRD1", Action.CONFIRM_ALL, str(posted.run_id)).status_code == 200
    assert bot.click("UTRD2", Action.REPORT_PROBLEM, str(posted.run_id)).status_code == 200
    bot.settle()
    meta = str(fake_slack.of("views.open")[-1].params["view"]["private_metadata"])
    values = report_values(["permissions"], platform="tws", missing="ES futures")
    assert bot.submit_view("UTRD2", Callback.REPORT_MODAL, values, meta).status_code == 200
    event = {"type": "app_home_opened", "user": "UTRD1", "tab": "home", "event_ts": "1.0"}
    assert bot.event(event).status_code == 200
    assert bot.click("UTRD1", "no_such_action", "x").status_code == 404  # no listener: Bolt's 404
    forged = bot.post(b"command=%2Fibstatus", "application/x-www-form-urlencoded", signature="v0=00")
    assert forged.status_code == 401
    assert bot.post_form({"payload": "{not json"}).status_code == 400
    bot.settle()
    after = scrape(bot)

    counted = {
        ("slash_command", "ok"): 1,
        ("action", "ok"): 2,
        ("view_submission", "ok"): 1,
        ("event", "ok"): 1,
        ("action", "unhandled"): 1,
        ("other", "unauthorized"): 1,
        ("other", "malformed"): 1,
    }
    for (kind, outcome), n in counted.items():
        labels = {"kind": kind, "outcome": outcome}
        assert delta(before, after, "preflight_slack_requests_total", **labels) == n, labels
        assert delta(before, after, "preflight_slack_request_duration_seconds_count", **labels) == n, labels
        inf = {**labels, "le": "+Inf"}
        assert delta(before, after, "preflight_slack_request_duration_seconds_bucket", **inf) == n, labels
    # Each listener that acknowledged was timed to its ack() (the unhandled click never was).
    for kind, n in {"slash_command": 1, "action": 2, "view_submission": 1, "event": 1}.items():
        assert delta(before, after, "preflight_slack_ack_seconds_count", kind=kind) == n, kind
    # Nothing else came to /slack/events.
    total = sum(v for (name, _), v in after.items() if name == "preflight_slack_requests_total")
    assert total - sum(v for (name, _), v in before.items() if name == "preflight_slack_requests_total") == 8


def test_a_socket_mode_request_is_counted_and_logged_with_its_own_request_id(bot: Bot) -> None:
    """Socket Mode hands requests to Bolt directly (no WebApp): the middleware times ack()
    and gives each request its own fields (the HTTP counter doesn't count it)."""
    seen: list[dict[str, str]] = []

    def probe(ack: Any) -> None:
        seen.append(dict(logs.current()))
        ack("seen")

    bot.runtime.bolt.command("/fields")(probe)  # a listener of this test's, to look inside
    before = scrape(bot)
    body = "command=%2Ffields&text=&user_id=UTRD1&channel_id=C0123&team_id=T1&trigger_id=1"
    with logs.bound(user="USTALE", job="stale"):  # what a previous request left in the thread
        for user in ("UTRD1", "UTRD2"):
            response = bot.runtime.bolt.dispatch(BoltRequest(body=body.replace("UTRD1", user), mode="socket_mode"))
            assert response.status == 200 and response.body == "seen"
    after = scrape(bot)
    assert delta(before, after, "preflight_slack_ack_seconds_count", kind="slash_command") == 2
    assert delta(before, after, "preflight_slack_requests_total", kind="slash_command", outcome="ok") == 0
    first, second = seen
    assert len(first.pop("request_id")) == 16 and len(second.pop("request_id")) == 16
    assert (first, second) == ({"user": "UTRD1"}, {"user": "UTRD2"})  # no desk has channel C0123 here


# --- Slack's answers -----------------------------------------------------------------------


def test_slack_calls_are_counted_by_method_and_result(bot: Bot, fake_slack: FakeSlack) -> None:
    client = bot.runtime.client
    assert isinstance(client, metrics.MeteredWebClient)
    before = scrape(bot)
    fake_slack.script(
        "chat.postMessage",
        Fault(status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": "1"}),
        Fault(body={"ok": False, "error": "channel_not_found"}),
    )
    for _ in range(2):
        with pytest.raises(SlackApiError):
            client.chat_postMessage(channel="C0123", text="hello")
    client.chat_postMessage(channel="C0123", text="hello")
    # A listener's client (Bolt makes a plain one per request; the middleware swaps it) and the
    # clients made from the runtime's (modal, roster, outbox: bot.delivery.slack) count too.
    make_desk(bot.runtime.engine)
    posted = posting.post_checklist(bot.runtime.engine, bot.client, desk_name="equities", day=DAY, now=bot.clock())
    assert bot.click("UOUTSIDER", Action.CONFIRM_ALL, str(posted.run_id)).status_code == 200  # refused: response_url
    assert bot.click("UTRD2", Action.REPORT_PROBLEM, str(posted.run_id)).status_code == 200  # views.open
    bot.settle()
    after = scrape(bot)
    for result, n in {"429": 1, "error": 1, "ok": 1}.items():
        assert delta(before, after, "preflight_slack_api_calls_total", method="chat.postMessage", result=result) == n
    assert delta(before, after, "preflight_slack_api_call_duration_seconds_count", method="chat.postMessage") == 3
    # The refusal went through the click's response_url: not a (rate-tiered) Web API call.
    assert delta(before, after, "preflight_slack_api_calls_total", method="chat.postEphemeral", result="ok") == 0
    assert fake_slack.told("UOUTSIDER"), "the outsider was told"
    assert delta(before, after, "preflight_slack_api_calls_total", method="views.open", result="ok") == 1


# --- what the database says, at each scrape --------------------------------------------------


def test_outbox_lanes_and_open_escalations_are_read_from_the_database(bot: Bot) -> None:
    engine = bot.runtime.engine
    desk = make_desk(engine)
    other = make_desk(engine, "rates", channel="C0999", traders=["UTRD4"])
    assert desk.id is not None and other.id is not None
    now = bot.clock()
    with session_scope(engine) as session:

        def queue(key: str, kind: Kind, desk_id: int | None, age_minutes: float) -> OutboxMessage:
            row = enqueue(
                session=session,
                dedup_key=key,
                kind=kind,
                payload={"user": "UMGR1", "text": "x"},
                desk_id=desk_id,
                now=now - timedelta(minutes=age_minutes),
            )
            assert row is not None
            return row

        queue("a", Kind.SLACK_DM, desk.id, 10)
        queue("b", Kind.SLACK_UPDATE, desk.id, 3)  # same lane: slack for equities
        queue("c", Kind.PAGER, desk.id, 7)
        queue("d", Kind.SLACK_DM, None, 1)  # no desk
        queue("e", Kind.SLACK_POST, other.id, 30).delivered_at = now  # delivered: not waiting
        queue("f", Kind.SLACK_POST, other.id, 40).failed_at = now  # given up: not waiting
        for trader, kind, level, state in [
            ("UTRD1", EscalationKind.SILENT, 1, EscalationState.OPEN),
            ("UTRD2", EscalationKind.SILENT, 1, EscalationState.OPEN),
            ("UTRD3", EscalationKind.RESTRICTED, 2, EscalationState.ACKNOWLEDGED),
            ("UTRD1", EscalationKind.RESTRICTED, 1, EscalationState.RESOLVED),
        ]:
            session.add(Escalation(desk_id=desk.id, trader_id=trader, kind=kind, level=level, state=state))
    bot.clock.advance(seconds=30)
    samples = scrape(bot)

    assert value(samples, "preflight_database_up") == 1
    lanes = {labels: v for (name, labels), v in samples.items() if name == "preflight_outbox_waiting"}
    assert lanes == {
        (("desk", ""), ("service", "slack")): 1,
        (("desk", "equities"), ("service", "pager")): 1,
        (("desk", "equities"), ("service", "slack")): 2,
    }
    age = "preflight_outbox_oldest_waiting_age_seconds"
    assert value(samples, age, service="slack", desk="equities") == 10 * 60 + 30  # by the app's clock
    assert value(samples, age, service="pager", desk="equities") == 7 * 60 + 30
    assert value(samples, age, service="slack", desk="") == 90
    opened = {labels: v for (name, labels), v in samples.items() if name == "preflight_escalations_open"}
    assert opened == {
        (("kind", "silent"), ("level", "1"), ("state", "open")): 2,
        (("kind", "restricted"), ("level", "2"), ("state", "acknowledged")): 1,
    }


def test_a_database_that_cannot_be_read_is_reported_not_a_failed_scrape(clock: FakeClock) -> None:
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere")
    try:
        body, content_type = metrics.Exposition(engine, clock).render()
    finally:
        engine.dispose()
    assert content_type.startswith("text/plain")
    samples = parse(body.decode())
    assert value(samples, "preflight_database_up") == 0
    assert not any(name.startswith("preflight_outbox") for name, _ in samples)


def test_metrics_answers_get_only(bot: Bot) -> None:
    assert bot.http.post("/metrics", content=b"").status_code == 405
    assert bot.http.head("/metrics").status_code == 200


# --- the scheduler and the probe hook --------------------------------------------------------


def test_scheduler_job_runs_and_failures_are_counted_with_the_job_in_the_log_fields(bot: Bot) -> None:
    rt = bot.runtime
    scheduler = Scheduler(rt.engine, rt.client, rt.refresher, rt.deps.clock)
    seen: dict[str, dict[str, str]] = {}
    done = threading.Event()

    def fine() -> None:
        seen["fine"] = dict(logs.current())

    def boom() -> None:
        seen["boom"] = dict(logs.current())
        raise RuntimeError("the job failed")

    def desk_post(desk_name: str) -> None:
        seen["checklist"] = dict(logs.current())
        done.set()

    before = scrape(bot)
    started = time.time()
    soon = datetime.now().astimezone()
    scheduler.aps.add_job(fine, id="fine", next_run_time=soon)
    scheduler.aps.add_job(boom, id="boom", next_run_time=soon)
    scheduler.aps.add_job(desk_post, id="checklist:7", args=["equities"], next_run_time=soon)
    scheduler.aps.start()
    try:
        assert done.wait(10)
        deadline = time.monotonic() + 10
        while True:
            after = scrape(bot)
            runs = [
                delta(before, after, "preflight_scheduler_job_runs_total", job=job, outcome=outcome)
                for job, outcome in (("fine", "ok"), ("boom", "error"), ("checklist", "ok"))
            ]
            if runs == [1, 1, 1] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        scheduler.shutdown()
    assert runs == [1, 1, 1]
    assert delta(before, after, "preflight_scheduler_job_runs_total", job="boom", outcome="ok") == 0
    last = value(after, "preflight_scheduler_job_last_success_timestamp_seconds", job="fine")
    assert started <= last <= time.time()
    assert delta(before, after, "preflight_scheduler_job_duration_seconds_count", job="boom") == 1
    assert seen["fine"] == {"job": "fine"} and seen["boom"] == {"job": "boom"}
    assert seen["checklist"] == {"job": "checklist", "desk": "equities"}  # a desk's own post names the desk


def test_the_probe_hook_counts_results_by_state(bot: Bot) -> None:
    before = scrape(bot)
    metrics.probe_result("healthy")
    metrics.probe_result("healthy")
    metrics.probe_result("competing")
    after = scrape(bot)
    assert delta(before, after, "preflight_probe_results_total", state="healthy") == 2
    assert delta(before, after, "preflight_probe_results_total", state="competing") == 1


# --- several processes: gunicorn, multiprocess mode -------------------------------------------


def signed_help(base: str) -> httpx.Response:
    body = b"command=%2Fibstatus&text=help&user_id=UTRD1&channel_id=C0123&team_id=T1&trigger_id=1"
    ts = str(int(time.time()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sign(body, ts),
        "Connection": "close",  # a new connection each time: any worker may accept it
    }
    return httpx.post(f"{base}/slack/events", content=body, headers=headers, timeout=10)


def json_lines(output: Output) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.text().splitlines() if line.strip()]


@pytest.mark.slow
def test_two_workers_report_the_sum_of_both_and_clean_their_directory(
    pg_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    port = free_port()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env |= {
        "DATABASE_URL": pg_url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.base_url,
        "PORT": str(port),
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "DEBUG",  # gunicorn's access log: which worker answered, with the request id
        "LOG_FORMAT": "json",
        "TMPDIR": str(tmp),  # where serve makes its PROMETHEUS_MULTIPROC_DIR
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

    def workers_answering() -> set[int]:
        found = set()
        for line in json_lines(output):
            if found_pid := re.search(r'"POST /slack/events HTTP/1\.1" 200 .* pid=<(\d+)>', str(line.get("message"))):
                found.add(int(found_pid.group(1)))
        return found

    try:
        deadline = time.monotonic() + 60
        healthy = False
        while not healthy and time.monotonic() < deadline and proc.poll() is None:
            try:
                healthy = httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                time.sleep(0.1)
        assert healthy, output.text()[-3000:]
        (directory,) = list(tmp.iterdir())  # the serve's own multiprocess directory
        assert directory.name.startswith("preflight-metrics-")

        answers: list[httpx.Response] = []
        while len(workers_answering()) < 2 and time.monotonic() < deadline:
            with ThreadPoolExecutor(max_workers=8) as pool:
                answers += list(pool.map(signed_help, [base] * 8))
            time.sleep(0.2)  # let the access log lines arrive
        assert len(workers_answering()) == 2, output.text()[-3000:]
        assert all(a.status_code == 200 for a in answers)

        scrapes = [
            parse(httpx.get(f"{base}/metrics", headers={"Connection": "close"}, timeout=10).text) for _ in range(6)
        ]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0, output.text()[-3000:]
    # Whichever worker answered the scrape, it counted both workers' requests.
    for samples in scrapes:
        assert value(samples, "preflight_slack_requests_total", kind="slash_command", outcome="ok") == len(answers)
        assert value(samples, "preflight_database_up") == 1
    assert list(tmp.iterdir()) == []  # the directory went with the serve

    lines = json_lines(output)  # every line a JSON object, gunicorn's included
    messages = [str(line["message"]) for line in lines]
    assert any(m.startswith("database: postgresql+psycopg://postgres@127.0.0.1:5432/") for m in messages)
    assert "processes: 2 gunicorn gthread workers x 8 threads" in "\n".join(messages)
    assert "Slack workspace: Fake Workspace (T1) at https://fake/, bot user UBOT" in messages
    access = [line for line in lines if "/slack/events HTTP" in str(line["message"])]
    ids = {a.headers["x-request-id"] for a in answers}
    assert {re.sub(r".*request_id=", "", str(line["message"])) for line in access} == ids
    assert all({"time", "level", "logger", "pid", "message"} <= line.keys() for line in lines)
