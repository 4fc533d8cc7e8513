"""``preflight serve``: migrate, then run HTTP (or Socket Mode) with the scheduler in-process.

One process (waitress) by default; ``workers > 1`` (PostgreSQL only) hands over to
gunicorn (``bot.processes.serve_workers``). Either way the scheduler and the outbox worker
run in one leader process per database (``bot.processes.run_jobs``)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import ExitStack
from types import FrameType
from typing import TYPE_CHECKING

from slack_sdk import WebClient

from bot import metrics
from bot.config import ConfigError, Settings, prepare_database
from bot.db import make_engine
from bot.keys import check_at_start as check_keys
from bot.logs import PAYLOAD_LOGGERS as PAYLOAD_LOGGERS  # re-exported (bot.logs holds them now)
from bot.logs import SOCKET_MODE_LOGGER
from bot.logs import logging_configured as logging_configured
from bot.migrate import upgrade
from bot.processes import Serving, run_jobs, serve_workers, start_serving
from bot.runtime import Runtime, build, make_client
from bot.web import INVALID_TOKEN_ERRORS, SlackCheck, SlackHealth, failure_reason, make_server

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

log = logging.getLogger(__name__)


class ServeError(Exception):
    """The bot cannot start; the message is one line."""


def probe_client(settings: Settings) -> WebClient:
    """The client for auth.test: no retries and a short timeout (at every start, then once a minute)."""
    token, _ = settings.require_slack()
    return WebClient(token=token, base_url=settings.slack_api_url, timeout=5, retry_handlers=[])


def _start_worker(settings: Settings, first: SlackCheck) -> Serving:
    serving = start_serving(settings)
    health = SlackHealth(probe_client(settings), latest=first)  # the master's check at start, until its own
    serving.runtime.web.slack = health
    health.start()
    serving.health = health  # stopped with the rest of the worker's Serving
    return serving


def check_slack(settings: Settings) -> SlackHealth:
    """Ask Slack whether it accepts the bot token. A refused token stops the start (one line);
    an unreachable Slack is logged, and /healthz keeps reporting it (in Socket Mode, where
    every request comes through Slack, it stops the start too)."""
    health = SlackHealth(probe_client(settings))
    first = health.check()
    if first.state == "invalid":
        raise ConfigError(f"SLACK_BOT_TOKEN was refused by Slack ({first.detail}): check the bot token (xoxb-...)")
    if first.state == "unreachable" and settings.slack_app_token:
        raise ServeError(f"Socket Mode needs Slack, which is unreachable at {settings.slack_api_url}: {first.detail}")
    if first.state == "unreachable":
        log.warning("Slack is unreachable at %s (%s): serving anyway", settings.slack_api_url, first.detail)
    return health


def socket_mode_url(settings: Settings, app_token: str) -> str:
    """A WebSocket URL for Socket Mode from ``apps.connections.open``, or one line: the app
    token refused (ConfigError) or Slack not answering (ServeError). Asked before anything
    starts, rather than inside SocketModeHandler.connect(), which logs a multi-line error."""
    try:
        return str(make_client(settings).apps_connections_open(app_token=app_token)["url"])
    except Exception as exc:
        reason = failure_reason(exc)
        if reason in INVALID_TOKEN_ERRORS:
            raise ConfigError(f"SLACK_APP_TOKEN was refused by Slack ({reason}): check the app-level token") from None
        raise ServeError(f"Socket Mode could not connect to Slack at {settings.slack_api_url}: {reason}") from None


def open_socket_mode(runtime: Runtime, app_token: str, url: str) -> SocketModeHandler:
    """A connected Socket Mode handler, or a one-line ServeError with nothing left running."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    socket_log = logging.getLogger(SOCKET_MODE_LOGGER)
    handler = SocketModeHandler(runtime.bolt, app_token, logger=socket_log)
    handler.client.wss_uri = url  # the URL socket_mode_url() was given: connect() asks for none
    errors: list[Exception] = []
    handler.client.on_error_listeners.append(errors.append)
    # connect() logs a failure to connect and swallows it (then retries forever in the
    # background): at start it is reported below, once, and the start stops.
    level = socket_log.level
    socket_log.setLevel(logging.CRITICAL)
    try:
        handler.connect()  # type: ignore[no-untyped-call]
    except Exception as exc:
        errors.append(exc)
    handler.client.on_error_listeners.remove(errors.append)
    if errors or not handler.client.is_connected():
        close_socket_mode(handler)  # its background retries stay quiet until gone
        reason = failure_reason(errors[0]) if errors else "no connection"
        raise ServeError(f"Socket Mode could not connect to Slack's WebSocket: {reason}")
    socket_log.setLevel(level)
    return handler


