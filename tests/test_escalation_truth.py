"""Escalations that tell the truth (issue 8): every case that was seen, as a regression test,
and a whole morning as a scenario. Signed requests in, fake Slack and a fake pager over
HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlmodel import Session, col, select

from bot.audit import AuditEvent
from bot.checklist import posting
from bot.checklist.models import Answer, AnswerStatus, ChecklistRun
from bot.db import session_scope
from bot.delivery.worker import PassResult
from bot.desks import service as desks
from bot.errors import ServiceError
from bot.escalation import notices
from bot.escalation.models import Escalation, EscalationKind, EscalationState
from bot.runtime import deliver_due
from bot.slack.ids import FIELD, Action, Block, Callback
from bot.summary import export
from tests.support.checklist_fixtures import answers
from tests.support.escalation_fixtures import (
    TODAY,
    audit_actions,
    blocks_text,
    configure,
    delivery_client,
    escalations,
    fake_pager,  # noqa: F401 - a fixture
    make_pager,
    note_values,
    outbox_rows,
    post_checklist,
    report_values,
    run_pass,
)
from tests.support.factories import NAMES, make_desk
from tests.support.fakes.pager import FakePager
from tests.support.fakes.slack import FakeSlack, Fault
from tests.support.harness import BOT_TOKEN, Bot, recorded_guidance, utc

# Wed 25 Nov 2026, New York (EST = UTC-5): post 08:00 = 13:00Z, deadline 09:00 = 14:00Z.


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    """Desk-local (New York, EST) wall-clock time on TODAY, as UTC."""
    return utc(2026, 11, 25, hh + 5, mm, ss)


def deliver(bot: Bot, fake: FakeSlack) -> PassResult:
    pager = make_pager()
    try:
        return deliver_due(bot.runtime.engine, delivery_client(fake.base_url), pager, now=bot.clock(), limit=1000)
    finally:
        pager.close()


def step(bot: Bot, fake: FakeSlack, when: datetime) -> Any:
    """Move the clock, run the pass and deliver what it queued (what the scheduler and the
    outbox worker do every few seconds)."""
    bot.clock.set(when)
    report = run_pass(bot.runtime.engine, when)
    deliver(bot, fake)
    return report


def status(bot: Bot, user: str, text: str = "") -> str:
    response = bot.command(user, text)
    assert response.status_code == 200
    return str(response.json()["text"])


def confirm(bot: Bot, user: str, run_id: int) -> None:
    assert bot.click(user, Action.CONFIRM_ALL, str(run_id)).status_code == 200
    bot.settle()


def report_ack(bot: Bot, fake: FakeSlack, user: str, run_id: int, values: dict[str, Any]) -> dict[str, Any]:
    """Open the report modal (a real click) and submit ``values``; the acknowledgement's body."""
    bot.click(user, Action.REPORT_PROBLEM, str(run_id))
    bot.settle()
    meta = fake.of("views.open")[-1].params["view"]["private_metadata"]
    response = bot.submit_view(user, Callback.REPORT_MODAL, values, meta)
    assert response.status_code == 200
    bot.settle()
    return dict(response.json())


def report(bot: Bot, fake: FakeSlack, user: str, run_id: int, values: dict[str, Any]) -> dict[str, Any]:
    """``report_ack``: {} when the report was recorded (its guidance shown), else the field errors."""
    ack = report_ack(bot, fake, user, run_id, values)
    if ack.get("response_action") == "errors":
        return ack
    recorded_guidance(ack)
    return {}


def by_trader(engine: Any) -> dict[tuple[str, str], Escalation]:
    return {(e.trader_id, e.kind): e for e in escalations(engine)}


def updates_of(fake: FakeSlack, ts: str) -> list[str]:
    return [blocks_text(c.params) for c in fake.of("chat.update") if c.params["ts"] == ts]


def message_ts(engine: Any, dedup_key: str) -> str:
    row = next(r for r in outbox_rows(engine) if r.dedup_key == dedup_key)
    assert row.result is not None
    return str(json.loads(row.result)["ts"])


def with_pager(engine: Any, pager: FakePager) -> None:
    configure(
        engine,
        escalation_channel="CESCAL",
        pager_kind="pagerduty",
        pager_url=pager.url,
        pager_secret="routing-key-123",
    )


# --- 1. escalations follow the live state ---------------------------------------------------


