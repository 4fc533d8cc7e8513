"""A post whose outcome is unknown is not posted twice: the checklist and the escalation
channel's level-2 post carry message metadata, an attempt stays in ``bot.delivery.ledger``
until its outcome is known, and a retry looks for the message in the channel's history and
adopts it (bot.checklist.posting, bot.delivery.worker)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from slack_sdk import WebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.checklist import posting
from bot.checklist import service as checklist
from bot.checklist.models import ChecklistRun
from bot.checklist.service import POST_LEASE, PostOutcome
from bot.db import session_scope
from bot.delivery import ledger
from bot.delivery.ledger import PendingPost
from bot.delivery.models import OutboxMessage
from bot.delivery.outbox import Kind, enqueue
from bot.delivery.specs import EscalationDM, EscalationLevel2, RenderSpec
from bot.delivery.worker import deliver_due as worker_deliver
from bot.desks import service as desks
from bot.escalation.models import EscalationState
from bot.runtime import deliver_due
from bot.slack.ids import Action
from tests.support.escalation_fixtures import (
    configure,
    delivery_client,
    escalations,
    outbox_rows,
    post_checklist,
    run_pass,
)
from tests.support.factories import make_desk
from tests.support.fakes.slack import FakeSlack, Fault
from tests.support.harness import BOT_TOKEN, Bot, utc

TODAY = utc(2026, 11, 25).date()
POST = utc(2026, 11, 25, 13, 0)  # 08:00 in New York: the desk's post time
CHANNEL = "C0123"
SLOW = Fault(accepted=True, delay=1.5)  # Slack posts it; its answer comes after the client gave up


def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=BOT_TOKEN, base_url=fake.base_url, timeout=1)


def post(engine: Engine, fake: FakeSlack, now: Any = POST) -> posting.PostResult:
    return posting.post_checklist(engine, client(fake), desk_name="equities", day=TODAY, now=now)


def checklist_meta(run_id: int | None) -> dict[str, Any]:
    return {"event_type": "preflight_checklist", "event_payload": {"run_id": run_id}}


def run_of(engine: Engine) -> ChecklistRun:
    with Session(engine) as session:
        run = session.exec(select(ChecklistRun)).one()
        return run


def plain(session: Session, spec: RenderSpec) -> tuple[str, list[dict[str, Any]]]:
    """A renderer for rows whose subject doesn't exist in these tests."""
    return f"notification {spec.to_payload()}", []


def pending(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(PendingPost.key).order_by(col(PendingPost.key))).all())


# --- the checklist -----------------------------------------------------------------------------


def test_a_checklist_post_that_timed_out_after_slack_took_it_is_adopted(engine: Engine, fake_slack: FakeSlack) -> None:
    make_desk(engine)
    fake_slack.script("chat.postMessage", SLOW)
    first = post(engine, fake_slack)
    assert first.outcome == posting.UNREACHABLE
    (message,) = fake_slack.messages[CHANNEL]  # it is in the channel all the same, stamped
    assert message["metadata"] == checklist_meta(first.run_id)
    assert pending(engine) == [posting.ledger_key(first.run_id or 0)]

    second = post(engine, fake_slack, POST + timedelta(minutes=1))  # the next tick
    assert (second.outcome, second.ts) == (PostOutcome.CLAIMED, message["ts"])
    assert "an earlier attempt had posted it" in second.message
    assert len(fake_slack.messages[CHANNEL]) == 1 and len(fake_slack.of("chat.postMessage")) == 1
    (look,) = fake_slack.of("conversations.history")
    assert look.params["channel"] == CHANNEL and look.params["include_all_metadata"] in ("1", "true", True)
    assert float(look.params["oldest"]) <= float(message["ts"])
    run = run_of(engine)
    assert run.message_ts == message["ts"] and run.post_error is None
    assert run.answers_version > run.rendered_version  # drawn at the first attempt: the roster redraws it
    assert pending(engine) == []
    assert post(engine, fake_slack, POST + timedelta(minutes=2)).outcome is PostOutcome.ALREADY_POSTED
    assert len(fake_slack.messages[CHANNEL]) == 1


def test_a_timeout_before_slack_took_it_is_looked_for_then_posted_once(engine: Engine, fake_slack: FakeSlack) -> None:
    make_desk(engine)
    fake_slack.script("chat.postMessage", Fault(delay=1.5))  # lost on the way: nothing posted
    assert post(engine, fake_slack).outcome == posting.UNREACHABLE
    assert fake_slack.messages == {}
    second = post(engine, fake_slack, POST + timedelta(minutes=1))
    assert second.outcome is PostOutcome.CLAIMED
    (message,) = fake_slack.messages[CHANNEL]
    assert message["ts"] == second.ts and message["metadata"] == checklist_meta(second.run_id)
    assert len(fake_slack.of("conversations.history")) == 1
    assert pending(engine) == []
    run = run_of(engine)
    assert run.message_ts == second.ts and run.rendered_version == run.answers_version


