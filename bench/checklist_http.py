"""Benchmark (issue 2): checklist clicks and /ibstatus over the real HTTP endpoint.

The bot (``bot.runtime.build(...).web``) and two bare Bolt apps (request verification on,
one listener per request kind that only calls ``ack()``) are each served by waitress
exactly as ``bot/serve.py`` does (``create_server(..., threads=8)``) and driven with
signed, real-shaped requests: ``block_actions`` clicks on "All three confirmed" from
distinct traders of a posted checklist, mixed with ``/ibstatus`` slash commands.

The two baselines, measured in the same run next to the bot:
- "bare Bolt (default)": ``slack_bolt.App`` as shipped (``process_before_response=False``:
  the listener runs on Bolt's 5-thread listener executor while the request thread polls for
  ``ack()`` every 10 ms) -- the configuration the issue's reference numbers describe;
- "bare Bolt (ack in request thread)": ``process_before_response=True``, the bot's mode
  (bot/slack/app.py), so the comparison isolates what the bot itself does per request.

Processes (the machine has 2 cores; each process has its own GIL):
- this process: the two WSGI apps under waitress, the roster refresher, the database;
- a fake Slack Web API process (tests/fakes/slack.py): real Slack would not use our CPU,
  so its request handling must not compete for the server's GIL;
- one load-generator process per measurement: N threads, each on its own keep-alive
  ``http.client`` connection, requests built and signed before the clock starts.

Printed: p50 / p99 latency to the HTTP response and throughput for each backend,
concurrency and app, the bot's ratios against each baseline next to the targets (p99 <= 1.5x,
throughput >= 0.5x), the drain (the bot defers a click's work: time from the last HTTP
response until every click is stored), the resulting stored-clicks rate, and the checks
(every trader exactly one Answer; the final chat.update shows all N ready).

    .venv/bin/python -m bench.checklist_http                 # both backends, 3 runs
    .venv/bin/python -m bench.checklist_http --quick         # smoke run
    .venv/bin/python -m bench.checklist_http --backend sqlite --runs 5
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import itertools
import json
import logging
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from slack_bolt import Ack, App
from slack_sdk import WebClient
from sqlalchemy import create_engine, func, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from waitress.server import create_server

from bot.checklist.jobs import post_checklist
from bot.checklist.models import Answer
from bot.config import Settings
from bot.db import make_engine, session_scope
from bot.desks import service as desks
from bot.migrate import upgrade
from bot.runtime import Runtime, build
from bot.slack.ids import Action, Command
from bot.web import WebApp

SIGNING_SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench-token"
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
# Wed 25 Nov 2026, 08:05 in New York: inside the trading day (as tests/conftest.py's clock).
DOMAIN_NOW = datetime(2026, 11, 25, 13, 5, tzinfo=UTC)
STATUS_EVERY = 5  # every 5th request is an /ibstatus command, the others are clicks
THREADS = Settings.threads  # waitress worker threads, as bot/serve.py (default 8)


# --- requests ------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One request to send: a click by ``user`` on run ``run_id``, or an /ibstatus by ``user``."""

    kind: str  # "click" | "status"
    user: str
    run_id: int
    channel: str
    message_ts: str


def _sign(body: bytes, timestamp: str) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()


