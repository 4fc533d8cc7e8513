"""Ask a Client Portal Gateway (or IBeam, which runs one) whether its brokerage session is alive.

Two calls, as the gateway keepers make them (IBeam, ``ibeam/src/handlers/http_handler.py``:
``tickle`` for the session and its ``ssoExpires``, then the ``iserver`` auth flags):

- ``POST /v1/api/tickle`` — refused or silent: *not running*; HTTP 401 or ``{"error": "no
  session"}``: *no session*; ``ssoExpires`` is the milliseconds the SSO session has left.
- ``POST /v1/api/iserver/auth/status`` — ``authenticated``, ``connected``, ``competing``,
  ``message``, ``fail``, ``serverInfo.serverVersion``. Competing (another session with the
  username took over) is reported first, then not connected, then authenticated or not.

Nothing else: no ``ssodh/init``, no ``reauthenticate``, no login, no credentials. Redirects are
never followed (a redirect is an *unexpected answer*), bodies are read up to 64 KiB and never
kept: an ``Outcome`` holds a state, a short detail (with the gateway's own ``message`` /
``fail`` words, tidied) and the expiry. Short timeouts, one retry of a failed transport.

The caller hands over a ``netguard.Checked`` target: the request goes to one of its checked IP
addresses, with the name in the Host header and for TLS (SNI and the certificate check), so
the name is not resolved again between the check and the call.
"""

from __future__ import annotations

import json
import ssl
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.netguard import Checked, host_port
from bot.probe.models import ProbeState, TlsMode
from bot.probe.outcome import Outcome, quoted, tidy

if TYPE_CHECKING:
    import httpx

TICKLE = "/v1/api/tickle"
AUTH_STATUS = "/v1/api/iserver/auth/status"
MAX_BODY = 64 * 1024
MAX_EXPIRY = timedelta(days=7)  # a larger ssoExpires is not believed
USER_AGENT = "ib-preflight-probe"


@dataclass(frozen=True)
class GatewayTarget:
    host: str
    port: int
    path: str  # base path prefix, "" or "/prefix"
    tls: TlsMode
    ca_bundle: str | None = None


@dataclass(frozen=True)
class Timeouts:
    connect: float = 2.0
    read: float = 3.0
    retry_pause: float = 0.2


@dataclass(frozen=True)
class _Answer:
    status: int
    content_type: str
    location: str
    body: bytes


