"""A fake pager over real HTTP on 127.0.0.1: PagerDuty's Events API v2 and a JSON webhook.

It records every request it answered (path, headers, raw body, parsed JSON) and injects
faults: ``down()`` stops listening (connection refused) until ``up()`` (same port),
``script(PagerFault(status=500), PagerFault(delay=2.0))`` answers the next requests
with those faults, in order.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

POLL = 0.02  # seconds between serve_forever's checks for shutdown()


@dataclass
class PagerRequest:
    path: str
    headers: dict[str, str]
    raw: bytes
    body: dict[str, Any]


@dataclass
class PagerFault:
    status: int = 500
    delay: float = 0.0


class FakePager:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[PagerRequest] = []
        self.rejected: list[PagerRequest] = []
        self._faults: deque[PagerFault] = deque()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {}
                request = PagerRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, raw, body)
                with fake._lock:
                    fault = fake._faults.popleft() if fake._faults else None
                if fault is not None:
                    with fake._lock:
                        fake.rejected.append(request)
                    if fault.delay:
                        time.sleep(fault.delay)
                    self._send(fault.status, {"status": "error", "message": "injected fault"})
                    return
                with fake._lock:
                    fake.requests.append(request)
                if self.path == "/v2/enqueue":
                    self._send(
                        202, {"status": "success", "message": "Event processed", "dedup_key": body.get("dedup_key")}
                    )
                else:
                    self._send(200, {"ok": True})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Connection", "close")  # no keep-alive: down() really refuses
                    self.end_headers()
                    self.wfile.write(data)
                    self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> FakePager:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        # A short poll: shutdown() (stop, down) returns within POLL, not serve_forever's default 0.5 s.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(POLL,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def down(self) -> None:
        """Stop listening: connections are refused until ``up()``."""
        self.stop()

    def up(self) -> None:
        self.start()

    # -- fault injection -------------------------------------------------------
    def script(self, *faults: PagerFault) -> None:
        with self._lock:
            self._faults.extend(faults)

    # -- inspection ------------------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.body for r in self.requests]
