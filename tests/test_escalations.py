"""Escalations end to end: signed requests in, fake Slack and a fake pager over HTTP, both DBs."""

from __future__ import annotations

import json
from datetime import timedelta

from bot.delivery.worker import PassResult
from bot.escalation.models import EscalationKind, EscalationState
from bot.runtime import deliver_due
from bot.slack.ids import Action, Block, Callback
from tests.support.escalation_fixtures import (
    SECRET_KEY,
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
from tests.support.factories import make_desk
from tests.support.fakes.pager import FakePager
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot, utc


def deliver(bot: Bot, fake: FakeSlack) -> PassResult:
    pager = make_pager()
    try:
        return deliver_due(bot.runtime.engine, delivery_client(fake.base_url), pager, now=bot.clock(), limit=1000)
    finally:
        pager.close()


def dms_to(fake: FakeSlack, user: str) -> list[str]:
    return [blocks_text(c.params) for c in fake.of("chat.postMessage") if c.params["channel"] == user]


def ephemerals(fake: FakeSlack, user: str) -> list[str]:
    return fake.told(user)


def status(bot: Bot, user: str, text: str = "") -> str:
    response = bot.command(user, text)
    assert response.status_code == 200
    return str(response.json()["text"])


def test_the_whole_ladder(bot: Bot, fake_slack: FakeSlack, fake_pager: FakePager) -> None:  # noqa: F811
    engine = bot.runtime.engine
    make_desk(engine)
    configure(
        engine,
        escalation_channel="CESCAL",
        pager_kind="pagerduty",
        pager_url=fake_pager.url,
        pager_secret="routing-key-123",
    )
    run = post_checklist(bot)
    bot.click("UTRD1", Action.CONFIRM_ALL, str(run.run_id))
    bot.settle()
    bot.click("UTRD2", Action.REPORT_PROBLEM, str(run.run_id))
    bot.settle()
    meta = fake_slack.of("views.open")[-1].params["view"]["private_metadata"]
    values = report_values(["permissions"], platform="tws", missing="ES futures")
    assert bot.submit_view("UTRD2", Callback.REPORT_MODAL, values, meta).status_code == 200
    bot.settle()
    assert escalations(engine) == []  # restricted waits for the deadline

    # 08:29: nothing yet. 08:30 (deadline − 30 min): one reminder to the silent trader, once.
    bot.clock.set(utc(2026, 11, 25, 13, 29))
    assert run_pass(engine, bot.clock()).reminders == 0
    bot.clock.set(utc(2026, 11, 25, 13, 30))
    assert run_pass(engine, bot.clock()).reminders == 1
    assert run_pass(engine, bot.clock()).reminders == 0
    assert deliver(bot, fake_slack).delivered == 1
    bot.clock.advance(minutes=5)
    assert run_pass(engine, bot.clock()).reminders == 0
    deliver(bot, fake_slack)
    (reminder,) = dms_to(fake_slack, "UTRD3")
    assert "closes at 09:00 EST" in reminder
    assert dms_to(fake_slack, "UTRD1") == [] and dms_to(fake_slack, "UTRD2") == []

    # 09:00: the silent and the restricted trader escalate to both managers, once.
    bot.clock.set(utc(2026, 11, 25, 14, 0))
    report = run_pass(engine, bot.clock())
    assert len(report.opened) == 2
    assert run_pass(engine, bot.clock()).opened == []
    assert deliver(bot, fake_slack).delivered == 4
    restricted, silent = escalations(engine)  # in roster order
    assert (silent.trader_id, silent.kind, silent.level) == ("UTRD3", EscalationKind.SILENT, 1)
    assert (restricted.trader_id, restricted.kind) == ("UTRD2", EscalationKind.RESTRICTED)
    for manager in ("UMGR1", "UMGR2"):
        texts = dms_to(fake_slack, manager)
        assert len(texts) == 2
        assert "No answer by the deadline" in texts[1] and "Carol" in texts[1]
        assert "Restricted today" in texts[0] and "ES futures" in texts[0]
        assert Action.ESCALATION_ACK in texts[1] and Action.ESCALATION_RESOLVE in texts[1]
    assert fake_pager.requests == []

    # 09:14: still level 1. 09:15: level 2 — escalation channel, pager, DMs updated in place.
    bot.clock.set(utc(2026, 11, 25, 14, 14))
    assert run_pass(engine, bot.clock()).level2 == []
    bot.clock.set(utc(2026, 11, 25, 14, 15))
    assert len(run_pass(engine, bot.clock()).level2) == 2
    assert run_pass(engine, bot.clock()).level2 == []
    deliver(bot, fake_slack)
    channel_posts = [c for c in fake_slack.of("chat.postMessage") if c.params["channel"] == "CESCAL"]
    assert len(channel_posts) == 2 and "Level 2" in blocks_text(channel_posts[0].params)
    triggers = fake_pager.events()
    assert [e["event_action"] for e in triggers] == ["trigger", "trigger"]
    assert {e["dedup_key"] for e in triggers} == {str(silent.id), str(restricted.id)}
    assert triggers[0]["routing_key"] == "routing-key-123"
    assert triggers[0]["payload"]["severity"] == "critical" and triggers[0]["payload"]["summary"]
    summaries = {e["payload"]["summary"] for e in triggers}  # a person's name, and the ID to find them by
    assert any("trader Carol (UTRD3) on desk equities" in s for s in summaries)
    assert fake_pager.requests[0].path == "/v2/enqueue"
    assert [e.level for e in escalations(engine)] == [2, 2]

    # A trader (not a manager) clicks Acknowledge: refused, nothing changes.
    bot.click("UTRD1", Action.ESCALATION_ACK, str(silent.id), channel="DUMGR1")
    bot.settle()
    assert any("Only managers of the equities desk" in t for t in ephemerals(fake_slack, "UTRD1"))
    assert escalations(engine)[1].state == EscalationState.OPEN

    # A manager acknowledges — twice (double click): one transition.
    bot.clock.set(utc(2026, 11, 25, 14, 20))
    bot.click("UMGR1", Action.ESCALATION_ACK, str(silent.id), channel="DUMGR1")
    bot.click("UMGR1", Action.ESCALATION_ACK, str(silent.id), channel="DUMGR1")
    bot.settle()
    acked = escalations(engine)[1]
    assert (acked.state, acked.acknowledged_by) == (EscalationState.ACKNOWLEDGED, "UMGR1")
    assert acked.acknowledged_at == utc(2026, 11, 25, 14, 20)
    assert any("Already acknowledged" in t for t in ephemerals(fake_slack, "UMGR1"))
    deliver(bot, fake_slack)
    updates = [u for u in fake_slack.of("chat.update") if "Acknowledged" in blocks_text(u.params)]
    assert len(updates) == 3  # both manager DMs and the level-2 channel post, in place
    mine = next(u for u in updates if u.params["channel"] == "DMGR1")  # the DM's id, as Slack returned it
    dm_row = next(r for r in outbox_rows(engine) if r.dedup_key == f"escalation:{silent.id}:dm:UMGR1")
    assert dm_row.result is not None and json.loads(dm_row.result)["ts"] == mine.params["ts"]
    assert "Acknowledged* by Mia Manager at Wed 25 Nov 09:20 EST" in blocks_text(mine.params)
    assert Action.ESCALATION_ACK not in blocks_text(mine.params)  # only Resolve is left
    assert [e["event_action"] for e in fake_pager.events()] == ["trigger", "trigger", "acknowledge"]
    assert fake_pager.events()[2]["dedup_key"] == str(silent.id)

    # Resolve: the modal asks for a note; empty and too long come back as field errors.
    bot.click("UMGR2", Action.ESCALATION_RESOLVE, str(silent.id), channel="DUMGR2")
    bot.settle()
    modal = fake_slack.of("views.open")[-1].params["view"]
    assert modal["callback_id"] == Callback.RESOLVE_MODAL
    for bad in (None, "   ", "x" * 301):
        r = bot.submit_view("UMGR2", Callback.RESOLVE_MODAL, note_values(bad), modal["private_metadata"])
        assert r.status_code == 200 and r.json()["response_action"] == "errors"
        assert Block.RESOLUTION_NOTE in r.json()["errors"]
    assert escalations(engine)[1].state == EscalationState.ACKNOWLEDGED
    bot.clock.set(utc(2026, 11, 25, 14, 40))
    r = bot.submit_view(
        "UMGR2", Callback.RESOLVE_MODAL, note_values("Called him: sick, not trading"), modal["private_metadata"]
    )
    assert r.status_code == 200 and not r.content.strip(b"{} ")
    bot.settle()
    done = escalations(engine)[1]
    assert (done.state, done.resolved_by, done.resolution_note) == (
        "resolved",
        "UMGR2",
        "Called him: sick, not trading",
    )
    deliver(bot, fake_slack)
    resolved = [u for u in fake_slack.of("chat.update") if "Resolved* by Max Manager" in blocks_text(u.params)]
    assert len(resolved) == 3 and "Called him" in blocks_text(resolved[0].params)
    assert Action.ESCALATION_RESOLVE not in blocks_text(resolved[0].params)
    assert [e["event_action"] for e in fake_pager.events()] == ["trigger", "trigger", "acknowledge", "resolve"]

    # Nothing is left to deliver, nothing was sent twice, and the trail is complete.
    rows = outbox_rows(engine)
    assert all(r.delivered_at is not None for r in rows)
    assert deliver(bot, fake_slack).touched == 0
    assert len({r.dedup_key for r in rows}) == len(rows)
    actions = [a for a, _ in audit_actions(engine, f"escalation:{silent.id}")]
    assert actions == [
        "opened",
        "notified",
        "notified",
        "re_escalated",
        "page_trigger_sent",
        "acknowledged",
        "page_acknowledge_sent",
        "resolved",
        "page_resolve_sent",
    ]
    assert ("acknowledged", "UMGR1") in audit_actions(engine, f"escalation:{silent.id}")
    assert ("resolved", "UMGR2") in audit_actions(engine, f"escalation:{silent.id}")


def test_missing_recovery_path_escalates_at_once_through_the_modal(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    run = post_checklist(bot)
    # A missing secondary interface alone is a lower-severity escalation at the deadline, not a
    # missing recovery path.
    bot.click("UTRD1", Action.REPORT_PROBLEM, str(run.run_id))
    bot.settle()
    meta = fake_slack.of("views.open")[-1].params["view"]["private_metadata"]
    bot.submit_view("UTRD1", Callback.REPORT_MODAL, report_values(["contingency"], ["secondary_interface"]), meta)
    bot.settle()
    assert escalations(engine) == []
    # 08:05, long before the deadline: no backup second factor → escalated in the same transaction.
    values = report_values(["contingency"], ["no_backup_factor"], note="phone died, IB Key only")
    r = bot.submit_view("UTRD2", Callback.REPORT_MODAL, values, meta)
    assert r.status_code == 200
    bot.settle()
    (esc,) = escalations(engine)
    assert (esc.trader_id, esc.kind, esc.state, esc.opened_at) == (
        "UTRD2",
        EscalationKind.RECOVERY_PATH,
        EscalationState.OPEN,
        utc(2026, 11, 25, 13, 5),
    )
    assert [r.dedup_key for r in outbox_rows(engine)] == [
        f"escalation:{esc.id}:dm:UMGR1",
        f"escalation:{esc.id}:dm:UMGR2",
    ]
    # Submitting the same report again (double submit) or running the pass opens nothing new.
    bot.submit_view("UTRD2", Callback.REPORT_MODAL, values, meta)
    bot.settle()
    assert run_pass(engine, bot.clock()).opened == []
    assert deliver(bot, fake_slack).delivered == 2
    for manager in ("UMGR1", "UMGR2"):
        (text,) = dms_to(fake_slack, manager)
        assert "Missing recovery path" in text and "Bob" in text
        assert "no backup second factor" in text and "phone died, IB Key only" in text
        assert "Since Wed 25 Nov 08:05 EST" in text
    # At the deadline the same trader is not escalated a second time as "restricted".
    bot.clock.set(utc(2026, 11, 25, 14, 0))
    report = run_pass(engine, bot.clock())
    kinds = sorted((e.trader_id, e.kind) for e in escalations(engine))
    assert kinds == [
        ("UTRD1", EscalationKind.SECONDARY_INTERFACE),
        ("UTRD2", EscalationKind.RECOVERY_PATH),
        ("UTRD3", EscalationKind.SILENT),
    ]
    assert len(report.opened) == 2
    # The trader sees it in /ibstatus; managers see all open ones with /ibstatus escalations.
    assert "Missing recovery path" in status(bot, "UTRD2") and "Open escalations about you" in status(bot, "UTRD2")
    assert "Open escalations about you" not in status(bot, "UTRD9")
    listing = status(bot, "UMGR1", "escalations")
    assert "Open escalations* (3)" in listing and "Carol" in listing
    assert "don't manage any desk" in status(bot, "UTRD1", "escalations")


def test_managers_of_another_desk_are_refused(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    make_desk(engine, "rates", channel="C0999", managers=["UMGR9"], traders=["UTRD9"])
    post_checklist(bot)
    bot.clock.set(utc(2026, 11, 25, 14, 0))
    run_pass(engine, bot.clock())
    esc = escalations(engine)[0]
    bot.click("UMGR9", Action.ESCALATION_ACK, str(esc.id), channel="DUMGR9")
    bot.click("UMGR9", Action.ESCALATION_RESOLVE, str(esc.id), channel="DUMGR9")
    bot.settle()
    refusals = ephemerals(fake_slack, "UMGR9")
    assert len(refusals) == 2 and all("Only managers of the equities desk" in t for t in refusals)
    assert fake_slack.of("views.open") == []
    # Even a forged modal submission changes nothing.
    meta = json.dumps({"escalation_id": esc.id})
    r = bot.submit_view("UMGR9", Callback.RESOLVE_MODAL, note_values("done"), meta)
    assert r.json()["response_action"] == "errors"
    assert escalations(engine)[0].state == EscalationState.OPEN
    assert audit_actions(engine, f"escalation:{esc.id}") == [("opened", None)]
    assert "No open escalations" in status(bot, "UMGR9", "escalations")


def test_after_the_close_nothing_new_is_escalated(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    configure(engine, reminder_minutes=0)
    post_checklist(bot)
    bot.clock.set(utc(2026, 11, 25, 13, 45))
    assert run_pass(engine, bot.clock()).reminders == 0  # reminders switched off
    bot.clock.set(utc(2026, 11, 25, 21, 0) + timedelta(minutes=1))  # after the 16:00 close
    assert run_pass(engine, bot.clock()).opened == []
    assert escalations(engine) == []


def test_secret_key_is_used_for_the_routing_key(bot: Bot, fake_pager: FakePager) -> None:  # noqa: F811
    engine = bot.runtime.engine
    make_desk(engine)
    configure(engine, pager_kind="pagerduty", pager_url=fake_pager.url, pager_secret="rk-1")
    from bot.crypto import Keyring
    from bot.db import session_scope
    from bot.desks import service as desks

    with session_scope(engine) as session:
        stored = desks.get_desk(session=session, name="equities").pager_secret
    assert stored and "rk-1" not in stored
    assert Keyring(SECRET_KEY).decrypt(stored) == "rk-1"


def test_concurrent_passes_escalate_once(bot: Bot) -> None:
    """Two replicas run the pass at the same instant: the database decides, one escalation each."""
    import threading

    engine = bot.runtime.engine
    make_desk(engine)
    post_checklist(bot)
    at = utc(2026, 11, 25, 14, 0)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def replica() -> None:
        try:
            barrier.wait()
            run_pass(engine, at)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(e.trader_id for e in escalations(engine)) == ["UTRD1", "UTRD2", "UTRD3"]
    keys = [r.dedup_key for r in outbox_rows(engine)]
    # Three escalations opened by one pass: one grouped message per manager, once.
    assert len(keys) == len(set(keys)) == 2 and all(k.startswith("digest:") for k in keys)


def test_scheduler_registers_the_escalation_pass(bot: Bot) -> None:
    from bot.scheduler import Scheduler

    engine = bot.runtime.engine
    make_desk(engine)
    post_checklist(bot)
    bot.clock.set(utc(2026, 11, 25, 14, 0))
    scheduler = Scheduler(engine, bot.client, bot.runtime.refresher, bot.clock)
    scheduler.start()
    try:
        assert scheduler.aps.get_job("escalations") is not None
    finally:
        scheduler.shutdown()
    scheduler.escalate()
    scheduler.escalate()
    assert len(escalations(engine)) == 3
