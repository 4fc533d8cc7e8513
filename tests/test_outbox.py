"""The outbox: exactly once in the end, in order, through 429 / 500 / timeouts, pager outages and restarts."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col

from bot.cli import main
from bot.db import session_scope
from bot.delivery import tiers
from bot.delivery.models import OutboxMessage
from bot.delivery.outbox import Kind, enqueue
from bot.delivery.tiers import SlackBudgets
from bot.delivery.worker import backoff
from bot.runtime import deliver_due
from tests.support.escalation_fixtures import (
    SECRET_KEY,
    audit_actions,
    configure,
    delivery_client,
    escalations,
    fake_pager,  # noqa: F401 - a fixture
    make_pager,
    outbox_rows,
    run_pass,
)
from tests.support.factories import make_desk
from tests.support.fakes.pager import FakePager, PagerFault
from tests.support.fakes.slack import FakeSlack, Fault
from tests.support.harness import utc

T0 = utc(2026, 11, 25, 14, 0)


def queue_dms(engine: Engine, users: list[str], *, now: datetime = T0, desk_id: int | None = None) -> None:
    with session_scope(engine) as session:
        for user in users:
            enqueue(
                session=session,
                dedup_key=f"test:dm:{user}",
                kind=Kind.SLACK_DM,
                payload={"user": user, "text": f"hello {user}"},
                desk_id=desk_id,
                now=now,
            )


def delivered_to(fake: FakeSlack) -> list[str]:
    return [str(c.params["channel"]) for c in fake.of("chat.postMessage")]


def test_enqueue_twice_is_a_no_op(engine: Engine) -> None:
    with session_scope(engine) as session:
        first = enqueue(
            session=session, dedup_key="k1", kind=Kind.SLACK_DM, payload={"user": "U1"}, desk_id=None, now=T0
        )
        again = enqueue(
            session=session, dedup_key="k1", kind=Kind.SLACK_DM, payload={"user": "U2"}, desk_id=None, now=T0
        )
    assert first is not None and again is None
    with session_scope(engine) as session:  # a separate transaction, too
        assert enqueue(session=session, dedup_key="k1", kind=Kind.SLACK_DM, payload={}, desk_id=None, now=T0) is None
    (row,) = outbox_rows(engine)
    assert json.loads(row.payload) == {"user": "U1"}


def test_slack_429_then_500_then_timeout_delivers_each_once_in_order(engine: Engine, fake_slack: FakeSlack) -> None:
    queue_dms(engine, ["U1", "U2", "U3"])
    fake_slack.script(
        "chat.postMessage",
        Fault(status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": "7"}),
        Fault(status=500, body={"ok": False, "error": "internal_error"}),
        Fault(status=200, body={"ok": True, "ts": "1.1"}, delay=2.0),  # slower than the client's timeout
    )
    client = delivery_client(fake_slack.base_url, timeout=1)

    first = deliver_due(engine, client, None, now=T0)
    assert (first.delivered, first.deferred) == (0, 1)  # Slack limited us: the rest waits too
    row = outbox_rows(engine)[0]
    assert row.next_attempt_at == T0 + timedelta(seconds=7) and "Retry-After 7" in (row.last_error or "")
    assert deliver_due(engine, client, None, now=T0 + timedelta(seconds=6)).touched == 0  # honours Retry-After

    second = deliver_due(engine, client, None, now=T0 + timedelta(seconds=7))
    assert second.deferred == 1 and "500" in (outbox_rows(engine)[0].last_error or "")
    backoff_2 = outbox_rows(engine)[0].next_attempt_at - (T0 + timedelta(seconds=7))
    assert backoff_2 == timedelta(seconds=backoff(2))

    t = T0 + timedelta(seconds=7) + backoff_2
    third = deliver_due(engine, client, None, now=t)
    assert third.deferred == 1 and "unreachable" in (outbox_rows(engine)[0].last_error or "")
    assert delivered_to(fake_slack) == []

    t = outbox_rows(engine)[0].next_attempt_at
    done = deliver_due(engine, client, None, now=t)
    assert done.delivered == 3
    assert delivered_to(fake_slack) == ["U1", "U2", "U3"]
    rows = outbox_rows(engine)
    assert [r.attempts for r in rows] == [4, 1, 1]
    assert all(r.delivered_at == t and r.last_error is None and r.result for r in rows)
    assert deliver_due(engine, client, None, now=t + timedelta(hours=1)).touched == 0
    assert delivered_to(fake_slack) == ["U1", "U2", "U3"]


def test_permanent_slack_error_is_recorded_and_does_not_block(engine: Engine, fake_slack: FakeSlack) -> None:
    queue_dms(engine, ["UGONE", "U2"])
    fake_slack.script("chat.postMessage", Fault(status=200, body={"ok": False, "error": "user_not_found"}))
    result = deliver_due(engine, delivery_client(fake_slack.base_url), None, now=T0)
    assert (result.failed, result.delivered) == (1, 1)
    gone, ok = outbox_rows(engine)
    assert gone.failed_at == T0 and "user_not_found" in (gone.last_error or "") and gone.delivered_at is None
    assert ok.delivered_at == T0
    assert deliver_due(engine, delivery_client(fake_slack.base_url), None, now=T0 + timedelta(days=1)).touched == 0


def test_a_message_that_cannot_be_rendered_takes_no_slot_of_the_budget(engine: Engine, fake_slack: FakeSlack) -> None:
    """Budgets are taken right before the call, after the render: a message whose render
    fails for good takes none, so the next one in the pass goes out (a slot taken and never
    freed would hold the budget for its whole ``hold``)."""
    with session_scope(engine) as session:
        enqueue(
            session=session,
            dedup_key="test:dm:broken",
            kind=Kind.SLACK_DM,
            payload={"user": "U1", "render": {"view": "no.such.view"}},
            desk_id=None,
            now=T0,
        )
    queue_dms(engine, ["U2"])
    budgets = SlackBudgets(engine)
    result = deliver_due(engine, delivery_client(fake_slack.base_url), None, now=T0, budgets=budgets)
    assert (result.failed, result.delivered) == (1, 1)
    assert delivered_to(fake_slack) == ["U2"]
    assert budgets.spent(tiers.POST) == 0


def test_stopped_between_state_change_and_delivery(engine: Engine, fake_slack: FakeSlack) -> None:
    """The pass commits escalations and their outbox rows; the process dies before delivering.
    A new worker (new client, new process state) later delivers each exactly once."""
    make_desk(engine)
    with session_scope(engine) as session:
        from bot.checklist import service as checklist
        from bot.desks import service as desks

        desk = desks.get_desk(session=session, name="equities")
        claim = checklist.claim_post(session=session, desk=desk, day=T0.date(), now=utc(2026, 11, 25, 13, 0))
        assert claim.run is not None
        checklist.mark_posted(session=session, run_id=claim.run.id or 0, ts="1.0", now=utc(2026, 11, 25, 13, 0))
    run_pass(engine, T0)  # 3 silent traders: one grouped message for each of 2 managers, committed
    assert len(outbox_rows(engine)) == 2 and fake_slack.of("chat.postMessage") == []
    run_pass(engine, T0 + timedelta(seconds=30))  # the restarted scheduler's pass adds nothing
    assert len(outbox_rows(engine)) == 2

    # A worker claims the first message, "sends" nothing and dies (e.g. killed mid-request).
    first_id = outbox_rows(engine)[0].id
    with session_scope(engine) as session:
        session.execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == first_id)
            .values(claimed_at=T0, attempts=OutboxMessage.attempts + 1)
        )
    fresh = delivery_client(fake_slack.base_url)
    one_minute = deliver_due(engine, fresh, None, now=T0 + timedelta(minutes=1))
    assert one_minute.delivered == 0  # the lease is held and the lane waits, in order
    later = deliver_due(engine, fresh, None, now=T0 + timedelta(minutes=3))
    assert later.delivered == 2
    sent = [(c.params["channel"], c.params["text"]) for c in fake_slack.of("chat.postMessage")]
    assert len(sent) == len(set(sent)) == 2
    expected = [json.loads(r.payload)["user"] for r in outbox_rows(engine)]
    assert [c for c, _ in sent] == expected
    assert deliver_due(engine, delivery_client(fake_slack.base_url), None, now=T0 + timedelta(hours=2)).touched == 0


def test_an_update_waits_for_its_original(engine: Engine, fake_slack: FakeSlack) -> None:
    with session_scope(engine) as session:
        enqueue(
            session=session,
            dedup_key="orig",
            kind=Kind.SLACK_POST,
            payload={"channel": "C1", "text": "v1"},
            desk_id=None,
            now=T0,
        )
        enqueue(
            session=session,
            dedup_key="orig:update",
            kind=Kind.SLACK_UPDATE,
            payload={"ref": "orig", "text": "v2"},
            desk_id=None,
            now=T0,
        )
    fake_slack.script("chat.postMessage", Fault(status=503))
    client = delivery_client(fake_slack.base_url)
    assert deliver_due(engine, client, None, now=T0).delivered == 0
    assert fake_slack.of("chat.update") == []
    assert deliver_due(engine, client, None, now=T0 + timedelta(minutes=5)).delivered == 2
    (update_call,) = fake_slack.of("chat.update")
    original = json.loads(outbox_rows(engine)[0].result or "{}")
    assert (update_call.params["channel"], update_call.params["ts"], update_call.params["text"]) == (
        original["channel"],
        original["ts"],
        "v2",
    )


def _escalate_to_level2(engine: Engine, fake_pager: FakePager) -> int:  # noqa: F811
    make_desk(engine)
    configure(engine, pager_kind="pagerduty", pager_url=fake_pager.url, pager_secret="rk")
    with session_scope(engine) as session:
        from bot.checklist import service as checklist
        from bot.desks import service as desks

        desk = desks.get_desk(session=session, name="equities")
        claim = checklist.claim_post(session=session, desk=desk, day=T0.date(), now=utc(2026, 11, 25, 13, 0))
        assert claim.run is not None
        checklist.mark_posted(session=session, run_id=claim.run.id or 0, ts="1.0", now=utc(2026, 11, 25, 13, 0))
    run_pass(engine, T0)
    run_pass(engine, T0 + timedelta(minutes=15))
    return escalations(engine)[0].id or 0


def test_pager_down_then_up_pages_exactly_once(
    engine: Engine,
    fake_slack: FakeSlack,
    fake_pager: FakePager,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    esc_id = _escalate_to_level2(engine, fake_pager)
    client = delivery_client(fake_slack.base_url)
    pager = make_pager(timeout=1)
    fake_pager.down()
    t = T0 + timedelta(minutes=15)
    deliver_due(engine, client, pager, now=t)
    pages = [r for r in outbox_rows(engine) if r.kind == Kind.PAGER]
    assert len(pages) == 3 and all(p.delivered_at is None for p in pages)
    assert "pager unreachable" in (pages[0].last_error or "")
    assert ("page_trigger_failed", None) in audit_actions(engine, f"escalation:{esc_id}")

    # `preflight escalations list` says what waits and why.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("PREFLIGHT_SECRET_KEY", SECRET_KEY)
    assert main(["escalations", "list", "--open"]) == 0
    out = capsys.readouterr().out
    assert "silent" in out and "1 waiting" in out and "3 waiting" in out and f"escalation:{esc_id}:page:trigger" in out
    assert "pager unreachable" in out

    # Ten minutes later the pager is back, but slow once and failing once: retried, then paged once per escalation.
    fake_pager.up()
    fake_pager.script(PagerFault(status=200, delay=2.0), PagerFault(status=500))
    t += timedelta(minutes=10)
    for _ in range(5):
        deliver_due(engine, client, pager, now=t)
        t += timedelta(minutes=2)
    events = fake_pager.events()
    assert sorted(e["dedup_key"] for e in events) == sorted(str(e.id) for e in escalations(engine))
    assert all(e["event_action"] == "trigger" for e in events)
    assert all(r.delivered_at is not None for r in outbox_rows(engine))
    actions = [a for a, _ in audit_actions(engine, f"escalation:{esc_id}")]
    assert actions.count("page_trigger_sent") == 1 and actions.index("page_trigger_failed") < actions.index(
        "page_trigger_sent"
    )
    pager.close()


def test_worker_thread_delivers_and_stops(engine: Engine, fake_slack: FakeSlack) -> None:
    from slack_sdk import WebClient

    from bot.runtime import outbox_worker

    queue_dms(engine, ["U1", "U2", "U3"])
    worker = outbox_worker(
        engine,
        WebClient(token="xoxb-test-token", base_url=fake_slack.base_url, timeout=5),
        None,
        clock=lambda: T0,
        poll=0.05,
    )
    worker.start()
    try:
        assert fake_slack.wait_for(lambda: len(fake_slack.of("chat.postMessage")) == 3)
    finally:
        worker.stop()
    assert delivered_to(fake_slack) == ["U1", "U2", "U3"]
    assert all(r.delivered_at == T0 for r in outbox_rows(engine))
    assert worker.client.retry_handlers == []  # the outbox, not slack_sdk, owns retries


def test_no_transaction_is_held_while_a_delivery_is_in_flight(engine: Engine, fake_slack: FakeSlack) -> None:
    """A slow Slack call must not hold the database: other writers (clicks) go on meanwhile."""
    import threading

    queue_dms(engine, ["U1"])
    fake_slack.script("chat.postMessage", Fault(status=200, body={"ok": True, "ts": "1.1"}, delay=3.0))
    client = delivery_client(fake_slack.base_url)
    worker = threading.Thread(target=deliver_due, args=(engine, client, None), kwargs={"now": T0})
    worker.start()
    try:
        assert fake_slack.wait_for(lambda: len(fake_slack.rejected) == 1, timeout=10)  # the call is in flight
        make_desk(engine, "rates", channel="C0777")  # a write transaction
        assert worker.is_alive(), "the write waited for the delivery to finish"
    finally:
        worker.join(timeout=20)
    (row,) = outbox_rows(engine)
    assert row.delivered_at is not None


def test_a_claim_given_back_frees_the_message_at_once_and_counts_no_attempt(engine: Engine) -> None:
    """A worker claims before it paces; with no Slack budget for the message this pass it gives
    the claim back (bot.delivery.lanes.release), so another worker (or its next pass) sends it
    now, not after the lease, and the attempt isn't counted against it."""
    from bot.delivery.lanes import claim, release

    now = utc(2026, 11, 25, 13, 0)
    with session_scope(engine) as session:
        queued = enqueue(
            session=session, dedup_key="k", kind=Kind.SLACK_DM, payload={"user": "U1"}, desk_id=None, now=now
        )
        assert queued is not None and queued.id is not None
        message_id = queued.id
    assert claim(engine, message_id, now)
    assert not claim(engine, message_id, now)  # claimed: nobody else takes it
    release(engine, message_id, now)
    with session_scope(engine) as session:
        row = session.get(OutboxMessage, message_id)
        assert row is not None and (row.claimed_at, row.attempts) == (None, 0)
    assert claim(engine, message_id, now)  # free again at once
