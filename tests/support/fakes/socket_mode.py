"""A stand-in for Slack's Socket Mode WebSocket server, on loopback, in plain RFC 6455.

``FakeSlack`` hands out its URLs from ``apps.connections.open`` (``fake_slack.websocket =
socket_mode.issue_url``): each URL carries a fresh ticket, good for one connection, as Slack's
``wss://wss-primary.slack.com/link/?ticket=…`` URLs are. The bot's client (slack_sdk's builtin
Socket Mode client) connects with the WebSocket handshake; the stand-in answers ``101``, sends
``hello`` (https://api.slack.com/apis/socket-mode), answers pings with pongs, and then carries
envelopes to the bot::

    {"envelope_id": "…", "type": "slash_commands" | "interactive" | "events_api",
     "payload": {...}, "accepts_response_payload": true|false}

and records the acknowledgements the bot sends back: ``{"envelope_id": "…", "payload": {...}}``
(the payload being what an HTTP response body would have carried: a slash command's text, a
modal's ``response_action``). ``request()`` sends one envelope and waits for its ack;
``on_ack`` is called the moment an ack arrives, before anyone waiting hears of it (a test can
look at the database at that instant). Frames from the client must be masked (RFC 6455 §5.1);
frames to it are not.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.harness import click_payload

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
TEXT, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x8, 0x9, 0xA, 0x0


class ProtocolError(Exception):
    """The client broke RFC 6455 (or Socket Mode): the connection is closed."""


@dataclass
class Ack:
    """An acknowledgement the bot sent for an envelope."""

    envelope_id: str
    payload: dict[str, Any] | None
    at: float  # time.monotonic() when it arrived


@dataclass
class Connection:
    """One WebSocket connection from the bot."""

    sock: socket.socket
    ticket: str
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    open: bool = True
    pings: int = 0

    def send_frame(self, opcode: int, data: bytes) -> None:
        """One unmasked, final frame (a server never masks: RFC 6455 §5.1)."""
        head = bytes([0x80 | opcode])
        if len(data) < 126:
            head += bytes([len(data)])
        elif len(data) < 1 << 16:
            head += bytes([126]) + struct.pack("!H", len(data))
        else:
            head += bytes([127]) + struct.pack("!Q", len(data))
        with self.send_lock:
            self.sock.sendall(head + data)

    def send_json(self, message: dict[str, Any]) -> None:
        self.send_frame(TEXT, json.dumps(message).encode())


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = sock.recv(left)
        if not chunk:
            raise ConnectionError("the client closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(sock: socket.socket) -> tuple[bool, int, bytes]:
    """(fin, opcode, unmasked payload) of one frame from a client."""
    b1, b2 = _recv_exactly(sock, 2)
    if b1 & 0x70:
        raise ProtocolError("reserved bits set without an extension")
    length = b2 & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", _recv_exactly(sock, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", _recv_exactly(sock, 8))
    if not b2 & 0x80:
        raise ProtocolError("a client frame that is not masked")
    mask = _recv_exactly(sock, 4)
    data = _recv_exactly(sock, length)
    return bool(b1 & 0x80), b1 & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


class FakeSocketMode:
    """Slack's Socket Mode end of the WebSocket (see the module docstring)."""

    def __init__(self, app_id: str = "A1") -> None:
        self.app_id = app_id
        # Where interactions' response_urls point (Slack's hooks host; a test points it at the
        # fake Web API, which records what is posted: FakeSlack.response_url / told).
        self.response_base = "https://hooks.slack.com/actions/T1/1/"
        self.acks: list[Ack] = []
        self.received: list[dict[str, Any]] = []  # every text message from the bot, acks included
        self.connections: list[Connection] = []
        self.refused: list[str] = []  # why handshakes were refused
        self.on_ack: Callable[[Ack], None] | None = None
        self._tickets: set[str] = set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stopped = False
        self._thread = threading.Thread(target=self._accept, daemon=True, name="fake-socket-mode")

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> FakeSocketMode:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop every connection (no close frame); again: nothing."""
        self._stopped = True
        self._listener.close()
        with self._lock:
            connections = list(self.connections)
        for conn in connections:
            self._close(conn)

    def issue_url(self) -> str:
        """A WebSocket URL for one connection (what ``apps.connections.open`` answers)."""
        ticket = uuid.uuid4().hex
        with self._lock:
            self._tickets.add(ticket)
        return f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    # -- what a test does ----------------------------------------------------------
    @property
    def current(self) -> Connection | None:
        with self._lock:
            live = [c for c in self.connections if c.open]
        return live[-1] if live else None

    def wait_connected(self, count: int = 1, timeout: float = 10.0) -> Connection:
        """The newest open connection, once ``count`` connections have been made."""
        with self._changed:
            ok = self._changed.wait_for(lambda: len(self.connections) >= count and self.connections[-1].open, timeout)
        if not ok:
            raise TimeoutError(f"no WebSocket connection #{count} within {timeout} s")
        current = self.current
        assert current is not None
        return current

    def send(self, kind: str, payload: dict[str, Any], *, envelope_id: str | None = None, **extra: Any) -> str:
        """Send an envelope on the current connection; its envelope_id."""
        conn = self.current
        if conn is None:
            raise ConnectionError("the bot is not connected")
        envelope_id = envelope_id or f"env-{next(self._ids)}-{uuid.uuid4().hex[:8]}"
        accepts = kind in ("slash_commands", "interactive")
        conn.send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": accepts,
                **extra,
            }
        )
        return envelope_id

    def ack_for(self, envelope_id: str, *, nth: int = 1, timeout: float = 10.0) -> Ack:
        """The ``nth`` acknowledgement of ``envelope_id`` (waits for it)."""

        def found() -> list[Ack]:
            return [a for a in self.acks if a.envelope_id == envelope_id]

        with self._changed:
            if not self._changed.wait_for(lambda: len(found()) >= nth, timeout):
                raise TimeoutError(f"no acknowledgement #{nth} of {envelope_id} within {timeout} s")
            return found()[nth - 1]

    def request(self, kind: str, payload: dict[str, Any], *, timeout: float = 10.0, **extra: Any) -> Ack:
        """Send an envelope and wait for its acknowledgement."""
        return self.ack_for(self.send(kind, payload, **extra), timeout=timeout)

    def disconnect(self, reason: str = "refresh_requested") -> None:
        """Slack's notice that this connection is going away: the client reconnects."""
        conn = self.current
        if conn is not None:
            conn.send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-socket-mode"}})

    # -- Slack-shaped payloads -------------------------------------------------------
    def _response_url(self, user: str) -> str:
        return f"{self.response_base}{user}-{time.monotonic_ns()}"

    def command_payload(
        self, user: str, text: str = "", command: str = "/ibstatus", channel: str = "C0123"
    ) -> dict[str, Any]:
        """A slash command's payload (the fields of the HTTP form, as a JSON object)."""
        return {
            "token": "legacy",
            "team_id": "T1",
            "team_domain": "desk",
            "channel_id": channel,
            "channel_name": "desk",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A1",
            "is_enterprise_install": "false",
            "response_url": self._response_url(user),
            "trigger_id": f"trig-{user}-{time.monotonic_ns()}",
        }

    def click_payload(self, user: str, action_id: str, value: str, *, channel: str, message_ts: str) -> dict[str, Any]:
        """A button click on a message (``block_actions``), its response_url at ``response_base``."""
        return click_payload(
            user, action_id, value, channel=channel, message_ts=message_ts, response_url=self._response_url(user)
        )

    @staticmethod
    def submission_payload(
        user: str, callback_id: str, values: dict[str, Any], private_metadata: str
    ) -> dict[str, Any]:
        """A modal submitted (``view_submission``)."""
        return {
            "type": "view_submission",
            "team": {"id": "T1", "domain": "desk"},
            "user": {"id": user, "username": user.lower(), "team_id": "T1"},
            "api_app_id": "A1",
            "token": "legacy",
            "trigger_id": f"trig-{user}-{time.monotonic_ns()}",
            "view": {
                "id": "V1",
                "team_id": "T1",
                "type": "modal",
                "callback_id": callback_id,
                "private_metadata": private_metadata,
                "state": {"values": values},
                "hash": "1.abc",
            },
            "response_urls": [],
        }

    @staticmethod
    def event_payload(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
        """An Events API callback."""
        return {
            "token": "legacy",
            "team_id": "T1",
            "api_app_id": "A1",
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{time.monotonic_ns()}",
            "event_time": int(time.time()),
        }

    # -- internals ---------------------------------------------------------------
    def _accept(self) -> None:
        while not self._stopped:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True, name="fake-socket-mode-conn").start()

    def _handshake(self, sock: socket.socket) -> str | None:
        """Answer the opening handshake (RFC 6455 §4.2); the ticket, or None if refused."""
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = sock.recv(1024)
            if not chunk:
                return None
            raw += chunk
            if len(raw) > 16384:
                return None
        head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        method, target, *_ = head[0].split(" ")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
        ticket = (parse_qs(urlsplit(target).query).get("ticket") or [""])[0]
        with self._lock:
            known = ticket in self._tickets
            self._tickets.discard(ticket)  # one connection per URL
        problem = None
        if method != "GET" or headers.get("upgrade", "").lower() != "websocket":
            problem = "not a WebSocket upgrade"
        elif "upgrade" not in headers.get("connection", "").lower() or headers.get("sec-websocket-version") != "13":
            problem = "missing Connection: Upgrade or Sec-WebSocket-Version: 13"
        elif not headers.get("sec-websocket-key"):
            problem = "no Sec-WebSocket-Key"
        elif not known:
            problem = "unknown or used ticket"
        if problem is not None:
            with self._lock:
                self.refused.append(problem)
            sock.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return None
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept_key(headers['sec-websocket-key'])}\r\n\r\n".encode()
        )
        return ticket

    def _serve(self, sock: socket.socket) -> None:
        try:
            ticket = self._handshake(sock)
        except OSError:
            ticket = None
        if ticket is None:
            sock.close()
            return
        conn = Connection(sock, ticket)
        with self._changed:
            self.connections.append(conn)
            self._changed.notify_all()
        try:
            conn.send_json(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "debug_info": {"host": "fake-socket-mode", "approximate_connection_time": 18060},
                    "connection_info": {"app_id": self.app_id},
                }
            )
            self._read(conn)
        except (OSError, ConnectionError, ProtocolError):
            pass
        finally:
            self._close(conn)

    def _read(self, conn: Connection) -> None:
        message, message_opcode = b"", TEXT
        while conn.open:
            fin, opcode, data = read_frame(conn.sock)
            if opcode == PING:
                conn.pings += 1
                conn.send_frame(PONG, data)
            elif opcode == PONG:
                pass
            elif opcode == CLOSE:
                conn.send_frame(CLOSE, data[:2])
                return
            elif opcode in (TEXT, CONTINUATION):
                if opcode == TEXT:
                    message, message_opcode = b"", opcode
                message += data
                if fin and message_opcode == TEXT:
                    self._on_text(json.loads(message.decode()))
            else:
                raise ProtocolError(f"unexpected opcode {opcode}")

    def _on_text(self, message: dict[str, Any]) -> None:
        ack = None
        if isinstance(message.get("envelope_id"), str):
            payload = message.get("payload")
            ack = Ack(message["envelope_id"], payload if isinstance(payload, dict) else None, time.monotonic())
            if self.on_ack is not None:
                self.on_ack(ack)
        with self._changed:
            self.received.append(message)
            if ack is not None:
                self.acks.append(ack)
            self._changed.notify_all()

    def _close(self, conn: Connection) -> None:
        with self._changed:
            was_open, conn.open = conn.open, False
            self._changed.notify_all()
        if was_open:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.sock.close()