def test_a_silent_trader_who_answers_is_resolved_automatically_and_never_paged(
    bot: Bot,
    fake_slack: FakeSlack,
    fake_pager: FakePager,  # noqa: F811
) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    with_pager(engine, fake_pager)
    run = post_checklist(bot)
    for user in ("UTRD2", "UTRD3"):
        confirm(bot, user, run.run_id or 0)
    step(bot, fake_slack, at(9, 0))
    (silent,) = escalations(engine)
    assert (silent.trader_id, silent.kind) == ("UTRD1", EscalationKind.SILENT)

    # 09:07: UTRD1 answers. The escalation resolves in the same transaction, with the system as actor.
    bot.clock.set(at(9, 7))
    confirm(bot, "UTRD1", run.run_id or 0)
    (silent,) = escalations(engine)
    assert (silent.state, silent.resolved_by, silent.resolved_at) == (EscalationState.RESOLVED, None, at(9, 7))
    assert audit_actions(engine, f"escalation:{silent.id}")[-1] == ("resolved", "system")
    deliver(bot, fake_slack)
    for manager in ("UMGR1", "UMGR2"):
        (update,) = updates_of(fake_slack, message_ts(engine, f"escalation:{silent.id}:dm:{manager}"))
        assert "Resolved* — Alice confirmed at Wed 25 Nov 09:07 EST" in update
        assert Action.ESCALATION_ACK not in update and Action.ESCALATION_RESOLVE not in update

    # /ibstatus no longer says "ready" and "open escalation about you" at once.
    mine = status(bot, "UTRD1")
    assert "✅ ready" in mine and "Open escalations about you" not in mine
    # 09:15 and later: nothing goes to level 2 and the pager hears nothing.
    step(bot, fake_slack, at(9, 15))
    step(bot, fake_slack, at(9, 45))
    assert escalations(engine)[0].level == 1
    assert fake_pager.requests == []
    assert [c for c in fake_slack.of("chat.postMessage") if c.params["channel"] == "CESCAL"] == []


def test_a_restricted_trader_who_confirms_is_resolved_everywhere_with_one_pager_resolve(
    bot: Bot,
    fake_slack: FakeSlack,
    fake_pager: FakePager,  # noqa: F811
) -> None:
    engine = bot.runtime.engine
    make_desk(engine, traders=["UTRD1"])
    with_pager(engine, fake_pager)
    run = post_checklist(bot)
    values = report_values(["authentication"], platform="tws")
    values[Block.AUTH_LAYER][FIELD]["selected_option"] = {"value": "device_trust"}
    assert report(bot, fake_slack, "UTRD1", run.run_id or 0, values) == {}
    step(bot, fake_slack, at(9, 0))
    step(bot, fake_slack, at(9, 15))  # level 2: channel post and a page
    (esc,) = escalations(engine)
    assert (esc.kind, esc.level) == (EscalationKind.RESTRICTED, 2)
    assert [e["event_action"] for e in fake_pager.events()] == ["trigger"]

    bot.clock.set(at(9, 20))
    confirm(bot, "UTRD1", run.run_id or 0)
    assert "restriction is cleared" in fake_slack.told("UTRD1")[-1]
    step(bot, fake_slack, at(9, 21))
    step(bot, fake_slack, at(9, 30))  # a later pass changes nothing
    (esc,) = escalations(engine)
    assert esc.state == EscalationState.RESOLVED and esc.resolution_note == "confirmed"
    refs = [f"escalation:{esc.id}:dm:UMGR1", f"escalation:{esc.id}:dm:UMGR2", f"escalation:{esc.id}:level2:channel"]
    for ref in refs:
        resolved = [u for u in updates_of(fake_slack, message_ts(engine, ref)) if "Resolved*" in u]
        assert len(resolved) == 1 and "Alice confirmed at Wed 25 Nov 09:20 EST" in resolved[0]
    events = fake_pager.events()
    assert [e["event_action"] for e in events] == ["trigger", "resolve"]
    assert {e["dedup_key"] for e in events} == {str(esc.id)}
    assert "Open escalations about you" not in status(bot, "UTRD1")
    assert "No open escalations" in status(bot, "UMGR1", "escalations")
    # A manager clicking Resolve afterwards is told what happened.
    bot.click("UMGR1", Action.ESCALATION_RESOLVE, str(esc.id), channel="DUMGR1")
    bot.settle()
    assert fake_slack.told("UMGR1")[-1] == "Already resolved: Alice confirmed at 09:20 EST."
    assert fake_slack.of("views.open")[-1].params["view"]["callback_id"] != Callback.RESOLVE_MODAL


