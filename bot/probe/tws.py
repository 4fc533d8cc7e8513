"""Ask a TWS / IB Gateway API socket whether it accepts API connections: the handshake only.

The official client (``ibapi/client.py``, ``EClient.connect``) opens the socket, sends
``API\\0`` and then the length-prefixed version range ``v<min>..<max>`` (``comm.make_msg``: a
4-byte big-endian length, then the text), and reads one length-prefixed message whose fields
are NUL-terminated (``comm.read_msg`` / ``read_fields``): the server version and the connection
time. It then sends ``startApi`` with a client id. A probe stops before that: it reads the
reply and closes — never ``startApi``, never a client id, never credentials — so it holds none
of the 32 client slots and is no API client at all.

States: *accepting* (the server version), *not running or not logged in* (connection
refused: the API port listens only while TWS / IB Gateway runs, logged in, with API
connections enabled), *not answering* (accepted, silent past the timeout: e.g. TWS asking
someone to accept an incoming connection), *unexpected answer* (closed without a reply,
garbage, a short or oversized frame).
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

from bot.netguard import Checked
from bot.probe.models import ProbeState
from bot.probe.outcome import Outcome, tidy

# The official client's range: MIN_CLIENT_VER = 100 ("enhanced handshake, msg length prefixes")
# up to MAX_CLIENT_VER; a server answers with the highest version both speak. A high maximum
# lets it tell its own version; the probe closes before any message where the version matters.
MIN_CLIENT_VERSION = 100
MAX_CLIENT_VERSION = 222  # MIN_SERVER_VER_FRACTIONAL_LAST_SIZE in recent ibapi releases
MAX_FRAME = 4096  # a handshake reply is a few dozen bytes
MAX_FRAMES = 3  # the official client skips messages until the two-field reply ("news before the version")


def handshake() -> bytes:
    """The bytes the official client sends first: ``API\\0`` + length-prefixed ``v100..222``."""
    version = f"v{MIN_CLIENT_VERSION}..{MAX_CLIENT_VERSION}".encode("ascii")
    return b"API\0" + struct.pack("!I", len(version)) + version


@dataclass(frozen=True)
class TwsTimeouts:
    connect: float = 2.0
    answer: float = 3.0  # from the handshake sent to the whole reply read


class _Short(Exception):
    pass


def probe_tws(checked: Checked, *, timeouts: TwsTimeouts = TwsTimeouts()) -> Outcome:
    """One handshake with the socket at ``checked`` (already passed by the guard)."""
    refused: Outcome | None = None
    for address in checked.addresses:
        try:
            sock = socket.create_connection((address, checked.port), timeout=timeouts.connect)
        except ConnectionRefusedError:
            refused = Outcome(
                ProbeState.NOT_RUNNING, "connection refused: not running, not logged in, or API off", address=address
            )
            continue
        except TimeoutError:
            refused = Outcome(
                ProbeState.NOT_RUNNING, f"no answer to connect within {timeouts.connect:g} s", address=address
            )
            continue
        except OSError as exc:
            refused = Outcome(ProbeState.NOT_RUNNING, tidy(exc.strerror or str(exc), 80), address=address)
            continue
        try:
            return _talk(sock, address, timeouts)
        finally:
            sock.close()
    assert refused is not None  # a Checked target has at least one address
    return refused


def _talk(sock: socket.socket, address: str, timeouts: TwsTimeouts) -> Outcome:
    deadline = time.monotonic() + timeouts.answer

    def unexpected(detail: str) -> Outcome:
        return Outcome(ProbeState.UNEXPECTED, detail, address=address)

    try:
        sock.settimeout(timeouts.answer)
        sock.sendall(handshake())
        for _ in range(MAX_FRAMES):
            size = struct.unpack("!I", _read(sock, 4, deadline))[0]
            if size == 0 or size > MAX_FRAME:
                return unexpected(f"a frame of {size} bytes is not a handshake reply")
            fields = _read(sock, size, deadline).split(b"\0")
            if fields[-1] == b"":
                fields = fields[:-1]  # the last field's terminator
            if len(fields) != 2:
                continue
            version, when = fields
            if not version.isdigit():
                return unexpected(f"the reply's server version {tidy(version.decode('latin-1'), 20)!r} is not a number")
            text = when.decode("utf-8", "replace")
            at = f", connection time {tidy(text, 40)}" if text.strip() else ""
            return Outcome(
                ProbeState.ACCEPTING,
                f"accepting API connections: server version {int(version)}{at}",
                address=address,
                server_version=str(int(version)),
            )
        return unexpected(f"no handshake reply in the first {MAX_FRAMES} messages")
    except TimeoutError:
        return Outcome(
            ProbeState.NOT_ANSWERING,
            f"accepted the connection, then silent for {timeouts.answer:g} s (a dialog waiting to accept it?)",
            address=address,
        )
    except _Short as short:
        return unexpected(str(short))
    except (ConnectionResetError, BrokenPipeError):
        return unexpected("the connection was reset without a reply (is this host in the API's trusted IPs?)")
    except OSError as exc:
        return unexpected(f"the connection failed: {tidy(exc.strerror or str(exc), 80)}")


def _read(sock: socket.socket, count: int, deadline: float) -> bytes:
    data = b""
    while len(data) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)
        chunk = sock.recv(count - len(data))
        if not chunk:
            if data or count != 4:
                raise _Short(f"the connection closed mid-message ({len(data)} of {count} bytes)")
            raise _Short("the connection closed without a reply (is this host in the API's trusted IPs?)")
        data += chunk
    return data
