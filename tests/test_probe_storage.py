"""``preflight probe ...`` and the probe's storage, on SQLite and PostgreSQL, against stand-ins.

The stand-in gateway speaks real TLS on 127.0.0.1 (tests/support/fake_gateway.py), the
stand-in TWS the API handshake (tests/support/fake_tws.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.audit import AuditEvent
from bot.db import session_scope
from bot.desks import service as desks
from bot.errors import ServiceError
from bot.probe import service
from bot.probe.gateway import TICKLE, Timeouts
from bot.probe.jobs import run_probes
from bot.probe.models import ProbeEndpoint, ProbeKind, ProbeResult, ProbeState
from bot.probe.outcome import Outcome
from bot.profile.models import Automation
from tests.support.cli import ADD, run
from tests.support.factories import make_desk
from tests.support.fake_gateway import Certificate, FakeGateway, closed_port
from tests.support.fake_tws import FakeTws

NOW = datetime(2026, 11, 25, 13, 5, tzinfo=UTC)
FAST = Timeouts(connect=0.5, read=0.3, retry_pause=0.01)


@pytest.fixture
def tws() -> Iterator[FakeTws]:
    fake = FakeTws("accept").start()
    yield fake
    fake.stop()


def endpoints(engine: Engine) -> list[ProbeEndpoint]:
    with Session(engine) as session:
        return list(session.exec(select(ProbeEndpoint).order_by(col(ProbeEndpoint.id))).all())


def results(engine: Engine) -> list[ProbeResult]:
    with Session(engine) as session:
        return list(session.exec(select(ProbeResult).order_by(col(ProbeResult.id))).all())


def columns(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_add_list_run_and_remove(
    env: dict[str, str],
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
    gateway: FakeGateway,
    tws: FakeTws,
    certificate: Certificate,
) -> None:
    assert run(capsys, ADD)[0] == 0
    add = ["probe", "add", "equities"]
    code, out, err = run(
        capsys, [*add, "--trader", "U03", "--url", gateway.url, "--label", "alice-gw", "--allow-self-signed"]
    )
    assert (code, err) == (0, "")
    assert out == f"Probe alice-gw added to equities for U03: {gateway.url} (self-signed allowed (not verified)).\n"
    code, out, err = run(capsys, [*add, "--trader", "U04", "--tws", tws.target, "--label", "bob-tws"])
    assert (code, err, out) == (0, "", f"Probe bob-tws added to equities for U04: {tws.target}.\n")
    bundle = ["--ca-bundle", str(certificate.cert)]
    carol = f"https://localhost:{gateway.port}/v1/api/"  # the API suffix is dropped: it's a base URL
    code, out, err = run(capsys, [*add, "--trader", "U05", "--url", carol, "--label", "carol-gw", *bundle])
    assert (code, err) == (0, "")
    assert out == (
        f"Probe carol-gw added to equities for U05: https://localhost:{gateway.port} (CA bundle {certificate.cert}).\n"
    )

    code, out, err = run(capsys, ["probe", "list", "equities"])
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert columns(lines[0]) == ["LABEL", "TRADER", "TARGET", "TLS", "LAST RESULT"]
    assert columns(lines[1]) == ["alice-gw", "U03", gateway.url, "self-signed allowed (not verified)", "never run"]
    assert columns(lines[2]) == ["bob-tws", "U04", tws.target, "-", "never run"]
    assert columns(lines[3])[:2] == ["carol-gw", "U05"]

    code, out, err = run(capsys, ["probe", "run", "equities"])
    assert (code, err) == (0, "")
    alice, bob, carol_line = (columns(line) for line in out.splitlines())
    assert alice[:3] == ["alice-gw", f"{gateway.url} (self-signed)", "authenticated"]
    assert re.fullmatch(
        r"authenticated and connected, not competing; session expires \d{4}-\d\d-\d\d \d\d:\d\dZ \(in 9 min\)", alice[3]
    )
    assert bob == [
        "bob-tws",
        tws.target,
        "accepting API connections",
        "accepting API connections: server version 176, connection time 20261125 08:05:00 EST",
    ]
    assert carol_line[:3] == ["carol-gw", f"https://localhost:{gateway.port}", "authenticated"]
    stored = results(engine)
    assert [(r.state, r.healthy) for r in stored] == [
        ("authenticated", True),
        ("accepting", True),
        ("authenticated", True),
    ]
    assert stored[0].session_expires_at is not None and stored[0].server_version is not None
    assert stored[1].server_version == "176"

    # Nothing of a response body is kept: not the gateway's session id, not its MAC.
    with engine.connect() as conn:
        dump = json.dumps([list(map(str, row)) for row in conn.execute(text("SELECT * FROM probe_result"))])
    assert "4a1c53b7" not in dump and "98:F2" not in dump

    code, out, err = run(capsys, ["probe", "run", "equities", "--trader", "U04"])
    assert (code, err) == (0, "")
    assert [columns(line)[0] for line in out.splitlines()] == ["bob-tws"]
    code, out, _ = run(capsys, ["probe", "list", "equities"])
    assert columns(out.splitlines()[2])[-1].startswith("accepting API connections at ")

    code, out, err = run(capsys, ["probe", "remove", "equities", "--label", "bob-tws"])
    assert (code, err) == (0, "")
    assert out == f"Probe bob-tws removed from equities ({tws.target}), with its results.\n"
    assert [e.label for e in endpoints(engine)] == ["alice-gw", "carol-gw"]
    assert all(r.endpoint_id != 2 for r in results(engine))
    with Session(engine) as session:
        events = session.exec(select(AuditEvent).where(col(AuditEvent.subject).startswith("probe:"))).all()
    assert sorted((e.subject, e.action, e.actor) for e in events) == [
        ("probe:1", "probe_add", "cli"),
        ("probe:2", "probe_add", "cli"),
        ("probe:2", "probe_remove", "cli"),
        ("probe:3", "probe_add", "cli"),
    ]
    added = json.loads(next(e.detail for e in events if e.subject == "probe:1"))
    assert added == {"label": "alice-gw", "target": gateway.url, "tls": "self_signed", "trader": "U03"}

    code, out, err = run(capsys, ["probe", "run", "equities", "--trader", "U04"])
    assert (code, err, out) == (0, "", "No probe endpoints on equities for U04 (preflight probe add).\n")


def test_bad_input_is_one_line_exit_2_and_nothing_stored(
    env: dict[str, str],
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    assert run(capsys, ADD)[0] == 0
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    url = ["--url", "https://127.0.0.1:5000"]

    def add(*extra: str, label: str = "x", trader: str = "U03") -> list[str]:
        return ["probe", "add", "equities", "--trader", trader, "--label", label, *extra]

    cases: list[tuple[list[str], str]] = [
        (
            add("--url", "https://8.8.8.8:5000"),
            "preflight: error: The gateway URL: 8.8.8.8 is a public address; a probe only calls loopback or "
            "private addresses. (--url)",
        ),
        (add("--url", "https://8.8.8.8:5000", "--allow-self-signed"), "8.8.8.8 is a public address"),
        (add("--tws", "169.254.1.1:7497"), "The TWS / IB Gateway address: 169.254.1.1 is a link-local address"),
        (add("--url", "https://169.254.169.254"), "169.254.169.254 is a metadata address; a probe only"),
        (add("--tws", "[fd00:ec2::254]:7497"), "fd00:ec2::254 is a metadata address"),
        (add("--tws", "[2606:4700::1111]:7497"), "is a public address"),
        (add("--url", "http://127.0.0.1:5000"), "must start with https:// (host and port). (--url)"),
        (add("--url", "https://me:pw@127.0.0.1:5000"), "must not carry a user name or password. (--url)"),
        (add("--tws", "127.0.0.1"), "is not HOST:PORT"),
        (add(*url, trader="U01"), "U01 is not a trader on the equities desk. (--trader)"),
        (add(*url, trader="bob"), "'bob' is not a Slack user ID (like U0123ABCD) (--trader)"),
        (add(*url, label=" "), "Give the endpoint a label (e.g. 'alice-gateway'). (--label)"),
        (add(*url, label="a\x1bb"), "The label may not contain control or invisible characters. (--label)"),
        (add(*url, label="y" * 65), "Keep the label to 64 characters (it has 65). (--label)"),
        (add("--tws", "127.0.0.1:7497", "--allow-self-signed"), "speaks no TLS"),
        (add("--tws", "127.0.0.1:7497", "--ca-bundle", str(not_pem)), "speaks no TLS"),
        (add(*url, "--ca-bundle", str(tmp_path / "missing.pem")), "is not a file. (--ca-bundle)"),
        (add(*url, "--ca-bundle", str(not_pem)), "holds no PEM certificate that can be loaded. (--ca-bundle)"),
        (add(*url, "--automation", "nosuch"), "The equities desk has no automation named 'nosuch'. (--automation)"),
        (add(*url, "--tws", "127.0.0.1:7497"), "argument --tws: not allowed with argument --url"),
        (add(), "one of the arguments --url --tws is required"),
        (add(*url, "--allow-self-signed", "--ca-bundle", str(not_pem)), "not allowed with argument"),
        (["probe", "add", "nosuch", "--trader", "U03", "--label", "x", *url], "there is no desk named 'nosuch'"),
        (["probe", "remove", "equities", "--label", "nope"], "The equities desk has no endpoint labelled 'nope'."),
        (["probe", "run", "nosuch"], "there is no desk named 'nosuch'"),
        (["probe", "run", "equities", "--trader", "x y"], "is not a Slack user ID"),
        (["probe", "list", "nosuch"], "there is no desk named 'nosuch'"),
    ]
    for argv, words in cases:
        code, out, err = run(capsys, argv)
        assert (code, out) == (2, ""), argv
        assert len(err.splitlines()) == 1 and err.startswith("preflight"), (argv, err)
        assert words in err, (argv, err)
        assert "\x1b" not in err
    assert endpoints(engine) == []

    assert run(capsys, add(*url, label="dup"))[0] == 0
    code, out, err = run(capsys, add("--tws", "127.0.0.1:7497", label="dup", trader="U04"))
    assert (code, out) == (2, "")
    assert err == "preflight: error: The equities desk already has an endpoint labelled 'dup'. (--label)\n"
    assert [e.label for e in endpoints(engine)] == ["dup"]


def test_dns_rebinding_is_blocked_at_call_time(engine: Engine, gateway: FakeGateway) -> None:
    make_desk(engine)
    answers = {"now": ["127.0.0.1"]}

    def resolve(host: str, port: int) -> list[str]:
        assert host == "gw.internal"
        return answers["now"]

    data = service.EndpointInput(
        trader_id="UTRD1", label="alice", url=f"https://gw.internal:{gateway.port}", allow_self_signed=True
    )
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name="equities")
        service.add_endpoint(session=session, desk=desk, data=data, actor="UMGR1", now=NOW, resolve=resolve)

    def clock() -> datetime:
        return NOW

    (probed,) = run_probes(engine, desk_name="equities", clock=clock, resolve=resolve, gateway_timeouts=FAST)
    assert probed.outcome.state == ProbeState.AUTHENTICATED and probed.outcome.address == "127.0.0.1"
    # Connected to the checked address; the name only in the Host header (it resolves nowhere else).
    assert gateway.requests[0].headers["Host"] == f"gw.internal:{gateway.port}"

    answers["now"] = ["127.0.0.1", "8.8.8.8"]  # the name now also points outside
    before = len(gateway.requests)
    (probed,) = run_probes(engine, desk_name="equities", clock=clock, resolve=resolve, gateway_timeouts=FAST)
    assert probed.outcome.state == ProbeState.BLOCKED
    assert probed.outcome.detail == (
        "not called: The gateway URL: 'gw.internal' resolves to 8.8.8.8, a public address; a probe only calls "
        "loopback or private addresses."
    )
    assert len(gateway.requests) == before
    with Session(engine) as session:
        desk_id = desks.get_desk(session=session, name="equities").id
        assert desk_id is not None
        latest = service.latest(session=session, desk_id=desk_id)
    (status,) = latest["UTRD1"]
    assert (status.state, status.healthy, status.label) == (ProbeState.BLOCKED, False, "alice")


def test_latest_result_per_trader_and_old_results_go(engine: Engine) -> None:
    make_desk(engine)
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name="equities")
        assert desk.id is not None
        for trader, label, target in (("UTRD1", "a1", "10.0.0.5:7497"), ("UTRD1", "a2", "127.0.0.1:4001")):
            data = service.EndpointInput(trader_id=trader, label=label, tws=target)
            service.add_endpoint(session=session, desk=desk, data=data, actor="cli", now=NOW)
        data = service.EndpointInput(trader_id="UTRD2", label="b1", url="https://10.1.1.1:5000")
        service.add_endpoint(session=session, desk=desk, data=data, actor="cli", now=NOW)
        rows = service.list_endpoints(session=session, desk_id=desk.id)
        desk_id = desk.id
    a1, a2, b1 = (r.id or 0 for r in rows)
    with session_scope(engine) as session:
        old = NOW - timedelta(days=40)
        service.record_result(session=session, endpoint_id=a1, outcome=Outcome(ProbeState.NOT_RUNNING, "x"), now=old)
        service.record_result(session=session, endpoint_id=a1, outcome=Outcome(ProbeState.NOT_ANSWERING, "y"), now=NOW)
    with session_scope(engine) as session:
        accepted = Outcome(ProbeState.ACCEPTING, "ok", server_version="176")
        service.record_result(session=session, endpoint_id=a1, outcome=accepted, now=NOW + timedelta(minutes=1))
        expiring = Outcome(ProbeState.COMPETING, "c", expires_in=timedelta(minutes=5))
        service.record_result(session=session, endpoint_id=b1, outcome=expiring, now=NOW)
        assert service.record_result(session=session, endpoint_id=9999, outcome=accepted, now=NOW) is None
    with Session(engine) as session:
        latest = service.latest(session=session, desk_id=desk_id)
        only = service.latest(session=session, desk_id=desk_id, trader_ids=["UTRD2"])
    assert sorted(latest) == ["UTRD1", "UTRD2"]
    first, second = latest["UTRD1"]
    assert (first.endpoint_id, first.state, first.healthy, first.server_version) == (a1, "accepting", True, "176")
    assert first.checked_at == NOW + timedelta(minutes=1) and first.kind == ProbeKind.TWS
    assert (second.endpoint_id, second.state, second.checked_at) == (a2, None, None)
    (b,) = latest["UTRD2"]
    assert (b.state, b.healthy, b.session_expires_at, b.target) == (
        ProbeState.COMPETING,
        False,
        NOW + timedelta(minutes=5),
        "https://10.1.1.1:5000",
    )
    assert list(only) == ["UTRD2"]
    # The 40-day-old result went when a newer one was stored.
    assert sorted(r.state for r in results(engine) if r.endpoint_id == a1) == ["accepting", "not_answering"]


def test_an_automations_endpoint_belongs_to_its_owner(engine: Engine) -> None:
    make_desk(engine)
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name="equities")
        assert desk.id is not None
        session.add(
            Automation(
                desk_id=desk.id,
                owner_id="UMGR1",
                name="rebalancer",
                interface="tws_api",
                broker_username="acme.algo",
                created_by="UMGR1",
            )
        )
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name="equities")
        data = service.EndpointInput(trader_id="UTRD1", label="algo", tws="127.0.0.1:4002", automation="rebalancer")
        with pytest.raises(ServiceError, match="owned by UMGR1: register its endpoint under its owner") as caught:
            service.add_endpoint(session=session, desk=desk, data=data, actor="cli", now=NOW)
        assert caught.value.field == "trader"
        owner = service.EndpointInput(trader_id="UMGR1", label="algo", tws="127.0.0.1:4002", automation="rebalancer")
        row = service.add_endpoint(session=session, desk=desk, data=owner, actor="cli", now=NOW)
        assert row.automation_id is not None and row.trader_id == "UMGR1"


def test_a_run_reports_every_state_it_meets(engine: Engine, gateway: FakeGateway) -> None:
    make_desk(engine)
    silent = FakeTws("silent").start()
    try:
        with session_scope(engine) as session:
            desk = desks.get_desk(session=session, name="equities")
            for label, data in (
                ("down", service.EndpointInput(trader_id="UTRD1", label="down", tws=f"127.0.0.1:{closed_port()}")),
                ("quiet", service.EndpointInput(trader_id="UTRD2", label="quiet", tws=silent.target)),
                ("untrusted", service.EndpointInput(trader_id="UTRD3", label="untrusted", url=gateway.url)),
            ):
                assert service.add_endpoint(session=session, desk=desk, data=data, actor="cli", now=NOW).label == label
        from bot.probe.tws import TwsTimeouts

        probed = run_probes(
            engine,
            desk_name="equities",
            clock=lambda: NOW,
            gateway_timeouts=FAST,
            tws_timeouts=TwsTimeouts(connect=0.5, answer=0.3),
        )
    finally:
        silent.stop()
    assert [(p.endpoint.label, p.outcome.state) for p in probed] == [
        ("down", ProbeState.NOT_RUNNING),
        ("quiet", ProbeState.NOT_ANSWERING),
        ("untrusted", ProbeState.UNEXPECTED),
    ]
    assert TICKLE not in [s.path for s in gateway.requests]
    assert [(r.state, r.healthy, r.checked_at) for r in results(engine)] == [
        ("not_running", False, NOW),
        ("not_answering", False, NOW),
        ("unexpected", False, NOW),
    ]
