"""``preflight serve``: migrate, then run HTTP (or Socket Mode) with the scheduler in-process."""

from __future__ import annotations

import logging
import re
import signal
from contextlib import ExitStack
from types import FrameType
from typing import TYPE_CHECKING

from slack_sdk import WebClient

from bot.config import ConfigError, Settings, prepare_database
from bot.delivery.outbox import OutboxWorker
from bot.delivery.pager import Pager
from bot.migrate import upgrade
from bot.runtime import Runtime, build
from bot.scheduler import Scheduler
from bot.web import INVALID_TOKEN_ERRORS, SlackHealth, failure_reason, make_server

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

log = logging.getLogger(__name__)

# Libraries that log whole request and response bodies (trader notes) at DEBUG.
PAYLOAD_LOGGERS = ("slack_sdk", "slack_bolt")
_WEB_API_LOGGER = "slack_sdk.web.base_client"
_SEND_FAILED = "Failed to send a request to Slack API server"


class ServeError(Exception):
    """The bot cannot start; the message is one line."""


class _WebApiSummary(logging.Filter):
    """Keeps slack_sdk's DEBUG lines about Web API calls to the URL and the status: the
    library formats the request parameters and the response body into the same line."""

    _REQUEST = re.compile(r"Sending a request - url: (\S+?),")
    _RESPONSE = re.compile(r"Received the following response - status: (\d+),")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(_SEND_FAILED):
            return False  # the exception that follows reaches the caller, which reports it in its own words
        if record.levelno > logging.DEBUG:
            return True
        if found := self._REQUEST.match(message):
            record.msg, record.args = "Slack Web API call %s", (found.group(1),)
            return True
        if found := self._RESPONSE.match(message):
            record.msg, record.args = "Slack Web API answered HTTP %s", (found.group(1),)
            return True
        return False  # anything else at DEBUG from there may carry a body


_SUMMARY = _WebApiSummary()


def configure_logging(level: str) -> None:
    """The root logger at ``level``; the Slack libraries never below INFO (at DEBUG they log
    payloads), except slack_sdk's Web API calls, reduced to method URL and HTTP status."""
    logging.getLogger().setLevel(level)
    floor = max(logging.INFO, logging.getLevelName(level))
    for name in PAYLOAD_LOGGERS:
        logging.getLogger(name).setLevel(floor)
    web_api = logging.getLogger(_WEB_API_LOGGER)
    web_api.setLevel(logging.getLevelName(level))
    if _SUMMARY not in web_api.filters:
        web_api.addFilter(_SUMMARY)


def check_slack(settings: Settings) -> SlackHealth:
    """Ask Slack whether it accepts the bot token. A refused token stops the start (one line);
    an unreachable Slack is logged, and /healthz keeps reporting it (in Socket Mode, where
    every request comes through Slack, it stops the start too)."""
    token, _ = settings.require_slack()
    # No retries and a short timeout: this runs on every start and then once a minute.
    client = WebClient(token=token, base_url=settings.slack_api_url, timeout=5, retry_handlers=[])
    health = SlackHealth(client)
    first = health.check()
    if first.state == "invalid":
        raise ConfigError(f"SLACK_BOT_TOKEN was refused by Slack ({first.detail}): check the bot token (xoxb-...)")
    if first.state == "unreachable" and settings.slack_app_token:
        raise ServeError(f"Socket Mode needs Slack, which is unreachable at {settings.slack_api_url}: {first.detail}")
    if first.state == "unreachable":
        log.warning("Slack is unreachable at %s (%s): serving anyway", settings.slack_api_url, first.detail)
    return health


def open_socket_mode(runtime: Runtime, app_token: str) -> SocketModeHandler:
    """A connected Socket Mode handler, or a one-line ServeError (a refused app token, or
    Slack not reachable) with nothing left running."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    try:
        # Asked here rather than inside connect(), which logs a multi-line error and raises.
        url = runtime.client.apps_connections_open(app_token=app_token)["url"]
    except Exception as exc:
        reason = failure_reason(exc)
        if reason in INVALID_TOKEN_ERRORS:
            raise ConfigError(f"SLACK_APP_TOKEN was refused by Slack ({reason}): check the app-level token") from None
        raise ServeError(
            f"Socket Mode could not connect to Slack at {runtime.settings.slack_api_url}: {reason}"
        ) from None
    handler = SocketModeHandler(runtime.bolt, app_token)
    handler.client.wss_uri = url
    try:
        handler.connect()  # type: ignore[no-untyped-call]
    except Exception as exc:
        handler.close()  # type: ignore[no-untyped-call]
        raise ServeError(f"Socket Mode could not connect to Slack's WebSocket: {failure_reason(exc)}") from None
    return handler


def serve(settings: Settings) -> None:
    settings.require_slack()
    prepare_database(settings)
    upgrade(settings.database_url)  # before the log level is lowered: `preflight migrate` is as quiet
    configure_logging(settings.log_level)
    health = check_slack(settings)
    runtime = build(settings)
    runtime.web.slack = health
    with ExitStack() as cleanup:  # stops, in reverse order, whatever was started
        if settings.slack_app_token:
            socket_mode = open_socket_mode(runtime, settings.slack_app_token)
            cleanup.callback(socket_mode.close)
            log.info("Socket Mode connected; HTTP serves /healthz only")
        try:
            # waitress: a production WSGI server (thread pool, no fork), serving /slack/events and /healthz.
            server = make_server(runtime.web, host="0.0.0.0", port=settings.port, threads=settings.threads)
        except OSError as exc:
            raise ServeError(f"cannot listen on PORT {settings.port}: {exc.strerror or exc}") from None
        runtime.refresher.start()
        cleanup.callback(runtime.refresher.stop)
        outbox_worker = OutboxWorker(runtime.engine, runtime.client, Pager(secret_key=settings.secret_key))
        outbox_worker.start()
        cleanup.callback(outbox_worker.stop)
        scheduler = Scheduler(runtime.engine, runtime.client, runtime.refresher, runtime.deps.clock)
        scheduler.start()
        cleanup.callback(scheduler.shutdown)
        health.start()
        cleanup.callback(health.stop)
        cleanup.callback(server.close)

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
