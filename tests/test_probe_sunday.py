"""The Sunday-evening probe (issue 19, part 2), on SQLite and PostgreSQL: a desk that trades
Sunday evening has its broker sessions probed on Sunday after IBKR's weekly re-authentication
and reset window, before IBKR's FX week opens — the instant computed in New York time across
DST, shown in the desk's zone — failures escalated like any probe failure, successes silent.
The setting through the CLI and the Slack desk-settings modal."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot import calendar
from bot.db import session_scope
from bot.desks import service as desks
from bot.desks.listing import sunday_text
from bot.desks.models import Desk
from bot.escalation.models import Escalation, EscalationKind, EscalationState
from bot.probe import service, wiring
from bot.probe.gateway import Timeouts
from bot.probe.models import ProbeState
from bot.probe.outcome import Outcome
from bot.runtime import deliver_due
from bot.slack.ids import FIELD, Action, Callback
from tests.support.cli import ADD, pretend_now, run
from tests.support.desk_fixtures import desk_row, settings_values
from tests.support.escalation_fixtures import delivery_client, outbox_rows
from tests.support.factories import make_desk
from tests.support.fake_gateway import AUTH_STATUS, TICKLE, Certificate, FakeGateway
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot

NEW_YORK = ZoneInfo("America/New_York")
SUNDAY = date(2026, 12, 6)
PROBE_AT = datetime(2026, 12, 6, 20, 15, tzinfo=UTC)  # Sunday 15:15 EST
FAST = Timeouts(connect=0.5, read=0.5, retry_pause=0.01)


# --- the arithmetic: New York time, across DST -----------------------------------------------------


@pytest.mark.parametrize(
    ("sunday", "probe_utc"),
    [
        (date(2026, 3, 1), datetime(2026, 3, 1, 20, 15, tzinfo=UTC)),  # EST
        (date(2026, 3, 8), datetime(2026, 3, 8, 19, 15, tzinfo=UTC)),  # DST began at 02:00 that morning
        (date(2026, 10, 25), datetime(2026, 10, 25, 19, 15, tzinfo=UTC)),  # EDT
        (date(2026, 11, 1), datetime(2026, 11, 1, 20, 15, tzinfo=UTC)),  # DST ended at 02:00 that morning
    ],
)
def test_the_sunday_probe_is_15_15_new_york_time_whatever_the_offset(sunday: date, probe_utc: datetime) -> None:
    window = calendar.sunday_window(sunday)
    assert window.probe_at == probe_utc
    local = window.probe_at.astimezone(NEW_YORK)
    assert (local.date(), local.time()) == (sunday, time(15, 15))
    # After the token invalidation (01:00 ET) and North America's daily reset (until 01:45 ET)...
    assert window.probe_at > calendar.local_to_utc(sunday, time(1, 45), NEW_YORK)
    # ...two hours before IDEALPRO opens the FX week (17:15 ET), and due until Monday's reset (00:15 ET).
    assert window.fx_open.astimezone(NEW_YORK).time() == time(17, 15)
    assert window.fx_open - window.probe_at == timedelta(hours=2)
    until = window.until.astimezone(NEW_YORK)
    assert (until.date(), until.time()) == (sunday + timedelta(days=1), time(0, 15))


def test_the_window_edges_and_the_next_window() -> None:
    at = calendar.sunday_window_at
    assert at(PROBE_AT - timedelta(minutes=1)) is None
    assert at(PROBE_AT) is not None and at(PROBE_AT).sunday == SUNDAY  # type: ignore[union-attr]
    monday_reset = datetime(2026, 12, 7, 5, 15, tzinfo=UTC)  # Monday 00:15 EST
    assert at(monday_reset - timedelta(minutes=1)) is not None  # Monday 00:14 New York: still Sunday's
    assert at(monday_reset) is None
    assert at(datetime(2026, 12, 5, 20, 15, tzinfo=UTC)) is None  # Saturday
    assert at(datetime(2026, 12, 9, 20, 15, tzinfo=UTC)) is None  # Wednesday
    nxt = calendar.next_sunday_window
    assert nxt(datetime(2026, 12, 4, 12, 0, tzinfo=UTC)).sunday == SUNDAY  # Friday: the coming Sunday
    assert nxt(PROBE_AT + timedelta(hours=3)).sunday == SUNDAY  # inside the window: this one
    assert nxt(monday_reset).sunday == date(2026, 12, 13)
    with pytest.raises(ValueError):
        calendar.sunday_window(date(2026, 12, 7))


@pytest.mark.parametrize(
    ("zone", "now", "shown"),
    [
        # The US is on summer time three weeks before the UK: 15:15 EDT is 19:15 in London...
        ("Europe/London", datetime(2026, 3, 20, 12, 0, tzinfo=UTC), "Sun 22 Mar 19:15 GMT"),
        # ...and 20:15 once both are (BST began on 29 March).
        ("Europe/London", datetime(2026, 3, 30, 12, 0, tzinfo=UTC), "Sun 05 Apr 20:15 BST"),
        # Sydney leaves summer time the same Sunday morning (05 Apr): Monday 05:15 AEST.
        ("Australia/Sydney", datetime(2026, 3, 30, 12, 0, tzinfo=UTC), "Mon 06 Apr 05:15 AEST"),
        ("America/Chicago", datetime(2026, 11, 30, 12, 0, tzinfo=UTC), "Sun 06 Dec 14:15 CST"),
    ],
)
def test_the_desk_sees_the_instant_in_its_own_zone(zone: str, now: datetime, shown: str) -> None:
    desk = Desk(name="fx", channel_id="C1", timezone=zone, post_at="08:00", deadline="09:00", sunday_evening=True)
    text = sunday_text(desk, now)
    assert "15:15 New York time" in text and shown in text, text
    assert sunday_text(Desk(**{**desk.model_dump(), "sunday_evening": False}), now).startswith("no")


# --- when the scheduler's job probes --------------------------------------------------------------


def _desk(engine: Engine, *, sunday_evening: bool, name: str = "equities") -> int:
    make_desk(engine, name, channel="C0123")
    with session_scope(engine) as session:
        desks.configure_desk(session=session, name=name, keys=None, sunday_evening=sunday_evening)
        desk = desks.get_desk(session=session, name=name)
        assert desk.id is not None
        return desk.id


def _endpoint(engine: Engine, name: str, label: str, url: str, ca: Certificate) -> int:
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name=name)
        data = service.EndpointInput(trader_id="UTRD1", label=label, url=url, ca_bundle=str(ca.cert))
        row = service.add_endpoint(session=session, desk=desk, data=data, actor="cli", now=PROBE_AT - timedelta(days=3))
        assert row.id is not None
        return row.id


def _due(engine: Engine, now: datetime, name: str = "equities") -> bool:
    with Session(engine) as session:
        return wiring.due(session, desks.get_desk(session=session, name=name), now)


def test_due_on_sunday_only_for_desks_that_trade_sunday_evening(engine: Engine) -> None:
    _desk(engine, sunday_evening=True, name="fx")
    _desk(engine, sunday_evening=False, name="equities")
    with session_scope(engine) as session:
        for name in ("fx", "equities"):
            desk = desks.get_desk(session=session, name=name)
            data = service.EndpointInput(trader_id="UTRD1", label=f"{name}-tws", tws="127.0.0.1:4001")
            service.add_endpoint(session=session, desk=desk, data=data, actor="cli", now=PROBE_AT - timedelta(days=3))
    assert not _due(engine, PROBE_AT - timedelta(minutes=1), "fx")  # 15:14: before the window
    assert _due(engine, PROBE_AT, "fx")
    assert not _due(engine, PROBE_AT, "equities")  # trades weekdays only
    assert not _due(engine, PROBE_AT - timedelta(days=1), "fx")  # Saturday
    with session_scope(engine) as session:
        (row,) = service.list_endpoints(session=session, desk_id=desks.get_desk(session=session, name="fx").id or 0)
        assert row.id is not None
        service.record_result(
            session=session, endpoint_id=row.id, outcome=Outcome(ProbeState.ACCEPTING, ""), now=PROBE_AT
        )
    assert not _due(engine, PROBE_AT + timedelta(minutes=1), "fx")  # probed this Sunday: done
    assert _due(engine, PROBE_AT + timedelta(days=7), "fx")  # next Sunday again


def _probe_failed(engine: Engine) -> list[Escalation]:
    with Session(engine) as session:
        query = select(Escalation).where(Escalation.kind == EscalationKind.PROBE_FAILED)
        return list(session.exec(query).all())


def test_a_dead_session_on_sunday_is_escalated_before_the_open(
    engine: Engine, gateway: FakeGateway, certificate: Certificate, fake_slack: FakeSlack
) -> None:
    """End to end: the scheduler's pass on Sunday 15:15 New York, a stand-in gateway over real TLS
    whose session another login took over; the managers' DMs delivered to Slack."""
    _desk(engine, sunday_evening=True)
    _endpoint(engine, "equities", "alice-gw", gateway.url, certificate)
    gateway.answer_status(competing=True, message="another session <!channel>")
    how = wiring.Probes(gateway_timeouts=FAST)
    assert wiring.probe_pass(engine, clock=lambda: PROBE_AT - timedelta(minutes=1), how=how) == []
    assert gateway.paths() == []  # not before the window
    lines = wiring.probe_pass(engine, clock=lambda: PROBE_AT, how=how)
    assert lines == ["equities: 1 probe escalation(s) opened, 0 resolved."]
    assert gateway.paths() == [TICKLE, AUTH_STATUS]  # asked, never logged in
    (esc,) = _probe_failed(engine)
    assert esc.state == EscalationState.OPEN and esc.opened_at == PROBE_AT
    assert "competing — Platform or session" in esc.detail
    # Told like any probe failure: each manager's DM, delivered.
    assert {r.dedup_key for r in outbox_rows(engine)} == {
        f"escalation:{esc.id}:dm:UMGR1",
        f"escalation:{esc.id}:dm:UMGR2",
    }
    deliver_due(engine, delivery_client(fake_slack.base_url), None, now=PROBE_AT)
    dms = [c for c in fake_slack.of("chat.postMessage") if c.params.get("channel") in ("UMGR1", "UMGR2")]
    assert len(dms) == 2 and all("Broker session down" in str(c.params.get("text")) for c in dms)
    # Once per Sunday: the next minute's pass asks nobody.
    assert wiring.probe_pass(engine, clock=lambda: PROBE_AT + timedelta(minutes=1), how=how) == []
    assert len(gateway.paths()) == 2