def test_a_page_still_in_the_outbox_is_withdrawn_when_the_trader_is_fine(
    bot: Bot,
    fake_slack: FakeSlack,
    fake_pager: FakePager,  # noqa: F811
) -> None:
    engine = bot.runtime.engine
    make_desk(engine, traders=["UTRD1"])
    with_pager(engine, fake_pager)
    run = post_checklist(bot)
    step(bot, fake_slack, at(9, 0))
    bot.clock.set(at(9, 15))
    assert len(run_pass(engine, at(9, 15)).level2) == 1  # the trigger is queued, not yet sent
    confirm(bot, "UTRD1", run.run_id or 0)  # 09:15, before the outbox worker gets to it
    deliver(bot, fake_slack)
    assert fake_pager.requests == []  # neither a trigger nor a resolve for a trader who is fine
    (esc,) = escalations(engine)
    assert esc.state == EscalationState.RESOLVED
    assert ("page_trigger_withdrawn", None) in audit_actions(engine, f"escalation:{esc.id}")
    assert not [r for r in outbox_rows(engine) if ":page:" in r.dedup_key]


def test_a_silent_trader_who_answers_with_a_problem_after_the_deadline_is_restricted(
    bot: Bot, fake_slack: FakeSlack
) -> None:
    engine = bot.runtime.engine
    make_desk(engine, traders=["UTRD1"])
    run = post_checklist(bot)
    step(bot, fake_slack, at(9, 0))
    bot.clock.set(at(9, 10))
    values = report_values(["permissions"], platform="ib_gateway", missing="EUREX options", kinds="market_data")
    assert report(bot, fake_slack, "UTRD1", run.run_id or 0, values) == {}
    found = by_trader(engine)
    assert found[("UTRD1", EscalationKind.SILENT)].state == EscalationState.RESOLVED
    assert found[("UTRD1", EscalationKind.SILENT)].resolution_note == "answered"
    restricted = found[("UTRD1", EscalationKind.RESTRICTED)]
    assert (restricted.state, restricted.opened_at) == (EscalationState.OPEN, at(9, 10))
    assert "Permissions on IB Gateway (market data): EUREX options" in restricted.detail
    deliver(bot, fake_slack)
    dm = [blocks_text(c.params) for c in fake_slack.of("chat.postMessage") if c.params["channel"] == "UMGR1"][-1]
    assert "Restricted today" in dm and "EUREX options" in dm


# --- 4. a missing recovery path means no backup second factor -------------------------------


def test_only_no_backup_second_factor_is_a_missing_recovery_path(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine, traders=["UTRD1", "UTRD2", "UTRD3", "UTRD4"])
    run_id = post_checklist(bot).run_id or 0
    sms_only = report_values(["contingency"], ["sms_only"])
    guidance = recorded_guidance(report_ack(bot, fake_slack, "UTRD1", run_id, sms_only))
    assert report(bot, fake_slack, "UTRD2", run_id, report_values(["contingency"], ["secondary_interface"])) == {}
    assert escalations(engine) == []  # neither is a missing recovery path: both wait for the deadline
    assert report(bot, fake_slack, "UTRD3", run_id, report_values(["contingency"], ["no_backup_factor"])) == {}
    assert [(e.trader_id, e.kind) for e in escalations(engine)] == [("UTRD3", EscalationKind.RECOVERY_PATH)]
    # Both "no backup" and "SMS only" is a contradiction: a field error, nothing stored.
    both = report(bot, fake_slack, "UTRD4", run_id, report_values(["contingency"], ["no_backup_factor", "sms_only"]))
    assert set(both["errors"]) == {Block.GAPS}
    assert answers(bot, "UTRD4") == []
    assert "SMS is temporary at IBKR" in guidance

    confirm(bot, "UTRD4", run_id)
    step(bot, fake_slack, at(9, 0))
    kinds = sorted((e.trader_id, e.kind) for e in escalations(engine))
    assert kinds == [
        ("UTRD1", EscalationKind.SMS_ONLY),
        ("UTRD2", EscalationKind.SECONDARY_INTERFACE),
        ("UTRD3", EscalationKind.RECOVERY_PATH),
    ]
    # Lower severity: told by DM, never raised to level 2, never paged.
    step(bot, fake_slack, at(10, 0))
    levels = {(e.trader_id, e.kind): e.level for e in escalations(engine)}
    assert levels[("UTRD1", EscalationKind.SMS_ONLY)] == 1
    assert levels[("UTRD2", EscalationKind.SECONDARY_INTERFACE)] == 1
    assert levels[("UTRD3", EscalationKind.RECOVERY_PATH)] == 2
    dm = next(
        blocks_text(c.params)
        for c in fake_slack.of("chat.postMessage")
        if c.params["channel"] == "UMGR1" and "SMS is the only second factor" in blocks_text(c.params)
    )
    # IBKR removes SMS login once another method is active: the managers are told what "SMS" most
    # likely is (the number IBKR texts to move IB Key), not that it is a weak backup.
    assert "Lower severity" in dm and "move IB Key to a new phone" in dm and "not a second factor" in dm

    # The trader adds an authenticator app: the SMS-only escalation resolves itself.
    bot.clock.set(at(10, 5))
    confirm(bot, "UTRD1", run_id)
    sms = by_trader(engine)[("UTRD1", EscalationKind.SMS_ONLY)]
    assert sms.state == EscalationState.RESOLVED and sms.resolution_note == "confirmed"


