"""Logging for ``preflight serve``: levels, the format (``LOG_FORMAT``: text or one JSON object
a line), and the context each line carries (request id, desk, Slack user, scheduler job).

- **Context.** ``bound(request_id=..., desk=..., user=..., job=...)`` sets fields for the code
  it wraps (a contextvar, so each request thread and job has its own); ``ContextFields``, a
  filter on the root handlers, copies them onto every record. ``bot.web`` binds a request id
  for each HTTP request, its Bolt middleware the user and desk, ``bot.scheduler`` the job
  (and the desk of a desk's own job); ``ContextExecutor`` carries the fields to the work a
  listener hands to a background pool.
- **What is never logged.** Request and response bodies (trader notes, drill codes) are kept
  out by floors on the loggers that log them (``PAYLOAD_LOGGERS``) and by ``_WebApiSummary``,
  which keeps slack_sdk's DEBUG lines to the method URL and HTTP status. httpx logs each
  pager request's URL at INFO (a webhook's path may be its secret): it is kept at WARNING.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from contextvars import ContextVar, copy_context
from functools import partial
from types import MappingProxyType
from typing import Literal, ParamSpec, TypeVar

from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # the CLI's (bot.cli.main)

# The fields a line may carry, when they apply.
FIELDS = ("request_id", "desk", "user", "job")

# Loggers that get whole request and response bodies (trader notes) at DEBUG: the Slack
# libraries, the Bolt app's own logger (named in bot/slack/app.py) and Socket Mode's.
BOLT_APP_LOGGER = "bot.slack.bolt"
SOCKET_MODE_LOGGER = "bot.socket_mode"
PAYLOAD_LOGGERS = ("slack_sdk", "slack_bolt", BOLT_APP_LOGGER, SOCKET_MODE_LOGGER)
# httpx logs every request's URL at INFO (a pager webhook's path can be its secret); httpcore
# logs connection chatter at DEBUG. Neither is needed below WARNING.
URL_LOGGERS = ("httpx", "httpcore")
_WEB_API_LOGGER = "slack_sdk.web.base_client"
_SEND_FAILED = "Failed to send a request to Slack API server"

_context: ContextVar[Mapping[str, str]] = ContextVar("preflight_log_context", default=MappingProxyType({}))

P = ParamSpec("P")
T = TypeVar("T")


# --- context ------------------------------------------------------------------------------


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def current() -> Mapping[str, str]:
    """The fields bound where this runs (empty outside any request or job)."""
    return _context.get()


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """The current fields plus ``fields`` (None values are left out) while the block runs."""
    added = {k: v for k, v in fields.items() if v}
    token = _context.set({**_context.get(), **added})
    try:
        yield
    finally:
        _context.reset(token)


def add(**fields: str | None) -> None:
    """Add ``fields`` (None values are left out) to the enclosing ``bound()`` until it ends
    (it puts back what was there before it)."""
    added = {k: v for k, v in fields.items() if v}
    if added:
        _context.set({**_context.get(), **added})


def replace(**fields: str | None) -> None:
    """Exactly ``fields`` from now on in this thread (for a thread that runs one request after
    another with no scope around each, as Socket Mode's pool does)."""
    _context.set({k: v for k, v in fields.items() if v})


class ContextFields(logging.Filter):
    """Copies the bound fields onto each record (a handler's filter: it sees every record the
    handler writes, whichever logger made it). A field given with ``extra=`` wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class ContextExecutor(Executor):
    """An executor that runs each task in a copy of the submitter's context, so what a
    listener hands to the background pool logs with the request's id, desk and user."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return self.inner.submit(partial(copy_context().run, fn, *args, **kwargs))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.inner.shutdown(wait=wait, cancel_futures=cancel_futures)


# --- formats ------------------------------------------------------------------------------


def json_formatter() -> logging.Formatter:
    """One JSON object per record (python-json-logger): time (UTC, ISO 8601), level, logger,
    pid, message, the context fields that apply and, for an exception, its traceback."""
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        "%(levelname)s %(name)s %(process)d %(message)s",
        rename_fields={"levelname": "level", "name": "logger", "process": "pid"},
        timestamp="time",
    )


def formatter(fmt: LogFormat) -> logging.Formatter:
    return json_formatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


# --- levels and filters -------------------------------------------------------------------


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


class _NoTokenNotice(logging.Filter):
    """Bolt warns at every start that the client's token wins over SLACK_BOT_TOKEN from the
    environment: they are the same token (bot.runtime builds the client from it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


_NO_TOKEN_NOTICE = _NoTokenNotice()
_CONTEXT_FIELDS = ContextFields()


def dress(handlers: Iterable[logging.Handler], fmt: LogFormat) -> Callable[[], None]:
    """Give ``handlers`` the format and the context filter; returns how to put them back."""
    saved = [(h, h.formatter) for h in handlers]
    for handler, _ in saved:
        if fmt == "json":
            handler.setFormatter(json_formatter())
        handler.addFilter(_CONTEXT_FIELDS)

    def undress() -> None:
        for handler, was in saved:
            handler.removeFilter(_CONTEXT_FIELDS)
            if fmt == "json":
                handler.setFormatter(was)

    return undress


@contextmanager
def logging_configured(level: str, fmt: LogFormat = "text") -> Iterator[None]:
    """The root logger at ``level`` and its handlers in ``fmt``; the Slack libraries never
    below INFO (at DEBUG they log payloads), except slack_sdk's Web API calls, reduced to
    method URL and HTTP status; httpx and httpcore at WARNING. Everything is put back on the
    way out (serve also runs in-process, in tests)."""
    names = ["", *PAYLOAD_LOGGERS, *URL_LOGGERS, _WEB_API_LOGGER]
    saved = {name: logging.getLogger(name).level for name in names}
    root = logging.getLogger()
    web_api, bolt = logging.getLogger(_WEB_API_LOGGER), logging.getLogger(BOLT_APP_LOGGER)
    root.setLevel(level)
    floor = max(logging.INFO, logging.getLevelName(level))
    for name in PAYLOAD_LOGGERS:
        logging.getLogger(name).setLevel(floor)
    for name in URL_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    web_api.setLevel(logging.getLevelName(level))
    web_api.addFilter(_SUMMARY)
    bolt.addFilter(_NO_TOKEN_NOTICE)
    undress = dress(list(root.handlers), fmt)
    try:
        yield
    finally:
        undress()
        web_api.removeFilter(_SUMMARY)
        bolt.removeFilter(_NO_TOKEN_NOTICE)
        for name, was in saved.items():
            logging.getLogger(name).setLevel(was)
