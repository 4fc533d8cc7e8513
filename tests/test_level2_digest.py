"""Slack's rules across processes (issue 18): a level-2 pass tells the escalation channel in one
digest and updates each grouped message once; every Slack send draws on budgets per method and
per channel held in the database; posts never wait behind updates. Against the fake Slack with
Slack's limits on (``FakeSlack.slack_tiers``: one post a second per channel, chat.update at
Tier 3), on SQLite and PostgreSQL. Nothing here is timed: the fake refuses what is too fast."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.delivery.models import OutboxMessage
from bot.delivery.outbox import Kind, enqueue
from bot.delivery.pacing import INFINITE
from bot.delivery.tiers import SlackBudgets
from bot.delivery.worker import PassResult
from bot.runtime import deliver_due
from bot.slack.ids import Action
from tests.support.escalation_fixtures import (
    blocks_text,
    configure,
    delivery_client,
    escalations,
    outbox_rows,
    post_checklist,
    run_pass,
)
from tests.support.factories import make_desk
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot, utc

MANAGERS = ("UMGR1", "UMGR2")


def deliver_all(bot: Bot, fake: FakeSlack) -> PassResult:
    """Everything due, through the shared budgets (each pass waits for its slots)."""
    budgets = SlackBudgets(bot.runtime.engine)
    total = PassResult()
    while True:
        done = deliver_due(
            bot.runtime.engine,
            delivery_client(fake.base_url),
            None,
            now=bot.clock(),
            limit=1000,
            budgets=budgets,
            wait_at_most=INFINITE,
        )
        total.delivered += done.delivered
        total.coalesced += done.coalesced
        if not done.delivered:
            return total


def channel_posts(fake: FakeSlack, channel: str = "CESCAL") -> list[str]:
    return [blocks_text(c.params) for c in fake.of("chat.postMessage") if c.params["channel"] == channel]


def desk_of(bot: Bot, traders: int) -> int:
    fake_traders = [f"UT{n:05d}" for n in range(traders)]
    make_desk(bot.runtime.engine, managers=MANAGERS, traders=fake_traders, named=False)
    configure(bot.runtime.engine, escalation_channel="CESCAL")
    run = post_checklist(bot)
    assert run.run_id is not None
    return run.run_id


def queued_after(engine: Engine, last_id: int) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage).where(col(OutboxMessage.id) > last_id)).all())


@pytest.mark.parametrize("traders", [60, pytest.param(200, marks=pytest.mark.slow)])
def test_a_level2_pass_posts_one_digest_to_the_channel(bot: Bot, fake_slack: FakeSlack, traders: int) -> None:
    fake_slack.slack_tiers()
    engine = bot.runtime.engine
    desk_of(bot, traders)
    bot.clock.set(utc(2026, 11, 25, 14, 0))  # the deadline: everyone silent
    assert len(run_pass(engine, bot.clock()).opened) == traders
    deliver_all(bot, fake_slack)
    dms = [c.params["channel"] for c in fake_slack.of("chat.postMessage") if c.params["channel"] != "C0123"]
    assert dms == list(MANAGERS)  # one digest each

    bot.clock.set(utc(2026, 11, 25, 14, 15))
    last = outbox_rows(engine)[-1].id or 0
    report = run_pass(engine, bot.clock())
    assert len(report.level2) == traders
    queued = queued_after(engine, last)
    # One channel post and one update of each manager's digest: not a post and updates per escalation.
    assert sorted(m.kind for m in queued) == [Kind.SLACK_POST, Kind.SLACK_UPDATE, Kind.SLACK_UPDATE]
    assert report.digest_updates == 2
    deliver_all(bot, fake_slack)
    (post,) = channel_posts(fake_slack)
    assert f"{traders} escalations" in post and "Level 2" in post and "<@UMGR1>" in post
    assert fake_slack.rejected == []  # never faster than Slack's limits
    # The managers' digests now show level 2, updated once each.
    updates = fake_slack.of("chat.update")
    assert len(updates) == 2 and all("level 2" in blocks_text(c.params) for c in updates)


def test_the_channel_digest_tells_the_truth_as_escalations_are_acknowledged(bot: Bot, fake_slack: FakeSlack) -> None:
    fake_slack.slack_tiers()
    engine = bot.runtime.engine
    desk_of(bot, 5)
    bot.clock.set(utc(2026, 11, 25, 14, 0))
    run_pass(engine, bot.clock())
    bot.clock.set(utc(2026, 11, 25, 14, 15))
    run_pass(engine, bot.clock())
    deliver_all(bot, fake_slack)
    (post,) = channel_posts(fake_slack)
    assert "⏳ 5 open · 👀 0 acknowledged" in post

    first = escalations(engine)[0]
    bot.click("UMGR1", Action.ESCALATION_ACK, str(first.id), channel="DUMGR1")
    bot.settle()
    deliver_all(bot, fake_slack)
    channel_updates = [blocks_text(c.params) for c in fake_slack.of("chat.update") if c.params["channel"] == "CESCAL"]
    assert len(channel_updates) == 1
    assert "⏳ 4 open · 👀 1 acknowledged" in channel_updates[0] and "Acknowledged* by" in channel_updates[0]
    assert fake_slack.rejected == []


@pytest.mark.slow  # a scale run: CI runs it, --fast leaves it out
def test_a_pass_that_changes_300_escalations_updates_each_digest_once(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    desk_of(bot, 300)
    bot.clock.set(utc(2026, 11, 25, 14, 0))
    run_pass(engine, bot.clock())
    deliver_all(bot, fake_slack)
    bot.clock.set(utc(2026, 11, 25, 14, 15))
    last = outbox_rows(engine)[-1].id or 0
    assert len(run_pass(engine, bot.clock()).level2) == 300
    queued = queued_after(engine, last)
    refs = sorted(json.loads(m.payload)["ref"] for m in queued if m.kind == Kind.SLACK_UPDATE)
    assert len(refs) == len(set(refs)) == 2  # each manager's digest, once
    assert [m.kind for m in queued].count(Kind.SLACK_POST) == 1  # the channel's digest


def test_updates_of_one_message_queued_before_its_render_go_out_as_one(engine: Engine, fake_slack: FakeSlack) -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    client = delivery_client(fake_slack.base_url)
    with Session(engine) as session, session.begin():
        enqueue(session=session, dedup_key="orig", kind=Kind.SLACK_POST, payload={"channel": "C1", "text": "v0"},
                desk_id=None, now=now)  # fmt: skip
    assert deliver_due(engine, client, None, now=now).delivered == 1
    with Session(engine) as session, session.begin():
        for n in range(30):
            payload = {"ref": "orig", "text": f"v{n + 1}"}
            enqueue(session=session, dedup_key=f"orig:update:{n}", kind=Kind.SLACK_UPDATE, payload=payload,
                    desk_id=None, now=now)  # fmt: skip
    done = deliver_due(engine, client, None, now=now)
    assert (done.delivered, done.coalesced) == (1, 29)
    assert len(fake_slack.of("chat.update")) == 1
    assert all(r.delivered_at is not None for r in outbox_rows(engine))
    assert deliver_due(engine, client, None, now=now).touched == 0


def test_a_post_does_not_wait_behind_a_queue_of_updates(engine: Engine, fake_slack: FakeSlack) -> None:
    """30 updates of 30 messages (chat.update: 50 a minute, 36 s of budget) then a post: the
    first pass delivers the post and leaves the updates the budget can't take now for later."""
    from datetime import UTC, datetime

    fake_slack.slack_tiers()
    now = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    client = delivery_client(fake_slack.base_url)
    with Session(engine) as session, session.begin():
        for n in range(30):
            enqueue(session=session, dedup_key=f"m{n}", kind=Kind.SLACK_DM, payload={"user": f"U{n:04d}", "text": "a"},
                    desk_id=None, now=now)  # fmt: skip
    budgets = SlackBudgets(engine)
    while deliver_due(engine, client, None, now=now, limit=100, budgets=budgets, wait_at_most=INFINITE).delivered:
        pass
    with Session(engine) as session, session.begin():
        for n in range(30):
            enqueue(session=session, dedup_key=f"m{n}:update:x", kind=Kind.SLACK_UPDATE,
                    payload={"ref": f"m{n}", "text": "b"}, desk_id=None, now=now)  # fmt: skip
        enqueue(session=session, dedup_key="level2-digest", kind=Kind.SLACK_POST,
                payload={"channel": "CESCAL", "text": "level 2"}, desk_id=None, now=now)  # fmt: skip
    first = deliver_due(engine, client, None, now=now, limit=100, budgets=budgets)
    assert [c.params["text"] for c in fake_slack.of("chat.postMessage") if c.params["channel"] == "CESCAL"] == [
        "level 2"
    ]
    waiting = [r for r in outbox_rows(engine) if r.delivered_at is None]
    assert first.delivered <= 2 and len(waiting) >= 29  # the updates wait for their budget, not the post
    assert all(r.kind == Kind.SLACK_UPDATE for r in waiting) and first.paced >= 1
    assert first.resume_in is not None and first.resume_in > 0
    assert fake_slack.rejected == []