def _body(spec: Spec, port: int) -> bytes:
    """The wire body Slack sends (same shapes as tests/harness.py)."""
    if spec.kind == "status":
        form = {
            "token": "legacy",
            "team_id": "T1",
            "team_domain": "desk",
            "channel_id": spec.channel,
            "channel_name": "desk",
            "user_id": spec.user,
            "user_name": spec.user.lower(),
            "command": str(Command.IBSTATUS),
            "text": "",
            "api_app_id": "A1",
            "response_url": f"http://127.0.0.1:{port}/response",
            "trigger_id": "1.2.3",
        }
        return urlencode(form).encode()
    payload = {
        "type": "block_actions",
        "team": {"id": "T1", "domain": "desk"},
        "user": {"id": spec.user, "username": spec.user.lower(), "team_id": "T1"},
        "api_app_id": "A1",
        "token": "legacy",
        "container": {
            "type": "message",
            "message_ts": spec.message_ts,
            "channel_id": spec.channel,
            "is_ephemeral": False,
        },
        "trigger_id": f"trig-{spec.user}-{time.monotonic_ns()}",
        "channel": {"id": spec.channel, "name": "desk"},
        "message": {"type": "message", "ts": spec.message_ts, "text": "checklist"},
        "response_url": f"http://127.0.0.1:{port}/response",
        "actions": [
            {
                "action_id": str(Action.CONFIRM_ALL),
                "block_id": "checklist_actions",
                "text": {"type": "plain_text", "text": "✅ All three confirmed"},
                "value": str(spec.run_id),
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


# --- load generator (its own process) ------------------------------------------------------


@dataclass
class LoadResult:
    latencies: dict[str, list[float]] = field(default_factory=dict)  # kind -> seconds
    errors: int = 0
    non_200: int = 0
    sent: int = 0
    elapsed: float = 0.0
    ended_at: float = 0.0  # time.time() when the last response arrived
    timed_out: bool = False


def _load_main(port: int, specs: list[Spec], clients: int, time_limit: float, out: Connection) -> None:
    """Send ``specs`` with ``clients`` keep-alive connections; report per-request latency."""
    ts = str(int(time.time()))
    prepared = []
    for spec in specs:
        body = _body(spec, port)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": _sign(body, ts),
        }
        prepared.append((spec.kind, body, headers))
    counter = itertools.count()
    results: list[list[tuple[str, float, int]]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(idx: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.connect()
        start.wait()
        mine = results[idx]
        while True:
            i = next(counter)
            if i >= len(prepared) or time.perf_counter() > deadline[0]:
                break
            kind, body, headers = prepared[i]
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/slack/events", body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                mine.append((kind, time.perf_counter() - t0, resp.status))
            except (OSError, http.client.HTTPException):
                errors[idx] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + time_limit
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    result = LoadResult(elapsed=time.perf_counter() - t0, ended_at=time.time(), errors=sum(errors))
    for mine in results:
        for kind, latency, status in mine:
            result.latencies.setdefault(kind, []).append(latency)
            result.sent += 1
            result.non_200 += status != 200
    result.timed_out = result.sent + result.errors < len(prepared)
    out.send(result)
    out.close()


def drive(port: int, specs: list[Spec], clients: int, time_limit: float) -> LoadResult:
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_load_main, args=(port, specs, clients, time_limit, send), daemon=True)
    proc.start()
    send.close()
    result: LoadResult = recv.recv()
    proc.join()
    return result


# --- fake Slack (its own process) ------------------------------------------------------


def _slack_main(conn: Connection) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.fakes.slack import FakeSlack

    fake = FakeSlack().start()
    conn.send(fake.base_url)
    while True:
        cmd = conn.recv()
        if cmd == "stop":
            fake.stop()
            conn.send("stopped")
            return
        if cmd == "counts":
            counts: dict[str, int] = {}
            for call in fake.of("chat.update") + fake.of("chat.postEphemeral") + fake.of("chat.postMessage"):
                counts[call.method] = counts.get(call.method, 0) + 1
            conn.send(counts)
        elif isinstance(cmd, tuple) and cmd[0] == "last_update":
            _, channel, ts = cmd
            texts = [
                c.params.get("text")
                for c in fake.of("chat.update")
                if (c.params.get("channel"), c.params.get("ts")) == (channel, ts)
            ]
            conn.send((len(texts), texts[-1] if texts else None))


class SlackProcess:
    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_slack_main, args=(child,), daemon=True)
        self._proc.start()
        self.base_url: str = self._conn.recv()
        self._lock = threading.Lock()

    def ask(self, cmd: Any) -> Any:
        with self._lock:
            self._conn.send(cmd)
            return self._conn.recv()

    def stop(self) -> None:
        self.ask("stop")
        self._proc.join(timeout=5)


# --- servers ---------------------------------------------------------------------------


# (key, label) of every app measured per cell, in the order they are driven.
BARE_DEFAULT, BARE_ACK, BOT = "bare-default", "bare-ack", "bot"
APPS = {
    BARE_DEFAULT: "bare Bolt (default)",
    BARE_ACK: "bare Bolt (ack in request thread)",
    BOT: "IB Preflight",
}
BASELINES = (BARE_DEFAULT, BARE_ACK)


def bare_app(client: WebClient, *, process_before_response: bool) -> App:
    """A bare Bolt app: request verification on, one listener per kind that only acks.

    It gets the same fake-Slack client as the bot: Bolt's authorization middleware calls
    ``auth.test`` once, and nothing may reach slack.com. ``process_before_response=False`` is
    Bolt's default (listener on Bolt's own executor, the request thread polls for ``ack()``);
    ``True`` acknowledges in the request thread, as the bot (bot/slack/app.py) does."""
    app = App(
        signing_secret=SIGNING_SECRET,
        client=client,
        token_verification_enabled=False,
        process_before_response=process_before_response,
    )

    def just_ack(ack: Ack) -> None:
        ack()

    app.action(str(Action.CONFIRM_ALL))(just_ack)
    app.command(str(Command.IBSTATUS))(just_ack)
    return app


class Served:
    """A WSGI app under waitress in a background thread, as bot/serve.py runs it."""

    def __init__(self, wsgi: Callable[..., Any]) -> None:
        self.server = create_server(wsgi, host="127.0.0.1", port=0, threads=THREADS)
        self.port: int = self.server.effective_port  # type: ignore[union-attr]
        self._thread = threading.Thread(target=self.server.run, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.close()


# --- databases ---------------------------------------------------------------------------


@contextmanager
def scratch_database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            url = f"sqlite:///{tmp}/preflight.db"
            upgrade(url)
            yield url
        return
    name = f"preflight_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass(frozen=True)
class Posted:
    """One desk with its posted checklist."""

    desk: str
    channel: str
    run_id: int
    ts: str
    traders: list[str]


@dataclass
class Cell:
    """The desks of one measurement; every trader of every desk clicks exactly once."""

    desks: list[Posted]
    clickers: list[Spec]  # one click per trader, interleaved across desks

    @property
    def traders(self) -> int:
        return sum(len(d.traders) for d in self.desks)


def make_cell(engine: Engine, client: WebClient, tag: str, n_traders: int, desk_size: int) -> Cell:
    posted: list[Posted] = []
    for d, first in enumerate(range(0, n_traders, desk_size)):
        name, channel = f"bench-{tag}-{d}".lower(), f"C{tag}D{d}"
        traders = [f"U{tag}D{d}T{i:05d}" for i in range(first, min(n_traders, first + desk_size))]
        with session_scope(engine) as session:
            desks.add_desk(
                session=session,
                name=name,
                channel_id=channel,
                managers=[f"U{tag}D{d}MGR"],
                traders=traders,
                timezone="America/New_York",
                post_at="08:00",
                deadline="09:00",
                now=DOMAIN_NOW - timedelta(days=30),
            )
        result = post_checklist(engine, client, desk_name=name, day=DOMAIN_NOW.date(), now=DOMAIN_NOW)
        assert result.run_id is not None and result.ts is not None, result.message
        posted.append(Posted(name, channel, result.run_id, result.ts, traders))
    clickers = [
        Spec("click", p.traders[i], p.run_id, p.channel, p.ts)
        for i in range(max(len(p.traders) for p in posted))
        for p in posted
        if i < len(p.traders)
    ]
    return Cell(posted, clickers)


def mix(clicks: Sequence[Spec], n_requests: int) -> list[Spec]:
    """``n_requests`` requests: ``clicks`` in order, with every STATUS_EVERY-th an /ibstatus
    (own status) by a trader of the desk just clicked on."""
    specs: list[Spec] = []
    it = iter(clicks)
    last = clicks[0]
    for i in range(n_requests):
        if i % STATUS_EVERY == STATUS_EVERY - 1:
            specs.append(Spec("status", last.user, last.run_id, last.channel, last.message_ts))
        else:
            last = next(it)
            specs.append(last)
    return specs


def clicks_in(n_requests: int) -> int:
    return n_requests - n_requests // STATUS_EVERY


def stored_answers(engine: Engine, run_ids: Sequence[int]) -> tuple[int, int]:
    """(answers, distinct (run, trader) pairs) stored for these runs."""
    with Session(engine) as session:
        answers = session.exec(select(func.count()).where(col(Answer.run_id).in_(run_ids))).one()
        pairs = session.exec(
            select(func.count()).select_from(
                select(Answer.run_id, Answer.user_id).where(col(Answer.run_id).in_(run_ids)).distinct().subquery()
            )
        ).one()
    return int(answers), int(pairs)


# --- one run -------------------------------------------------------------------------------


@dataclass
class Measurement:
    backend: str
    clients: int
    app: str
    result: LoadResult
    drain: float | None = None  # bot only: last response -> every click stored


@dataclass
class Check:
    backend: str
    clients: int
    run: int
    desks: int
    expected: int  # clicks sent == traders on the cell's desks
    answers: int
    distinct: int
    rosters_ok: int  # desks whose last chat.update shows every trader ready
    updates: int  # chat.update calls for the cell's messages
    example: str | None  # the last chat.update text of the first desk

    @property
    def ok(self) -> bool:
        return self.answers == self.expected == self.distinct and self.rosters_ok == self.desks


@dataclass
class Plan:
    requests: dict[int, int]  # clients -> measured requests
    warmup: int
    time_limit: float
    runs: int
    desk_size: int | None  # traders per desk; None: one desk per measurement


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def measure_cell(
    backend: str,
    clients: int,
    n: int,
    rep: int,
    plan: Plan,
    engine: Engine,
    runtime: Runtime,
    slack: SlackProcess,
    servers: dict[str, Served],
    log: Callable[[str], None],
    measurements: list[Measurement],
) -> Check:
    """Both bare apps, then the bot, on fresh desks; then check what the bot stored and rendered."""
    tag = f"B{backend[0].upper()}{clients}R{rep}"
    warm_clicks, clicks = clicks_in(plan.warmup), clicks_in(n)
    cell = make_cell(engine, runtime.client, tag, warm_clicks + clicks, plan.desk_size or warm_clicks + clicks)
    run_ids = [d.run_id for d in cell.desks]
    warm_specs = mix(cell.clickers[:warm_clicks], plan.warmup)
    specs = mix(cell.clickers[warm_clicks:], n)

    def stored(expected: int) -> Callable[[], bool]:
        return lambda: stored_answers(engine, run_ids)[0] >= expected

    this_run: dict[str, Measurement] = {}
    for app_name in APPS:
        served = servers[app_name]
        drive(served.port, warm_specs, clients, plan.time_limit)
        if app_name == BOT:  # let the warm-up's deferred clicks finish first
            wait_until(stored(warm_clicks), 60)
            runtime.refresher.wait_idle(60)
        result = drive(served.port, specs, clients, plan.time_limit)
        m = Measurement(backend, clients, app_name, result)
        if app_name == BOT:
            wait_until(stored(warm_clicks + clicks), 120, 0.01)
            m.drain = max(0.0, time.time() - result.ended_at)
            runtime.refresher.wait_idle(60)
            time.sleep(0.3)  # let the last ephemeral replies reach the fake
        measurements.append(m)
        this_run[app_name] = m
        log(_row(m))
    bot_m = this_run[BOT]
    log(
        "    this run, bot vs "
        + "; ".join(
            f"{APPS[b]}: p99 {_p99(bot_m) / _p99(this_run[b]):.2f}x, req/s {_rps(bot_m) / _rps(this_run[b]):.2f}x"
            for b in BASELINES
        )
    )
    answers, distinct = stored_answers(engine, run_ids)
    rosters_ok, updates, example = 0, 0, None
    for d in cell.desks:
        count, last = slack.ask(("last_update", d.channel, d.ts))
        updates += count
        example = example or last
        rosters_ok += last is not None and f": {len(d.traders)} ready, 0 restricted, 0 pending" in last
    return Check(backend, clients, rep, len(cell.desks), cell.traders, answers, distinct, rosters_ok, updates, example)


def run_backend(backend: str, plan: Plan, log: Callable[[str], None]) -> tuple[list[Measurement], list[Check]]:
    measurements: list[Measurement] = []
    checks: list[Check] = []
    slack = SlackProcess()
    try:
        with scratch_database(backend) as url:
            engine = make_engine(url)
            settings = Settings(
                database_url=url,
                slack_bot_token=BOT_TOKEN,
                slack_signing_secret=SIGNING_SECRET,
                slack_api_url=slack.base_url,
            )
            client = WebClient(token=BOT_TOKEN, base_url=slack.base_url, timeout=15)
            # As bot/serve.py: build(settings) with its own client and executor; only the
            # domain clock is fixed (inside the trading day), and the refresher runs.
            runtime: Runtime = build(settings, engine=engine, client=client, clock=lambda: DOMAIN_NOW)
            runtime.refresher.start()
            servers = {
                BARE_DEFAULT: Served(
                    WebApp(
                        bare_app(client, process_before_response=False), signing_secret=SIGNING_SECRET, engine=engine
                    )
                ),
                BARE_ACK: Served(
                    WebApp(bare_app(client, process_before_response=True), signing_secret=SIGNING_SECRET, engine=engine)
                ),
                BOT: Served(runtime.web),
            }
            try:
                for rep in range(plan.runs):
                    for clients, n in plan.requests.items():
                        checks.append(
                            measure_cell(
                                backend, clients, n, rep, plan, engine, runtime, slack, servers, log, measurements
                            )
                        )
            finally:
                for served in servers.values():
                    served.close()
                runtime.refresher.stop()
                engine.dispose()
    finally:
        slack.stop()
    return measurements, checks


# --- reporting -------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _all(result: LoadResult) -> list[float]:
    return [x for values in result.latencies.values() for x in values]


def _p99(m: Measurement) -> float:
    return pct(_all(m.result), 0.99)


def _rps(m: Measurement) -> float:
    return m.result.sent / m.result.elapsed if m.result.elapsed else 0.0


def _stored_rate(m: Measurement) -> float | None:
    """Clicks per second from the first request until the last click is stored (bot only)."""
    if m.drain is None:
        return None
    return len(m.result.latencies.get("click", [])) / (m.result.elapsed + m.drain)


def _row(m: Measurement) -> str:
    lat = _all(m.result)
    stored = _stored_rate(m)
    drain = f" drain {m.drain:.2f}s ({stored:.0f} clicks stored/s)" if m.drain is not None and stored else ""
    bad = f" errors {m.result.errors} non-200 {m.result.non_200}" if m.result.errors or m.result.non_200 else ""
    return (
        f"  {m.backend:10} {m.clients:3d} clients {m.app:12}: p50 {pct(lat, 0.5) * 1000:6.1f} ms  "
        f"p99 {pct(lat, 0.99) * 1000:7.1f} ms  {_rps(m):6.0f} req/s{drain}{bad}"
    )


@dataclass
class Summary:
    p50: float
    p99: float
    rps: float
    click_p99: float
    status_p99: float
    drain: float | None
    stored_rate: float | None
    errors: int


def summarize(ms: list[Measurement]) -> Summary:
    """Median over runs of each figure."""

    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    drains = [m.drain for m in ms if m.drain is not None]
    rates = [r for r in (_stored_rate(m) for m in ms) if r is not None]
    return Summary(
        p50=med([pct(_all(m.result), 0.5) for m in ms]),
        p99=med([pct(_all(m.result), 0.99) for m in ms]),
        rps=med([m.result.sent / m.result.elapsed for m in ms]),
        click_p99=med([pct(m.result.latencies.get("click", []), 0.99) for m in ms]),
        status_p99=med([pct(m.result.latencies.get("status", []), 0.99) for m in ms]),
        drain=med(drains) if drains else None,
        stored_rate=med(rates) if rates else None,
        errors=sum(m.result.errors + m.result.non_200 + m.result.timed_out for m in ms),
    )


def table(measurements: list[Measurement], runs: int) -> str:
    """One row per app; the bot's row carries its ratios against each baseline (of the medians)."""
    lines = [
        f"Median of {runs} run(s). Latency = request sent -> HTTP response (what Slack sees). Drain = last"
        " response -> every click stored; clicks stored/s = clicks / (load time + drain).",
        "Ratios = bot / baseline, of the medians; targets p99 <= 1.5x, req/s >= 0.5x.",
        "",
        "| backend | clients | app | p50 ms | p99 ms | req/s | click p99 ms | /ibstatus p99 ms | drain s"
        " | clicks stored/s | errors | p99 / default | req/s / default | p99 / ack-in-thread | req/s / ack-in-thread |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(m.backend, m.clients) for m in measurements}, key=lambda k: (k[0] != "sqlite", k[1]))
    for backend, clients in keys:
        s = {
            app: summarize([m for m in measurements if (m.backend, m.clients, m.app) == (backend, clients, app)])
            for app in APPS
        }
        for app, label in APPS.items():
            x = s[app]
            ratios = "| – | – | – | – |"
            if app == BOT:
                cells = []
                for b in BASELINES:
                    p99r, rpsr = x.p99 / s[b].p99, x.rps / s[b].rps
                    cells.append(f"{p99r:.2f} {'✅' if p99r <= 1.5 else '❌'}")
                    cells.append(f"{rpsr:.2f} {'✅' if rpsr >= 0.5 else '❌'}")
                ratios = "| " + " | ".join(cells) + " |"
            drain = f"{x.drain:.2f}" if x.drain is not None else "–"
            stored = f"{x.stored_rate:.0f}" if x.stored_rate is not None else "–"
            lines.append(
                f"| {backend} | {clients} | {label} | {x.p50 * 1000:.1f} | {x.p99 * 1000:.1f} | {x.rps:.0f} | "
                f"{x.click_p99 * 1000:.1f} | {x.status_p99 * 1000:.1f} | {drain} | {stored} | {x.errors} {ratios}"
            )
    return "\n".join(lines)


def check_lines(checks: list[Check]) -> list[str]:
    lines = []
    for c in checks:
        verdict = "OK  " if c.ok else "FAIL"
        last = (c.example or "no chat.update").split(": ", 1)[-1]
        lines.append(
            f"  [{verdict}] {c.backend:10} {c.clients:3d} clients run {c.run}: {c.answers} answers from "
            f"{c.distinct} distinct traders (expected {c.expected} each); rosters right on {c.rosters_ok}/{c.desks} "
            f"desk(s) after {c.updates} chat.update (last: {last})"
        )
    return lines


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="short smoke run (few requests, one run)")
    parser.add_argument("--runs", type=int, default=None, help="repetitions per cell (median reported); default 3")
    parser.add_argument(
        "--desk-size",
        type=int,
        default=None,
        help="traders per desk (default: one desk per measurement holding all its ~2,000-3,000 clickers)",
    )
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per measurement, at most")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth is N" under load
    if args.quick:
        plan = Plan(
            requests={10: 200, 50: 300},
            warmup=50,
            time_limit=args.time_limit,
            runs=args.runs or 1,
            desk_size=args.desk_size,
        )
    else:
        plan = Plan(
            requests={10: 2000, 50: 3000},
            warmup=250,
            time_limit=args.time_limit,
            runs=args.runs or 3,
            desk_size=args.desk_size,
        )
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"machine: {machine()}; waitress threads={THREADS}; load generator in its own process")
    print(f"requests per cell: {plan.requests} (+{plan.warmup} warm-up), 1 in {STATUS_EVERY} is /ibstatus")
    size = f"{plan.desk_size} traders per desk" if plan.desk_size else "one desk per cell (all its clickers)"
    print(f"desks: {size}; every click from a distinct trader on the desk")
    measurements: list[Measurement] = []
    checks: list[Check] = []
    for backend in backends:
        ms, cs = run_backend(backend, plan, lambda line: print(line, flush=True))
        measurements += ms
        checks += cs
    print()
    print(table(measurements, plan.runs))
    print()
    print("checks (every click stored exactly once; final roster shows all N ready):")
    for line in check_lines(checks):
        print(line)
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