def test_a_recorded_no_recovery_code_still_displays_and_exports_and_no_longer_escalates(
    bot: Bot, fake_slack: FakeSlack
) -> None:
    """Answers recorded under the old choices keep their values; an escalation the old rule
    opened for "No recovery code" alone resolves at the next pass."""
    engine = bot.runtime.engine
    make_desk(engine, traders=["UTRD1", "UTRD2"])
    run_id = post_checklist(bot).run_id or 0
    with session_scope(engine) as session:
        old = Answer(
            run_id=run_id,
            user_id="UTRD1",
            version=1,
            status=AnswerStatus.PROBLEM,
            failed_checks="authentication,contingency",
            auth_layer="platform",
            platform="api",
            contingency_gaps="recovery_code",
            restricted=True,
            created_at=at(8, 10),
        )
        session.add(old)
        desk = desks.get_desk(session=session, name="equities")
        session.add(
            Escalation(
                desk_id=desk.id or 0,
                run_id=run_id,
                trader_id="UTRD1",
                kind=EscalationKind.RECOVERY_PATH,
                detail="Contingency: no recovery code",
                opened_at=at(8, 10),
            )
        )
    report_ = step(bot, fake_slack, at(8, 20))
    (esc,) = escalations(engine)
    assert report_.resolved == [esc.id] and esc.state == EscalationState.RESOLVED
    assert "not a missing recovery path (IBKR has no recovery codes)" in (esc.resolution_note or "")
    roster = status(bot, "UMGR1", "desk")
    assert "Authentication (platform or session, API); Contingency: no recovery code" in roster

    # At the deadline that recorded answer is a restriction like any failed check, not a recovery path.
    step(bot, fake_slack, at(9, 0))
    kinds = sorted((e.trader_id, e.kind) for e in escalations(engine) if e.state != EscalationState.RESOLVED)
    assert kinds == [("UTRD1", EscalationKind.RESTRICTED), ("UTRD2", EscalationKind.SILENT)]
    with Session(engine) as session:
        desk = desks.get_desk(session=session, name="equities")
        rows = list(export.iter_rows(session=session, desk=desk, start=TODAY, end=TODAY))
    header = rows[0]
    answer_row = next(r for r in rows[1:] if r[header.index("event")] == "answer")
    assert answer_row[header.index("contingency_gaps")] == "recovery_code"
    assert answer_row[header.index("platform")] == "api"
    resolved_row = next(r for r in rows[1:] if r[header.index("event")] == "escalation.resolved")
    assert resolved_row[header.index("actor")] == "system"


# --- 2. a checklist posted late gets a deadline a person could meet ------------------------


def test_a_checklist_posted_after_its_deadline_gets_the_grace_period(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine, created_at=at(9, 20))  # added after today's post time: posted by hand
    bot.clock.set(at(9, 30))
    posted = posting.post_checklist(engine, bot.client, desk_name="equities", day=TODAY, now=bot.clock())
    assert posted.ts is not None
    message = blocks_text(fake_slack.of("chat.postMessage")[0].params)
    assert "Answer by *09:45 EST* (posted late: the usual deadline is 09:00 EST)" in message
    with Session(engine) as session:
        run = session.get(ChecklistRun, posted.run_id)
        assert run is not None
        assert (run.deadline_at, run.scheduled_deadline_at) == (at(9, 45), at(9, 0))

    # Seconds after the post: no "No answer by the deadline", and no reminder at once either.
    assert step(bot, fake_slack, at(9, 30, 5)).opened == []
    assert step(bot, fake_slack, at(9, 31)).reminders == 0
    assert step(bot, fake_slack, at(9, 37, 30)).reminders == 3  # halfway through the window
    confirm(bot, "UTRD1", posted.run_id or 0)
    assert escalations(engine) == []
    report_ = step(bot, fake_slack, at(9, 45))
    assert sorted(e.trader_id for e in escalations(engine)) == ["UTRD2", "UTRD3"] and len(report_.opened) == 2
    reminder = next(blocks_text(c.params) for c in fake_slack.of("chat.postMessage") if c.params["channel"] == "UTRD2")
    assert "closes at 09:45 EST" in reminder


