"""The probe wired into the product (bot.probe.wiring), on SQLite and PostgreSQL: when a desk's
probes are due, the roster's authentication fact, and the PROBE_FAILED escalation opened by a
failing probe and resolved by a healthy one."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.checklist import facts as checklist_facts
from bot.db import session_scope
from bot.delivery.models import OutboxMessage
from bot.desks import service as desks
from bot.escalation.models import Escalation, EscalationKind, EscalationState
from bot.probe import service, wiring
from bot.probe.models import ProbeState
from bot.probe.outcome import Outcome
from bot.probe.tws import TwsTimeouts
from tests.support.factories import MANAGERS, make_desk, name_people
from tests.support.fake_gateway import closed_port
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot
from tests.support.profile_fixtures import ephemerals

NOW = datetime(2026, 11, 25, 13, 5, tzinfo=UTC)  # Wed 08:05 New York: the 08:00 checklist is out


def setup(engine: Engine, *targets: tuple[str, str, str]) -> list[int]:
    make_desk(engine)
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name="equities")
        assert desk.id is not None
        for trader, label, tws in targets:
            data = service.EndpointInput(trader_id=trader, label=label, tws=tws)
            service.add_endpoint(session=session, desk=desk, data=data, actor="cli", now=NOW - timedelta(days=1))
        return [r.id or 0 for r in service.list_endpoints(session=session, desk_id=desk.id)]


def store(engine: Engine, endpoint_id: int, state: ProbeState, at: datetime, detail: str = "") -> None:
    with session_scope(engine) as session:
        service.record_result(session=session, endpoint_id=endpoint_id, outcome=Outcome(state, detail), now=at)


def follow(engine: Engine, at: datetime) -> str:
    with session_scope(engine) as session:
        return wiring.follow_up(session, desks.get_desk(session=session, name="equities"), at)


def escalations(engine: Engine) -> list[Escalation]:
    with Session(engine) as session:
        return list(session.exec(select(Escalation).where(Escalation.kind == EscalationKind.PROBE_FAILED)).all())


def test_a_failing_probe_escalates_once_by_layer_and_a_healthy_one_resolves_it(engine: Engine) -> None:
    (gw,) = setup(engine, ("UTRD1", "gw <b>", "127.0.0.1:4001"))
    store(engine, gw, ProbeState.COMPETING, NOW, detail="another login")
    assert "1 probe escalation(s) opened" in follow(engine, NOW)
    assert "0 probe escalation(s) opened" in follow(engine, NOW + timedelta(minutes=1))  # one open at a time
    (esc,) = escalations(engine)
    assert (esc.trader_id, esc.run_id, esc.state) == ("UTRD1", None, EscalationState.OPEN)
    # A competing session is the platform or session layer, never identity.
    assert "competing — Platform or session (another login)" in esc.detail
    assert "Identity" not in esc.detail
    store(engine, gw, ProbeState.ACCEPTING, NOW + timedelta(minutes=5))
    assert "1 resolved" in follow(engine, NOW + timedelta(minutes=5))
    (esc,) = escalations(engine)
    assert esc.state == EscalationState.RESOLVED and esc.resolved_by is None
    assert esc.resolution_note == "a probe found their session healthy again"


def test_a_round_that_fails_several_traders_tells_each_manager_once(engine: Engine) -> None:
    """An outage of the gateways: what one round opens reaches each manager as one grouped
    message, not a DM per trader (bot.escalation.notices.notify_standing)."""
    traders = ("UTRD1", "UTRD2", "UTRD3", "UTRD4", "UTRD5")
    make_desk(engine, traders=traders)
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name="equities")
        endpoints = {
            t: service.add_endpoint(
                session=session,
                desk=desk,
                data=service.EndpointInput(trader_id=t, label=f"gw {t}", tws=f"127.0.0.1:{4001 + i}"),
                actor="cli",
                now=NOW - timedelta(days=1),
            ).id
            or 0
            for i, t in enumerate(traders)
        }
    for trader in traders[:4]:
        store(engine, endpoints[trader], ProbeState.NOT_RUNNING, NOW, detail="refused")
    assert "4 probe escalation(s) opened" in follow(engine, NOW)
    ids = sorted(e.id or 0 for e in escalations(engine))
    desk_id = escalations(engine)[0].desk_id
    assert len(ids) == 4
    assert outbox_keys(engine) == [f"digest:s{desk_id}:{ids[0]}:{m}" for m in sorted(MANAGERS)]
    # One trader failing alone later is a DM of its own to each manager.
    store(engine, endpoints["UTRD5"], ProbeState.NOT_RUNNING, NOW + timedelta(minutes=1), detail="refused")
    assert "1 probe escalation(s) opened" in follow(engine, NOW + timedelta(minutes=1))
    assert len([k for k in outbox_keys(engine) if ":dm:" in k]) == len(MANAGERS)


def outbox_keys(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return sorted(m.dedup_key for m in session.exec(select(OutboxMessage)).all())


def test_no_session_is_a_login_with_the_second_factor() -> None:
    assert wiring.layer_of(ProbeState.NO_SESSION).value == "device_trust"
    assert wiring.layer_of(ProbeState.COMPETING).value == "platform"


def run_of(engine: Engine, day: date) -> Any:
    with Session(engine) as session:
        desk = desks.get_desk(session=session, name="equities")
    return SimpleNamespace(desk_id=desk.id, trading_date=day)


def test_the_roster_fact_verified_by_probe_only_for_todays_results(engine: Engine) -> None:
    ok, bad = setup(engine, ("UTRD1", "one", "127.0.0.1:4001"), ("UTRD2", "two", "127.0.0.1:4002"))
    store(engine, ok, ProbeState.ACCEPTING, NOW)
    store(engine, bad, ProbeState.NO_SESSION, NOW - timedelta(days=1))
    with Session(engine) as session:
        found = checklist_facts.facts_for(session, run_of(engine, date(2026, 11, 25)), ["UTRD1", "UTRD2"])
    assert found["UTRD1"].probe == "🔌 authentication verified by probe 08:05"
    assert "UTRD2" not in found or found["UTRD2"].probe is None  # yesterday's probe proves nothing today
    store(engine, bad, ProbeState.NO_SESSION, NOW)
    with Session(engine) as session:
        found = checklist_facts.facts_for(session, run_of(engine, date(2026, 11, 25)), ["UTRD2"])
    assert found["UTRD2"].probe == "🔌 probe: two: no session — Device trust (second factor / device)"


def test_due_from_the_post_time_once_per_morning(engine: Engine) -> None:
    (one,) = setup(engine, ("UTRD1", "one", "127.0.0.1:4001"))
    with Session(engine) as session:
        desk = desks.get_desk(session=session, name="equities")
        assert not wiring.due(session, desk, NOW - timedelta(minutes=10))  # 07:55: before the post
        assert wiring.due(session, desk, NOW)
    store(engine, one, ProbeState.ACCEPTING, NOW)
    with Session(engine) as session:
        assert not wiring.due(session, desks.get_desk(session=session, name="equities"), NOW + timedelta(minutes=1))


def test_the_pass_probes_due_desks_and_escalates(engine: Engine) -> None:
    setup(engine, ("UTRD1", "down", f"127.0.0.1:{closed_port()}"))
    how = wiring.Probes(tws_timeouts=TwsTimeouts(connect=0.5, answer=0.3))
    lines = wiring.probe_pass(engine, clock=lambda: NOW, how=how)
    assert lines == ["equities: 1 probe escalation(s) opened, 0 resolved."]
    (esc,) = escalations(engine)
    assert "not running or not logged in — Platform or session" in esc.detail
    assert wiring.probe_pass(engine, clock=lambda: NOW + timedelta(minutes=1), how=how) == []  # done this morning


def test_ibstatus_probe_answers_the_callers_own_probes_escaped(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    port = closed_port()
    setup(engine, ("UTRD1", "mine <b>", f"127.0.0.1:{port}"), ("UTRD2", "theirs", f"127.0.0.1:{port}"))
    name_people(engine, {"UTRD1": "Alice *Ames*"})
    response = bot.command("UTRD1", "probe")
    assert response.status_code == 200 and "answer follows" in response.json()["text"]
    bot.settle()
    (text,) = ephemerals(fake_slack, "UTRD1")
    assert "mine &lt;b&gt;" in text and "<b>" not in text  # the label is escaped for mrkdwn
    assert "Alice" in text and "*Ames*" not in text and "UTRD1" not in text  # a name, escaped, not an id
    assert "not running or not logged in — Platform or session" in text and "theirs" not in text
    (esc,) = escalations(engine)
    assert esc.trader_id == "UTRD1"
    assert "No probe is registered" in _answer_of(bot, fake_slack, "UOUTSIDER")


def _answer_of(bot: Bot, fake_slack: FakeSlack, user: str) -> str:
    bot.command(user, "probe")
    bot.settle()
    return ephemerals(fake_slack, user)[-1]
