"""The probe's clients and the outbound guard, against stand-ins over real TLS and real sockets.

No database here (tests/test_probe_storage.py has the CLI and the storage, on both databases).
Timeouts are a few tenths of a second so the file runs in seconds.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import netguard as ng
from bot.errors import ServiceError
from bot.probe.gateway import AUTH_STATUS, TICKLE, GatewayTarget, Timeouts, probe_gateway
from bot.probe.labels import state_text
from bot.probe.models import ProbeState, TlsMode
from bot.probe.outcome import tidy
from bot.probe.service import POLICY
from bot.probe.tws import TwsTimeouts, handshake, probe_tws
from tests.support.fake_gateway import Answer, Certificate, FakeGateway, closed_port
from tests.support.fake_tws import FakeTws

FAST = Timeouts(connect=0.5, read=0.3, retry_pause=0.01)
TWS_FAST = TwsTimeouts(connect=0.5, answer=0.3)


def checked(host: str, port: int, *, resolve: ng.Resolver = ng.system_resolver) -> ng.Checked:
    return ng.check(host, port, policy=POLICY, what="The gateway URL", field="url", resolve=resolve)


def ask(
    fake: FakeGateway,
    *,
    tls: TlsMode = TlsMode.SELF_SIGNED,
    ca_bundle: str | None = None,
    host: str = "127.0.0.1",
    timeouts: Timeouts = FAST,
) -> tuple[ProbeState, str]:
    target = GatewayTarget(host=host, port=fake.port, path="", tls=tls, ca_bundle=ca_bundle)
    outcome = probe_gateway(target, checked(host, fake.port), timeouts=timeouts)
    return outcome.state, outcome.detail


# --- the guard -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.20", "private"),
        ("100.64.0.1", "private"),
        ("100.127.255.254", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.10.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("::ffff:169.254.169.254", "metadata"),
        ("64:ff9b::a9fe:a9fe", "metadata"),
        ("::ffff:127.0.0.1", "loopback"),
        ("8.8.8.8", "public"),
        ("172.32.0.1", "public"),
        ("100.128.0.1", "public"),
        ("2606:4700:4700::1111", "public"),
        ("0.0.0.0", "reserved"),
        ("224.0.0.251", "reserved"),
        ("192.0.2.10", "reserved"),
        ("255.255.255.255", "reserved"),
    ],
)
def test_every_address_has_a_class(address: str, kind: str) -> None:
    assert ng.classify(ipaddress.ip_address(address)) == kind


def test_metadata_and_reserved_cannot_be_allowed() -> None:
    with pytest.raises(ValueError, match="can't be allowed"):
        ng.Policy(allowed=frozenset({ng.AddressClass.METADATA}), purpose="x")


@pytest.mark.parametrize(
    ("host", "resolved", "words"),
    [
        ("8.8.8.8", None, "8.8.8.8 is a public address; a probe only calls loopback or private addresses"),
        ("169.254.10.1", None, "169.254.10.1 is a link-local address"),
        ("169.254.169.254", None, "169.254.169.254 is a metadata address"),
        ("fd00:ec2::254", None, "fd00:ec2::254 is a metadata address"),
        ("gw.example", ["127.0.0.1", "8.8.8.8"], "'gw.example' resolves to 8.8.8.8, a public address; a probe"),
        ("gw.example", ["10.0.0.5", "169.254.169.254"], "resolves to 169.254.169.254, a metadata address"),
    ],
)
def test_the_guard_refuses_what_the_policy_doesnt_allow(host: str, resolved: list[str] | None, words: str) -> None:
    with pytest.raises(ServiceError) as caught:
        checked(host, 5000, resolve=lambda _h, _p: resolved or [])
    assert words in str(caught.value)
    assert str(caught.value).startswith("The gateway URL")
    assert caught.value.field == "url"


def test_the_guard_checks_every_address_and_keeps_them_in_order() -> None:
    got = checked("gw.internal", 5000, resolve=lambda _h, _p: ["10.0.0.5", "127.0.0.1", "fd00::7"])
    assert got.addresses == ("10.0.0.5", "127.0.0.1", "fd00::7")
    assert got.classes == {ng.AddressClass.PRIVATE, ng.AddressClass.LOOPBACK}
    assert checked("LOCALHOST", 1).addresses  # the system resolver knows localhost


def test_a_name_that_does_not_resolve_is_a_sentence() -> None:
    def fail(_host: str, _port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(ServiceError, match=r"the host 'nowhere.invalid' does not resolve \(Name or service"):
        checked("nowhere.invalid", 5000, resolve=fail)
    with pytest.raises(ServiceError, match="resolves to no address"):
        checked("empty.invalid", 5000, resolve=lambda _h, _p: [])


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1:5000", "must start with https://"),
        ("ftp://127.0.0.1", "must start with https://"),
        ("127.0.0.1:5000", "must start with https://"),
        ("https://user:secret@127.0.0.1:5000", "must not carry a user name or password"),
        ("https://127.0.0.1:5000/?next=x", "must not have a query or a fragment"),
        ("https://127.0.0.1:5000/#x", "must not have a query or a fragment"),
        ("https://127.0.0.1:99999", "bad port"),
        ("https://127.0.0.1:0", "bad port"),
        ("https://127.0.0.1 :5000", "whitespace"),
        ("", "empty"),
    ],
)
def test_urls_are_parsed_strictly(url: str, words: str) -> None:
    with pytest.raises(ServiceError, match=words) as caught:
        ng.parse_url(url, what="The gateway URL", field="url")
    assert caught.value.field == "url"


def test_a_url_keeps_its_port_and_path_prefix() -> None:
    parsed = ng.parse_url("https://LocalHost:5000/ibeam/", what="The gateway URL", field="url")
    assert (parsed.host, parsed.port, parsed.path) == ("localhost", 5000, "/ibeam")
    assert ng.parse_url("https://[::1]/", what="x", field="url").base == "https://[::1]:443"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:7497", ("127.0.0.1", 7497)), ("[::1]:4001", ("::1", 4001)), ("tws.local:7496", ("tws.local", 7496))],
)
def test_host_port(text: str, expected: tuple[str, int]) -> None:
    assert ng.parse_host_port(text, what="The TWS address", field="tws") == expected


@pytest.mark.parametrize("text", ["127.0.0.1", "::1:7497", "[::1]7497", "host:0", "host:65536", ":7497", "a b:1"])
def test_bad_host_port(text: str) -> None:
    with pytest.raises(ServiceError) as caught:
        ng.parse_host_port(text, what="The TWS address", field="tws")
    assert caught.value.field == "tws"


# --- the Client Portal Gateway client ---------------------------------------------------------


def test_an_authenticated_session_with_its_expiry(gateway: FakeGateway) -> None:
    target = GatewayTarget(host="127.0.0.1", port=gateway.port, path="", tls=TlsMode.SELF_SIGNED)
    outcome = probe_gateway(target, checked("127.0.0.1", gateway.port), timeouts=FAST)
    assert outcome.state == ProbeState.AUTHENTICATED
    assert outcome.detail == "authenticated and connected, not competing"
    assert outcome.expires_in == timedelta(minutes=9)
    assert outcome.server_version == "Build 10.25.0p, Dec 5, 2023 5:48:12 PM"
    assert outcome.address == "127.0.0.1"
    # Exactly the two calls, as POSTs with an empty body: no login, no reauthenticate, no ssodh/init.
    assert [(s.method, s.path) for s in gateway.requests] == [("POST", TICKLE), ("POST", AUTH_STATUS)]
    assert all(s.body == b"" and s.headers["Content-Length"] == "0" for s in gateway.requests)
    assert gateway.requests[0].headers["Host"] == f"127.0.0.1:{gateway.port}"
    assert "Cookie" not in gateway.requests[0].headers and "Authorization" not in gateway.requests[0].headers


def test_a_path_prefix_is_kept(gateway: FakeGateway) -> None:
    target = GatewayTarget(host="127.0.0.1", port=gateway.port, path="/ibeam", tls=TlsMode.SELF_SIGNED)
    outcome = probe_gateway(target, checked("127.0.0.1", gateway.port), timeouts=FAST)
    assert outcome.state == ProbeState.UNEXPECTED and "HTTP 404" in outcome.detail
    assert gateway.paths() == ["/ibeam" + TICKLE]


def test_self_signed_is_refused_unless_allowed_or_trusted_by_a_bundle(
    gateway: FakeGateway, certificate: Certificate
) -> None:
    state, detail = ask(gateway, tls=TlsMode.SYSTEM)
    assert state == ProbeState.UNEXPECTED
    assert detail.startswith("the gateway's TLS certificate isn't trusted (")
    assert gateway.requests == []  # nothing was asked over an untrusted connection

    assert ask(gateway, tls=TlsMode.SELF_SIGNED)[0] == ProbeState.AUTHENTICATED
    assert ask(gateway, tls=TlsMode.CA_BUNDLE, ca_bundle=str(certificate.cert))[0] == ProbeState.AUTHENTICATED
    # Verified against the name: "localhost" is in the certificate, and the call still goes to
    # the checked address (SNI and the Host header carry the name).
    before = len(gateway.requests)
    assert ask(gateway, tls=TlsMode.CA_BUNDLE, ca_bundle=str(certificate.cert), host="localhost")[0] == (
        ProbeState.AUTHENTICATED
    )
    assert gateway.requests[before].headers["Host"] == f"localhost:{gateway.port}"


def test_a_certificate_for_another_name_is_refused(gateway: FakeGateway, certificate: Certificate) -> None:
    target = GatewayTarget(
        host="gw.internal", port=gateway.port, path="", tls=TlsMode.CA_BUNDLE, ca_bundle=str(certificate.cert)
    )
    outcome = probe_gateway(
        target, checked("gw.internal", gateway.port, resolve=lambda _h, _p: ["127.0.0.1"]), timeouts=FAST
    )
    assert outcome.state == ProbeState.UNEXPECTED and "isn't trusted" in outcome.detail
    assert gateway.requests == []


def test_a_missing_ca_bundle_is_an_unexpected_answer(gateway: FakeGateway, tmp_path: Path) -> None:
    state, detail = ask(gateway, tls=TlsMode.CA_BUNDLE, ca_bundle=str(tmp_path / "gone.pem"))
    assert state == ProbeState.UNEXPECTED and detail.startswith("the CA bundle can't be used")


def test_not_running_when_refused() -> None:
    port = closed_port()
    target = GatewayTarget(host="127.0.0.1", port=port, path="", tls=TlsMode.SELF_SIGNED)
    outcome = probe_gateway(target, checked("127.0.0.1", port), timeouts=FAST)
    assert (outcome.state, outcome.detail) == (ProbeState.NOT_RUNNING, "connection refused")


def test_not_running_when_silent_past_the_timeout_after_one_retry(gateway: FakeGateway) -> None:
    gateway.script(TICKLE, Answer(delay=2.0))
    started = time.monotonic()
    state, detail = ask(gateway)
    assert time.monotonic() - started < 1.5
    assert state == ProbeState.NOT_RUNNING
    assert detail == f"{TICKLE}: no answer within 0.3 s (connection accepted)"
    assert gateway.paths() == [TICKLE, TICKLE]  # one retry, then give up


def test_a_slow_answer_within_the_timeout_is_fine(gateway: FakeGateway) -> None:
    gateway.script(AUTH_STATUS, Answer(body={"authenticated": True, "connected": True, "competing": False}, delay=0.1))
    assert ask(gateway)[0] == ProbeState.AUTHENTICATED


def test_a_retry_that_succeeds(gateway: FakeGateway) -> None:
    from tests.support.fake_gateway import tickle

    gateway.script(TICKLE, Answer(delay=2.0), Answer(body=tickle()))
    assert ask(gateway)[0] == ProbeState.AUTHENTICATED
    assert gateway.paths() == [TICKLE, TICKLE, AUTH_STATUS]


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (Answer(status=401, body=""), "no session: nobody is logged in to the gateway (HTTP 401)"),
        (
            Answer(status=401, body={"error": "no session"}),
            'no session: nobody is logged in to the gateway (HTTP 401); the gateway says "no session"',
        ),
        (Answer(status=200, body={"error": "no session"}), "(HTTP 200)"),
    ],
)
def test_no_session(gateway: FakeGateway, answer: Answer, words: str) -> None:
    gateway.script(TICKLE, answer)
    state, detail = ask(gateway)
    assert state == ProbeState.NO_SESSION and words in detail
    assert gateway.paths() == [TICKLE]


def test_no_session_from_auth_status(gateway: FakeGateway) -> None:
    gateway.script(AUTH_STATUS, Answer(status=401, body=""))
    assert ask(gateway)[0] == ProbeState.NO_SESSION


@pytest.mark.parametrize(
    ("flags", "state", "detail"),
    [
        (
            {"connected": False, "authenticated": False},
            ProbeState.NOT_CONNECTED,
            "the gateway isn't connected to IBKR",
        ),
        (
            {"competing": True, "authenticated": True, "message": "competing session"},
            ProbeState.COMPETING,
            'competing: another session with this username took over; the gateway says message "competing session"',
        ),
        ({"competing": True, "connected": False}, ProbeState.COMPETING, "competing:"),
        (
            {"authenticated": False, "fail": "Please log in"},
            ProbeState.NOT_AUTHENTICATED,
            'connected, but the brokerage session isn\'t authenticated; the gateway says fail "Please log in"',
        ),
    ],
)
def test_unhealthy_sessions(gateway: FakeGateway, flags: dict[str, Any], state: ProbeState, detail: str) -> None:
    gateway.answer_status(**flags)
    got_state, got_detail = ask(gateway)
    assert got_state == state
    assert got_detail.startswith(detail)
    assert state_text("gateway", got_state) in {"not connected", "competing", "not authenticated"}


def test_the_gateways_words_are_kept_but_made_harmless(gateway: FakeGateway) -> None:
    gateway.answer_status(authenticated=False, message="\x1b[2J<!channel>\nline two\u202e", fail="x" * 500)
    state, detail = ask(gateway)
    assert state == ProbeState.NOT_AUTHENTICATED
    assert '"\\x1b[2J<!channel> line two"' in detail  # ESC written out, line joined, bidi override gone
    assert "\x1b" not in detail and "\n" not in detail and "\u202e" not in detail
    assert len(detail) <= 300


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (
            Answer(status=200, body="<html><body>Login</body></html>", content_type="text/html"),
            "answered an HTML page, not the gateway's JSON",
        ),
        (Answer(status=200, body="<html>", content_type="application/json"), "HTML page"),
        (Answer(status=200, body="{not json"), "answered something that isn't JSON"),
        (Answer(status=200, body=b"\xff\xfe\x00"), "isn't JSON"),
        (Answer(status=200, body=[1, 2]), "JSON that isn't an object"),
        (Answer(status=500, body={"error": "Internal Server Error"}), 'HTTP 500; it says "Internal Server Error"'),
        (Answer(status=503, body=""), "answered HTTP 503"),
        (Answer(status=200, body="x" * (70 * 1024)), "answered more than 64 KiB"),
        (Answer(raw=b"\x00\x01garbage that is no HTTP\r\n\r\n"), "not an HTTP answer"),
    ],
)
def test_unexpected_answers(gateway: FakeGateway, answer: Answer, words: str) -> None:
    gateway.script(TICKLE, answer)
    state, detail = ask(gateway)
    assert state == ProbeState.UNEXPECTED
    assert words in detail
    assert AUTH_STATUS not in gateway.paths()


def test_auth_status_without_its_flags_is_unexpected(gateway: FakeGateway) -> None:
    gateway.script(AUTH_STATUS, Answer(body={"authenticated": "yes", "connected": True}))
    state, detail = ask(gateway)
    assert state == ProbeState.UNEXPECTED and "without the authenticated / connected / competing flags" in detail


def test_redirects_are_never_followed(gateway: FakeGateway) -> None:
    gateway.script(TICKLE, Answer(status=302, body="", headers={"Location": f"{gateway.url}/sso/Login?x=<b>"}))
    gateway.script("/sso/Login?x=<b>", Answer(body={"error": "followed"}))
    state, detail = ask(gateway)
    assert state == ProbeState.UNEXPECTED
    assert detail.startswith(f'{TICKLE} redirected to "{gateway.url}/sso/Login?x=')
    assert "(HTTP 302, not followed)" in detail
    assert gateway.paths() == [TICKLE]


def test_expiry_only_when_believable(gateway: FakeGateway) -> None:
    for value, expected in ((None, None), (0, None), (-5, None), (10**12, None), (60_000, timedelta(minutes=1))):
        gateway.answer_status(sso_expires_ms=value)
        target = GatewayTarget(host="127.0.0.1", port=gateway.port, path="", tls=TlsMode.SELF_SIGNED)
        assert probe_gateway(target, checked("127.0.0.1", gateway.port), timeouts=FAST).expires_in == expected


def test_proxies_from_the_environment_are_ignored(gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("ALL_PROXY", f"http://127.0.0.1:{closed_port()}")
    assert ask(gateway)[0] == ProbeState.AUTHENTICATED


def test_plain_tcp_where_tls_was_expected() -> None:
    fake = FakeTws("garbage").start()
    try:
        target = GatewayTarget(host="127.0.0.1", port=fake.port, path="", tls=TlsMode.SELF_SIGNED)
        outcome = probe_gateway(target, checked("127.0.0.1", fake.port), timeouts=FAST)
    finally:
        fake.stop()
    assert outcome.state == ProbeState.UNEXPECTED
    assert outcome.detail.startswith("TLS handshake failed")


# --- the TWS / IB Gateway API socket -----------------------------------------------------------


def tws_checked(port: int) -> ng.Checked:
    return ng.check("127.0.0.1", port, policy=POLICY, what="The TWS / IB Gateway address", field="tws")


def wait_for(fake: FakeTws, count: int = 1) -> list[bytes]:
    deadline = time.monotonic() + 3
    while len(fake.received) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return fake.received


@pytest.fixture
def tws_fake(request: pytest.FixtureRequest) -> Iterator[FakeTws]:
    mode, kwargs = getattr(request, "param", ("accept", {}))
    fake = FakeTws(mode, **kwargs).start()
    yield fake
    fake.stop()


def test_the_handshake_bytes_are_the_official_clients() -> None:
    version = b"v100..222"
    assert handshake() == b"API\x00" + struct.pack("!I", len(version)) + version
    assert handshake() == b"API\x00\x00\x00\x00\x09v100..222"


def test_accepting_api_connections(tws_fake: FakeTws) -> None:
    outcome = probe_tws(tws_checked(tws_fake.port), timeouts=TWS_FAST)
    assert outcome.state == ProbeState.ACCEPTING
    assert outcome.detail == "accepting API connections: server version 176, connection time 20261125 08:05:00 EST"
    assert outcome.server_version == "176"
    # The handshake and nothing else: no startApi, no client id, and the socket closed.
    assert wait_for(tws_fake) == [handshake()]


@pytest.mark.parametrize("tws_fake", [("news_first", {}), ("accept", {"delay": 0.1})], indirect=True)
def test_a_message_before_the_reply_or_a_slow_reply(tws_fake: FakeTws) -> None:
    assert probe_tws(tws_checked(tws_fake.port), timeouts=TWS_FAST).state == ProbeState.ACCEPTING


def test_not_running_or_not_logged_in() -> None:
    outcome = probe_tws(tws_checked(closed_port()), timeouts=TWS_FAST)
    assert outcome.state == ProbeState.NOT_RUNNING
    assert outcome.detail == "connection refused: not running, not logged in, or API off"
    assert state_text("tws", outcome.state) == "not running or not logged in"


@pytest.mark.parametrize("tws_fake", [("silent", {}), ("accept", {"delay": 0.6})], indirect=True)
def test_not_answering(tws_fake: FakeTws) -> None:
    started = time.monotonic()
    outcome = probe_tws(tws_checked(tws_fake.port), timeouts=TWS_FAST)
    assert time.monotonic() - started < 1.0
    assert outcome.state == ProbeState.NOT_ANSWERING
    assert outcome.detail.startswith("accepted the connection, then silent for 0.3 s")
    assert wait_for(tws_fake) == [handshake()]


@pytest.mark.parametrize(
    ("tws_fake", "words"),
    [
        (("close", {}), "the connection closed without a reply"),
        (("reset", {}), "without a reply"),
        (("garbage", {}), "a frame of 1213486160 bytes is not a handshake reply"),
        (("short", {}), "the connection closed mid-message (4 of 40 bytes)"),
        (("bad_version", {}), "the reply's server version 'v176' is not a number"),
    ],
    indirect=["tws_fake"],
)
def test_unexpected_socket_answers(tws_fake: FakeTws, words: str) -> None:
    outcome = probe_tws(tws_checked(tws_fake.port), timeouts=TWS_FAST)
    assert outcome.state == ProbeState.UNEXPECTED
    assert words in outcome.detail


def test_tidy_makes_one_harmless_line() -> None:
    assert tidy("a\r\nb\tc\x00d\x1b[31m\u200be\u202e") == "a b c\\x00d\\x1b[31me"
    assert tidy("y" * 200, 10) == "yyyyyyyyy…"