def test_a_checklist_caught_up_just_before_its_deadline_gets_the_grace_period(
    engine: Any, fake_slack: FakeSlack
) -> None:
    make_desk(engine)
    with session_scope(engine) as session:
        desks.configure_desk(session=session, name="equities", keys=None, grace_minutes=20)
    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.base_url, timeout=5)
    (result,) = posting.catch_up(engine, client, now=at(8, 55))  # the bot was down until 08:55
    with Session(engine) as session:
        run = session.get(ChecklistRun, result.run_id)
        assert run is not None and run.deadline_at == at(9, 15)
    assert "Answer by *09:15 EST* (posted late" in blocks_text(fake_slack.of("chat.postMessage")[0].params)


# --- 3. a morning that could not be posted ---------------------------------------------------


def test_slack_down_through_the_post_window_is_an_escalation_and_the_post_follows(
    bot: Bot, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.base_url, timeout=1)
    down = Fault(status=500, body={"ok": False, "error": "internal_error"})
    fake_slack.script("chat.postMessage", Fault(delay=1.5), *[down] * 30)  # a timeout, then errors
    for moment in (at(8, 0), at(8, 20), at(8, 59)):
        (result,) = posting.catch_up(engine, client, now=moment)
        assert result.outcome in ("failed", posting.UNREACHABLE)  # refused, or timed out
    # 09:00: nobody could answer a checklist that isn't there. The desk's managers are told.
    bot.clock.set(at(9, 0))
    assert len(run_pass(engine, at(9, 0)).opened) == 1
    (esc,) = escalations(engine)
    assert (esc.kind, esc.trader_id, esc.state) == (EscalationKind.POST_FAILED, "", EscalationState.OPEN)
    assert "internal_error" in esc.detail and "3 attempt(s)" in esc.detail
    assert deliver(bot, fake_slack).delivered == 0  # Slack is still down: the DMs wait in the outbox
    assert "Checklist not posted" in status(bot, "UMGR1", "desk")
    assert "Open escalations about the desk" in status(bot, "UTRD1", "desk")

    # 09:10: Slack is back. The DMs go out, and the checklist is posted with a fresh window.
    fake_slack.heal()
    bot.clock.set(at(9, 10))
    assert deliver(bot, fake_slack).delivered == 2
    dms = [blocks_text(c.params) for c in fake_slack.of("chat.postMessage") if c.params["channel"] == "UMGR1"]
    assert len(dms) == 1 and "Checklist not posted" in dms[0] and "internal_error" in dms[0]
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.delenv("PREFLIGHT_CLOCK_OFFSET", raising=False)
    from bot.cli import main

    assert main(["escalations", "list", "--open"]) == 0
    listed = capsys.readouterr().out
    assert "post_failed" in listed and "equities" in listed

    (posted,) = posting.catch_up(engine, client, now=at(9, 10))
    assert posted.ts is not None
    assert "Answer by *09:25 EST* (posted late" in blocks_text(fake_slack.of("chat.postMessage")[-1].params)
    report_ = step(bot, fake_slack, at(9, 10, 30))
    assert report_.resolved == [esc.id] and report_.opened == []
    (esc,) = escalations(engine)
    assert esc.state == EscalationState.RESOLVED and esc.level == 1
    (update,) = updates_of(fake_slack, message_ts(engine, f"escalation:{esc.id}:dm:UMGR1"))
    assert "Resolved* — the checklist was posted at Wed 25 Nov 09:10 EST" in update
    assert "Open escalations about the desk" not in status(bot, "UMGR1", "desk")
    # Its own deadline then applies: silent traders from 09:25, not at once.
    assert step(bot, fake_slack, at(9, 24)).opened == []
    assert len(step(bot, fake_slack, at(9, 25)).opened) == 3


def test_a_desk_added_after_the_post_time_is_not_a_failed_morning(bot: Bot) -> None:
    engine = bot.runtime.engine
    make_desk(engine, created_at=at(8, 30))
    assert run_pass(engine, at(9, 5)).opened == []
    assert escalations(engine) == []


