"""The WSGI application: POST /slack/events (signature checked here) and GET /healthz."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from slack_bolt import App
from slack_bolt.request import BoltRequest
from sqlalchemy.engine import Engine

from bot.db import ping

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
MAX_SKEW = 300  # seconds; Slack's own recommendation


class WebApp:
    def __init__(
        self,
        bolt: App,
        *,
        signing_secret: str,
        engine: Engine,
        now: Callable[[], float] = time.time,
        clock_offset: int = 0,
    ) -> None:
        self.bolt = bolt
        self.engine = engine
        self.secret = signing_secret.encode()
        self.now = now  # the real time: Slack signs requests with it (never the offset clock)
        self.clock_offset = clock_offset

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz":
            if method not in ("GET", "HEAD"):
                return _reply(start_response, 405, {"error": "method not allowed"})
            healthy = ping(self.engine)
            body = {"database": "ok" if healthy else "unreachable"}
            if self.clock_offset:  # a staging rehearsal: say so, and what time the bot thinks it is
                body["clock_offset_seconds"] = str(self.clock_offset)
                body["clock"] = (datetime.now(UTC) + timedelta(seconds=self.clock_offset)).isoformat(timespec="seconds")
            return _reply(start_response, 200 if healthy else 503, body)
        if path == "/slack/events":
            if method != "POST":
                return _reply(start_response, 405, {"error": "method not allowed"})
            return self._slack(environ, start_response)
        return _reply(start_response, 404, {"error": "not found"})

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
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # malformed JSON, form, encoding, shape
            problem = str(exc)
        if problem is not None:
            log.info("rejected malformed Slack payload: %s", problem)
            return _reply(start_response, 400, {"error": "malformed payload"})
        try:
            response = self.bolt.dispatch(request)
        except Exception:  # Bolt's own parsing choked on a shape malformed() does not know
            log.exception("Bolt could not process a signed request")
            return _reply(start_response, 400, {"error": "malformed payload"})
        out_headers = [(k, v) for k, values in response.headers.items() for v in values]
        start_response(f"{response.status} {_REASONS.get(response.status, 'OK')}", out_headers)
        return [response.body.encode("utf-8")]

    def _signed(self, raw: bytes, headers: dict[str, str | Sequence[str]]) -> bool:
        timestamp = str(headers.get("x-slack-request-timestamp", ""))
        signature = str(headers.get("x-slack-signature", ""))
        if not timestamp.isdigit() or not signature:
            return False
        if abs(self.now() - int(timestamp)) > MAX_SKEW:
            return False
        # Over the raw bytes (slack_sdk's verifier decodes them first and fails on bad UTF-8).
        base = b"v0:" + timestamp.encode() + b":" + raw
        expected = "v0=" + hmac.new(self.secret, base, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.encode())


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


def _reply(start_response: StartResponse, status: int, payload: dict[str, str]) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(
        f"{status} {_REASONS.get(status, 'OK')}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