def close_socket_mode(handler: SocketModeHandler, *, patience: float = 5.0) -> bool:
    """``handler.close()``, which slack_sdk's builtin client can leave waiting forever: close()
    marks the session terminated, then joins the thread that reads it (slack_sdk #1962); if that
    thread was just starting a session (a reconnect), ``_run_current_session`` sets the mark
    back to False after close() set it, and ``run_until_completion`` then sleeps on a closed
    socket until the mark turns True -- which nothing does. Here the mark is set again until
    close() returns, so a shutdown ends. False if close() had not returned after ``patience``
    seconds (its threads are daemons: the process still stops)."""
    client = handler.client
    closing = threading.Thread(target=handler.close, name="socket-mode-close", daemon=True)
    closing.start()
    deadline = time.monotonic() + patience
    while closing.is_alive() and time.monotonic() < deadline:
        client.current_session_state.terminated = True
        closing.join(0.05)
    if closing.is_alive():
        log.warning("Socket Mode did not close within %.0f s; stopping without it", patience)
        return False
    return True


def process_model(settings: Settings, workers: int) -> str:
    """The process model in a phrase, for the start-up line."""
    if workers > 1:
        return (
            f"{workers} gunicorn gthread workers x {settings.threads} threads on :{settings.port}; "
            "the leader runs the scheduler and the outbox; /metrics adds up every worker"
        )
    if settings.slack_app_token:
        return f"one process, Socket Mode (HTTP on :{settings.port} for /healthz and /metrics)"
    return f"one process (waitress, {settings.threads} threads) on :{settings.port}"


def announce(settings: Settings, workers: int, slack: SlackCheck) -> None:
    """Where the bot stands, one line each, once nothing can refuse the start any more (a
    refused start says one line and nothing else): the database, the process model, the
    Slack workspace and, in a staging rehearsal, the clock offset."""
    log.info("database: %s", settings.database_label)
    log.info("processes: %s", process_model(settings, workers))
    log.info("Slack workspace: %s", slack.workspace if slack.state == "ok" else f"unknown (Slack is {slack.state})")
    if settings.clock_offset:
        log.warning(
            "PREFLIGHT_CLOCK_OFFSET=%s: the bot's clock is moved %+d seconds from the real time (staging only)",
            settings.clock_offset,
            settings.clock_offset,
        )


def serve(settings: Settings, *, workers: int = 1) -> None:
    settings.require_slack()
    prepare_database(settings)
    upgrade(settings.database_url)  # before the log level is lowered: `preflight migrate` is as quiet
    with ExitStack() as cleanup:  # stops, in reverse order, whatever was started
        # Before anything counts: prometheus_client's mode follows the process model (bot.metrics).
        cleanup.enter_context(metrics.process_model(workers))
        cleanup.enter_context(logging_configured(settings.log_level, settings.log_format))
        health = check_slack(settings)
        if workers > 1:
            engine = make_engine(settings.database_url)
            try:
                check_keys(engine, settings.secret_keys)  # stored secrets no key reads: one line, exit 2
            finally:
                engine.dispose()
            announce(settings, workers, health.latest)
            serve_workers(settings, workers, start=lambda: _start_worker(settings, health.latest))
            return
        runtime = build(settings)
        runtime.web.slack = health
        check_keys(runtime.engine, settings.secret_keys)  # stored secrets no key reads: one line, exit 2

        def stop(signum: int, _frame: FrameType | None) -> None:
            # Runs in the main thread: unwind whatever is running (start-up included) and clean up below.
            log.info("signal %s: shutting down", signum)
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:  # a signal during start-up stops as cleanly as one while serving
            wss_url = socket_mode_url(settings, settings.slack_app_token) if settings.slack_app_token else None
            if settings.slack_app_token and wss_url is not None:
                socket_mode = open_socket_mode(runtime, settings.slack_app_token, wss_url)
                cleanup.callback(close_socket_mode, socket_mode)
                log.info("Socket Mode connected; HTTP serves /healthz and /metrics only")
            try:
                # waitress: a production WSGI server (thread pool, no fork), serving /slack/events and /healthz.
                server = make_server(runtime.web, host="0.0.0.0", port=settings.port, threads=settings.threads)
            except OSError as exc:
                raise ServeError(f"cannot listen on PORT {settings.port}: {exc.strerror or exc}") from None
            announce(settings, workers, health.latest)
            runtime.refresher.start()
            cleanup.callback(runtime.refresher.stop)
            jobs = run_jobs(runtime, settings)  # the scheduler and the outbox worker, while this process leads
            cleanup.callback(jobs.stop)
            health.start()
            cleanup.callback(health.stop)
            cleanup.callback(server.close)

            log.info("IB Preflight listening on :%s", settings.port)
            server.run()
        except KeyboardInterrupt:
            pass