def test_a_process_that_died_after_slack_took_the_post_leaves_it_to_be_adopted(
    engine: Engine, fake_slack: FakeSlack
) -> None:
    """The claim and the ledger row are committed before the call; the process posts, then
    dies before recording the ts. After the lease, the next claim finds the message."""
    make_desk(engine)
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name="equities")
        claim = checklist.claim_post(session=session, desk=desk, day=TODAY, now=POST)
        assert claim.run is not None and claim.run.id is not None
        run_id = claim.run.id
        ledger.begin(session=session, key=posting.ledger_key(run_id), channel=CHANNEL, now=POST)
    posted = client(fake_slack).chat_postMessage(channel=CHANNEL, text="checklist", metadata=checklist_meta(run_id))
    # ...and the process is gone. Within the lease nobody else posts:
    assert post(engine, fake_slack, POST + timedelta(seconds=30)).outcome is PostOutcome.IN_PROGRESS
    result = post(engine, fake_slack, POST + POST_LEASE + timedelta(seconds=1))
    assert (result.outcome, result.ts) == (PostOutcome.CLAIMED, posted["ts"])
    assert len(fake_slack.messages[CHANNEL]) == 1
    assert run_of(engine).message_ts == posted["ts"] and pending(engine) == []


def test_a_refused_post_is_settled_and_the_retry_does_not_look(engine: Engine, fake_slack: FakeSlack) -> None:
    make_desk(engine)
    fake_slack.script("chat.postMessage", Fault(body={"ok": False, "error": "not_in_channel"}))
    assert post(engine, fake_slack).outcome == "failed"
    assert pending(engine) == []  # certainly not posted
    assert post(engine, fake_slack, POST + timedelta(minutes=1)).outcome is PostOutcome.CLAIMED
    assert fake_slack.of("conversations.history") == []
    assert len(fake_slack.messages[CHANNEL]) == 1


def test_history_unavailable_means_no_post_now_and_a_look_next_time(engine: Engine, fake_slack: FakeSlack) -> None:
    make_desk(engine)
    fake_slack.script("chat.postMessage", SLOW)
    fake_slack.script("conversations.history", Fault(status=500, body={"ok": False, "error": "internal_error"}))
    assert post(engine, fake_slack).outcome == posting.UNREACHABLE
    assert post(engine, fake_slack, POST + timedelta(minutes=1)).outcome == "failed"  # could not look: did not post
    assert len(fake_slack.of("chat.postMessage")) == 1 and pending(engine) != []
    third = post(engine, fake_slack, POST + timedelta(minutes=2))
    assert third.outcome is PostOutcome.CLAIMED and third.ts == fake_slack.messages[CHANNEL][0]["ts"]
    assert len(fake_slack.messages[CHANNEL]) == 1


def test_without_the_history_scope_the_retry_posts_as_before(engine: Engine, fake_slack: FakeSlack) -> None:
    """An install made before the app asked for channels:history: the look is refused, logged,
    and the post goes out (the old behaviour) rather than never."""
    make_desk(engine)
    fake_slack.script("chat.postMessage", Fault(delay=1.5))
    fake_slack.script("conversations.history", Fault(body={"ok": False, "error": "missing_scope"}))
    assert post(engine, fake_slack).outcome == posting.UNREACHABLE
    assert post(engine, fake_slack, POST + timedelta(minutes=1)).outcome is PostOutcome.CLAIMED
    assert len(fake_slack.messages[CHANNEL]) == 1 and pending(engine) == []


# --- the escalation channel's level-2 post -------------------------------------------------------


def test_a_level2_post_that_timed_out_after_slack_took_it_is_adopted(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine, traders=("UTRD1",))
    configure(engine, escalation_channel="CESCAL")
    post_checklist(bot)
    bot.clock.set(utc(2026, 11, 25, 14, 0))  # 09:00: UTRD1 said nothing
    (esc_id,) = run_pass(engine, bot.clock()).opened
    deliver_due(engine, delivery_client(fake_slack.base_url), None, now=bot.clock(), limit=100)
    bot.clock.set(utc(2026, 11, 25, 14, 15))
    assert run_pass(engine, bot.clock()).level2 == [esc_id]

    fake_slack.script("chat.postMessage", SLOW)
    slow = delivery_client(fake_slack.base_url, timeout=1)
    first = deliver_due(engine, slow, None, now=bot.clock(), limit=100)
    assert first.delivered == 0 and first.deferred >= 1
    (message,) = fake_slack.messages["CESCAL"]
    assert message["metadata"] == {"event_type": "preflight_escalation", "event_payload": {"escalation_id": esc_id}}

    later = max(r.next_attempt_at for r in outbox_rows(engine) if r.delivered_at is None)
    deliver_due(engine, slow, None, now=later, limit=100)
    assert len(fake_slack.messages["CESCAL"]) == 1  # adopted, not posted again
    (row,) = [r for r in outbox_rows(engine) if r.dedup_key.endswith(":level2:channel")]
    assert row.delivered_at is not None and row.attempts == 2
    assert row.result is not None and message["ts"] in row.result and pending(engine) == []

    # The adopted message is the one updated in place when a manager acknowledges.
    bot.clock.set(utc(2026, 11, 25, 14, 20))
    bot.click("UMGR1", Action.ESCALATION_ACK, str(esc_id), channel="DUMGR1")
    bot.settle()
    assert escalations(engine)[0].state == EscalationState.ACKNOWLEDGED
    deliver_due(engine, delivery_client(fake_slack.base_url), None, now=bot.clock(), limit=100)
    updates = [c.params for c in fake_slack.of("chat.update") if c.params["channel"] == "CESCAL"]
    assert updates and {u["ts"] for u in updates} == {message["ts"]}


