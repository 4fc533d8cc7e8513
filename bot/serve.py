"""``preflight serve``: migrate, then run HTTP (or Socket Mode) with the scheduler in-process.

One process (waitress) by default; ``workers > 1`` (PostgreSQL only) hands over to
gunicorn (``bot.processes.serve_workers``). Either way the scheduler and the outbox worker
run in one leader process per database (``bot.processes.run_jobs``)."""

from __future__ import annotations

import logging
import signal
from types import FrameType

from waitress.server import create_server

from bot.config import Settings
from bot.db import make_engine
from bot.keys import check_at_start as check_keys
from bot.migrate import upgrade
from bot.processes import run_jobs, serve_workers
from bot.runtime import build

log = logging.getLogger(__name__)


def serve(settings: Settings, *, workers: int = 1) -> None:
    logging.getLogger().setLevel(settings.log_level)
    settings.require_slack()
    upgrade(settings.database_url)
    if workers > 1:
        engine = make_engine(settings.database_url)
        try:
            check_keys(engine, settings.secret_keys)  # stored secrets no key reads: one line, exit 2
        finally:
            engine.dispose()
        serve_workers(settings, workers)
        return
    runtime = build(settings)
    check_keys(runtime.engine, settings.secret_keys)  # stored secrets no key reads: one line, exit 2
    runtime.refresher.start()
    jobs = run_jobs(runtime, settings)  # the scheduler and the outbox worker, while this process leads
    # waitress: a production WSGI server (thread pool, no fork), serving /slack/events and /healthz.
    server = create_server(runtime.web, host="0.0.0.0", port=settings.port, threads=settings.threads)
    socket_mode = None
    if settings.slack_app_token:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        socket_mode = SocketModeHandler(runtime.bolt, settings.slack_app_token)
        socket_mode.connect()  # type: ignore[no-untyped-call]
        log.info("Socket Mode connected; HTTP serves /healthz only")

    def stop(signum: int, _frame: FrameType | None) -> None:
        # Runs in the main thread, inside server.run(): unwind it and clean up below.
        log.info("signal %s: shutting down", signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("IB Preflight listening on :%s", settings.port)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        jobs.stop()
        runtime.refresher.stop()
        if socket_mode is not None:
            socket_mode.close()  # type: ignore[no-untyped-call]