def test_a_bot_down_all_morning_tells_the_managers_when_it_is_back(bot: Bot) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    assert run_pass(engine, at(10, 0)).opened != []
    (esc,) = escalations(engine)
    assert esc.kind == EscalationKind.POST_FAILED and "No post was attempted" in esc.detail
    assert run_pass(engine, at(10, 1)).opened == []  # once


# --- 6. free text never carries secrets -----------------------------------------------------


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("note", "my code is 123456 password hunter2"),
        ("note", "IB Key code 04312877"),
        ("note", "password: swordfish"),
        ("note", "pwd Tr0ub4dor&3"),
        ("missing", "ES futures, passcode was blue-moon"),
        ("missing", "LSE 654321"),
    ],
)
def test_text_that_looks_like_a_code_or_a_password_is_refused_and_nothing_is_stored(
    bot: Bot, fake_slack: FakeSlack, field: str, text: str
) -> None:
    make_desk(bot.runtime.engine)
    run_id = post_checklist(bot).run_id or 0
    if field == "note":
        values = report_values(["permissions"], platform="tws", missing="ES futures", note=text)
    else:
        values = report_values(["permissions"], platform="tws", missing=text)
    body = report(bot, fake_slack, "UTRD1", run_id, values)
    block = Block.NOTE if field == "note" else Block.MISSING_PERMISSIONS
    assert set(body["errors"]) == {block}
    assert "never needs them" in body["errors"][block] and text not in json.dumps(body)
    assert answers(bot) == [] and escalations(bot.runtime.engine) == []


@pytest.mark.parametrize(
    "note",
    [
        "order size 100 lots on ES",
        "password reset worked, waiting for IB Key",
        "got a temporary passcode from IBKR",
        "ES 4512.25 stop, call desk 1-877-442-2757",
        "back 2026-11-25 after lunch",
    ],
)
def test_ordinary_notes_pass(bot: Bot, fake_slack: FakeSlack, note: str) -> None:
    make_desk(bot.runtime.engine)
    run_id = post_checklist(bot).run_id or 0
    values = report_values(["contingency"], ["secondary_interface"], note=note)
    assert report(bot, fake_slack, "UTRD1", run_id, values) == {}
    (stored,) = answers(bot)
    assert stored.note == note