def test_a_direct_message_is_not_stamped_or_looked_for(engine: Engine, fake_slack: FakeSlack) -> None:
    """Only channel posts that must appear once carry metadata (DMs are updated in place
    through their own D… ids; a history look there would need im:history)."""
    with session_scope(engine) as session:
        enqueue(
            session=session,
            dedup_key="test:dm",
            kind=Kind.SLACK_DM,
            payload={"user": "UMGR1"},
            render=EscalationDM(1),
            desk_id=None,
            now=POST,
        )
    fake_slack.script("chat.postMessage", Fault(delay=1.5))
    slow = delivery_client(fake_slack.base_url, timeout=1)
    worker_deliver(engine, slow, None, now=POST, render=plain)
    done = worker_deliver(engine, slow, None, now=POST + timedelta(minutes=5), render=plain)
    assert done.delivered == 1
    assert "metadata" not in fake_slack.messages["DMGR1"][0]
    assert fake_slack.of("conversations.history") == [] and pending(engine) == []


def test_a_level2_post_is_stamped_and_a_first_attempt_does_not_look(engine: Engine, fake_slack: FakeSlack) -> None:
    with session_scope(engine) as session:
        enqueue(
            session=session,
            dedup_key="test:level2",
            kind=Kind.SLACK_POST,
            payload={"channel": "CESCAL"},
            render=EscalationLevel2(7),
            desk_id=None,
            now=POST,
        )
    result = worker_deliver(engine, delivery_client(fake_slack.base_url), None, now=POST, render=plain)
    assert result.delivered == 1
    (message,) = fake_slack.messages["CESCAL"]
    assert message["metadata"] == {"event_type": "preflight_escalation", "event_payload": {"escalation_id": 7}}
    with Session(engine) as session:
        assert session.exec(select(OutboxMessage)).one().attempts == 1
    assert fake_slack.of("conversations.history") == []  # a first attempt does not look


# --- the pieces ------------------------------------------------------------------------------------


def test_oldest_is_the_first_attempt_on_slacks_clock_whatever_the_apps_clock() -> None:
    wall = 1_800_000_000.0
    started = utc(2026, 11, 25, 13, 0)
    skew = ledger.SKEW.total_seconds()
    assert ledger.oldest(started, started + timedelta(minutes=3), wall=wall) == wall - 180 - skew
    # A rehearsal clock a day ahead changes nothing: only the time elapsed counts.
    ahead = timedelta(days=1)
    assert ledger.oldest(started + ahead, started + ahead + timedelta(minutes=3), wall=wall) == wall - 180 - skew
    assert ledger.oldest(started, started - timedelta(minutes=1), wall=wall) == wall - skew  # a clock set back


def test_the_fake_answers_history_as_slack_does(fake_slack: FakeSlack) -> None:
    web = WebClient(token=BOT_TOKEN, base_url=fake_slack.base_url)
    meta = {"event_type": "x", "event_payload": {"n": 1}}
    sent = [web.chat_postMessage(channel="C1", text=f"m{i}", metadata=meta)["ts"] for i in range(5)]
    page = web.conversations_history(channel="C1", limit=2)
    assert [m["ts"] for m in page["messages"]] == sent[::-1][:2] and page["has_more"]
    assert all("metadata" not in m for m in page["messages"])  # only with include_all_metadata
    rest = web.conversations_history(
        channel="C1", limit=10, cursor=page["response_metadata"]["next_cursor"], include_all_metadata=True
    )
    assert [m["ts"] for m in rest["messages"]] == sent[::-1][2:] and not rest["has_more"]
    assert rest["messages"][0]["metadata"] == meta
    assert [m["ts"] for m in web.conversations_history(channel="C1", oldest=sent[3])["messages"]] == [sent[4]]
