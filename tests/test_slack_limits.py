"""Every message, modal and App Home view the bot builds is accepted by Slack at desks of 1, 60,
200 and 1,000 traders.

Each builder's output is parsed with slack_sdk's Block Kit models (``Block.parse`` /
``View(**…)``, whose validators encode many of Slack's documented limits: section text 3,000,
header 150, button text 75, elements per block, options per select, title 24…), then checked
against the limits those models don't enforce (each cites Slack's docs). Names are as long and
hostile as a display name can be, and problem reports as long as the modal allows.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.checklist import problem_views, roster_views, status_views
from bot.checklist.models import Answer, AnswerStatus, ChecklistRun
from bot.checklist.rosters import Roster, RosterEntry, TraderState
from bot.checklist.status import DeskStatus, TraderStatus
from bot.desks import views as desk_views
from bot.desks.models import Away, Desk
from bot.escalation import views as escalation_views
from bot.escalation.models import Escalation, EscalationKind, EscalationState
from bot.people.service import Names
from bot.probe.home import ProbeCard, ProbeCount
from bot.probe.models import ProbeKind, ProbeState
from bot.probe.service import EndpointStatus
from bot.slack import home_views
from bot.slack.blocks import text_size
from bot.summary import views as summary_views
from tests.support.report_fixtures import DESK, HOSTILE, names_for, traders, weekly_report

# A 1,000-trader desk is a scale run: CI runs it, ./scripts/test --fast leaves it out (README).
SIZES = (1, 60, 200, pytest.param(1000, marks=pytest.mark.slow))

# https://api.slack.com/reference/block-kit/blocks : "You can include up to 50 blocks in each
# message, and 100 blocks in modals or Home tabs." (slack_sdk checks views; not messages)
MESSAGE_BLOCKS = 50
# https://api.slack.com/methods/chat.postMessage#errors (msg_blocks_too_long): the total is not
# documented; users report refusals above about 12,000-13,000 characters of block text.
MESSAGE_CHARS = 12000
# https://api.slack.com/methods/chat.postMessage#truncating : text is truncated beyond 40,000
# characters (the same holds for a slash command's response text).
MESSAGE_TEXT = 40000
# https://docs.slack.dev/reference/block-kit/blocks/table-block : at most 100 rows of 20 cells.
TABLE_ROWS, TABLE_CELLS = 100, 20
# https://api.slack.com/reference/surfaces/views : private_metadata at most 3,000 characters.
PRIVATE_METADATA = 3000
# https://api.slack.com/reference/block-kit/blocks : "block_id should be unique for each message".
# https://api.slack.com/reference/block-kit/block-elements : an action_id is unique in its block.

NOW = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
RUN = ChecklistRun(
    id=11,
    desk_id=7,
    trading_date=date(2026, 11, 25),
    channel_id="C0123",
    post_due_at=NOW - timedelta(hours=1, minutes=30),
    deadline_at=NOW - timedelta(minutes=30),
    market_close_at=NOW + timedelta(hours=6),
    message_ts="1700000000.000100",
)
LONG_PERMISSIONS = ", ".join(f"ES{i} futures on CME Globex" for i in range(40))[:500]


def answer(user: str, *, problem: bool) -> Answer:
    if not problem:
        return Answer(run_id=11, user_id=user, version=1, status=AnswerStatus.CONFIRMED, created_at=NOW)
    return Answer(
        run_id=11,
        user_id=user,
        version=1,
        status=AnswerStatus.PROBLEM,
        failed_checks="permissions,contingency",
        platform="tws",
        missing_permissions=LONG_PERMISSIONS,
        contingency_gaps="second_mfa_device,secondary_interface",
        note="x" * 500,
        restricted=True,
        created_at=NOW,
    )


def roster(n: int, *, outage: bool = False) -> Roster:
    """A desk of ``n``: a mix of every state, or (``outage``) everyone restricted at length."""
    entries = []
    for i, user in enumerate(traders(n)):
        if outage or i % 4 == 1:
            entries.append(RosterEntry(user, TraderState.RESTRICTED, answer(user, problem=True)))
        elif i % 4 == 0:
            entries.append(RosterEntry(user, TraderState.READY, answer(user, problem=False)))
        elif i % 8 == 3:
            entries.append(RosterEntry(user, TraderState.AWAY, None))
        else:
            entries.append(RosterEntry(user, TraderState.PENDING, None))
    return Roster(desk=DESK, run=RUN, entries=entries, version=n, names=names_for(traders(n)))


def escalations(n: int) -> list[Escalation]:
    kinds = list(EscalationKind)
    states = [EscalationState.OPEN, EscalationState.ACKNOWLEDGED, EscalationState.RESOLVED]
    out = []
    for i, user in enumerate(traders(n)):
        state = states[i % 3]
        out.append(
            Escalation(
                id=100 + i,
                desk_id=7,
                run_id=11,
                trader_id=user,
                kind=kinds[i % 3],
                level=1 + i % 2,
                state=state,
                detail=("Permissions on TWS: " + LONG_PERMISSIONS) if i % 3 else "",
                opened_at=NOW,
                acknowledged_at=NOW if state != EscalationState.OPEN else None,
                acknowledged_by="UMGR0001" if state != EscalationState.OPEN else None,
                resolved_at=NOW if state == EscalationState.RESOLVED else None,
                resolved_by="UMGR0002" if state == EscalationState.RESOLVED else None,
                resolution_note="n" * 300 if state == EscalationState.RESOLVED else None,
            )
        )
    return out


# --- the checks --------------------------------------------------------------------------------


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def _mrkdwn(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["text"]] if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str) else []
        return own + [s for v in node.values() for s in _mrkdwn(v)]
    if isinstance(node, list):
        return [s for v in node for s in _mrkdwn(v)]
    return []


def check_blocks(blocks: list[dict[str, Any]]) -> None:
    ids = [b["block_id"] for b in blocks if b.get("block_id")]
    assert len(ids) == len(set(ids)), f"duplicate block_id: {Counter(ids).most_common(1)}"
    for block in blocks:
        if block["type"] == "table":  # slack_sdk checks only that rows exist
            assert 0 < len(block["rows"]) <= TABLE_ROWS
            assert all(0 < len(row) <= TABLE_CELLS for row in block["rows"])
            assert len({len(row) for row in block["rows"]}) == 1, "every table row has the same cells"
        parsed = Block.parse(block)
        assert parsed is not None, block["type"]
        parsed.to_dict()  # runs every validator, nested elements included
        actions = [e.get("action_id") for e in block.get("elements", []) if isinstance(e, dict)]
        actions = [a for a in actions if a]
        assert len(actions) == len(set(actions)), f"duplicate action_id in a block: {actions}"
    for text in _mrkdwn(blocks):
        assert "<!channel>" not in text and "<@U999>" not in text, "a name reached mrkdwn unescaped"


def check_message(text: str, blocks: list[dict[str, Any]] | None) -> None:
    assert 0 < len(text) <= MESSAGE_TEXT
    assert "<!channel>" not in text
    if blocks is None:
        return
    assert 0 < len(blocks) <= MESSAGE_BLOCKS, f"{len(blocks)} blocks"
    assert text_size(blocks) <= MESSAGE_CHARS, f"{text_size(blocks)} characters of block text"
    check_blocks(blocks)


def check_view(view: dict[str, Any]) -> None:
    View(**view).to_dict()  # type, title, 1-100 blocks, submit/close, private_metadata, callback_id
    assert len(view.get("private_metadata") or "") <= PRIVATE_METADATA
    check_blocks(view["blocks"])


def check_text(text: str) -> None:
    """An ephemeral answer (a slash command's response): whole, readable, not truncated."""
    assert 0 < len(text) <= MESSAGE_CHARS, f"{len(text)} characters"
    assert "<!channel>" not in text and "<@U999>" not in text


# --- every builder, every size ---------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("outage", [False, True])
def test_checklist_message(n: int, outage: bool) -> None:
    text, blocks = roster_views.checklist_message(roster(n, outage=outage))
    check_message(text, blocks)
    compact_text, compact = roster_views.checklist_message(roster(n, outage=outage), compact=True)
    check_message(compact_text, compact)
    assert text_size(compact) < 4000
    body = json.dumps(blocks, ensure_ascii=False)
    assert "Roster" in body and "restricted" in body
    if n >= 200:  # the long tail is summarised, counted, and the whole roster is one command away
        assert "…and " in body and f"/ibstatus desk {DESK.name}" in body


@pytest.mark.parametrize("n", SIZES)
def test_status_answers(n: int) -> None:
    item = DeskStatus(desk=DESK, roster=roster(n), next_post=NOW + timedelta(days=1))
    check_text(status_views.desk_status_text(item))
    check_text(status_views.managed_status_text([item] * 3))
    mine = TraderStatus(desk=DESK, entry=roster(n).entries[-1], next_post=NOW, run=RUN, names=names_for(traders(n)))
    check_text(status_views.own_status_text([mine]))
    check_text(status_views.trader_status_text([mine], traders(n)[-1]))
    check_text(status_views.not_on_a_desk_text(traders(n)[:10], [], names_for(traders(n))))
    check_text(status_views.USAGE)


@pytest.mark.parametrize("n", SIZES)
def test_escalation_messages(n: int) -> None:
    items = escalations(n)
    names = names_for(traders(n))
    for esc in items[:3]:
        check_message(*escalation_views.escalation_message(esc, DESK, names))
        check_message(*escalation_views.level2_message(esc, DESK, traders(n)[:30], 15, names))
        check_view(escalation_views.resolve_modal(esc, DESK, names))
    check_message(*escalation_views.digest_message(items, DESK, names, f"digest:11:100:U{'9' * 10}"))
    check_message(*escalation_views.level2_digest_message(items, DESK, traders(n)[:30], 15, names))
    check_message(*escalation_views.reminder_message(DESK, RUN, traders(n)[0]))
    check_text(escalation_views.manager_escalations_text([(e, DESK) for e in items], 2, names))
    check_text(escalation_views.own_escalations_text([(e, DESK) for e in items[:5]], names))


@pytest.mark.parametrize("n", SIZES)
def test_weekly_summary(n: int) -> None:
    report = weekly_report(n)
    blocks = summary_views.summary_blocks(report)
    check_message(summary_views.summary_text(report), blocks)
    table = next(b for b in blocks if b["type"] == "table")
    assert [c["text"] for c in table["rows"][0]][:3] == ["Trader", "On time", "Late"]  # plain headers
    assert (
        table["rows"][1][0]["text"] == report.names(report.attention[0].user_id if report.attention else "")[:40]
        or n == 1
    )
    if n > TABLE_ROWS:
        assert "more traders" in json.dumps(blocks, ensure_ascii=False)


@pytest.mark.parametrize("n", SIZES)
def test_report_modal_and_settings_modal(n: int) -> None:
    check_view(problem_views.problem_modal(RUN, DESK, channel_id="C0123"))
    form = desk_views.SettingsForm(
        desk=DESK, managers=traders(min(n, 30)), traders=traders(n), names=names_for(traders(n))
    )
    view = desk_views.settings_modal(form)
    check_view(view)
    blocks = {b.get("block_id") for b in view["blocks"]}
    if n > desk_views.MEMBER_SELECT_LIMIT:
        assert {"add_traders", "remove_traders"} <= blocks and "traders" not in blocks
    else:
        assert "traders" in blocks
    new = desk_views.settings_modal(desk_views.SettingsForm(desk=None, managers=[], traders=[], names=Names()))
    check_view(new)
    check_view(desk_views.away_modal(for_manager=True, today=date(2026, 11, 25)))
    check_view(desk_views.away_modal(for_manager=False, today=date(2026, 11, 25)))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("desks", [1, 12])
def test_app_home_for_each_role(n: int, desks: int) -> None:
    names = names_for(traders(n))
    several = [Desk(**{**DESK.model_dump(), "id": 7 + i, "name": f"desk-{i}"}) for i in range(desks)]
    trading = [TraderStatus(desk=d, entry=None, next_post=NOW, run=RUN, names=names) for d in several]
    aways = [
        Away(
            id=i,
            user_id="U0000000",
            start=date(2026, 12, i + 1),
            end=date(2026, 12, i + 3),
            note=HOSTILE,
            set_by="U0000000",
        )
        for i in range(8)
    ]
    managed = [
        home_views.ManagedDesk(
            status=DeskStatus(desk=d, roster=roster(n), next_post=NOW),
            escalations=escalations(n),
            week=weekly_report(min(n, 60)),
            traders=n,
        )
        for d in several
    ]
    # A trader with n endpoints on each desk (a failing one first), and each desk's probe counts.
    probes = [
        ProbeCard(d, [_endpoint(i, failing=i == 0) for i in range(n)], "🔌 probe: " + HOSTILE * 20) for d in several
    ]
    counts = {d.id or 0: ProbeCount(d, n, n - 1, 1, 0, 1, NOW) for d in several}
    views = [
        home_views.HomeData(user="U0000000", trading=trading, away=aways, names=names, probes=probes),
        home_views.HomeData(user="UMGR", managed=managed, names=names, probe_counts=counts),
        home_views.HomeData(
            user="UMGR", trading=trading, managed=managed, admin=True, names=names, probes=probes, probe_counts=counts
        ),
        home_views.HomeData(user="UNEW", contacts=traders(min(n, 12)), names=names),
    ]
    for data in views:
        view = home_views.home_view(data)
        check_view(view)
    manager = json.dumps(home_views.home_view(views[1]), ensure_ascii=False)
    assert "Desk settings" in manager and "You're not a trader" not in manager
    outsider = json.dumps(home_views.home_view(views[3]), ensure_ascii=False)
    assert "IB Preflight* runs" in outsider and "add you" in outsider
    own = json.dumps(home_views.home_view(views[0]), ensure_ascii=False)
    assert "Your broker probes" in own and "gw-0" in own
    assert ("more endpoints" in own) == (n * desks > 20)  # what doesn't fit is counted, not dropped silently
    assert "Broker probes: " in manager


def _endpoint(i: int, *, failing: bool) -> EndpointStatus:
    return EndpointStatus(
        endpoint_id=i, trader_id="U0000000", automation_id=None, label=f"gw-{i}", kind=ProbeKind.GATEWAY,
        target=f"https://10.0.{i // 250}.{i % 250}:5000",
        state=ProbeState.COMPETING if failing else ProbeState.AUTHENTICATED,
        healthy=not failing, detail=HOSTILE * 5 if failing else "", checked_at=NOW, server_version=None,
        session_expires_at=None,
    )  # fmt: skip


def test_the_checks_are_not_vacuous() -> None:
    """Each check above refuses what Slack refuses."""
    ok = [{"type": "section", "text": {"type": "mrkdwn", "text": "fine"}}]
    check_message("fine", ok)
    too_long_section = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    too_many = ok * 51
    too_much_text = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 2900}}] * 5
    long_header = [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]
    long_button = [
        {
            "type": "actions",
            "elements": [{"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "x" * 76}}],
        }
    ]
    big_table = [{"type": "table", "rows": [[{"type": "raw_text", "text": "x"}]] * 101}]
    twice = [{**ok[0], "block_id": "same"}, {**ok[0], "block_id": "same"}]
    loud = [{"type": "section", "text": {"type": "mrkdwn", "text": "hi <!channel>"}}]
    for blocks in (too_long_section, too_many, too_much_text, long_header, long_button, big_table, twice, loud):
        with pytest.raises(Exception):  # noqa: B017 (slack_sdk's SlackObjectFormationError or AssertionError)
            check_message("fine", blocks)
    with pytest.raises(Exception):  # noqa: B017
        check_view({"type": "modal", "title": {"type": "plain_text", "text": "x" * 25}, "blocks": ok})
    with pytest.raises(Exception):  # noqa: B017
        check_view({"type": "home", "blocks": ok, "private_metadata": "x" * 3001})
    with pytest.raises(AssertionError):
        check_text("x" * (MESSAGE_CHARS + 1))


@pytest.mark.parametrize("n", SIZES)
def test_checklist_message_is_the_same_with_the_refreshers_memo(n: int) -> None:
    """The roster refresher keeps rendered pieces between renders (``RosterMemo``): the message
    must be exactly what a render from scratch gives, before and after answers change."""
    from dataclasses import replace

    current = roster(n)
    for i, entry in enumerate(current.entries):
        if entry.answer is not None:
            entry.answer.id = i + 1
    memo = roster_views.RosterMemo()
    for compact in (False, True):
        expected = roster_views.checklist_message(current, compact=compact)
        assert roster_views.checklist_message(current, compact=compact, memo=memo) == expected
        assert roster_views.checklist_message(current, compact=compact, memo=memo) == expected
    # New answers: the pending become ready, the restricted confirm, one ready reports a problem.
    changed = list(current.entries)
    for i, entry in enumerate(changed):
        if i % 3 == 0 and entry.state is not TraderState.AWAY:
            new = answer(entry.user_id, problem=entry.state is TraderState.READY)
            new.id, new.version = 10_000 + i, 2
            state = TraderState.RESTRICTED if new.restricted else TraderState.READY
            changed[i] = RosterEntry(entry.user_id, state, new)
    after = replace(current, entries=changed)
    for compact in (False, True):
        expected = roster_views.checklist_message(after, compact=compact)
        assert expected != roster_views.checklist_message(current, compact=compact)
        assert roster_views.checklist_message(after, compact=compact, memo=memo) == expected