def test_a_resolution_note_with_a_code_is_refused(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    post_checklist(bot)
    step(bot, fake_slack, at(9, 0))
    esc = escalations(engine)[0]
    meta = json.dumps({"escalation_id": esc.id})
    r = bot.submit_view("UMGR1", Callback.RESOLVE_MODAL, note_values("gave him temp code 123456"), meta)
    assert r.json()["response_action"] == "errors" and "never needs them" in r.json()["errors"][Block.RESOLUTION_NOTE]
    assert escalations(engine)[0].state == EscalationState.OPEN


# --- the problem modal shows only what applies ----------------------------------------------


def _block_ids(view: dict[str, Any]) -> list[str]:
    return [b.get("block_id", "") for b in view["blocks"] if b["type"] == "input"]


def test_the_report_modal_shows_a_checks_fields_when_it_is_ticked(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    run_id = post_checklist(bot).run_id or 0
    bot.click("UTRD1", Action.REPORT_PROBLEM, str(run_id))
    bot.settle()
    opened = fake_slack.of("views.open")[-1].params["view"]
    assert _block_ids(opened) == [Block.FAILED, Block.NOTE]
    failed = next(b for b in opened["blocks"] if b.get("block_id") == Block.FAILED)
    assert failed["dispatch_action"] is True
    platforms = {o["value"] for o in _platform_options(bot, fake_slack, opened, ["authentication", "permissions"])}
    update = fake_slack.of("views.update")[-1].params
    assert (update["view_id"], update["hash"]) == ("V-report", "h-1")
    assert _block_ids(update["view"]) == [
        Block.FAILED,
        Block.AUTH_LAYER,
        Block.PLATFORM,
        Block.PERMISSION_GAPS,
        Block.MISSING_PERMISSIONS,
        Block.NOTE,
    ]
    assert all(not b["optional"] for b in update["view"]["blocks"][1:-1] if b["type"] == "input")
    assert {"tws", "ib_gateway", "tws_api", "cp_web_api"} <= platforms and "api" not in platforms
    _platform_options(bot, fake_slack, opened, ["contingency"])
    gaps_view = fake_slack.of("views.update")[-1].params["view"]
    assert _block_ids(gaps_view) == [Block.FAILED, Block.GAPS, Block.NOTE]
    gaps = next(b for b in gaps_view["blocks"] if b.get("block_id") == Block.GAPS)
    assert [o["value"] for o in gaps["element"]["options"]] == ["no_backup_factor", "sms_only", "secondary_interface"]
    assert "IBKR has no recovery codes" in gaps["hint"]["text"]

    # Leftovers of a check that was unticked don't get the submission refused: they are dropped.
    meta = opened["private_metadata"]
    values = report_values(["contingency"], ["secondary_interface"], missing="ES futures", platform="tws")
    r = bot.submit_view("UTRD1", Callback.REPORT_MODAL, values, meta)
    assert r.status_code == 200
    recorded_guidance(r.json())
    (stored,) = answers(bot)
    assert (stored.platform, stored.missing_permissions, stored.contingency_gaps) == (None, None, "secondary_interface")


def _platform_options(bot: Bot, fake: FakeSlack, view: dict[str, Any], ticked: list[str]) -> list[dict[str, Any]]:
    """Tick ``ticked`` in the open modal (a signed block_actions from the view); the platform
    options of the redrawn view (empty when it has none)."""
    before = len(fake.of("views.update"))
    assert bot.tick("UTRD1", view, Block.FAILED, ticked, view_id="V-report").status_code == 200
    bot.settle()
    assert len(fake.of("views.update")) == before + 1
    redrawn = fake.of("views.update")[-1].params["view"]
    platform = [b for b in redrawn["blocks"] if b.get("block_id") == Block.PLATFORM]
    return list(platform[0]["element"]["options"]) if platform else []


# --- the deadline must be before the close --------------------------------------------------


@pytest.mark.parametrize(
    ("timezone", "deadline"),
    [("America/New_York", "16:30"), ("Europe/London", "21:15"), ("Europe/London", "20:45")],
)
def test_a_deadline_after_the_exchange_close_is_refused(engine: Any, timezone: str, deadline: str) -> None:
    with pytest.raises(ServiceError) as refused, session_scope(engine) as session:
        desks.add_desk(
            session=session,
            name="late",
            channel_id="C0123",
            managers=["UMGR1"],
            traders=["UTRD1"],
            timezone=timezone,
            post_at="08:00",
            deadline=deadline,
            now=at(8, 0),
        )
    assert refused.value.field == "deadline" and "after the NYSE close" in str(refused.value)
    with Session(engine) as session:
        assert desks.list_desks(session=session) == []


# --- the whole morning ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_whole_morning(bot: Bot, fake_slack: FakeSlack, fake_pager: FakePager) -> None:  # noqa: F811
    """UTRD1 silent, then answers after the deadline; UTRD2 restricted, then confirms; UTRD3
    without a backup second factor, then fixes it; UTRD4 never answers; UTRD5 fine."""
    engine = bot.runtime.engine
    traders = ["UTRD1", "UTRD2", "UTRD3", "UTRD4", "UTRD5"]
    make_desk(engine, traders=traders)
    with_pager(engine, fake_pager)
    bot.clock.set(at(8, 0))
    run_id = post_checklist(bot).run_id or 0
    fine_since: dict[str, datetime] = {}  # when each trader became fine (no reason to page them)

    bot.clock.set(at(8, 6))
    confirm(bot, "UTRD5", run_id)
    fine_since["UTRD5"] = at(8, 6)
    bot.clock.set(at(8, 10))
    values = report_values(["contingency"], ["no_backup_factor"], note="IB Key only, on my one phone")
    assert report(bot, fake_slack, "UTRD3", run_id, values) == {}
    bot.clock.set(at(8, 20))
    auth = report_values(["authentication"], platform="tws")
    auth[Block.AUTH_LAYER][FIELD]["selected_option"] = {"value": "platform"}
    assert report(bot, fake_slack, "UTRD2", run_id, auth) == {}
    for minute in range(8 * 60 + 20, 10 * 60 + 1):  # a pass every minute from 08:20 to 10:00
        now = at(minute // 60, minute % 60)
        if now == at(8, 40):  # UTRD3 registers an authenticator app and confirms
            bot.clock.set(now)
            confirm(bot, "UTRD3", run_id)
            fine_since["UTRD3"] = now
        if now == at(9, 5):  # UTRD1 answers, late
            bot.clock.set(now)
            confirm(bot, "UTRD1", run_id)
            fine_since["UTRD1"] = now
        if now == at(9, 20):  # UTRD2's platform works again
            bot.clock.set(now)
            confirm(bot, "UTRD2", run_id)
            fine_since["UTRD2"] = now
        step(bot, fake_slack, now)

    found = by_trader(engine)
    still_open = sorted((t, k) for (t, k), e in found.items() if e.state != EscalationState.RESOLVED)
    assert still_open == [("UTRD4", EscalationKind.SILENT)]
    assert sorted(found) == [
        ("UTRD1", EscalationKind.SILENT),
        ("UTRD2", EscalationKind.RESTRICTED),
        ("UTRD3", EscalationKind.RECOVERY_PATH),
        ("UTRD4", EscalationKind.SILENT),
    ]
    assert found[("UTRD4", EscalationKind.SILENT)].level == 2
    assert found[("UTRD1", EscalationKind.SILENT)].level == 1  # resolved before its timeout

    # Every resolved escalation updated each of its messages to "Resolved" exactly once, and
    # sent one pager resolve when (and only when) it had paged.
    events = fake_pager.events()
    by_key = Counter((e["dedup_key"], e["event_action"]) for e in events)
    for (trader, _kind), esc in found.items():
        if esc.state != EscalationState.RESOLVED:
            continue
        originals = [
            r.dedup_key
            for r in outbox_rows(engine)
            if r.dedup_key.startswith(f"escalation:{esc.id}:") and r.kind in ("slack.dm", "slack.post")
        ]
        # Managers heard of it by one DM each, or in the grouped message of the pass that opened
        # several at once (one per manager, issue 12); a level-2 post adds one more original.
        with Session(engine) as session:
            grouped = [ref for ref, _ids in notices.digests_of(session, esc)]
        assert len(grouped) in (0, 2)
        assert len(originals) == (1 if esc.level == 2 else 0) + (0 if grouped else 2)
        for ref in originals:
            resolved = [u for u in updates_of(fake_slack, message_ts(engine, ref)) if "Resolved*" in u]
            assert len(resolved) == 1, (trader, ref)
            assert f"{NAMES.get(trader, trader)} " in resolved[0]  # by name
        for ref in grouped:  # the grouped message is redrawn in place with this one resolved
            resolved = [u for u in updates_of(fake_slack, message_ts(engine, ref)) if "Resolved*" in u]
            assert resolved and f"{NAMES.get(trader, trader)}" in resolved[-1], (trader, ref)
        assert by_key[(str(esc.id), "resolve")] == (1 if esc.level == 2 else 0)
        assert ("resolved", "system") in audit_actions(engine, f"escalation:{esc.id}")

    # No trigger for a trader who was fine at the time it fired.
    sent_at = {
        json.loads(a.detail)["outbox_id"]: a.at
        for a in _audit(engine)
        if a.action == "page_trigger_sent"  # when the pager received it
    }
    triggers = [r for r in outbox_rows(engine) if r.dedup_key.endswith(":page:trigger")]
    assert len(triggers) == len(sent_at) == 3
    for row in triggers:
        esc = next(e for e in found.values() if f"escalation:{e.id}:" in row.dedup_key)
        fired = sent_at[row.id]
        assert esc.trader_id not in fine_since or fired < fine_since[esc.trader_id], (esc.trader_id, fired)
    assert {e["dedup_key"] for e in events if e["event_action"] == "trigger"} == {
        str(found[("UTRD2", EscalationKind.RESTRICTED)].id),
        str(found[("UTRD3", EscalationKind.RECOVERY_PATH)].id),
        str(found[("UTRD4", EscalationKind.SILENT)].id),
    }
    # And what people see agrees with it.
    for trader in ("UTRD1", "UTRD2", "UTRD3", "UTRD5"):
        mine = status(bot, trader)
        assert "✅ ready" in mine and "Open escalations about you" not in mine
    assert "No answer by the deadline" in status(bot, "UTRD4")
    listing = status(bot, "UMGR1", "escalations")
    assert "Open escalations* (1)" in listing and "UTRD4" in listing  # no name cached for UTRD4: its ID


def _audit(engine: Any) -> list[AuditEvent]:
    with Session(engine) as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all())


def test_the_post_time_check_keeps_a_future_day_for_the_scheduler(bot: Bot) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    result = posting.post_checklist(engine, bot.client, desk_name="equities", day=date(2026, 12, 1), now=at(8, 5))
    assert result.outcome == "future" and "the scheduler posts it at 08:00 EST on Tue 01 Dec 2026" in result.message
    assert result.run_id is None
    after_close = posting.post_checklist(engine, bot.client, desk_name="equities", day=TODAY, now=at(16, 1))
    assert after_close.outcome == "too_late" and "market closed at 16:00 EST" in after_close.message
    with Session(engine) as session:
        assert session.exec(select(ChecklistRun)).all() == []
