"""The outage morning: everyone reports at once and Slack's rate tiers refuse modals and
ephemerals. A report never depends on a modal opening: one-click reports are stored before
the acknowledgement, replies go through the interaction's response_url, and no request or
interaction pool ever sleeps on a rate limit (bot.checklist.quick, bot.slack.deps.respond,
bot.runtime.request_client)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.checklist.models import Answer, ChecklistRun
from bot.checklist.quick import DETAILS_PENDING
from bot.config import Settings
from bot.delivery.models import OutboxMessage
from bot.escalation.models import EscalationKind
from bot.outage import NOT_SAVED
from bot.runtime import build, deliver_due, make_client
from bot.slack.ids import Action, Callback
from tests.support.escalation_fixtures import delivery_client, escalations, post_checklist, report_values, run_pass
from tests.support.factories import make_desk
from tests.support.fakes.slack import FakeSlack, Fault
from tests.support.harness import BOT_TOKEN, SIGNING_SECRET, Bot, FakeClock

QUICK = (Action.QUICK_CANT_LOG_IN, Action.QUICK_PERMISSION_MISSING, Action.QUICK_NO_BACKUP)


def answers(engine: Engine, user: str | None = None) -> list[Answer]:
    with Session(engine) as session:
        query = select(Answer).order_by(col(Answer.id))
        if user is not None:
            query = query.where(Answer.user_id == user)
        return list(session.exec(query).all())


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b.get("type") == "actions" for e in b["elements"]]


def limited(seconds: str = "30") -> Fault:
    return Fault(status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": seconds})


def test_the_checklist_and_the_reminder_carry_the_one_click_reports(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    post_checklist(bot)
    (posted,) = fake_slack.of("chat.postMessage")
    ids = [b["action_id"] for b in buttons(posted.params["blocks"])]
    assert ids == [Action.CONFIRM_ALL, Action.REPORT_PROBLEM, *QUICK]


def test_a_one_click_report_is_stored_before_the_ack_and_answered_through_the_response_url(
    bot: Bot, fake_slack: FakeSlack
) -> None:
    make_desk(bot.runtime.engine)
    run_id = post_checklist(bot).run_id
    assert bot.click("UTRD1", Action.QUICK_CANT_LOG_IN, str(run_id)).status_code == 200
    (stored,) = answers(bot.runtime.engine, "UTRD1")  # before any background work: stored, then acked
    assert (stored.status, stored.failed_checks, stored.restricted) == ("problem", "authentication", True)
    assert stored.note == DETAILS_PENDING and stored.auth_layer is None
    bot.settle()
    (reply,) = fake_slack.responded("UTRD1")
    assert reply["response_type"] == "ephemeral" and reply["replace_original"] is False
    assert "restricted today" in reply["text"] and "Add details" in reply["text"]
    (details,) = buttons(reply["blocks"])
    assert (details["action_id"], details["value"]) == (Action.REPORT_PROBLEM, str(run_id))
    assert fake_slack.of("chat.postEphemeral") == []

    # The same click again changes nothing; another check is added to the report.
    bot.click("UTRD1", Action.QUICK_CANT_LOG_IN, str(run_id))
    bot.click("UTRD1", Action.QUICK_PERMISSION_MISSING, str(run_id))
    bot.settle()
    latest = answers(bot.runtime.engine, "UTRD1")
    assert len(latest) == 2 and latest[-1].failed_checks == "authentication,permissions"
    assert fake_slack.responded("UTRD1")[1]["text"].startswith("Already recorded.")

    # "Add details": the full modal's report replaces the one-click one as a new version.
    meta = json.dumps({"run_id": run_id, "channel_id": "C0123"})
    values = report_values(["permissions"], platform="tws", missing="ES futures")
    assert bot.submit_view("UTRD1", Callback.REPORT_MODAL, values, meta).status_code == 200
    final = answers(bot.runtime.engine, "UTRD1")[-1]
    assert (final.version, final.failed_checks, final.note, final.missing_permissions) == (
        3,
        "permissions",
        None,
        "ES futures",
    )


def test_a_replayed_one_click_report_changes_nothing(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    run_id = post_checklist(bot).run_id
    payload = {
        "type": "block_actions",
        "user": {"id": "UTRD2"},
        "api_app_id": "A1",
        "team": {"id": "T1"},
        "container": {"type": "message", "channel_id": "C0123", "message_ts": "1.0"},
        "channel": {"id": "C0123"},
        "trigger_id": f"trig-UTRD2-{time.monotonic_ns()}",
        "response_url": bot.response_url("UTRD2"),
        "actions": [{"action_id": Action.QUICK_NO_BACKUP, "value": str(run_id), "type": "button", "action_ts": "1.5"}],
    }
    bot.post_form({"payload": json.dumps(payload)})
    bot.click("UTRD2", Action.CONFIRM_ALL, str(run_id))  # fixed meanwhile
    bot.post_form({"payload": json.dumps(payload)})  # the first click, replayed
    bot.settle()
    assert [a.status for a in answers(bot.runtime.engine, "UTRD2")] == ["problem", "confirmed"]
    assert "already handled" in fake_slack.responded("UTRD2")[-1]["text"]


def test_a_no_backup_click_is_a_missing_recovery_path_escalated_at_once(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    run_id = post_checklist(bot).run_id
    bot.click("UTRD3", Action.QUICK_NO_BACKUP, str(run_id))
    bot.settle()
    (answer,) = answers(bot.runtime.engine, "UTRD3")
    assert answer.missing_recovery_path and answer.failed_checks == "contingency"
    assert [(e.trader_id, e.kind) for e in escalations(bot.runtime.engine)] == [("UTRD3", EscalationKind.RECOVERY_PATH)]


def test_no_backup_reports_in_a_burst_reach_each_manager_as_one_growing_message(
    bot: Bot, fake_slack: FakeSlack
) -> None:
    """Each missing recovery path escalates at once, from the answer. The first two reach the
    managers as a DM each; from the third within ten minutes (DIGEST_FROM, ROLLING_WINDOW) the
    run's rolling grouped message lists them, one per manager, updated in place as it grows —
    with concurrent answers, none is lost (its rows are locked while they grow)."""
    engine = bot.runtime.engine
    traders = [f"UT{i:02d}" for i in range(12)]
    make_desk(engine, traders=traders)
    run_id = str(post_checklist(bot).run_id)
    for trader in traders[:2]:
        assert bot.click(trader, Action.QUICK_NO_BACKUP, run_id).status_code == 200
    assert set(click_all(bot, [(t, Action.QUICK_NO_BACKUP, run_id) for t in traders[2:7]])) == {200}
    bot.settle()
    deliver_now(bot, fake_slack)
    assert set(click_all(bot, [(t, Action.QUICK_NO_BACKUP, run_id) for t in traders[7:]])) == {200}
    bot.settle()
    deliver_now(bot, fake_slack)

    opened = escalations(engine)
    assert len(opened) == 12 and {e.kind for e in opened} == {EscalationKind.RECOVERY_PATH}
    for manager in ("UMGR1", "UMGR2"):
        dm = fake_slack.messages["D" + manager[1:]]  # what the manager's DM shows now
        assert len(dm) == 3, [m["text"] for m in dm]  # two DMs, then one grouped message
        assert str(dm[-1]["text"]).startswith("10 escalations"), dm[-1]["text"]
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "slack.dm")).all()
        grown = [m for m in rows if m.dedup_key.startswith("digest:")]
    listed = {m.dedup_key.rsplit(":", 1)[-1]: json.loads(m.payload)["render"]["ids"] for m in grown}
    rest = sorted(e.id or 0 for e in opened if e.trader_id not in traders[:2])
    assert set(listed) == {"UMGR1", "UMGR2"} and all(sorted(ids) == rest for ids in listed.values()), listed


def deliver_now(bot: Bot, fake: FakeSlack) -> None:
    deliver_due(bot.runtime.engine, delivery_client(fake.base_url), None, now=bot.clock(), limit=1000)


def test_a_modal_slack_refuses_falls_back_to_one_click_reports_through_the_response_url(
    bot: Bot, fake_slack: FakeSlack
) -> None:
    make_desk(bot.runtime.engine)
    run_id = post_checklist(bot).run_id
    fake_slack.script("views.open", limited("1"))  # even a short Retry-After is not slept on
    started = time.monotonic()
    bot.click("UTRD1", Action.REPORT_PROBLEM, str(run_id))
    bot.settle()
    assert time.monotonic() - started < 0.9
    assert fake_slack.of("views.open") == [] and fake_slack.of("chat.postEphemeral") == []
    (reply,) = fake_slack.responded("UTRD1")
    assert reply["response_type"] == "ephemeral" and reply["replace_original"] is False
    offered = [b["action_id"] for b in buttons(reply["blocks"])]
    assert offered == [*QUICK, Action.REPORT_PROBLEM]
    bot.click("UTRD1", Action.QUICK_PERMISSION_MISSING, str(run_id))  # from that reply
    bot.settle()
    assert answers(bot.runtime.engine, "UTRD1")[-1].failed_checks == "permissions"


def test_the_request_pools_clients_never_sleep_on_a_rate_limit(engine: Engine, fake_slack: FakeSlack) -> None:
    settings = Settings(
        database_url=str(engine.url),
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake_slack.base_url,
    )
    runtime = build(settings, engine=engine)
    assert any(isinstance(h, RateLimitErrorRetryHandler) for h in runtime.client.retry_handlers)  # the scheduler's
    for client in (runtime.bolt.client, runtime.deps.modal_client, runtime.deps.names_client):
        assert client is not None
        assert not any(isinstance(h, RateLimitErrorRetryHandler) for h in client.retry_handlers)


@pytest.fixture
def pacing_bot(engine: Engine, fake_slack: FakeSlack, clock: FakeClock) -> Iterator[Bot]:
    """The bot with the production client (make_client: it sleeps on 429s where it may)."""
    settings = Settings(
        slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.base_url
    )
    running = Bot(engine, fake_slack.base_url, clock, client=make_client(settings))
    yield running
    running.close()


def click_all(bot: Bot, clicks: Sequence[tuple[str, str, str]], threads: int = 8) -> list[int]:
    def one(click: tuple[str, str, str]) -> int:
        return bot.click(*click).status_code

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, clicks))


def test_a_burst_under_rate_limits_is_acked_and_stored_without_any_pool_sleeping(
    pacing_bot: Bot, fake_slack: FakeSlack
) -> None:
    bot = pacing_bot
    traders = [f"UT{i:03d}" for i in range(20)]
    make_desk(bot.runtime.engine, traders=traders, named=False)
    run_id = str(post_checklist(bot).run_id)
    for method in ("chat.postEphemeral", "views.open"):
        fake_slack.rate_limit(method, per_second=0.01, retry_after=30)  # one call, then 429 + Retry-After 30
    clicks = [(t, QUICK[i % 3], run_id) for i, t in enumerate(traders)]
    clicks += [(t, Action.REPORT_PROBLEM, run_id) for t in traders[:5]]  # modals Slack refuses
    clicks += [(u, Action.CONFIRM_ALL, run_id) for u in ("UOUT1", "UOUT2", "UOUT3")]  # postEphemeral refusals
    started = time.monotonic()
    assert set(click_all(bot, clicks)) == {200}
    acked = time.monotonic() - started
    assert {a.user_id for a in answers(bot.runtime.engine)} == set(traders)  # stored before the acks
    bot.settle(timeout=5)  # a pool thread asleep on Retry-After 30 would not drain
    assert acked < 5 and time.monotonic() - started < 6
    assert len(fake_slack.rejected) >= 4  # Slack did refuse: the refusals were reported, not slept on


def test_the_outage_morning(bot: Bot, fake_slack: FakeSlack) -> None:
    """120 traders report within a minute while views.open and chat.postEphemeral are
    rate-limited: every report is stored before the deadline, and the deadline's pass
    escalates each trader as *restricted*, never *silent*."""
    engine = bot.runtime.engine
    traders = [f"UT{i:03d}" for i in range(120)]
    make_desk(engine, traders=traders, named=False)
    run_id = str(post_checklist(bot).run_id)
    fake_slack.rate_limit("views.open", per_second=0.5, retry_after=30)
    fake_slack.rate_limit("chat.postEphemeral", per_second=0.5, retry_after=30)
    # Half try the form first; the others report from the message (or the reminder DM) at once.
    modal_first, direct = traders[::2], traders[1::2]
    quick = (Action.QUICK_CANT_LOG_IN, Action.QUICK_PERMISSION_MISSING)
    assert set(click_all(bot, [(t, Action.REPORT_PROBLEM, run_id) for t in modal_first])) == {200}
    assert set(click_all(bot, [(t, quick[i % 2], run_id) for i, t in enumerate(direct)])) == {200}
    bot.settle(timeout=20)
    opened = len(fake_slack.of("views.open"))
    refused_modals = [t for t in modal_first if fake_slack.responded(t)]
    assert len(refused_modals) == len(modal_first) - opened and opened < 5
    # Those whose form didn't open use the reply's one-click buttons; those whose did, too
    # (their modal submissions go through like any other, tested elsewhere).
    follow = [(t, Action.QUICK_CANT_LOG_IN, run_id) for t in modal_first]
    assert set(click_all(bot, follow)) == {200}
    bot.settle(timeout=20)
    # A click the database couldn't take within the request's lock wait (reports opening
    # escalations queue on the run's rolling grouped message; on a loaded machine one can wait
    # past 2 s) was answered "nothing was recorded, try again" through its response_url — never
    # silently lost. Those traders do.
    retry = sorted(set(traders) - {a.user_id for a in answers(engine)})
    assert all(any(NOT_SAVED in said for said in fake_slack.told(t)) for t in retry), retry
    assert len(retry) <= len(traders) // 10, retry
    assert set(click_all(bot, [(t, Action.QUICK_CANT_LOG_IN, run_id) for t in retry])) <= {200}
    bot.settle(timeout=20)
    with Session(engine) as session:
        run = session.exec(select(ChecklistRun)).one()
        deadline = run.deadline_at
    latest = {a.user_id: a for a in answers(engine)}
    assert set(latest) == set(traders)
    assert all(a.restricted and a.created_at < deadline for a in latest.values())

    bot.clock.set(deadline + timedelta(minutes=1))
    run_pass(engine, bot.clock())
    kinds = {(e.trader_id, e.kind) for e in escalations(engine)}
    assert {kind for _, kind in kinds} == {EscalationKind.RESTRICTED}
    assert {user for user, _ in kinds} == set(traders)
    assert all(r["response_type"] == "ephemeral" for r in fake_slack.responded())
