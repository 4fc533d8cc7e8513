"""Which process runs what: the scheduler and outbox in one leader per database, and
``preflight serve --workers N`` (several serving processes on PostgreSQL, under gunicorn).

- **Serving** runs in every process: the WSGI app (``/slack/events``, ``/healthz``) and the
  roster refresher (each process renders the runs its own clicks touched; the refresher's
  claim in the database coalesces them).
- **Jobs** -- the scheduler (checklist posts, escalation passes, weekly summaries) and the
  outbox worker -- run in one process per database at a time: the holder of a PostgreSQL
  session advisory lock (``Leadership``). The other processes and replicas stand by and
  retry every few seconds; when the leader exits or its connection drops, the lock goes
  with it and another one takes over. Overlap during a hand-over is harmless: every job
  claims its work in the database (unique keys, leases), and the Slack pacer's budget is a
  database row (``bot.delivery.pacing``), so even two senders at once keep to the rate.
  SQLite serves one process by construction (its write lock is per process), which is
  then always the leader.
- ``serve_workers`` runs N gunicorn ``gthread`` workers (``Settings.threads`` threads each)
  on one listening socket. The master only supervises (it imports the app's modules but
  opens no connection and starts no thread before forking); each worker builds its own
  runtime after the fork.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from bot import logs, metrics
from bot.config import Settings
from bot.runtime import Runtime, build, outbox_worker

if TYPE_CHECKING:
    from bot.delivery.pager import Pager
    from bot.delivery.worker import OutboxWorker
    from bot.scheduler import Scheduler
    from bot.web import SlackHealth

log = logging.getLogger(__name__)

LEADER_LOCK_ID = 7_345_002  # pg advisory lock held by the process that runs the jobs (7_345_001: migrations)
CHECK_SECONDS = 5.0


class Leadership:
    """Run ``on_elected`` while this process holds the database-wide leader lock, and
    ``on_deposed`` when it loses it (its connection broke) or stops.

    PostgreSQL: a session advisory lock on a connection of its own, tried and then checked
    every ``check_every`` seconds. Any other database: this process leads at once (SQLite
    serves one process)."""

    def __init__(
        self,
        engine: Engine,
        *,
        on_elected: Callable[[], None],
        on_deposed: Callable[[], None],
        check_every: float = CHECK_SECONDS,
        lock_id: int = LEADER_LOCK_ID,
    ) -> None:
        self.engine = engine
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._check_every = check_every
        self._lock_id = lock_id
        self._conn: Connection | None = None
        self._leading = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition()

    @property
    def leading(self) -> bool:
        return self._leading

    def start(self) -> None:
        """Begin in a thread of its own (starting the jobs is not on the way to serving requests)."""
        alone = self.engine.dialect.name != "postgresql"
        self._thread = threading.Thread(target=self._elected if alone else self._loop, name="leadership", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._leading:
            self._deposed()
        self._release()

    def wait_leading(self, timeout: float) -> bool:
        """For tests: wait until this process leads."""
        with self._changed:
            return self._changed.wait_for(lambda: self._leading, timeout)

    # -- internals ----------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._conn is None:
                self._try()
            elif not self._alive():
                log.warning("lost the leader lock (its database connection broke): standing by")
                self._deposed()
                self._release()
                continue  # try again at once
            self._stop.wait(self._check_every)

    def _try(self) -> None:
        try:
            conn = self.engine.connect()
        except Exception as exc:
            log.warning("leader election: cannot connect: %s", exc)
            return
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:id)"), {"id": self._lock_id}).scalar())
            conn.commit()
        except Exception as exc:
            log.warning("leader election failed: %s", exc)
            conn.invalidate()
            conn.close()
            return
        if not got:
            conn.close()
            return
        self._conn = conn
        self._elected()

    def _alive(self) -> bool:
        assert self._conn is not None
        try:
            self._conn.execute(text("SELECT 1"))
            self._conn.commit()
            return True
        except Exception:
            return False

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": self._lock_id})
            conn.commit()
            conn.close()
        except Exception:
            conn.invalidate()  # the server releases a broken session's locks itself
            conn.close()

    def _elected(self) -> None:
        log.info("process %s leads: it runs the scheduler and the outbox worker", os.getpid())
        try:
            self._on_elected()
        except Exception:
            log.exception("starting the jobs failed")
        with self._changed:
            self._leading = True
            self._changed.notify_all()

    def _deposed(self) -> None:
        with self._changed:
            self._leading = False
            self._changed.notify_all()
        try:
            self._on_deposed()
        except Exception:
            log.exception("stopping the jobs failed")


class Jobs:
    """The scheduler and the outbox worker of one runtime; started and stopped by its Leadership."""

    def __init__(self, runtime: Runtime, settings: Settings) -> None:
        self.runtime = runtime
        self.settings = settings
        self._running: tuple[Scheduler, OutboxWorker, Pager] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        from bot.delivery.pager import Pager
        from bot.scheduler import Scheduler

        with self._lock:
            if self._running is not None:
                return
            rt = self.runtime
            scheduler = Scheduler(rt.engine, rt.client, rt.refresher, rt.deps.clock)
            pager = Pager(keys=self.settings.secret_keys, allow_private=self.settings.allow_private_pager)
            # The outbox runs on the app's clock too: what a pass queues is due by that clock.
            worker = outbox_worker(rt.engine, rt.client, pager, clock=rt.deps.clock)
            scheduler.start()
            worker.start()
            self._running = (scheduler, worker, pager)

    def stop(self) -> None:
        with self._lock:
            running, self._running = self._running, None
        if running is not None:
            scheduler, worker, pager = running
            scheduler.shutdown()
            worker.stop()
            pager.close()


def run_jobs(runtime: Runtime, settings: Settings) -> Leadership:
    """Start the jobs in this process whenever it leads; ``stop()`` the result on the way out."""
    jobs = Jobs(runtime, settings)
    leadership = Leadership(runtime.engine, on_elected=jobs.start, on_deposed=jobs.stop)
    leadership.start()
    return leadership


class Served(Protocol):
    """What a serving process runs: a WSGI app, and how to stop what came with it."""

    @property
    def wsgi(self) -> Callable[..., Any]: ...

    def stop(self) -> None: ...


@dataclass
class Serving:
    """What one bot process runs: its runtime (WSGI app, refresher), its part in the jobs and,
    in a gunicorn worker, its own background auth.test for its /healthz (``health``)."""

    runtime: Runtime
    leadership: Leadership
    health: SlackHealth | None = None

    @property
    def wsgi(self) -> Callable[..., Any]:
        return self.runtime.web

    def stop(self) -> None:
        if self.health is not None:
            self.health.stop()
        self.leadership.stop()
        self.runtime.refresher.stop()
        self.runtime.engine.dispose()


def start_serving(settings: Settings, **build_options: Any) -> Serving:
    """Build the runtime in this process, start its refresher and its part in the jobs."""
    runtime = build(settings, **build_options)
    runtime.refresher.start()
    return Serving(runtime, run_jobs(runtime, settings))


def gunicorn_options(settings: Settings, workers: int, *, bind: str | None = None) -> dict[str, Any]:
    debug = settings.log_level == "DEBUG"
    return {
        "bind": bind or f"0.0.0.0:{settings.port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": settings.threads,
        "preload_app": False,  # each worker builds its own engine, pools and threads after the fork
        "proc_name": "preflight",
        "loglevel": settings.log_level.lower(),
        "errorlog": "-",
        "accesslog": "-" if debug else None,
        # The request id the app sent back (X-Request-Id): the same as in the app's own lines.
        "access_log_format": '%(h)s "%(r)s" %(s)s %(b)s %(M)sms pid=%(p)s request_id=%({x-request-id}o)s',
        "graceful_timeout": 20,
    }


def json_gunicorn_logger() -> type[Any]:
    """gunicorn's logger with its error and access lines as JSON objects too (LOG_FORMAT=json),
    with the app's context fields (bot.logs)."""
    from gunicorn.glogging import Logger

    class JsonLogger(Logger):  # type: ignore[misc]
        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            for handler in [*self.error_log.handlers, *self.access_log.handlers]:
                handler.setFormatter(logs.json_formatter())
                handler.addFilter(logs.ContextFields())

    return JsonLogger


