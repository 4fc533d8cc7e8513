"""The morning checklist through the real HTTP endpoint, signed requests and the fake Slack."""

from __future__ import annotations

import json
import threading
import time
from datetime import date, timedelta
from typing import Any

import pytest

from bot.slack.ids import Action, Block, Callback, Event
from tests.support.checklist_fixtures import answers, ephemerals, last_roster, post, report_values
from tests.support.factories import make_desk
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot, recorded_guidance, utc


def open_report(bot: Bot, fake: FakeSlack, user: str, run_id: int) -> str:
    """Click 'Report a problem' and return the private_metadata of the modal that opened."""
    before = len(fake.of("views.open"))
    assert bot.click(user, Action.REPORT_PROBLEM, str(run_id)).status_code == 200
    bot.settle()
    opened = fake.of("views.open")
    assert len(opened) == before + 1
    view = opened[-1].params["view"]
    assert view["callback_id"] == Callback.REPORT_MODAL
    return str(view["private_metadata"])


def test_checklist_message_names_the_three_checks_and_the_deadline(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    post(bot)
    (message,) = fake_slack.of("chat.postMessage")
    assert message.params["channel"] == "C0123"
    blocks = json.dumps(message.params["blocks"], ensure_ascii=False)
    for word in ("Authentication", "Permissions", "Contingency", "09:00 EST", "⏳ 3 pending"):
        assert word in blocks
    actions = next(b for b in message.params["blocks"] if b.get("block_id") == Block.ACTIONS)
    assert [e["action_id"] for e in actions["elements"]] == [
        Action.CONFIRM_ALL,
        Action.REPORT_PROBLEM,
        Action.QUICK_CANT_LOG_IN,  # the one-click reports (tests/test_outage_morning.py)
        Action.QUICK_PERMISSION_MISSING,
        Action.QUICK_NO_BACKUP,
    ]


def test_one_click_confirmation_updates_the_roster_in_place(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    result = post(bot)
    response = bot.click("UTRD1", Action.CONFIRM_ALL, str(result.run_id), message_ts=str(result.ts))
    assert response.status_code == 200
    bot.settle()
    (answer,) = answers(bot)
    assert (answer.user_id, answer.status, answer.version, answer.restricted) == ("UTRD1", "confirmed", 1, False)
    assert ephemerals(fake_slack, "UTRD1") == []  # all well: the roster is the answer
    update = fake_slack.of("chat.update")[-1]
    assert (update.params["channel"], update.params["ts"]) == ("C0123", result.ts)
    roster = last_roster(fake_slack)
    assert "✅ Alice — ready (08:05 EST)" in roster
    assert "⏳ Bob — pending" in roster
    assert "✅ 1 ready · 🚫 0 restricted · ⏳ 2 pending" in roster


def test_report_with_field_errors_stores_nothing(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    result = post(bot)
    assert result.run_id is not None
    meta = open_report(bot, fake_slack, "UTRD2", result.run_id)
    cases: list[tuple[dict[str, Any], set[str]]] = [
        (report_values([]), {Block.FAILED}),
        (report_values(["authentication"]), {Block.AUTH_LAYER, Block.PLATFORM}),
        (report_values(["permissions"], platform="tws"), {Block.MISSING_PERMISSIONS, Block.PERMISSION_GAPS}),
        (report_values(["contingency"]), {Block.GAPS}),
        (report_values(["contingency"], gaps=["no_backup_factor"], note="x" * 501), {Block.NOTE}),
        (report_values(["authentication"], layer="telepathy", platform="tws"), {Block.AUTH_LAYER}),
    ]
    for values, expected in cases:
        response = bot.submit_view("UTRD2", Callback.REPORT_MODAL, values, meta)
        assert response.status_code == 200
        body = response.json()
        assert body["response_action"] == "errors"
        assert set(body["errors"]) == expected, body
    bot.settle()
    assert answers(bot) == []


def test_report_marks_restricted_gives_matched_guidance_and_keeps_history(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    result = post(bot)
    assert result.run_id is not None
    meta = open_report(bot, fake_slack, "UTRD2", result.run_id)
    values = report_values(["authentication"], layer="device_trust", platform="tws", note="IB Key moved to new phone")
    response = bot.submit_view("UTRD2", Callback.REPORT_MODAL, values, meta)
    assert response.status_code == 200
    guidance = recorded_guidance(response.json())  # the modal turns into it: no Web API call
    bot.settle()
    (answer,) = answers(bot, "UTRD2")
    assert answer.restricted and answer.failed_checks == "authentication" and answer.auth_layer == "device_trust"
    assert fake_slack.of("chat.postEphemeral") == []
    assert "restricted today" in guidance and "*Device trust*" in guidance and "temporary passcode" in guidance
    assert "*Identity*" not in guidance
    assert "🚫 Bob — restricted today · ⚠️ Authentication (device trust, TWS)" in last_roster(fake_slack)

    # A permissions problem gets authorization guidance.
    values = report_values(["permissions"], platform="client_portal", missing="ES futures")
    response = bot.submit_view("UTRD3", Callback.REPORT_MODAL, values, meta)
    bot.settle()
    assert "*Trading permission*" in recorded_guidance(response.json())

    # Fixed it: the latest answer is current, the earlier one is kept.
    bot.clock.advance(minutes=10)
    bot.click("UTRD2", Action.CONFIRM_ALL, str(result.run_id))
    bot.settle()
    history = answers(bot, "UTRD2")
    assert [(a.version, a.status) for a in history] == [(1, "problem"), (2, "confirmed")]
    assert "restriction is cleared" in ephemerals(fake_slack, "UTRD2")[-1]
    roster = last_roster(fake_slack)
    assert "✅ Bob — ready (08:15 EST)" in roster
    assert "🚫 Carol — restricted today · ⚠️ Permissions on Client Portal (trading permission): ES futures" in roster


def test_click_by_someone_not_on_the_desk_is_refused(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    result = post(bot)
    for user in ("UOUTSIDER", "UMGR1"):  # a manager is not a trader either
        assert bot.click(user, Action.CONFIRM_ALL, str(result.run_id)).status_code == 200
        assert bot.click(user, Action.REPORT_PROBLEM, str(result.run_id)).status_code == 200
    bot.settle()
    assert answers(bot) == []
    assert fake_slack.of("views.open") == []
    for user in ("UOUTSIDER", "UMGR1"):
        replies = ephemerals(fake_slack, user)
        assert len(replies) == 2 and all("not a trader on the equities desk" in r for r in replies)


def test_click_on_a_previous_days_checklist_has_closed(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    bot.clock.set(utc(2026, 11, 24, 13, 5))
    yesterday = post(bot, date(2026, 11, 24))
    bot.clock.set(utc(2026, 11, 25, 13, 5))
    bot.click("UTRD1", Action.CONFIRM_ALL, str(yesterday.run_id))
    bot.click("UTRD1", Action.REPORT_PROBLEM, str(yesterday.run_id))
    bot.settle()
    assert answers(bot) == []
    assert fake_slack.of("views.open") == []
    replies = ephemerals(fake_slack, "UTRD1")
    assert len(replies) == 2 and all("has closed" in r for r in replies)
    # A modal opened yesterday and submitted today is refused inside the modal.
    meta = json.dumps({"run_id": yesterday.run_id, "channel_id": "C0123"})
    values = report_values(["contingency"], gaps=["no_backup_factor"])
    body = bot.submit_view("UTRD1", Callback.REPORT_MODAL, values, meta)
    assert body.json()["response_action"] == "errors" and "has closed" in body.json()["errors"][Block.FAILED]
    bot.settle()
    assert answers(bot) == []


def test_click_on_unknown_run_gets_an_explanation(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    post(bot)
    bot.click("UTRD1", Action.CONFIRM_ALL, "999999")
    bot.click("UTRD1", Action.CONFIRM_ALL, "not-a-number")
    bot.settle()
    assert answers(bot) == []
    assert all("no longer available" in r for r in ephemerals(fake_slack, "UTRD1"))


def test_double_click_stores_one_answer(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    result = post(bot)
    bot.click("UTRD1", Action.CONFIRM_ALL, str(result.run_id))
    bot.click("UTRD1", Action.CONFIRM_ALL, str(result.run_id))
    # And a truly concurrent double click from another trader.
    barrier = threading.Barrier(2)

    def click() -> None:
        barrier.wait()
        bot.click("UTRD3", Action.CONFIRM_ALL, str(result.run_id))

    threads = [threading.Thread(target=click) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bot.settle()
    assert [(a.user_id, a.version) for a in answers(bot)] in (
        [("UTRD1", 1), ("UTRD3", 1)],
        [("UTRD3", 1), ("UTRD1", 1)],
    )
    assert any("Already recorded" in r for r in ephemerals(fake_slack, "UTRD1"))


def test_burst_of_clicks_is_coalesced_and_the_final_state_appears(
    engine: Any, fake_slack: FakeSlack, clock: Any
) -> None:
    traders = [f"UT{i:03d}" for i in range(40)]
    make_desk(engine, traders=traders)
    bot = Bot(engine, fake_slack.base_url, clock, roster_interval=1.0)
    try:
        result = post(bot)
        started = time.monotonic()
        barrier = threading.Barrier(8)

        def clicker(users: list[str]) -> None:
            barrier.wait()
            for user in users:
                assert bot.click(user, Action.CONFIRM_ALL, str(result.run_id)).status_code == 200

        threads = [threading.Thread(target=clicker, args=(traders[i::8],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        bot.settle(timeout=20)
        elapsed = time.monotonic() - started
    finally:
        bot.close()
    updates = fake_slack.of("chat.update")
    assert len({a.user_id for a in answers(bot)}) == 40
    # At most about one update per second per message (plus the first and the final one).
    assert 1 <= len(updates) <= elapsed / 1.0 + 2, (len(updates), elapsed)
    gaps = [b.at - a.at for a, b in zip(updates, updates[1:], strict=False)]
    assert all(g >= 0.9 for g in gaps), gaps
    assert "✅ 40 ready · 🚫 0 restricted · ⏳ 0 pending" in last_roster(fake_slack)


def test_roster_catches_up_after_a_failed_update(bot: Bot, fake_slack: FakeSlack) -> None:
    from tests.support.fakes.slack import Fault

    make_desk(bot.runtime.engine)
    result = post(bot)
    fake_slack.script("chat.update", Fault(status=200, body={"ok": False, "error": "internal_error"}))
    bot.click("UTRD1", Action.CONFIRM_ALL, str(result.run_id))
    bot.executor.drain()
    assert fake_slack.wait_for(lambda: len(fake_slack.of("chat.update")) == 1, timeout=15)
    assert "✅ 1 ready" in last_roster(fake_slack)


# --- /ibstatus -------------------------------------------------------------------------


def status(bot: Bot, user: str, text: str = "") -> str:
    response = bot.command(user, text)
    assert response.status_code == 200
    body = response.json()
    assert body.get("response_type", "ephemeral") == "ephemeral"
    return str(body["text"])


def test_ibstatus_own_status_and_next_checklist(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    assert "isn't posted yet" in status(bot, "UTRD1") and "Thu 26 Nov" not in status(bot, "UTRD1")
    result = post(bot)
    assert "pending" in status(bot, "UTRD1")
    bot.click("UTRD1", Action.CONFIRM_ALL, str(result.run_id))
    bot.settle()
    text = status(bot, "UTRD1")
    # Thanksgiving (Thu 26) is skipped: the next checklist is Fri 27 Nov 08:00 EST.
    assert "*equities*: ✅ ready" in text and "next checklist Fri 27 Nov 08:00 EST" in text
    assert "You're not on any desk yet" in status(bot, "UNOBODY")


def test_ibstatus_desk_roster_for_members_only(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    make_desk(bot.runtime.engine, "rates", channel="C0999", traders=["UTRD9"], managers=["UMGR1"])
    result = post(bot)
    bot.click("UTRD2", Action.CONFIRM_ALL, str(result.run_id))
    bot.settle()
    text = status(bot, "UTRD1", "desk")
    assert "✅ 1 ready · 🚫 0 restricted · ⏳ 2 pending" in text and "✅ Bob — ready" in text
    assert status(bot, "UTRD1", "desk equities") == text
    assert "not on a desk named `rates`" in status(bot, "UTRD1", "desk rates")
    assert "several desks" in status(bot, "UMGR1", "desk")
    assert "isn't posted yet" in status(bot, "UMGR1", "desk rates")


def test_ibstatus_user_for_managers_of_that_desk(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    result = post(bot)
    bot.click("UTRD3", Action.CONFIRM_ALL, str(result.run_id))
    bot.settle()
    text = status(bot, "UMGR1", "<@UTRD3|carol>")
    assert "Carol" in text and "<@UTRD3>" not in text and "✅ ready" in text
    refused = status(bot, "UTRD1", "<@UTRD3>")
    assert "Only managers" in refused and "ready" not in refused


@pytest.mark.parametrize("text", ["help", "bogus", "desk a b", "@carol", "HELP me"])
def test_ibstatus_help_and_anything_else_answers_with_usage(bot: Bot, text: str) -> None:
    make_desk(bot.runtime.engine)
    assert "/ibstatus desk [NAME]" in status(bot, "UTRD1", text)


def test_app_home_shows_the_users_desks(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    post(bot)
    response = bot.event({"type": Event.APP_HOME_OPENED, "user": "UTRD1", "channel": "D1", "tab": "home"})
    assert response.status_code == 200
    bot.settle()
    (published,) = fake_slack.of("views.publish")
    assert published.params["user_id"] == "UTRD1"
    home = json.dumps(published.params["view"], ensure_ascii=False)
    assert "*equities*: ⏳ pending" in home and "/ibstatus" in home


def test_answers_after_the_deadline_still_count_until_the_close(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    result = post(bot)
    bot.clock.advance(hours=2)  # 10:05 EST, past the 09:00 deadline but the market is open
    bot.click("UTRD1", Action.CONFIRM_ALL, str(result.run_id))
    bot.clock.set(utc(2026, 11, 25, 21, 0) + timedelta(minutes=1))  # after the 16:00 EST close
    bot.click("UTRD2", Action.CONFIRM_ALL, str(result.run_id))
    bot.settle()
    assert [a.user_id for a in answers(bot)] == ["UTRD1"]
    assert "has closed" in ephemerals(fake_slack, "UTRD2")[-1]
