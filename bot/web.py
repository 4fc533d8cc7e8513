"""The WSGI application: POST /slack/events (signature checked here), GET /healthz and GET
/metrics; and the Bolt middleware that gives each Slack request its log fields, its ack()
timing and a Web API client that counts its calls (``Observer``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from slack_bolt import Ack, App, BoltContext, BoltResponse
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import Engine
from waitress.server import BaseWSGIServer, MultiSocketServer, create_server

from bot import logs, metrics, outage
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
    workspace: str = ""  # whom auth.test says the token belongs to (``workspace_of``), when it answered


def workspace_of(answer: object) -> str:
    """auth.test's answer in one phrase: the team's name and id, its URL, the bot user."""
    if not isinstance(answer, Mapping):
        return ""
    team, team_id, url, user = (str(answer.get(k) or "") for k in ("team", "team_id", "url", "user_id"))
    named = f"{team} ({team_id})" if team and team_id else team or team_id or "an unnamed workspace"
    return named + (f" at {url}" if url else "") + (f", bot user {user}" if user else "")


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
            answer = self.client.auth_test()
            result = SlackCheck("ok", checked_at=datetime.now(UTC), workspace=workspace_of(answer.data))
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
        exposition: metrics.Exposition | None = None,
    ) -> None:
        self.bolt = bolt
        self.engine = engine
        self.secret = signing_secret.encode()
        self.now = now  # the real time: Slack signs requests with it (never the offset clock)
        self.clock_offset = clock_offset
        self.slack = slack  # set by serve: /healthz reports Slack's reachability from it
        self.exposition = exposition  # GET /metrics (404 without)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz":
            if method not in ("GET", "HEAD"):
                return _reply(start_response, 405, {"error": "method not allowed"})
            return self._health(start_response)
        if path == "/metrics" and self.exposition is not None:
            if method not in ("GET", "HEAD"):
                return _reply(start_response, 405, {"error": "method not allowed"})
            return self._metrics(environ, start_response)
        if path == "/slack/events":
            if method != "POST":
                return _reply(start_response, 405, {"error": "method not allowed"})
            return self._observed(environ, start_response)
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

    def _metrics(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        assert self.exposition is not None
        body, content_type = self.exposition.render(str(environ.get("HTTP_ACCEPT") or ""))
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    def _observed(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """A Slack request with its request id bound for the logs (and sent back as
        X-Request-Id), counted and timed by kind and outcome."""
        started = time.perf_counter()
        request_id = logs.new_request_id()
        arrival = _ARRIVAL.set(started)
        try:
            with logs.bound(request_id=request_id):
                answer = self._slack(environ)
        finally:
            _ARRIVAL.reset(arrival)
        headers = [*answer.headers, ("X-Request-Id", request_id)]
        start_response(f"{answer.status} {_REASONS.get(answer.status, 'OK')}", headers)
        metrics.request_handled(answer.kind, outcome_of(answer.status), time.perf_counter() - started)
        return [answer.body]

    def _slack(self, environ: WSGIEnvironment) -> _Answer:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _answer(400, {"error": "bad content length"})
        if length > MAX_BODY:
            return _answer(413, {"error": "payload too large"})
        raw = environ["wsgi.input"].read(length) if length else b""
        headers: dict[str, str | Sequence[str]] = {
            k[5:].replace("_", "-").lower(): str(v) for k, v in environ.items() if k.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = str(environ["CONTENT_TYPE"])
        if not self._signed(raw, headers):
            return _answer(401, {"error": "invalid signature"})
        try:
            body = raw.decode("utf-8")
            request = BoltRequest(body=body, query=environ.get("QUERY_STRING", ""), headers=headers)
            problem = malformed(request.body)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:  # JSON, form, shape, depth
            problem = str(exc) or type(exc).__name__
        if problem is not None:
            log.info("rejected malformed Slack payload: %s", problem)
            return _answer(400, {"error": "malformed payload"})
        kind = request_kind(request.body)
        try:
            # The request's database work waits at most REQUEST_WAIT on a lock: its user hears
            # within Slack's 3 seconds (bot.outage), jobs and the CLI wait longer.
            with waiting_at_most(REQUEST_WAIT):
                response = self.bolt.dispatch(request)
        except Exception as exc:
            if outage.is_outage(exc):  # a database fault Bolt's error handler did not see
                log.error("could not complete %s: %r", describe(request.body), exc)
                return _outage(request.body, kind)
            # Bolt's own parsing choked on a shape malformed() does not know
            log.exception("Bolt could not process a signed request")
            return _answer(400, {"error": "malformed payload"}, kind=kind)
        log.debug("slack request %s -> %s", describe(request.body), response.status)
        out_headers = [(k, v) for k, values in response.headers.items() for v in values]
        return _Answer(response.status, out_headers, response.body.encode("utf-8"), kind)

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


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    kind: str = "other"


def _answer(status: int, payload: dict[str, str | None], *, kind: str = "other") -> _Answer:
    body = json.dumps(payload).encode()
    return _Answer(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))], body, kind)


# When the Slack request being handled in this thread arrived (perf_counter), for ack() timing.
_ARRIVAL: ContextVar[float | None] = ContextVar("preflight_request_arrival", default=None)

_KINDS = {
    "block_actions": "action",
    "interactive_message": "action",
    "view_submission": "view_submission",
    "event_callback": "event",
}


def request_kind(body: object) -> str:
    """slash_command, action, view_submission, event or other (bot.metrics.REQUEST_KINDS)."""
    if not isinstance(body, dict):
        return "other"
    kind = body.get("type")
    if isinstance(kind, str):
        return _KINDS.get(kind, "other")
    return "slash_command" if isinstance(body.get("command"), str) else "other"


def outcome_of(status: int) -> str:
    if 200 <= status < 300:
        return "ok"
    return {401: "unauthorized", 400: "malformed", 413: "malformed", 404: "unhandled"}.get(status, "error")


def _id_of(value: object) -> str | None:
    found = value.get("id") if isinstance(value, dict) else value
    return found if isinstance(found, str) and found else None


def user_of(body: Mapping[str, Any]) -> str | None:
    """The Slack user a request comes from (an interaction's user, a command's user_id, an event's user)."""
    event = body.get("event")
    return (
        _id_of(body.get("user"))
        or _id_of(body.get("user_id"))
        or (_id_of(event.get("user")) if isinstance(event, dict) else None)
    )


def channel_of(body: Mapping[str, Any]) -> str | None:
    container = body.get("container")
    event = body.get("event")
    return (
        _id_of(body.get("channel"))
        or _id_of(body.get("channel_id"))
        or (_id_of(container.get("channel_id")) if isinstance(container, dict) else None)
        or (_id_of(event.get("channel")) if isinstance(event, dict) else None)
    )


class DeskChannels:
    """Which desk a channel belongs to, for the logs: the desks' channels, read at most once
    every ``ttl`` seconds (a request pays one short query a minute, not one each)."""

    def __init__(self, load: Callable[[], Mapping[str, str]], *, ttl: float = 60.0) -> None:
        self._load = load
        self._ttl = ttl
        self._known: Mapping[str, str] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def desk_of(self, channel: str | None) -> str | None:
        if not channel:
            return None
        if time.monotonic() - self._loaded_at > self._ttl:
            with self._lock:
                if time.monotonic() - self._loaded_at > self._ttl:
                    try:
                        self._known = self._load()
                    except Exception as exc:  # the logs lose the desk; the request goes on
                        log.warning("cannot read the desks' channels for the logs: %s", type(exc).__name__)
                    self._loaded_at = time.monotonic()
        return self._known.get(channel)


class TimedAck(Ack):
    """Bolt's ack() that records, at its first call, how long after the request's arrival it came."""

    def __init__(self, kind: str, started: float) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.kind = kind
        self.started = started
        self.timed = False

    def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        if not self.timed:
            self.timed = True
            metrics.acknowledged(self.kind, time.perf_counter() - self.started)
        return super().__call__(*args, **kwargs)


@dataclass
class Observer:
    """Bolt middleware (``bolt.use(observer.middleware)``), for HTTP and Socket Mode alike:
    binds the user and the desk (by the request's channel) for the logs, times ack(), and
    hands listeners a Web API client that counts its calls (Bolt makes a plain one for each
    request). Socket Mode's requests skip ``WebApp``: they get their request id here (and are
    timed to ack(), not counted: the counter is of HTTP requests)."""

    desks: DeskChannels | None = None

    def middleware(self, body: dict[str, Any], context: BoltContext, next: Callable[[], BoltResponse]) -> BoltResponse:
        arrival = _ARRIVAL.get()
        started = time.perf_counter() if arrival is None else arrival
        kind = request_kind(body)
        context["ack"] = TimedAck(kind, started)
        context["client"] = metrics.metered(context.client)
        desk = self.desks.desk_of(channel_of(body)) if self.desks is not None else None
        # Bolt runs the listener after every middleware has returned (next() only says go on),
        # so the fields are set, not scoped: WebApp's scope ends with the HTTP request; a
        # Socket Mode request replaces what the thread's previous one left.
        if arrival is not None:
            logs.add(user=user_of(body), desk=desk)
        else:
            logs.replace(request_id=logs.new_request_id(), user=user_of(body), desk=desk)
        return next()


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


def _outage(body: object, kind: str) -> _Answer:
    """The one answer when the database failed a request (bot.outage): the sentence in the
    acknowledgement, or told through the interaction's response_url."""
    answer = outage.answer(body)
    raw = answer.body.encode()
    headers = [*answer.headers.items(), ("Content-Length", str(len(raw)))]
    if answer.response_url:
        outage.tell(answer.response_url)
    return _Answer(answer.status, headers, raw, kind)


def _reply(start_response: StartResponse, status: int, payload: dict[str, str | None]) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(
        f"{status} {_REASONS.get(status, 'OK')}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