class _Stop(Exception):
    """A probe's end before the last call: carries the outcome."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.detail)
        self.outcome = outcome


def ssl_context(tls: TlsMode, ca_bundle: str | None) -> ssl.SSLContext:
    """Verification as registered: the system store, a CA bundle, or (self-signed, loopback and
    private hosts only) none at all."""
    if tls == TlsMode.SELF_SIGNED:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif tls == TlsMode.CA_BUNDLE:
        context = ssl.create_default_context(cafile=ca_bundle)
    else:
        context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def probe_gateway(target: GatewayTarget, checked: Checked, *, timeouts: Timeouts = Timeouts()) -> Outcome:
    """One probe of a gateway at ``checked`` (already passed by the guard)."""
    import httpx  # on first use (see docs/architecture.md, start-up)

    try:
        context = ssl_context(target.tls, target.ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        return Outcome(ProbeState.UNEXPECTED, f"the CA bundle can't be used: {tidy(_reason(exc), 80)}")
    client = httpx.Client(
        verify=context,
        timeout=httpx.Timeout(timeouts.read, connect=timeouts.connect),
        follow_redirects=False,
        trust_env=False,  # never through a proxy from the environment: the checked address is the one called
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
    )
    address = checked.addresses[0]
    try:
        tickle, address = _call(client, target, checked, TICKLE, timeouts)
        expires_in = _expiry(tickle)
        status, address = _call(client, target, checked, AUTH_STATUS, timeouts)
        return _classify(status, address=address, expires_in=expires_in)
    except _Stop as stop:
        outcome = stop.outcome
        return Outcome(outcome.state, outcome.detail, address=outcome.address or address)
    finally:
        client.close()


def _call(
    client: httpx.Client, target: GatewayTarget, checked: Checked, route: str, timeouts: Timeouts
) -> tuple[dict[str, Any], str]:
    """POST ``route`` (retried once on a transport failure); the JSON object it answered, or _Stop."""
    import httpx

    failure: Exception | None = None
    address = checked.addresses[0]
    for attempt in range(2):
        address = checked.addresses[attempt % len(checked.addresses)]
        try:
            answer = _post(client, target, address, route)
        except httpx.TransportError as exc:
            failure = exc
            if _tls_failure(exc) is not None:
                break  # a certificate doesn't get better by asking again
            if attempt == 0:
                time.sleep(timeouts.retry_pause)
            continue
        return _json_object(answer, route, address), address
    assert failure is not None
    raise _Stop(_transport_outcome(failure, route, address, timeouts))


def _post(client: httpx.Client, target: GatewayTarget, address: str, route: str) -> _Answer:
    url = f"https://{host_port(address, target.port)}{target.path}{route}"
    extensions = {"sni_hostname": target.host} if target.host != address else {}
    with client.stream(
        "POST", url, content=b"", headers={"Host": host_port(target.host, target.port)}, extensions=extensions
    ) as response:
        body = b""
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_BODY:
                raise _Stop(Outcome(ProbeState.UNEXPECTED, f"{route} answered more than 64 KiB", address=address))
        return _Answer(
            status=response.status_code,
            content_type=response.headers.get("content-type", "").lower(),
            location=response.headers.get("location", ""),
            body=body,
        )


def _json_object(answer: _Answer, route: str, address: str) -> dict[str, Any]:
    def stop(state: ProbeState, detail: str) -> _Stop:
        return _Stop(Outcome(state, detail, address=address))

    data: Any = None
    try:
        data = json.loads(answer.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        data = None
    if 300 <= answer.status < 400:
        where = quoted("to", answer.location) or "elsewhere"
        raise stop(ProbeState.UNEXPECTED, f"{route} redirected {where} (HTTP {answer.status}, not followed)")
    if answer.status == 401 or _says_no_session(data):
        said = quoted("; the gateway says", data.get("error") or data.get("message")) if isinstance(data, dict) else ""
        raise stop(
            ProbeState.NO_SESSION, f"no session: nobody is logged in to the gateway (HTTP {answer.status}){said}"
        )
    if not 200 <= answer.status < 300:
        said = quoted("; it says", data.get("error") or data.get("message")) if isinstance(data, dict) else ""
        raise stop(ProbeState.UNEXPECTED, f"{route} answered HTTP {answer.status}{said}")
    if "html" in answer.content_type or answer.body.lstrip()[:1] == b"<":
        raise stop(ProbeState.UNEXPECTED, f"{route} answered an HTML page, not the gateway's JSON")
    if data is None:
        raise stop(ProbeState.UNEXPECTED, f"{route} answered something that isn't JSON")
    if not isinstance(data, dict):
        raise stop(ProbeState.UNEXPECTED, f"{route} answered JSON that isn't an object")
    return data


def _says_no_session(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("error"), str) and "no session" in data["error"].lower()


def _expiry(tickle: dict[str, Any]) -> timedelta | None:
    value = tickle.get("ssoExpires")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    left = timedelta(milliseconds=value)
    return left if left <= MAX_EXPIRY else None


def _classify(status: dict[str, Any], *, address: str, expires_in: timedelta | None) -> Outcome:
    flags = {name: status.get(name) for name in ("authenticated", "connected", "competing")}
    if flags["competing"] is None:
        flags["competing"] = False
    if not all(isinstance(value, bool) for value in flags.values()):
        return Outcome(
            ProbeState.UNEXPECTED,
            f"{AUTH_STATUS} answered without the authenticated / connected / competing flags",
            address=address,
        )
    said = "; ".join(
        part for part in (quoted("message", status.get("message")), quoted("fail", status.get("fail"))) if part
    )
    said = f"; the gateway says {said}" if said else ""
    info = status.get("serverInfo")
    version = info.get("serverVersion") if isinstance(info, dict) else None
    server_version = tidy(version, 64) if isinstance(version, str) and version.strip() else None

    def outcome(state: ProbeState, detail: str) -> Outcome:
        return Outcome(state, tidy(detail + said, 300), address, server_version, expires_in)

    if flags["competing"]:
        return outcome(ProbeState.COMPETING, "competing: another session with this username took over")
    if not flags["connected"]:
        return outcome(ProbeState.NOT_CONNECTED, "the gateway isn't connected to IBKR")
    if not flags["authenticated"]:
        return outcome(ProbeState.NOT_AUTHENTICATED, "connected, but the brokerage session isn't authenticated")
    return outcome(ProbeState.AUTHENTICATED, "authenticated and connected, not competing")


def _tls_failure(exc: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _reason(exc: BaseException) -> str:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        if isinstance(seen, ssl.SSLError) and getattr(seen, "reason", None):
            return f"{seen.reason}: {getattr(seen, 'verify_message', '') or seen}"
        seen = seen.__cause__ or seen.__context__
    return str(exc) or type(exc).__name__


def _transport_outcome(exc: Exception, route: str, address: str, timeouts: Timeouts) -> Outcome:
    import httpx

    tls = _tls_failure(exc)
    if isinstance(tls, ssl.SSLCertVerificationError):
        why = tidy(tls.verify_message or str(tls), 80)
        return Outcome(
            ProbeState.UNEXPECTED,
            f"the gateway's TLS certificate isn't trusted ({why}): register it with a CA bundle, "
            "or allow self-signed on a loopback or private host",
            address=address,
        )
    if tls is not None:
        return Outcome(ProbeState.UNEXPECTED, f"TLS handshake failed ({tidy(_reason(tls), 80)})", address=address)
    if isinstance(exc, httpx.ConnectTimeout):
        return Outcome(ProbeState.NOT_RUNNING, f"no answer to connect within {timeouts.connect:g} s", address=address)
    if isinstance(exc, httpx.TimeoutException):
        return Outcome(
            ProbeState.NOT_RUNNING,
            f"{route}: no answer within {timeouts.read:g} s (connection accepted)",
            address=address,
        )
    if isinstance(exc, httpx.ConnectError):
        refused = any(isinstance(e, ConnectionRefusedError) for e in _chain(exc)) or "refused" in str(exc).lower()
        why = "connection refused" if refused else tidy(_reason(exc), 80)
        return Outcome(ProbeState.NOT_RUNNING, why, address=address)
    return Outcome(ProbeState.UNEXPECTED, f"{route}: not an HTTP answer ({tidy(_reason(exc), 80)})", address=address)


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(out) < 10:
        out.append(seen)
        seen = seen.__cause__ or seen.__context__
    return out
