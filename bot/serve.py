"""``preflight serve``: migrate, then run HTTP (or Socket Mode) with the scheduler in-process."""

from __future__ import annotations

import logging
import signal
from types import FrameType

from waitress.server import create_server

from bot.config import Settings
from bot.delivery.pager import Pager
from bot.keys import check_at_start as check_keys
from bot.migrate import upgrade
from bot.runtime import build, outbox_worker
from bot.scheduler import Scheduler

log = logging.getLogger(__name__)


def serve(settings: Settings) -> None:
    logging.getLogger().setLevel(settings.log_level)
    settings.require_slack()
    upgrade(settings.database_url)
    if settings.clock_offset:
        log.warning(
            "PREFLIGHT_CLOCK_OFFSET=%s: the bot's clock is moved %+d seconds from the real time (staging only)",
            settings.clock_offset,
            settings.clock_offset,
        )
    runtime = build(settings)
    check_keys(runtime.engine, settings.secret_keys)  # stored secrets no key reads: one line, exit 2
    runtime.refresher.start()
    scheduler = Scheduler(runtime.engine, runtime.client, runtime.refresher, runtime.deps.clock)
    scheduler.start()
    # The outbox runs on the same clock: what a pass queues is due by that clock.
    worker = outbox_worker(runtime.engine, runtime.client, Pager(keys=settings.secret_keys), clock=runtime.deps.clock)
    worker.start()
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
        scheduler.shutdown()
        worker.stop()
        runtime.refresher.stop()
        if socket_mode is not None:
            socket_mode.close()  # type: ignore[no-untyped-call]
