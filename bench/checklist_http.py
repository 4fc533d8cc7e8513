"""Benchmark (issues 2 and 11): checklist clicks and /ibstatus over the real HTTP endpoint.

The bot (``bot.runtime.build(...).web``) and three other Bolt apps are each served by
waitress exactly as ``bot/serve.py`` does (``create_server(..., threads=8)``) and driven with
signed, real-shaped requests: ``block_actions`` clicks on "All three confirmed" from
distinct traders of a posted checklist on a 2,000-trader desk, with every 5th request an
``/ibstatus`` (the sender's own status).

Measured in the same run, behind the same kind of server, through the same WSGI path
(``bot.web.WebApp``: signature check, then Bolt), on the same database:
- **floor** -- "Bolt + one durable INSERT and COMMIT per click": a Bolt app
  (``process_before_response=True``, as the bot) whose click listener INSERTs one row into a
  table of its own (``bench_floor_click``, created by this benchmark; ``ON CONFLICT DO
  NOTHING`` on (run, user), as the bot's answer) and COMMITs before ``ack()``, and whose
  ``/ibstatus`` reads that trader's row (one indexed SELECT) and answers. The least work an
  acknowledged-and-stored click needs: the bot is measured against it.
- **bare Bolt (ack in request thread)** and **bare Bolt (default)** -- listeners that only
  ``ack()`` (``process_before_response`` True / False): context, not targets.

Processes (the machine's cores are shared; each process has its own GIL):
- this process: the WSGI apps under waitress, the bot's roster refresher, SQLite;
- a fake Slack Web API process (tests/support/fakes/slack.py): real Slack does not use our CPU;
- a load-generator process (started once): per measurement N threads, each on its own
  keep-alive ``http.client`` connection, requests built and signed before the clock starts.

``--processes N`` (PostgreSQL): the floor and the bot are also served as separate server
processes by gunicorn gthread workers (``bot.processes.serve_workers``, what ``preflight serve
--workers N`` runs, with the scheduler and outbox in the leader), with 1 and with N worker
processes, in the same run: throughput and p99 of N processes against 1.

Printed: p50 / p99 latency to the HTTP response, throughput, server CPU per request (the
serving process(es), and on PostgreSQL the database's backends serving them, from /proc), the
bot's ratios against the floor (targets: throughput >= 0.5x at both concurrencies, p99 <= 2x
at 10 clients) and against bare Bolt, and the checks: every click stored exactly once (the
bot's answers and the floor's rows), every roster right afterwards (the last chat.update of
the desk's message shows the right counts; the time it took after the last response).

    .venv/bin/python -m bench.checklist_http                  # SQLite + PostgreSQL, 3 runs, 1 vs 2 processes
    .venv/bin/python -m bench.checklist_http --quick          # smoke run, about a minute (no processes mode)
    .venv/bin/python -m bench.checklist_http --quick --backend postgresql --processes 2   # smoke of that mode
    .venv/bin/python -m bench.checklist_http --backend postgresql --processes 4
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import itertools
import json
import logging
import math
import multiprocessing as mp
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from slack_bolt import Ack, App
from slack_sdk import WebClient
from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    create_engine,
    func,
    text,
)
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from waitress.server import create_server

from bot.checklist.models import Answer
from bot.checklist.posting import post_checklist
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
DESK_TRADERS = 2000  # traders on each bench desk (the desk)
THREADS = Settings.threads  # waitress / gunicorn threads per process, as bot/serve.py (default 8)
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


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
    """The wire body Slack sends (same shapes as tests/support/harness.py)."""
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


def _load_main(conn: Connection) -> None:
    """The load generator's loop: for each (port, specs, clients, time limit) it receives, send
    the requests and answer with a LoadResult; stop on None."""
    while (task := conn.recv()) is not None:
        conn.send(_load(*task))


def _load(port: int, specs: list[Spec], clients: int, time_limit: float) -> LoadResult:
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
    return result


class LoadProcess:
    """The load generator: a process of its own (its CPU must not compete for the server's GIL),
    started once and reused for every measurement."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_load_main, args=(child,), daemon=True)
        self._proc.start()

    def drive(self, port: int, specs: list[Spec], clients: int, time_limit: float) -> LoadResult:
        self._conn.send((port, specs, clients, time_limit))
        result: LoadResult = self._conn.recv()
        return result

    def stop(self) -> None:
        self._conn.send(None)
        self._proc.join(timeout=10)


_LOAD: list[LoadProcess] = []


def drive(port: int, specs: list[Spec], clients: int, time_limit: float) -> LoadResult:
    if not _LOAD:
        _LOAD.append(LoadProcess())
    return _LOAD[0].drive(port, specs, clients, time_limit)


# --- fake Slack (its own process) ------------------------------------------------------


def _slack_main(conn: Connection) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.support.fakes.slack import FakeSlack

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


# --- CPU (from /proc: this process, a server's process tree, the database's backends) -------


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of one process, all its threads, ended ones too (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15 of stat)


def cpu_precise(pid: int) -> float:
    """CPU seconds of a single-threaded process (a PostgreSQL backend) in nanoseconds'
    precision (``/proc/PID/schedstat``; ``stat`` counts 10 ms ticks, and a measurement sums
    tens of backends); falls back to ``stat``."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return cpu_of(pid)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (gunicorn's master and workers)."""
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                queue += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                pass
    return pids


def pg_backends(engine: Engine) -> list[int]:
    """The PostgreSQL backends connected to this engine's database (every process's pools)."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as conn:
        return [
            int(pid)
            for pid in conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                )
            ).scalars()
        ]


@dataclass
class CpuSnapshot:
    app: dict[int, float]
    db: dict[int, float]


class CpuMeter:
    """CPU seconds spent between two snapshots by the serving process(es) and, on PostgreSQL,
    the database backends (processes that start in between count from zero; backends that
    end in between are missed: the bench's pools keep theirs)."""

    def __init__(self, app_pids: Callable[[], list[int]], engine: Engine) -> None:
        self.app_pids = app_pids
        self.engine = engine

    def snapshot(self) -> CpuSnapshot:
        return CpuSnapshot(
            app={pid: cpu_of(pid) for pid in self.app_pids()},
            db={pid: cpu_precise(pid) for pid in pg_backends(self.engine)},
        )

    @staticmethod
    def spent(before: CpuSnapshot, after: CpuSnapshot) -> tuple[float, float | None]:
        app = sum(cpu - before.app.get(pid, 0.0) for pid, cpu in after.app.items())
        if not after.db:
            return app, None
        return app, sum(cpu - before.db.get(pid, 0.0) for pid, cpu in after.db.items())


# --- the apps -----------------------------------------------------------------------------

BARE_DEFAULT, BARE_ACK, FLOOR, BOT = "bare-default", "bare-ack", "floor", "bot"
APPS = {
    BARE_DEFAULT: "bare Bolt (default)",
    BARE_ACK: "bare Bolt (ack in thread)",
    FLOOR: "floor: Bolt + 1 INSERT",
    BOT: "IB Preflight",
}
STORING = (FLOOR, BOT)

FLOOR_TABLE = Table(
    "bench_floor_click",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, nullable=False),
    Column("user_id", String(32), nullable=False),
    Column("action_ts", String(32), nullable=False),
    Column("at", Float, nullable=False),
    UniqueConstraint("user_id", "run_id"),  # the click's key; serves the /ibstatus lookup by user too
)


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


def floor_app(engine: Engine, client: WebClient) -> App:
    """Bolt + one durable INSERT and COMMIT per click (see the module docstring).

    On SQLite the writers of this process queue on a lock (as ``bot.db.session_scope`` does),
    so they don't sleep in SQLite's busy handler; the engine is ``bot.db.make_engine``'s (WAL,
    ``synchronous=NORMAL``, ``BEGIN IMMEDIATE``), the bot's own durability."""
    app = App(
        signing_secret=SIGNING_SECRET, client=client, token_verification_enabled=False, process_before_response=True
    )
    sqlite = engine.dialect.name == "sqlite"
    insert = (sqlite_insert if sqlite else postgresql_insert)(FLOOR_TABLE).on_conflict_do_nothing()
    mine = FLOOR_TABLE.c
    lookup = sa_select(func.count()).where(mine.user_id == bindparam("user_id"))
    writer: AbstractContextManager[Any] = threading.Lock() if sqlite else nullcontext()
    reader = engine.execution_options(readonly=True)

    def store(ack: Ack, body: dict[str, Any]) -> None:
        action = body["actions"][0]
        row = {"run_id": int(action["value"]), "user_id": body["user"]["id"], "action_ts": action["action_ts"]}
        with writer, engine.begin() as conn:
            conn.execute(insert, {**row, "at": time.time()})
        ack()

    def status(ack: Ack, command: dict[str, Any]) -> None:
        with reader.connect() as conn:
            found = conn.execute(lookup, {"user_id": command["user_id"]}).scalar_one()
        ack(f"{command['user_id']}: {found} stored click(s)")

    app.action(str(Action.CONFIRM_ALL))(store)
    app.command(str(Command.IBSTATUS))(status)
    return app


def ensure_floor_table(engine: Engine) -> None:
    FLOOR_TABLE.create(engine, checkfirst=True)


def floor_stored(engine: Engine, run_ids: Sequence[int]) -> tuple[int, int]:
    """(rows, distinct (run, trader) pairs) the floor stored for these runs."""
    mine = FLOOR_TABLE.c
    with engine.connect() as conn:
        rows = conn.execute(sa_select(func.count()).where(mine.run_id.in_(run_ids))).scalar_one()
        pairs = conn.execute(
            sa_select(func.count()).select_from(
                sa_select(mine.run_id, mine.user_id).where(mine.run_id.in_(run_ids)).distinct().subquery()
            )
        ).scalar_one()
    return int(rows), int(pairs)


# --- servers ---------------------------------------------------------------------------------


class Served:
    """A WSGI app under waitress in a background thread of this process, as bot/serve.py runs it."""

    def __init__(self, wsgi: Callable[..., Any]) -> None:
        self.server = create_server(wsgi, host="127.0.0.1", port=0, threads=THREADS)
        self.port: int = self.server.effective_port  # type: ignore[union-attr]
        self._thread = threading.Thread(target=self.server.run, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


class ServerProcess:
    """The floor or the bot served by ``workers`` gunicorn gthread processes
    (``bot.processes.serve_workers``), started as ``python -m bench.checklist_http --serve APP``."""

    def __init__(self, app: str, workers: int, url: str, slack_url: str) -> None:
        self.app, self.workers = app, workers
        self.port = free_port()
        self._ready = Path(tempfile.mkdtemp(prefix=f"bench-{app}-"))
        argv = [sys.executable, "-m", "bench.checklist_http", "--serve", app, "--workers", str(workers)]
        argv += ["--port", str(self.port), "--database-url", url, "--slack-url", slack_url, "--ready", str(self._ready)]
        root = Path(__file__).resolve().parent.parent
        env = os.environ | {"PYTHONPATH": str(root)}
        self.proc = subprocess.Popen(argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._out: list[bytes] = []
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + 120
        # every worker has built its app (each touches a file), and the socket answers
        while len(list(self._ready.iterdir())) < workers or not _healthy(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{app} server ({workers} processes) did not start:\n{self.output()[-3000:]}")
            time.sleep(0.05)

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._out.append(line)

    def output(self) -> str:
        return b"".join(self._out).decode(errors="replace")

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class _FloorServing:
    """The floor in a gunicorn worker (``bot.processes.Served``)."""

    engine: Engine
    wsgi: Callable[..., Any]

    def stop(self) -> None:
        self.engine.dispose()


def _serve_main(args: argparse.Namespace) -> int:
    """``--serve APP``: serve the floor or the bot with ``--workers`` gunicorn processes."""
    from bot.processes import Served as ServedProtocol
    from bot.processes import serve_workers, start_serving

    settings = Settings(
        database_url=args.database_url,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=args.slack_url,
        port=args.port,
        log_level="WARNING",
    )
    ready = Path(args.ready)

    def start() -> ServedProtocol:
        served: ServedProtocol
        if args.serve == BOT:
            # preflight serve's own process model; only the domain clock is fixed (inside the trading day)
            served = start_serving(settings, clock=lambda: DOMAIN_NOW)
        else:
            engine = make_engine(settings.database_url)
            client = WebClient(token=BOT_TOKEN, base_url=settings.slack_api_url, timeout=15)
            served = _FloorServing(
                engine, WebApp(floor_app(engine, client), signing_secret=SIGNING_SECRET, engine=engine)
            )
        (ready / str(os.getpid())).touch()
        return served

    logging.basicConfig(level=logging.WARNING)
    serve_workers(settings, args.workers, bind=f"127.0.0.1:{args.port}", start=start)
    return 0


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


# --- desks and requests ----------------------------------------------------------------------


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
    """The desks of one measurement and their clickers (distinct traders, interleaved across desks)."""

    desks: list[Posted]
    clickers: list[Spec]

    def ready_after(self, clicks: int) -> dict[str, int]:
        """Traders ready on each desk (by channel) once the first ``clicks`` clickers clicked."""
        ready = {d.channel: 0 for d in self.desks}
        for spec in self.clickers[:clicks]:
            ready[spec.channel] += 1
        return ready


def make_cell(engine: Engine, client: WebClient, tag: str, n_clickers: int, desk_traders: int) -> Cell:
    """Desks of ``desk_traders`` traders each (as many as ``n_clickers`` need), checklists posted."""
    posted: list[Posted] = []
    for d in range(max(1, math.ceil(n_clickers / desk_traders))):
        name, channel = f"bench-{tag}-{d}".lower(), f"C{tag}D{d}"
        traders = [f"U{tag}D{d}T{i:05d}" for i in range(desk_traders)]
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
    clickers = [Spec("click", p.traders[i], p.run_id, p.channel, p.ts) for i in range(desk_traders) for p in posted]
    return Cell(posted, clickers[:n_clickers])


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
    """(answers, distinct (run, trader) pairs) the bot stored for these runs."""
    with Session(engine) as session:
        answers = session.exec(select(func.count()).where(col(Answer.run_id).in_(run_ids))).one()
        pairs = session.exec(
            select(func.count()).select_from(
                select(Answer.run_id, Answer.user_id).where(col(Answer.run_id).in_(run_ids)).distinct().subquery()
            )
        ).one()
    return int(answers), int(pairs)


def stored(app: str, engine: Engine, run_ids: Sequence[int]) -> tuple[int, int]:
    return floor_stored(engine, run_ids) if app == FLOOR else stored_answers(engine, run_ids)


def rosters(slack: SlackProcess, cell: Cell, clicks: int) -> tuple[int, int, str | None]:
    """(desks whose last chat.update shows the right counts, chat.update calls, the first desk's last text)."""
    ready = cell.ready_after(clicks)
    right, updates, example = 0, 0, None
    for d in cell.desks:
        count, last = slack.ask(("last_update", d.channel, d.ts))
        updates += count
        example = example or last
        want = f": {ready[d.channel]} ready, 0 restricted, {len(d.traders) - ready[d.channel]} pending"
        right += last is not None and want in last
    return right, updates, example


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


# --- measuring ---------------------------------------------------------------------------------


@dataclass
class Measurement:
    backend: str
    clients: int
    app: str
    processes: int  # 0: served in this process (waitress); N: N gunicorn worker processes
    result: LoadResult
    cpu_app: float  # CPU seconds of the serving process(es) over the load and what it left behind
    cpu_db: float | None  # PostgreSQL backends' CPU seconds (None on SQLite: it is in cpu_app)
    drain: float | None = None  # storing apps: last response -> every click stored
    roster_lag: float | None = None  # the bot: last response -> every roster right
    load: float = 0.0  # 1-minute load average when it ended


@dataclass
class Check:
    backend: str
    clients: int
    run: int
    processes: int
    app: str
    desks: int
    expected: int  # clicks sent (warm-up + measured), each by a distinct trader
    rows: int
    distinct: int
    rosters_ok: int | None  # the bot: desks whose last chat.update shows the right counts
    updates: int
    example: str | None

    @property
    def ok(self) -> bool:
        return self.rows == self.expected == self.distinct and self.rosters_ok in (None, self.desks)


@dataclass
class Plan:
    requests: dict[int, int]  # clients -> measured requests
    warmup: int
    time_limit: float
    runs: int
    desk_traders: int
    apps: tuple[str, ...]  # measured in this process, in this order
    processes: int  # N > 1: also floor and bot with 1 and N gunicorn processes (PostgreSQL)


@dataclass
class Target:
    """One served app to drive: where it listens and whose CPU it spends."""

    app: str
    port: int
    meter: CpuMeter


def run_cell(
    *,
    backend: str,
    clients: int,
    n: int,
    rep: int,
    processes: int,
    plan: Plan,
    engine: Engine,
    client: WebClient,
    slack: SlackProcess,
    targets: list[Target],
    log: Callable[[str], None],
) -> tuple[list[Measurement], list[Check]]:
    """Fresh desks; then each target in turn: warm-up, settle, measured load, settle; then the checks."""
    tag = f"B{backend[0].upper()}P{processes}C{clients}R{rep}"
    warm_clicks, clicks = clicks_in(plan.warmup), clicks_in(n)
    cell = make_cell(engine, client, tag, warm_clicks + clicks, plan.desk_traders)
    run_ids = [d.run_id for d in cell.desks]
    warm_specs = mix(cell.clickers[:warm_clicks], plan.warmup)
    specs = mix(cell.clickers[warm_clicks:], n)

    def settle(app: str, expected: int) -> tuple[float | None, float | None]:
        """Wait until ``expected`` clicks are stored (and, for the bot, every roster shows them):
        the times (from now) it took."""
        if app not in STORING:
            return None, None
        t0 = time.time()
        at_once = stored(app, engine, run_ids)[0] >= expected  # stored before the responses: no drain
        wait_until(lambda: stored(app, engine, run_ids)[0] >= expected, 120, 0.01)
        drain = -1.0 if at_once else time.time() - t0
        if app != BOT:
            return drain, None
        wait_until(lambda: rosters(slack, cell, expected)[0] == len(cell.desks), 60, 0.05)
        return drain, time.time() - t0

    measurements: list[Measurement] = []
    checks: list[Check] = []
    for target in targets:
        drive(target.port, warm_specs, clients, plan.time_limit)
        settle(target.app, warm_clicks)
        before = target.meter.snapshot()
        result = drive(target.port, specs, clients, plan.time_limit)
        late = time.time() - result.ended_at  # the last response came this long before drive() returned
        drain, lag = settle(target.app, warm_clicks + clicks)
        cpu_app, cpu_db = CpuMeter.spent(before, target.meter.snapshot())
        m = Measurement(
            backend,
            clients,
            target.app,
            processes,
            result,
            cpu_app,
            cpu_db,
            drain=None if drain is None else (0.0 if drain < 0 else drain + late),
            roster_lag=None if lag is None else lag + late,
            load=os.getloadavg()[0],
        )
        measurements.append(m)
        log(_row(m))
        if target.app in STORING:
            rows, distinct = stored(target.app, engine, run_ids)
            ok, updates, example = rosters(slack, cell, warm_clicks + clicks) if target.app == BOT else (None, 0, None)
            checks.append(
                Check(
                    backend,
                    clients,
                    rep,
                    processes,
                    target.app,
                    len(cell.desks),
                    warm_clicks + clicks,
                    rows,
                    distinct,
                    ok,
                    updates,
                    example,
                )
            )
    return measurements, checks


def in_process(backend: str, plan: Plan, log: Callable[[str], None]) -> tuple[list[Measurement], list[Check]]:
    """Every app of ``plan.apps`` served by waitress in this process, on one scratch database."""
    measurements: list[Measurement] = []
    checks: list[Check] = []
    slack = SlackProcess()
    try:
        with scratch_database(backend) as url:
            engine = make_engine(url)
            ensure_floor_table(engine)
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
            wsgi = {
                BARE_DEFAULT: lambda: bare_app(client, process_before_response=False),
                BARE_ACK: lambda: bare_app(client, process_before_response=True),
                FLOOR: lambda: floor_app(engine, client),
            }
            servers = {
                app: Served(
                    runtime.web if app == BOT else WebApp(wsgi[app](), signing_secret=SIGNING_SECRET, engine=engine)
                )
                for app in plan.apps
            }
            meter = CpuMeter(lambda: [os.getpid()], engine)
            targets = [Target(app, servers[app].port, meter) for app in plan.apps]
            try:
                for rep in range(plan.runs):
                    for clients, n in plan.requests.items():
                        ms, cs = run_cell(
                            backend=backend,
                            clients=clients,
                            n=n,
                            rep=rep,
                            processes=0,
                            plan=plan,
                            engine=engine,
                            client=client,
                            slack=slack,
                            targets=targets,
                            log=log,
                        )
                        measurements += ms
                        checks += cs
            finally:
                for served in servers.values():
                    served.close()
                runtime.refresher.stop()
                engine.dispose()
    finally:
        slack.stop()
    return measurements, checks


def in_processes(plan: Plan, log: Callable[[str], None]) -> tuple[list[Measurement], list[Check]]:
    """PostgreSQL: the floor and the bot each served by 1, then ``plan.processes`` gunicorn processes."""
    measurements: list[Measurement] = []
    checks: list[Check] = []
    slack = SlackProcess()
    try:
        with scratch_database("postgresql") as url:
            engine = make_engine(url)
            ensure_floor_table(engine)
            client = WebClient(token=BOT_TOKEN, base_url=slack.base_url, timeout=15)
            for processes in (1, plan.processes):
                servers = [ServerProcess(app, processes, url, slack.base_url) for app in (FLOOR, BOT)]
                log(f"  -- {processes} process(es): gunicorn gthread x {THREADS} threads each")
                try:
                    targets = [Target(s.app, s.port, CpuMeter(s.pids, engine)) for s in servers]
                    for rep in range(plan.runs):
                        for clients, n in plan.requests.items():
                            ms, cs = run_cell(
                                backend="postgresql",
                                clients=clients,
                                n=n,
                                rep=rep,
                                processes=processes,
                                plan=plan,
                                engine=engine,
                                client=client,
                                slack=slack,
                                targets=targets,
                                log=log,
                            )
                            measurements += ms
                            checks += cs
                finally:
                    for server in servers:
                        server.close()
                    bad = [s for s in servers if "Traceback" in s.output()]
                    for server in bad:
                        tail = server.output()[-3000:]
                        log(f"  !! {server.app} server ({processes} processes) logged a traceback:\n{tail}")
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


def _rps(m: Measurement) -> float:
    return m.result.sent / m.result.elapsed if m.result.elapsed else 0.0


def _ms(seconds: float | None, digits: int = 1) -> str:
    return "–" if seconds is None or math.isnan(seconds) else f"{seconds * 1000:.{digits}f}"


def _s(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.2f}"


def _row(m: Measurement) -> str:
    lat = _all(m.result)
    where = "in-process" if m.processes == 0 else f"{m.processes} proc"
    cpu = m.cpu_app / max(m.result.sent, 1)
    db = f" + db {_ms(m.cpu_db / max(m.result.sent, 1), 2)}" if m.cpu_db is not None else ""
    extra = f" drain {_s(m.drain)}s" if m.drain is not None else ""
    extra += f" roster {_s(m.roster_lag)}s" if m.roster_lag is not None else ""
    bad = f" errors {m.result.errors} non-200 {m.result.non_200}" if m.result.errors or m.result.non_200 else ""
    return (
        f"  {m.backend:10} {where:10} {m.clients:3d} clients {APPS[m.app]:26}: p50 {pct(lat, 0.5) * 1000:6.1f} ms  "
        f"p99 {pct(lat, 0.99) * 1000:7.1f} ms  {_rps(m):6.0f} req/s  CPU {_ms(cpu, 2)}{db} ms/req{extra}{bad}"
    )


@dataclass
class Summary:
    p50: float
    p99: float
    rps: float
    click_p99: float
    status_p99: float
    cpu_app: float  # seconds per request
    cpu_db: float | None
    drain: float | None
    roster_lag: float | None
    errors: int


def summarize(ms: list[Measurement]) -> Summary:
    """Median over runs of each figure."""

    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    def med_or_none(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    return Summary(
        p50=med([pct(_all(m.result), 0.5) for m in ms]),
        p99=med([pct(_all(m.result), 0.99) for m in ms]),
        rps=med([_rps(m) for m in ms]),
        click_p99=med([pct(m.result.latencies.get("click", []), 0.99) for m in ms]),
        status_p99=med([pct(m.result.latencies.get("status", []), 0.99) for m in ms]),
        cpu_app=med([m.cpu_app / max(m.result.sent, 1) for m in ms]),
        cpu_db=med_or_none([None if m.cpu_db is None else m.cpu_db / max(m.result.sent, 1) for m in ms]),
        drain=med_or_none([m.drain for m in ms]),
        roster_lag=med_or_none([m.roster_lag for m in ms]),
        errors=sum(m.result.errors + m.result.non_200 + m.result.timed_out for m in ms),
    )


Key = tuple[str, int, int]  # backend, clients, processes


def _summaries(measurements: list[Measurement]) -> dict[Key, dict[str, Summary]]:
    out: dict[Key, dict[str, Summary]] = {}
    for m in measurements:
        out.setdefault((m.backend, m.clients, m.processes), {})
    for key in out:
        for app in APPS:
            ms = [m for m in measurements if (m.backend, m.clients, m.processes) == key and m.app == app]
            if ms:
                out[key][app] = summarize(ms)
    return out


def _order(key: Key) -> tuple[bool, int, int]:
    return key[0] != "sqlite", key[2], key[1]


def _ratio(x: float, y: float) -> str:
    return f"{x / y:.2f}" if y and not math.isnan(x) and not math.isnan(y) else "–"


def _verdict(value: float, ok: bool) -> str:
    return "–" if math.isnan(value) else f"{value:.2f} {'✅' if ok else '❌'}"


def tables(measurements: list[Measurement], plan: Plan) -> str:
    s = _summaries(measurements)
    lines = [
        f"Median of {plan.runs} run(s). Latency = request sent -> HTTP response (what Slack sees). CPU = the serving"
        " process(es)' CPU over the measured load and what it left behind (the bot's refresher), per request; db ="
        " the PostgreSQL backends' (on SQLite the database works inside the app's process). Drain = last response"
        " -> every click stored (0: all were stored when the responses came back); roster = last response -> every"
        " desk's roster right.",
        "",
        "| backend | processes | clients | app | p50 ms | p99 ms | req/s | click p99 ms | /ibstatus p99 ms"
        " | CPU ms/req | db CPU ms/req | drain s | roster s | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(s, key=_order):
        backend, clients, processes = key
        where = "1 (in-process, waitress)" if processes == 0 else f"{processes} (gunicorn)"
        for app, x in s[key].items():
            lines.append(
                f"| {backend} | {where} | {clients} | {APPS[app]} | {x.p50 * 1000:.1f} | {x.p99 * 1000:.1f} | "
                f"{x.rps:.0f} | {x.click_p99 * 1000:.1f} | {x.status_p99 * 1000:.1f} | {_ms(x.cpu_app, 2)} | "
                f"{_ms(x.cpu_db, 2)} | {_s(x.drain)} | {_s(x.roster_lag)} | {x.errors} |"
            )
    lines += [
        "",
        "The bot against the floor (Bolt + one INSERT and COMMIT per click), same server, same database, same run."
        " Targets: throughput >= 0.5x at both concurrencies; p99 <= 2x at 10 clients.",
        "",
        "| backend | processes | clients | req/s bot / floor | p99 bot / floor | CPU bot / floor (app + db)"
        " | req/s bot / bare-ack | p99 bot / bare-ack |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(s, key=_order):
        backend, clients, processes = key
        got = s[key]
        if BOT not in got or FLOOR not in got:
            continue
        bot, floor = got[BOT], got[FLOOR]
        rps = bot.rps / floor.rps if floor.rps else float("nan")
        p99 = bot.p99 / floor.p99 if floor.p99 else float("nan")
        p99_cell = _verdict(p99, p99 <= 2.0) if clients == 10 else f"{p99:.2f}"
        cpu = (bot.cpu_app + (bot.cpu_db or 0.0)) / (floor.cpu_app + (floor.cpu_db or 0.0))
        bare = got.get(BARE_ACK)
        vs_bare = f"{_ratio(bot.rps, bare.rps)} | {_ratio(bot.p99, bare.p99)}" if bare else "– | –"
        where = "1 (in-process)" if processes == 0 else str(processes)
        lines.append(
            f"| {backend} | {where} | {clients} | {_verdict(rps, rps >= 0.5)} | {p99_cell} | {cpu:.2f} | {vs_bare} |"
        )
    many = sorted({k[2] for k in s if k[2] > 1})
    if many:
        lines += [
            "",
            f"{many[-1]} processes against 1 (gunicorn gthread workers, PostgreSQL), same run."
            " Target for the bot: throughput >= 1.6x, p99 no worse (<= 1.0x).",
            "",
            "| clients | app | req/s N / 1 | p99 N / 1 | CPU/req N / 1 |",
            "|---|---|---|---|---|",
        ]
        for clients in sorted({k[1] for k in s if k[2] == 1}):
            one, n = s.get(("postgresql", clients, 1), {}), s.get(("postgresql", clients, many[-1]), {})
            for app in (FLOOR, BOT):
                if app not in one or app not in n:
                    continue
                rps = n[app].rps / one[app].rps if one[app].rps else float("nan")
                p99 = n[app].p99 / one[app].p99 if one[app].p99 else float("nan")
                cpu = (n[app].cpu_app + (n[app].cpu_db or 0)) / (one[app].cpu_app + (one[app].cpu_db or 0))
                rps_cell = _verdict(rps, rps >= 1.6) if app == BOT else f"{rps:.2f}"
                p99_cell = _verdict(p99, p99 <= 1.0) if app == BOT else f"{p99:.2f}"
                lines.append(f"| {clients} | {APPS[app]} | {rps_cell} | {p99_cell} | {cpu:.2f} |")
    return "\n".join(lines)


def check_lines(checks: list[Check]) -> list[str]:
    lines = []
    for c in checks:
        verdict = "OK  " if c.ok else "FAIL"
        where = "in-process" if c.processes == 0 else f"{c.processes} proc"
        roster = ""
        if c.rosters_ok is not None:
            last = (c.example or "no chat.update").split(": ", 1)[-1]
            roster = f"; rosters right on {c.rosters_ok}/{c.desks} desk(s) after {c.updates} chat.update (last: {last})"
        lines.append(
            f"  [{verdict}] {c.backend:10} {where:10} {c.clients:3d} clients run {c.run} {APPS[c.app]}: {c.rows} stored"
            f" from {c.distinct} distinct traders (expected {c.expected} each){roster}"
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
    parser.add_argument("--quick", action="store_true", help="smoke run: few requests, one run, under a minute")
    parser.add_argument("--runs", type=int, default=None, help="repetitions per cell (median reported); default 3")
    parser.add_argument("--desk-traders", type=int, default=DESK_TRADERS, help="traders on each desk (default 2000)")
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="PostgreSQL: also serve the floor and the bot with 1 and with N gunicorn processes "
        "(default 2; with --quick 0: skipped)",
    )
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per measurement, at most")
    # internal: one server process of --processes mode
    parser.add_argument("--serve", choices=[FLOOR, BOT], help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--slack-url", help=argparse.SUPPRESS)
    parser.add_argument("--ready", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return _serve_main(args)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth is N" under load
    if args.quick:
        plan = Plan(
            requests={10: 150, 50: 250},
            warmup=50,
            time_limit=args.time_limit,
            runs=args.runs or 1,
            desk_traders=args.desk_traders,
            apps=(BARE_ACK, FLOOR, BOT),
            processes=args.processes or 0,  # --quick --processes 2: a smoke run of that mode too
        )
    else:
        plan = Plan(
            requests={10: 2000, 50: 2250},  # with the warm-up, 1,800 and 2,000 distinct clickers: one desk
            warmup=250,
            time_limit=args.time_limit,
            runs=args.runs or 3,
            desk_traders=args.desk_traders,
            apps=(BARE_DEFAULT, BARE_ACK, FLOOR, BOT),
            processes=2 if args.processes is None else args.processes,
        )
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    started = time.monotonic()
    load = os.getloadavg()
    print(f"machine: {machine()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"servers: {THREADS} threads per process; load generator and fake Slack in processes of their own")
    print(
        f"requests per cell: {plan.requests} (+{plan.warmup} warm-up), 1 in {STATUS_EVERY} is /ibstatus; desks of "
        f"{plan.desk_traders} traders, every click from a distinct trader"
    )
    measurements: list[Measurement] = []
    checks: list[Check] = []

    def log(line: str) -> None:
        print(f"[{time.monotonic() - started:4.0f}s] {line}", flush=True)

    try:
        for backend in backends:
            ms, cs = in_process(backend, plan, log)
            measurements += ms
            checks += cs
        if plan.processes > 1 and "postgresql" in backends:
            ms, cs = in_processes(plan, log)
            measurements += ms
            checks += cs
    finally:
        for load_process in _LOAD:
            load_process.stop()
    loads = [m.load for m in measurements]
    print()
    print(
        f"took {time.monotonic() - started:.0f} s; 1-minute load average during the run "
        f"{min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} cores (above the core count: other work competed)"
    )
    print()
    print(tables(measurements, plan))
    print()
    print("checks (every click stored exactly once; every roster right afterwards):")
    for line in check_lines(checks):
        print(line)
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
