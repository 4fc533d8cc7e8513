"""A fake Slack Web API served over HTTP on loopback.

A real ``WebClient(base_url=fake.base_url)`` talks to it. It records every call
(method, decoded params, token), answers in the Web API's wire format, and can
inject faults: scripted responses (429 with Retry-After, 5xx, ``ok: false``,
slow answers that time the client out) and a per-method rate limit.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

JSON_FIELDS = {"blocks", "view", "attachments", "files", "metadata", "channels", "users"}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    token: str | None
    at: float


@dataclass
class Fault:
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FakeSlack:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[Call] = []
        self.rejected: list[Call] = []  # calls answered with a fault or a rate limit
        self.uploads: dict[str, bytes] = {}
        self._faults: dict[str, deque[Fault]] = {}
        self._limits: dict[str, tuple[float, float]] = {}  # method -> (interval, retry_after)
        self._last_allowed: dict[str, float] = {}
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.startswith("/upload/"):
                    file_id = self.path.rsplit("/", 1)[-1]
                    with fake._lock:
                        fake.uploads[file_id] = raw
                    self._send(200, b"OK - %d" % len(raw), "text/plain")
                    return
                method = self.path.split("/api/", 1)[-1].split("?")[0]
                params = fake._decode(raw, self.headers.get("Content-Type", ""))
                auth = self.headers.get("Authorization", "")
                token = auth[7:] if auth.startswith("Bearer ") else params.get("token")
                status, body, headers, delay = fake._answer(method, params, token)
                if delay:
                    time.sleep(delay)
                payload = json.dumps(body).encode()
                self._send(status, payload, "application/json", headers)

            def _send(self, status: int, payload: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/api/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- fault injection -------------------------------------------------------
    def script(self, method: str, *faults: Fault) -> None:
        """Answer the next calls of ``method`` with these faults, in order, then normally."""
        with self._lock:
            self._faults.setdefault(method, deque()).extend(faults)

    def heal(self, method: str | None = None) -> None:
        """Drop the scripted faults not yet used (of ``method``, or all): Slack is back."""
        with self._lock:
            if method is None:
                self._faults.clear()
            else:
                self._faults.pop(method, None)

    def rate_limit(self, method: str, per_second: float, retry_after: int = 1) -> None:
        """Answer 429 + Retry-After when ``method`` is called faster than ``per_second``."""
        with self._lock:
            self._limits[method] = (1.0 / per_second, retry_after)

    # -- inspection ------------------------------------------------------------
    def of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return bool(predicate())

    # -- internals ---------------------------------------------------------------
    @staticmethod
    def _decode(raw: bytes, content_type: str) -> dict[str, Any]:
        if not raw:
            return {}
        if "json" in content_type:
            data = json.loads(raw)
            return data if isinstance(data, dict) else {"_": data}
        params: dict[str, Any] = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        for key in JSON_FIELDS & params.keys():
            try:
                params[key] = json.loads(params[key])
            except ValueError:
                pass
        return params

    def _answer(self, method: str, params: dict[str, Any], token: str | None) -> tuple[int, Any, dict[str, str], float]:
        call = Call(method, params, token, time.monotonic())
        with self._lock:
            queue = self._faults.get(method)
            if queue:
                fault = queue.popleft()
                self.rejected.append(call)
                body = fault.body if fault.body is not None else {"ok": False, "error": "fatal_error"}
                return fault.status, body, fault.headers, fault.delay
            limit = self._limits.get(method)
            if limit is not None:
                interval, retry_after = limit
                last = self._last_allowed.get(method)
                if last is not None and call.at - last < interval:
                    self.rejected.append(call)
                    return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}, 0.0
                self._last_allowed[method] = call.at
            if not token:
                return 200, {"ok": False, "error": "not_authed"}, {}, 0.0
            self.calls.append(call)
            return 200, self._ok(method, params), {}, 0.0

    def _ok(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        n = next(self._ts)
        if method == "chat.postMessage":
            ts = f"{1_700_000_000 + n}.{n:06d}"
            return {
                "ok": True,
                "channel": params.get("channel"),
                "ts": ts,
                "message": {"text": params.get("text")},
            }
        if method == "chat.update":
            return {
                "ok": True,
                "channel": params.get("channel"),
                "ts": params.get("ts"),
                "text": params.get("text"),
            }
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{1_700_000_000 + n}.{n:06d}"}
        if method in ("views.open", "views.update", "views.push", "views.publish"):
            view = params.get("view") or {}
            return {"ok": True, "view": {**view, "id": f"V{n:08d}"}}
        if method == "conversations.open":
            users = str(params.get("users") or "")
            return {"ok": True, "channel": {"id": "D" + users.replace(",", "")[1:]}}
        if method == "auth.test":
            return {"ok": True, "user_id": "UBOT", "bot_id": "BBOT", "team_id": "T1", "url": "https://fake/"}
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._ids):08d}"
            return {
                "ok": True,
                "file_id": file_id,
                "upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}",
            }
        if method == "files.completeUploadExternal":
            files = params.get("files") or []
            return {"ok": True, "files": [{"id": f.get("id"), "title": f.get("title")} for f in files]}
        return {"ok": True}
