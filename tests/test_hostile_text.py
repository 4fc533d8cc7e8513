"""Hostile user text never pings, links or hides in anything the bot sends (issue 9).

A trader's note and missing-permissions text and a manager's resolve note carry every
Slack control sequence; they travel through the real HTTP endpoint, the escalation ladder
up to level 2 (escalation channel + pager) and resolution. Everything Slack and the pager
received must show them as inert text. Both databases.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.checklist.labels import problem_summary
from bot.checklist.models import Answer, ChecklistRun
from bot.checklist.roster_views import checklist_message
from bot.checklist.rosters import Roster, RosterEntry, TraderState
from bot.desks.models import Desk
from bot.escalation import views as escalation_views
from bot.escalation.models import Escalation, EscalationKind, EscalationState
from bot.people.service import Names
from bot.runtime import deliver_due
from bot.slack.blocks import escape
from bot.slack.ids import Action, Callback
from bot.text import clean
from tests.support.escalation_fixtures import (
    configure,
    delivery_client,
    escalations,
    fake_pager,  # noqa: F401 - a fixture
    make_pager,
    note_values,
    post_checklist,
    report_values,
    run_pass,
)
from tests.support.factories import make_desk
from tests.support.fakes.pager import FakePager
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot, utc

HOSTILE = "<!channel> <!here> <!everyone> <!subteam^S123> <@U999> <https://evil.example|click> a&b \u202egnp.exe\u200b"
# What must never reach Slack raw: each would notify, mention or link.
RAW = ["<!channel>", "<!here>", "<!everyone>", "<!subteam^S123>", "<@U999>", "<https://evil.example|click>"]
INVISIBLE = ["\u202e", "\u200b"]


def test_escape_makes_control_sequences_inert() -> None:
    out = escape(HOSTILE)
    assert not any(raw in out for raw in RAW)
    assert "&lt;!channel&gt;" in out and "a&amp;b" in out and "&lt;@U999&gt;" in out
    assert not any(ch in out for ch in INVISIBLE)
    assert escape(None) == "" and escape("plain 100 lots") == "plain 100 lots"
    assert clean("a\u2066b\ufeffc\u200dd") == "abcd"


def _walk_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _walk_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _walk_strings(v)]
    return []


def _assert_inert(payload: Any) -> None:
    for text in _walk_strings(payload):
        for raw in RAW:
            assert raw not in text, f"raw {raw!r} in {text[:200]!r}"
        for ch in INVISIBLE:
            assert ch not in text, f"invisible {ch!r} in {text[:200]!r}"


def test_every_builder_escapes_user_text() -> None:
    """The pure builders, fed hostile text directly (cheap, no HTTP)."""
    at = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    desk = Desk(
        id=1, name="equities", channel_id="C0123", timezone="America/New_York", post_at="08:00", deadline="09:00"
    )
    run = ChecklistRun(
        id=7, desk_id=1, trading_date=at.date(), channel_id="C0123", post_due_at=at, deadline_at=at, market_close_at=at
    )
    answer = Answer(
        run_id=7, user_id="UTRD1", version=1, status="problem", failed_checks="permissions,contingency",
        missing_permissions=HOSTILE, contingency_gaps="secondary_interface", note=HOSTILE, restricted=True,
        created_at=at,
    )  # fmt: skip
    names = Names({"UTRD1": HOSTILE[:40], "UMGR1": HOSTILE[-40:]})  # display names are user text too
    roster = Roster(
        desk=desk, run=run, entries=[RosterEntry("UTRD1", TraderState.RESTRICTED, answer)], version=1, names=names
    )
    _assert_inert(checklist_message(roster))
    _assert_inert(escalation_views.reminder_message(desk, run, "UTRD1"))
    detail = problem_summary(answer) + f" — “{answer.note}”"
    for state in EscalationState:
        esc = Escalation(
            id=3, desk_id=1, run_id=7, trader_id="UTRD1", kind=EscalationKind.RESTRICTED, level=2, state=state,
            detail=detail, opened_at=at, acknowledged_at=at, acknowledged_by="UMGR1", resolved_at=at,
            resolved_by="UMGR1", resolution_note=HOSTILE,
        )  # fmt: skip
        _assert_inert(escalation_views.escalation_message(esc, desk, names))
        _assert_inert(escalation_views.level2_message(esc, desk, ["UMGR1"], 15, names))
        _assert_inert(escalation_views.manager_escalations_text([(esc, desk)], 1, names))
        _assert_inert(escalation_views.own_escalations_text([(esc, desk)], names))
        _assert_inert(escalation_views.digest_message([esc, esc], desk, names, "digest:7:3:UMGR1"))
        _assert_inert(escalation_views.level2_digest_message([esc, esc], desk, ["UMGR1"], 15, names))
        _assert_inert(escalation_views.resolve_modal(esc, desk, names))


@pytest.mark.usefixtures("fake_pager")
def test_hostile_notes_reach_nobody_through_the_whole_ladder(
    bot: Bot,
    fake_slack: FakeSlack,
    fake_pager: FakePager,  # noqa: F811
) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    configure(engine, escalation_channel="CESCAL", pager_kind="webhook", pager_url=f"{fake_pager.url}/hook")
    run = post_checklist(bot)
    bot.click("UTRD1", Action.REPORT_PROBLEM, str(run.run_id))
    bot.settle()
    meta = fake_slack.of("views.open")[-1].params["view"]["private_metadata"]
    values = report_values(["permissions"], platform="tws", missing=HOSTILE[:200], note=HOSTILE)
    assert bot.submit_view("UTRD1", Callback.REPORT_MODAL, values, meta).status_code == 200
    bot.settle()

    def deliver() -> None:
        pager = make_pager()
        try:
            deliver_due(engine, delivery_client(fake_slack.base_url), pager, now=bot.clock(), limit=1000)
        finally:
            pager.close()

    bot.clock.set(utc(2026, 11, 25, 14, 0))  # deadline: restricted escalation
    run_pass(engine, bot.clock())
    deliver()
    bot.clock.set(utc(2026, 11, 25, 14, 15))  # level 2: escalation channel + pager
    run_pass(engine, bot.clock())
    deliver()
    (esc,) = [e for e in escalations(engine) if e.trader_id == "UTRD1"]
    bot.click("UMGR1", Action.ESCALATION_RESOLVE, str(esc.id), channel="DUMGR1")
    bot.settle()
    view_meta = fake_slack.of("views.open")[-1].params["view"]["private_metadata"]
    assert bot.submit_view("UMGR1", Callback.RESOLVE_MODAL, note_values(HOSTILE[:250]), view_meta).status_code == 200
    bot.settle()
    deliver()
    assert bot.command("UMGR1", "escalations").status_code == 200
    bot.settle()

    level2 = [c for c in fake_slack.of("chat.postMessage") if c.params.get("channel") == "CESCAL"]
    assert level2, "the level-2 post reached the escalation channel"
    assert "&lt;!channel&gt;" in json.dumps(level2[0].params)  # shown as text, not dropped
    sent = [c.params for c in fake_slack.calls if c.method.startswith(("chat.", "views."))]
    assert len(sent) >= 6
    for params in sent:
        _assert_inert(params)
    # The pager gets JSON, not mrkdwn: the text is kept, but without invisible characters.
    (trigger,) = [
        r.body for r in fake_pager.requests if (r.body["escalation_id"], r.body["event"]) == (esc.id, "trigger")
    ]
    assert "\u202e" not in json.dumps(trigger, ensure_ascii=False) and "<!channel>" in trigger["details"]["detail"]
