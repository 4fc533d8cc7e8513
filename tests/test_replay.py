"""A captured, correctly signed request replayed inside Slack's five-minute window changes nothing
(issue 9): the exact same bytes and headers are sent again through the real HTTP endpoint, and
the replay is refused with a sentence — also by another replica sharing the database. Both DBs."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.checklist.models import Answer
from bot.db import session_scope
from bot.delivery.models import OutboxMessage
from bot.escalation.models import EscalationState
from bot.interactions import REPLAYED_CLICK, REPLAYED_SUBMISSION, RETENTION, SeenInteraction, first_time
from bot.slack.ids import Action, Block, Callback
from tests.support.escalation_fixtures import audit_actions, escalations, note_values, post_checklist, report_values
from tests.support.factories import make_desk
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot, FakeClock, recorded_guidance, utc

SIGNED_HEADERS = ("content-type", "x-slack-request-timestamp", "x-slack-signature")


def replay(bot: Bot, captured: httpx.Response) -> httpx.Response:
    """Send the captured request again: the same bytes, the same signed headers."""
    request = captured.request
    headers = {name: request.headers[name] for name in SIGNED_HEADERS}
    return bot.http.post("/slack/events", content=request.content, headers=headers)


def answers(bot: Bot, user: str) -> list[Answer]:
    with Session(bot.runtime.engine) as session:
        rows = session.exec(select(Answer).where(Answer.user_id == user).order_by(col(Answer.version))).all()
        return list(rows)


def ephemerals(fake: FakeSlack, user: str) -> list[str]:
    return fake.told(user)


def report(bot: Bot, fake: FakeSlack, user: str, run_id: int) -> httpx.Response:
    bot.click(user, Action.REPORT_PROBLEM, str(run_id))
    bot.settle()
    meta = fake.of("views.open")[-1].params["view"]["private_metadata"]
    values = report_values(["contingency"], ["no_backup_factor"], note="phone lost")
    response = bot.submit_view(user, Callback.REPORT_MODAL, values, meta)
    assert response.status_code == 200
    recorded_guidance(response.json())  # accepted: the modal shows the guidance
    bot.settle()
    return response


def test_a_replayed_confirmation_after_a_report_changes_nothing(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    run = post_checklist(bot)
    assert run.run_id is not None
    confirmed = bot.click("UTRD1", Action.CONFIRM_ALL, str(run.run_id))
    assert confirmed.status_code == 200
    bot.settle()
    report(bot, fake_slack, "UTRD1", run.run_id)
    assert [(a.version, a.status) for a in answers(bot, "UTRD1")] == [(1, "confirmed"), (2, "problem")]

    again = replay(bot, confirmed)
    assert again.status_code == 200
    bot.settle()
    assert [(a.version, a.status) for a in answers(bot, "UTRD1")] == [(1, "confirmed"), (2, "problem")]
    assert answers(bot, "UTRD1")[-1].restricted
    assert ephemerals(fake_slack, "UTRD1")[-1] == REPLAYED_CLICK


def test_a_replayed_report_after_a_confirmation_changes_nothing(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    run = post_checklist(bot)
    assert run.run_id is not None
    submitted = report(bot, fake_slack, "UTRD2", run.run_id)
    assert bot.click("UTRD2", Action.CONFIRM_ALL, str(run.run_id)).status_code == 200
    bot.settle()
    escalated = len(escalations(bot.runtime.engine))

    again = replay(bot, submitted)
    assert again.status_code == 200
    assert again.json() == {"response_action": "errors", "errors": {Block.FAILED: REPLAYED_SUBMISSION}}
    bot.settle()
    assert [(a.version, a.status) for a in answers(bot, "UTRD2")] == [(1, "problem"), (2, "confirmed")]
    assert len(escalations(bot.runtime.engine)) == escalated


def test_another_replica_refuses_the_replay_too(
    bot: Bot, engine: Engine, fake_slack: FakeSlack, clock: FakeClock
) -> None:
    make_desk(engine)
    run = post_checklist(bot)
    assert run.run_id is not None
    confirmed = bot.click("UTRD3", Action.CONFIRM_ALL, str(run.run_id))
    bot.settle()
    report(bot, fake_slack, "UTRD3", run.run_id)
    other = Bot(engine, fake_slack.base_url, clock)  # a second replica on the same database
    try:
        assert replay(other, confirmed).status_code == 200
        other.settle()
    finally:
        other.close()
    assert [a.status for a in answers(bot, "UTRD3")] == ["confirmed", "problem"]
    assert ephemerals(fake_slack, "UTRD3")[-1] == REPLAYED_CLICK


def test_replayed_acknowledge_and_resolve_change_nothing(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    run = post_checklist(bot)
    assert run.run_id is not None
    report(bot, fake_slack, "UTRD1", run.run_id)  # a missing recovery path escalates at once
    (esc,) = escalations(engine)
    acked = bot.click("UMGR1", Action.ESCALATION_ACK, str(esc.id), channel="DUMGR1")
    bot.settle()
    bot.click("UMGR1", Action.ESCALATION_RESOLVE, str(esc.id), channel="DUMGR1")
    bot.settle()
    meta = fake_slack.of("views.open")[-1].params["view"]["private_metadata"]
    resolved = bot.submit_view("UMGR1", Callback.RESOLVE_MODAL, note_values("second device registered"), meta)
    assert resolved.status_code == 200
    bot.settle()
    trail = audit_actions(engine, f"escalation:{esc.id}")
    with Session(engine) as session:
        queued = len(session.exec(select(OutboxMessage)).all())

    assert replay(bot, acked).status_code == 200
    bot.settle()
    assert ephemerals(fake_slack, "UMGR1")[-1] == REPLAYED_CLICK
    again = replay(bot, resolved)
    assert again.json() == {"response_action": "errors", "errors": {Block.RESOLUTION_NOTE: REPLAYED_SUBMISSION}}
    bot.settle()

    (after,) = escalations(engine)
    assert after.state == EscalationState.RESOLVED and after.resolution_note == "second device registered"
    assert audit_actions(engine, f"escalation:{esc.id}") == trail
    with Session(engine) as session:
        assert len(session.exec(select(OutboxMessage)).all()) == queued


def test_a_new_click_of_the_same_button_still_counts(bot: Bot, fake_slack: FakeSlack) -> None:
    """Not a replay: a second genuine click (a new trigger_id and action_ts) is acted on."""
    make_desk(bot.runtime.engine)
    run = post_checklist(bot)
    assert run.run_id is not None
    bot.click("UTRD1", Action.CONFIRM_ALL, str(run.run_id))
    bot.settle()
    report(bot, fake_slack, "UTRD1", run.run_id)
    bot.click("UTRD1", Action.CONFIRM_ALL, str(run.run_id))
    bot.settle()
    assert [a.status for a in answers(bot, "UTRD1")] == ["confirmed", "problem", "confirmed"]


def test_seen_interactions_are_kept_for_the_retention_only(engine: Engine) -> None:
    t0 = utc(2026, 11, 25, 13, 0)
    click = {"type": "block_actions", "user": {"id": "UTRD1"}, "trigger_id": "1.2.a", "actions": [{"action_ts": "1"}]}
    with session_scope(engine) as session:
        assert first_time(session=session, body=click, now=t0)
    with session_scope(engine) as session:
        assert not first_time(session=session, body=json.loads(json.dumps(click)), now=t0 + timedelta(minutes=5))
    later = {**click, "trigger_id": "1.2.b"}
    with session_scope(engine) as session:
        assert first_time(session=session, body=later, now=t0 + RETENTION + timedelta(seconds=1))
    with Session(engine) as session:
        kept = session.exec(select(SeenInteraction)).all()
        assert [(s.kind, s.user_id) for s in kept] == [("block_actions", "UTRD1")]
        assert all(s.seen_at > t0 for s in kept)  # the first one was purged