def serve_workers(
    settings: Settings,
    workers: int,
    *,
    bind: str | None = None,
    start: Callable[[], Served] | None = None,
) -> None:
    """Serve with ``workers`` gunicorn gthread processes until SIGTERM / SIGINT (the master
    then stops the workers gracefully; each stops its jobs, refresher and pool)."""
    from gunicorn.app.base import BaseApplication

    starter: Callable[[], Served] = start or (lambda: start_serving(settings))
    mine: list[Served] = []  # this process's Serving: set in each worker after the fork

    def worker_exit(_arbiter: Any, _worker: Any) -> None:
        while mine:
            mine.pop().stop()

    def child_exit(_arbiter: Any, worker: Any) -> None:
        metrics.process_exited(worker.pid)  # in the master: a gone worker's live gauges go too

    class Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in gunicorn_options(settings, workers, bind=bind).items():
                self.cfg.set(key, value)
            self.cfg.set("worker_exit", worker_exit)
            self.cfg.set("child_exit", child_exit)
            if settings.log_format == "json":
                self.cfg.set("logger_class", json_gunicorn_logger())
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25: no ~/.gunicorn/*.ctl
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Any:
            serving = starter()
            mine.append(serving)
            return serving.wsgi

    try:
        Application().run()
    except SystemExit as exc:  # the arbiter exits when it stops; a clean stop is a normal return
        if exc.code not in (None, 0):
            raise
