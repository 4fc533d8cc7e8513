"""A stand-in Client Portal Gateway over real TLS on 127.0.0.1, with scripted answers per path.

``make_certificate(dir)`` writes a self-signed certificate (EC P-256, CA:TRUE, SAN localhost,
127.0.0.1 and ::1) and its key, made with ``cryptography``; the same file serves as the CA
bundle that trusts it. ``FakeGateway(cert)`` answers ``POST /v1/api/tickle`` and ``POST
/v1/api/iserver/auth/status`` as an authenticated gateway does unless told otherwise:
``script(path, Answer(...), ...)`` answers the next requests to ``path`` in order (the last
one stays). An ``Answer`` can be slow (``delay``), any status with any headers, or raw bytes
that aren't HTTP at all. Every request is recorded (method, path, headers, body).
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

TICKLE = "/v1/api/tickle"
AUTH_STATUS = "/v1/api/iserver/auth/status"


@dataclass(frozen=True)
class Certificate:
    cert: Path  # PEM certificate (also a CA bundle trusting it)
    key: Path


def make_certificate(directory: Path, common_name: str = "localhost") -> Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ip_address("127.0.0.1")),
                    x509.IPAddress(ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "gateway.pem", directory / "gateway.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Certificate(cert=cert_path, key=key_path)


def auth_status(
    *,
    authenticated: bool = True,
    connected: bool = True,
    competing: bool = False,
    message: str = "",
    fail: str = "",
    server_version: str = "Build 10.25.0p, Dec 5, 2023 5:48:12 PM",
) -> dict[str, Any]:
    """An ``/iserver/auth/status`` answer, shaped as the gateway's."""
    return {
        "authenticated": authenticated,
        "competing": competing,
        "connected": connected,
        "message": message,
        "MAC": "98:F2:B3:23:BF:A0",
        "serverInfo": {"serverName": "JifN19053", "serverVersion": server_version},
        "fail": fail,
    }


def tickle(*, sso_expires_ms: int | None = 540_000, **status: Any) -> dict[str, Any]:
    """A ``/tickle`` answer (``ssoExpires``: milliseconds the SSO session has left)."""
    answer: dict[str, Any] = {
        "session": "4a1c53b7cd1b5e2c8e5d1f3c8a9b0e12",
        "collission": False,
        "userId": 123456,
        "hmds": {"error": "no bridge"},
        "iserver": {"authStatus": auth_status(**status)},
    }
    if sso_expires_ms is not None:
        answer["ssoExpires"] = sso_expires_ms
    return answer


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: Any = None  # dict / list -> JSON; str / bytes as is
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None  # written as is instead of an HTTP response, then the connection closes


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FakeGateway:
    def __init__(self, certificate: Certificate) -> None:
        self.certificate = certificate
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._scripts: dict[str, deque[Answer]] = {
            TICKLE: deque([Answer(body=tickle())]),
            AUTH_STATUS: deque([Answer(body=auth_status())]),
        }
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def script(self, path: str, *answers: Answer) -> FakeGateway:
        with self._lock:
            self._scripts[path] = deque(answers)
        return self

    def answer_status(self, *, sso_expires_ms: int | None = 540_000, **status: Any) -> FakeGateway:
        """Both routes answer the same session state."""
        self.script(TICKLE, Answer(body=tickle(sso_expires_ms=sso_expires_ms, **status)))
        return self.script(AUTH_STATUS, Answer(body=auth_status(**status)))

    def paths(self) -> list[str]:
        with self._lock:
            return [seen.path for seen in self.requests]

    def _next(self, path: str) -> Answer:
        with self._lock:
            queue = self._scripts.get(path)
            if not queue:
                return Answer(status=404, body={"error": "not found"})
            return queue.popleft() if len(queue) > 1 else queue[0]

    def start(self) -> FakeGateway:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate.cert, self.certificate.key)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with fake._lock:
                    fake.requests.append(Seen(self.command, self.path, dict(self.headers.items()), body))
                answer = fake._next(self.path)
                if answer.delay and fake._stopping.wait(answer.delay):
                    return
                if answer.raw is not None:
                    self.wfile.write(answer.raw)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if isinstance(answer.body, (dict, list)):
                    data = json.dumps(answer.body).encode()
                elif isinstance(answer.body, str):
                    data = answer.body.encode()
                else:
                    data = answer.body or b""
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(data)))
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_POST = _serve
            do_GET = _serve

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def finish_request(self, request: Any, client_address: Any) -> None:
                request.settimeout(5)
                try:
                    tls = context.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError):
                    return  # the client refused the certificate (or wasn't speaking TLS)
                try:
                    Handler(tls, client_address, self)
                finally:
                    tls.close()

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Fixtures (loaded by tests/conftest.py's pytest_plugins): a TLS certificate per module, and a
# stand-in gateway serving it for a test.


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def gateway(certificate: Certificate) -> Iterator[FakeGateway]:
    fake = FakeGateway(certificate).start()
    yield fake
    fake.stop()