def test_two_workers_share_the_budgets(engine: Engine, fake_slack: FakeSlack) -> None:
    """Two workers with budgets of their own objects (two processes, as far as the budgets can
    tell) posting to one channel and updating: Slack's one post a second per channel and
    chat.update's Tier 3 are never exceeded, together."""
    from datetime import UTC, datetime

    fake_slack.slack_tiers()
    now = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    with Session(engine) as session, session.begin():
        for n in range(4):
            enqueue(session=session, dedup_key=f"p{n}", kind=Kind.SLACK_POST, payload={"channel": "C1", "text": f"{n}"},
                    desk_id=None, now=now)  # fmt: skip
        for n in range(3):
            enqueue(session=session, dedup_key=f"p{n}:update:x", kind=Kind.SLACK_UPDATE,
                    payload={"ref": f"p{n}", "text": "edited"}, desk_id=None, now=now)  # fmt: skip
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            budgets, client = SlackBudgets(engine), delivery_client(fake_slack.base_url)
            for _ in range(200):
                done = deliver_due(engine, client, None, now=now, limit=100, budgets=budgets, wait_at_most=0.5)
                if all(r.delivered_at is not None for r in outbox_rows(engine)):
                    return
                if not done.delivered:
                    threading.Event().wait(min(done.resume_in or 0.05, 0.2))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(fake_slack.of("chat.postMessage")) == 4 and len(fake_slack.of("chat.update")) == 3  # each once
    assert fake_slack.rejected == []  # within one budget across both workers
