"""App Home shows the broker probes (issue 19, part 2), on SQLite and PostgreSQL, through the
real signed HTTP path: a trader's own endpoints with their latest result (label, target, state,
when — in the desk's zone), the authentication line "verified by probe" as the roster says it
(today's results only), and a manager's one-line count per desk. Everything escaped."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy.engine import Engine

from bot.db import session_scope
from bot.desks import service as desks
from bot.probe import service
from bot.probe.models import ProbeState
from bot.probe.outcome import Outcome
from bot.slack.ids import Event
from tests.support.factories import make_desk
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot

HOSTILE_LABEL = "gw <!channel> *x*"


def endpoints(engine: Engine, *targets: tuple[str, str, str]) -> list[int]:
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name="equities")
        ids = []
        for trader, label, tws in targets:
            data = service.EndpointInput(trader_id=trader, label=label, tws=tws)
            row = service.add_endpoint(session=session, desk=desk, data=data, actor="cli", now=desk.created_at)
            ids.append(row.id or 0)
        return ids


def store(engine: Engine, endpoint_id: int, state: ProbeState, at: object, detail: str = "") -> None:
    with session_scope(engine) as session:
        service.record_result(session=session, endpoint_id=endpoint_id, outcome=Outcome(state, detail), now=at)  # type: ignore[arg-type]


def home_of(bot: Bot, fake_slack: FakeSlack, user: str) -> str:
    before = len(fake_slack.of("views.publish"))
    response = bot.event({"type": Event.APP_HOME_OPENED, "user": user, "channel": "D1", "tab": "home"})
    assert response.status_code == 200
    bot.settle()
    published = fake_slack.of("views.publish")[before:]
    assert published and published[-1].params["user_id"] == user
    view = published[-1].params["view"]
    assert len(view["blocks"]) <= 100
    return json.dumps(view, ensure_ascii=False)


def test_a_trader_sees_each_endpoint_and_verified_by_probe(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    now = bot.clock()  # Wed 25 Nov 08:05 New York
    tws, gw = endpoints(engine, ("UTRD1", HOSTILE_LABEL, "127.0.0.1:4001"), ("UTRD1", "alice-api", "10.0.0.5:4002"))
    store(engine, tws, ProbeState.ACCEPTING, now - timedelta(minutes=3))
    store(engine, gw, ProbeState.ACCEPTING, now - timedelta(minutes=1))
    home = home_of(bot, fake_slack, "UTRD1")
    # The authentication line, in the roster's words (the earliest of today's healthy probes).
    assert "🔌 authentication verified by probe 08:02" in home
    assert "*Your broker probes*" in home
    assert "gw &lt;!channel&gt; ∗x∗" in home and "<!channel>" not in home  # escaped
    assert "`127.0.0.1:4001` · accepting API connections · checked Wed 25 Nov 08:02 EST" in home
    assert "*alice-api* · `10.0.0.5:4002`" in home
    # Someone with no endpoint sees no probe section.
    assert "Your broker probes" not in home_of(bot, fake_slack, "UTRD2")


def test_a_failing_or_stale_probe_never_reads_verified(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    now = bot.clock()
    tws, other = endpoints(engine, ("UTRD1", "alice-tws", "127.0.0.1:4001"), ("UTRD2", "bob-tws", "127.0.0.1:4003"))
    store(engine, tws, ProbeState.NOT_RUNNING, now, detail="connection refused <@U123>")
    store(engine, other, ProbeState.ACCEPTING, now - timedelta(days=1))  # yesterday's
    home = home_of(bot, fake_slack, "UTRD1")
    assert "verified by probe" not in home
    assert "🔌 probe: alice-tws: not running or not logged in — Platform or session" in home
    assert "⚠️ *alice-tws* · `127.0.0.1:4001` · not running or not logged in (Platform or session)" in home
    assert "connection refused &lt;@U123&gt;" in home and "<@U123>" not in home
    bob = home_of(bot, fake_slack, "UTRD2")
    assert "verified by probe" not in bob  # yesterday's probe proves nothing today
    assert "checked Tue 24 Nov 08:05 EST" in bob  # but the endpoint shows what it last found, and when


def test_a_manager_sees_one_line_per_desk(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    now = bot.clock()
    ids = endpoints(
        engine,
        ("UTRD1", "alice-tws", "127.0.0.1:4001"),
        ("UTRD1", "alice-gw", "127.0.0.1:4002"),
        ("UTRD2", "bob-tws", "127.0.0.1:4003"),
    )
    store(engine, ids[0], ProbeState.COMPETING, now)
    store(engine, ids[1], ProbeState.ACCEPTING, now - timedelta(minutes=2))
    home = home_of(bot, fake_slack, "UMGR1")
    assert (
        "🔌 Broker probes: 3 endpoints · 1 healthy · ⚠️ 1 failing (1 trader) · 1 not probed yet · last Wed 25 Nov "
        "08:05 EST" in home
    )
