"""The WSGI application: POST /slack/events (signature checked here) and GET /healthz."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import Engine
from waitress.server import BaseWSGIServer, MultiSocketServer, create_server

from bot import outage
from bot.db import REQUEST_WAIT, ping, waiting_at_most

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # Slack's payloads are a few KiB; a view submission stays far below this
MAX_SKEW = 300  # seconds; Slack's own recommendation
# Unix seconds in ASCII digits; 11 digits last until the year 5138. (str.isdigit() accepts
# '²' and other digits int() refuses; int() refuses more than 4300 digits.)
_TIMESTAMP = re.compile(r"[0-9]{1,11}")


def make_server(app: Any, *, host: str, port: int, threads: int) -> BaseWSGIServer | MultiSocketServer:
    """The waitress server for ``app``: refuses a body over MAX_BODY while reading it
    (waitress would otherwise spool up to 1 GiB per request into temporary files)."""
    # waitress refuses a body of max_request_body_size bytes or more: allow exactly MAX_BODY.
    return create_server(app, host=host, port=port, threads=threads, max_request_body_size=MAX_BODY + 1)


# Slack's answers to auth.test that mean the token itself is no good (not that Slack is down).
INVALID_TOKEN_ERRORS = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"})

SlackState = Literal["unchecked", "ok", "unreachable", "invalid"]


@dataclass(frozen=True)
class SlackCheck:
    state: SlackState
    detail: str = ""  # Slack's error code, or why it could not be reached
    checked_at: datetime | None = None


def failure_reason(exc: BaseException) -> str:
    """One line on why a call to Slack failed: Slack's error code, or the network's reason."""
    if isinstance(exc, SlackApiError):
        error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
        return str(error or f"HTTP {exc.response.status_code}")
    reason = getattr(exc, "reason", None) or exc  # urllib's URLError wraps the socket error
    text = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
    return str(text).splitlines()[0]


class SlackHealth:
    """Whether Slack accepts the bot token (``auth.test``), checked at start and then every
    ``interval`` seconds in the background; /healthz reports the latest answer."""

    def __init__(self, client: WebClient, *, interval: float = 60.0, latest: SlackCheck | None = None) -> None:
        self.client = client
        self.interval = interval
        self._latest = latest or SlackCheck("unchecked")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def latest(self) -> SlackCheck:
        return self._latest

    def check(self) -> SlackCheck:
        try:
            self.client.auth_test()
            result = SlackCheck("ok", checked_at=datetime.now(UTC))
        except SlackApiError as exc:
            reason = failure_reason(exc)
            state: SlackState = "invalid" if reason in INVALID_TOKEN_ERRORS else "unreachable"
            result = SlackCheck(state, reason, datetime.now(UTC))
        except Exception as exc:  # connection refused, DNS, timeout, a proxy's HTML page
            result = SlackCheck("unreachable", failure_reason(exc), datetime.now(UTC))
        previous, self._latest = self._latest, result
        if previous.state not in ("unchecked", result.state):
            if result.state == "ok":
                log.info("Slack answers again (auth.test ok)")
            else:
                log.warning(
                    "Slack is %s: %s",
                    "refusing the bot token" if result.state == "invalid" else "unreachable",
                    result.detail,
                )
        return result

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="slack-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()


class WebApp:
    def __init__(
        self,
        bolt: App,
        *,
        signing_secret: str,
        engine: Engine,
        now: Callable[[], float] = time.time,
        clock_offset: int = 0,
        slack: SlackHealth | None = None,
    ) -> None:
        self.bolt = bolt
        self.engine = engine
        self.secret = signing_secret.encode()
        self.now = now  # the real time: Slack signs requests with it (never the offset clock)
        self.clock_offset = clock_offset
        self.slack = slack  # set by serve: /healthz reports Slack's reachability from it

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz":
            if method not in ("GET", "HEAD"):
                return _reply(start_response, 405, {"error": "method not allowed"})
            return self._health(start_response)
        if path == "/slack/events":
            if method != "POST":
                return _reply(start_response, 405, {"error": "method not allowed"})
            return self._slack(environ, start_response)
        return _reply(start_response, 404, {"error": "not found"})

    def _health(self, start_response: StartResponse) -> Iterable[bytes]:
        """200 while the database answers (503 when not), with Slack's last known reachability:
        a Slack outage is reported, not a reason to take the bot out of service."""
        healthy = ping(self.engine)
        slack = self.slack.latest if self.slack is not None else SlackCheck("unchecked")
        body: dict[str, str | None] = {
            "database": "ok" if healthy else "unreachable",
            "slack": slack.state,
            "slack_checked_at": slack.checked_at.isoformat(timespec="seconds") if slack.checked_at else None,
        }
        if slack.detail:
            body["slack_error"] = slack.detail
        if self.clock_offset:  # a staging rehearsal: say so, and what time the bot thinks it is
            body["clock_offset_seconds"] = str(self.clock_offset)
            body["clock"] = (datetime.now(UTC) + timedelta(seconds=self.clock_offset)).isoformat(timespec="seconds")
        return _reply(start_response, 200 if healthy else 503, body)

    def _slack(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _reply(start_response, 400, {"error": "bad content length"})
        if length > MAX_BODY:
            return _reply(start_response, 413, {"error": "payload too large"})
        raw = environ["wsgi.input"].read(length) if length else b""
        headers: dict[str, str | Sequence[str]] = {
            k[5:].replace("_", "-").lower(): str(v) for k, v in environ.items() if k.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = str(environ["CONTENT_TYPE"])
        if not self._signed(raw, headers):
            return _reply(start_response, 401, {"error": "invalid signature"})
        try:
            body = raw.decode("utf-8")
            request = BoltRequest(body=body, query=environ.get("QUERY_STRING", ""), headers=headers)
            problem = malformed(request.body)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:  # JSON, form, shape, depth
            problem = str(exc) or type(exc).__name__
        if problem is not None:
            log.info("rejected malformed Slack payload: %s", problem)
            return _reply(start_response, 400, {"error": "malformed payload"})
        try:
            # The request's database work waits at most REQUEST_WAIT on a lock: its user hears
            # within Slack's 3 seconds (bot.outage), jobs and the CLI wait longer.
            with waiting_at_most(REQUEST_WAIT):
                response = self.bolt.dispatch(request)
        except Exception as exc:
            if outage.is_outage(exc):  # a database fault Bolt's error handler did not see
                log.error("could not complete %s: %r", describe(request.body), exc)
                return _outage(start_response, request.body)
            # Bolt's own parsing choked on a shape malformed() does not know
            log.exception("Bolt could not process a signed request")
            return _reply(start_response, 400, {"error": "malformed payload"})
        log.debug("slack request %s -> %s", describe(request.body), response.status)
        out_headers = [(k, v) for k, values in response.headers.items() for v in values]
        start_response(f"{response.status} {_REASONS.get(response.status, 'OK')}", out_headers)
        return [response.body.encode("utf-8")]

    def _signed(self, raw: bytes, headers: dict[str, str | Sequence[str]]) -> bool:
        timestamp = str(headers.get("x-slack-request-timestamp", ""))
        signature = str(headers.get("x-slack-signature", ""))
        if not _TIMESTAMP.fullmatch(timestamp) or not signature:
            return False
        if abs(self.now() - int(timestamp)) > MAX_SKEW:
            return False
        # Over the raw bytes (slack_sdk's verifier decodes them first and fails on bad UTF-8).
        base = b"v0:" + timestamp.encode() + b":" + raw
        expected = "v0=" + hmac.new(self.secret, base, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.encode())


def describe(body: object) -> str:
    """A request's kind and ids, for the logs: never its text (trader notes live there)."""
    if not isinstance(body, dict):
        return "?"

    def id_of(value: object) -> str:
        found = value.get("id") if isinstance(value, dict) else value
        return found if isinstance(found, str) else "-"

    kind = body.get("type") or ("slash_command" if "command" in body else "?")
    what: object = body.get("command")
    if kind == "block_actions" and isinstance(body.get("actions"), list) and body["actions"]:
        what = body["actions"][0].get("action_id")
    elif isinstance(body.get("view"), dict):
        what = body["view"].get("callback_id")
    elif isinstance(body.get("event"), dict):
        what = body["event"].get("type")
    user = id_of(body.get("user")) if "user" in body else id_of(body.get("user_id"))
    team = id_of(body.get("team")) if "team" in body else id_of(body.get("team_id"))
    return f"{kind} {what if isinstance(what, str) else '-'} user={user} team={team}"


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def malformed(body: object) -> str | None:
    """Why a signed body lacks the shape Bolt's routing dereferences, or None when it has it."""
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    kind = body.get("type")
    if kind == "block_actions":
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions:
            return "block_actions without actions"
        if not all(isinstance(a, dict) and _is_str(a.get("action_id")) for a in actions):
            return "an action without an action_id"
    elif kind in ("view_submission", "view_closed"):
        view = body.get("view")
        if not isinstance(view, dict) or not _is_str(view.get("callback_id")) or not _is_str(view.get("type")):
            return f"{kind} without a view"
        state = view.get("state", {})
        if not isinstance(state, dict) or not isinstance(state.get("values", {}), dict):
            return f"{kind} with a malformed view state"
    elif kind in ("shortcut", "message_action"):
        if not _is_str(body.get("callback_id")):
            return f"{kind} without a callback_id"
    elif kind == "event_callback":
        event = body.get("event")
        if not isinstance(event, dict) or not _is_str(event.get("type")):
            return "event_callback without an event"
    elif "command" in body and not _is_str(body.get("command")):
        return "a malformed slash command"
    for key in ("user", "team", "channel", "container", "enterprise"):
        if key in body and body[key] is not None and not isinstance(body[key], (dict, str)):
            return f"a malformed {key}"
    return None


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS |= {413: "Payload Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}


def _outage(start_response: StartResponse, body: object) -> list[bytes]:
    answer = outage.answer(body)
    raw = answer.body.encode()
    headers = [*answer.headers.items(), ("Content-Length", str(len(raw)))]
    start_response(f"{answer.status} {_REASONS.get(answer.status, 'OK')}", headers)
    if answer.response_url:
        outage.tell(answer.response_url)
    return [raw]


def _reply(start_response: StartResponse, status: int, payload: dict[str, str | None]) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(
        f"{status} {_REASONS.get(status, 'OK')}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
