"""A stand-in TWS / IB Gateway API socket on 127.0.0.1 speaking the v100+ handshake.

It reads ``API\\0`` and the length-prefixed version range, then behaves as ``mode`` says:

- ``accept``: answers one length-prefixed message ``<version>\\0<time>\\0`` (after ``delay``);
- ``news_first``: another message first, then the version reply (the official client skips it);
- ``silent``: accepts and says nothing;
- ``close``: reads the handshake, then closes without a word;
- ``reset``: closes at once, the handshake unread (the peer sees a reset);
- ``garbage``: answers bytes that are no frame (an HTTP error page);
- ``short``: announces a 40-byte message, sends 5 bytes and closes;
- ``bad_version``: a two-field reply whose version isn't a number.

Everything each client sent, up to its closing the connection, is kept in ``received``.
"""

from __future__ import annotations

import socket
import struct
import threading
import time


def frame(*fields: str) -> bytes:
    payload = b"".join(f.encode() + b"\0" for f in fields)
    return struct.pack("!I", len(payload)) + payload


class FakeTws:
    def __init__(
        self, mode: str = "accept", *, version: int = 176, when: str = "20261125 08:05:00 EST", delay: float = 0.0
    ) -> None:
        self.mode = mode
        self.version = version
        self.when = when
        self.delay = delay
        self.received: list[bytes] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FakeTws:
        self._listener.listen(8)
        self._listener.settimeout(0.05)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        seen = b""
        try:
            if self.mode == "reset":
                return
            seen = self._read_handshake(conn)
            if self.mode == "close":
                return
            if self._stopping.wait(self.delay):
                return
            if self.mode == "accept":
                conn.sendall(frame(str(self.version), self.when))
            elif self.mode == "news_first":
                conn.sendall(frame("14", "1", "2", "news"))
                conn.sendall(frame(str(self.version), self.when))
            elif self.mode == "garbage":
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            elif self.mode == "short":
                conn.sendall(struct.pack("!I", 40) + b"176\x00")
                return
            elif self.mode == "bad_version":
                conn.sendall(frame("v176", self.when))
            # then whatever the client sends until it closes (a probe sends nothing more)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not self._stopping.is_set():
                try:
                    chunk = conn.recv(4096)
                except TimeoutError:
                    break
                if not chunk:
                    break
                seen += chunk
        except OSError:
            pass
        finally:
            with self._lock:
                self.received.append(seen)
            conn.close()

    def _read_handshake(self, conn: socket.socket) -> bytes:
        """``API\\0`` + 4-byte length + that many bytes (or whatever came before a close)."""
        data = b""
        while True:
            if len(data) >= 8 and data.startswith(b"API\0"):
                size = struct.unpack("!I", data[4:8])[0]
                if len(data) >= 8 + size:
                    return data
            elif len(data) >= 4 and not data.startswith(b"API\0"):
                return data  # not an API client (a TLS ClientHello...): answer anyway
            chunk = conn.recv(4096)
            if not chunk:
                return data
            data += chunk