def test_a_healthy_sunday_probe_is_silent(engine: Engine, gateway: FakeGateway, certificate: Certificate) -> None:
    _desk(engine, sunday_evening=True, name="fx")
    _desk(engine, sunday_evening=False, name="equities")
    _endpoint(engine, "fx", "fx-gw", gateway.url, certificate)
    _endpoint(engine, "equities", "eq-gw", gateway.url, certificate)
    how = wiring.Probes(gateway_timeouts=FAST)
    lines = wiring.probe_pass(engine, clock=lambda: PROBE_AT + timedelta(hours=3), how=how)  # 18:15: late, still due
    assert lines == ["fx: 0 probe escalation(s) opened, 0 resolved."]
    assert gateway.paths() == [TICKLE, AUTH_STATUS]  # the fx desk's endpoint only
    assert _probe_failed(engine) == [] and outbox_rows(engine) == []  # nothing said
    with Session(engine) as session:
        fx = desks.get_desk(session=session, name="fx")
        statuses = service.latest(session=session, desk_id=fx.id or 0)["UTRD1"]
    assert statuses[0].state == ProbeState.AUTHENTICATED and statuses[0].checked_at == PROBE_AT + timedelta(hours=3)


def test_a_healthy_sunday_probe_resolves_fridays_escalation_in_place(
    engine: Engine, gateway: FakeGateway, certificate: Certificate
) -> None:
    _desk(engine, sunday_evening=True)
    gw = _endpoint(engine, "equities", "alice-gw", gateway.url, certificate)
    friday = PROBE_AT - timedelta(days=2)
    with session_scope(engine) as session:
        service.record_result(session=session, endpoint_id=gw, outcome=Outcome(ProbeState.NO_SESSION, ""), now=friday)
        wiring.follow_up(session, desks.get_desk(session=session, name="equities"), friday)
    (esc,) = _probe_failed(engine)
    sent = len(outbox_rows(engine))
    wiring.probe_pass(engine, clock=lambda: PROBE_AT, how=wiring.Probes(gateway_timeouts=FAST))
    (esc,) = _probe_failed(engine)
    assert esc.state == EscalationState.RESOLVED and esc.resolved_by is None
    new = [r.dedup_key for r in outbox_rows(engine)][sent:]
    assert new and all(":update:" in key for key in new)  # the DMs updated in place, no new message


# --- the setting: CLI and Slack --------------------------------------------------------------------


def test_cli_desk_set_sunday_evening_and_show(
    env: dict[str, str],
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pretend_now(monkeypatch, datetime(2026, 12, 2, 15, 0, tzinfo=UTC))
    assert run(capsys, ADD)[0] == 0
    code, out, _ = run(capsys, ["desk", "show", "equities"])
    assert code == 0 and re.search(r"^sunday evening: +no \(", out, re.M), out
    code, out, err = run(capsys, ["desk", "set", "equities", "--sunday-evening", "yes"])
    assert code == 0 and "Sunday-evening probe yes" in out, err
    code, out, _ = run(capsys, ["desk", "show", "equities"])
    assert "15:15 New York time" in out and "next: Sun 06 Dec 15:15 EST desk time" in out
    with Session(engine) as session:
        assert desks.get_desk(session=session, name="equities").sunday_evening is True
    code, out, err = run(capsys, ["desk", "set", "equities", "--sunday-evening", "maybe"])
    assert code == 2 and err.count("\n") == 1 and "--sunday-evening" in err
    with Session(engine) as session:
        assert desks.get_desk(session=session, name="equities").sunday_evening is True  # unchanged
    assert run(capsys, ["desk", "set", "equities", "--sunday-evening", "no"])[0] == 0
    with Session(engine) as session:
        assert desks.get_desk(session=session, name="equities").sunday_evening is False


def _ticked(value: bool) -> dict[str, object]:
    chosen = [{"text": {"type": "plain_text", "text": "x"}, "value": "sunday_evening"}] if value else []
    return {"type": "checkboxes", "selected_options": chosen}


def test_the_desk_settings_modal_sets_sunday_evening(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    desk = desk_row(bot)
    assert desk is not None and not desk.sunday_evening
    bot.home_click("UMGR1", Action.HOME_DESK_SETTINGS, str(desk.id))
    bot.settle()
    (opened,) = fake_slack.of("views.open")
    view = opened.params["view"]
    block = next(b for b in view["blocks"] if b.get("block_id") == "sunday_evening")
    assert block["optional"] is True and "initial_options" not in block["element"]
    meta = view["private_metadata"]
    values = settings_values()
    values["sunday_evening"] = {FIELD: _ticked(True)}
    response = bot.submit_view("UMGR1", Callback.DESK_SETTINGS_MODAL, values, meta)
    assert response.status_code == 200 and not response.content.strip(b"{} ")
    bot.settle()
    changed = desk_row(bot)
    assert changed is not None and changed.sunday_evening is True
    # The next opening shows it ticked; unticking it turns it off.
    bot.home_click("UMGR1", Action.HOME_DESK_SETTINGS, str(desk.id))
    bot.settle()
    view = fake_slack.of("views.open")[-1].params["view"]
    block = next(b for b in view["blocks"] if b.get("block_id") == "sunday_evening")
    assert [o["value"] for o in block["element"]["initial_options"]] == ["sunday_evening"]
    values["sunday_evening"] = {FIELD: _ticked(False)}
    bot.submit_view("UMGR1", Callback.DESK_SETTINGS_MODAL, values, meta)
    bot.settle()
    changed = desk_row(bot)
    assert changed is not None and changed.sunday_evening is False
