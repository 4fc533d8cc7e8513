"""The weekly summary: figures over a week with a holiday and an early close, posting once with
the chart, `/ibstatus week`, the CLI, and a constant number of SQL statements."""

from __future__ import annotations

import argparse
import json
import socket
from datetime import date, timedelta
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.checklist import service as checklist
from bot.checklist.models import ChecklistRun
from bot.cli import main
from bot.clikit import iso_week_arg
from bot.crypto import Keyring
from bot.db import session_scope
from bot.desks.models import Desk
from bot.errors import ServiceError
from bot.summary import chain, service, weeks
from bot.summary import posting as weekly
from bot.summary import report as summary
from bot.summary import views as summary_views
from bot.summary.models import WeeklySummary
from bot.summary.report import DayOutcome
from tests.support.factories import make_desk
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import BOT_TOKEN, SECRET_KEYS, Bot, FakeClock, utc
from tests.support.weekly_history import (
    FRI,
    MON,
    NO_BACKUP,
    THU,
    TUE,
    WED,
    at_local,
    confirm,
    escalations,
    post_day,
    problem,
    thanksgiving_week,
)

WEEK = "2026-W48"
AFTER_WEEK = utc(2026, 11, 28, 12, 0)


def _report(engine: Engine, desk_id: int, now: Any = AFTER_WEEK) -> summary.WeeklyReport:
    with session_scope(engine) as session:
        desk = session.get(Desk, desk_id)
        assert desk is not None
        return summary.build_summary(session=session, desk=desk, iso_week=WEEK, now=now)


@pytest.fixture
def history(engine: Engine) -> int:
    # The desk starts on the Monday of the tested week, so earlier weeks are never due.
    desk = make_desk(engine, created_at=utc(2026, 11, 23, 12, 0))
    assert desk.id is not None
    runs = thanksgiving_week(engine, desk.id)
    escalations(engine, desk.id, runs)
    return desk.id


def test_thanksgiving_week_figures(engine: Engine, history: int) -> None:
    report = _report(engine, history)
    assert report.weekdays == [MON, TUE, WED, THU, FRI]
    assert report.trading_days == [MON, TUE, WED, FRI]
    assert report.holidays == [(THU, "Thanksgiving Day")]
    assert report.early_closes == [FRI]
    assert report.posted_days == [MON, TUE, WED, FRI]

    one, two, three = (report.rows[u] for u in ("UTRD1", "UTRD2", "UTRD3"))
    assert one.values["on_time"] == 4 and one.values["late"] == 0 and one.values["missed"] == 0
    assert one.values["median_confirm"] == timedelta(minutes=10)
    assert one.days[THU] is DayOutcome.HOLIDAY
    # UTRD2: late Monday; Tuesday's identity problem was replaced by a confirmation (final
    # answer counts, first answer before the deadline: on time); Wednesday's confirmation was
    # replaced by no backup second factor; Friday missed.
    assert two.days == {
        MON: DayOutcome.LATE,
        TUE: DayOutcome.ON_TIME,
        WED: DayOutcome.PROBLEM,
        THU: DayOutcome.HOLIDAY,
        FRI: DayOutcome.MISSED,
    }
    assert (two.values["on_time"], two.values["late"], two.values["missed"]) == (1, 1, 1)
    assert two.values["identity"] == 0  # only the final answer counts
    assert two.values["recovery_path"] == 1 and two.values["restricted"] == 1
    assert two.values["median_confirm"] == timedelta(minutes=105)  # 90 (Mon) and 120 (Tue)
    assert three.values["restricted"] == 4
    assert (three.values["device_trust"], three.values["authorization"], three.values["recovery_path"]) == (1, 1, 3)
    assert three.values["median_confirm"] is None

    assert report.completion_rate == pytest.approx(11 / 12)
    assert report.previous_completion_rate == 1.0
    assert report.completion_change == pytest.approx(-100 / 12)
    assert report.on_time_rate == pytest.approx(5 / 12)

    esc = report.escalations
    assert (esc.opened, esc.acknowledged, esc.resolved, esc.still_open) == (2, 2, 1, 2)
    assert esc.median_to_acknowledge == timedelta(minutes=21)
    assert esc.still_open_traders == ["UTRD1", "UTRD2"]

    # Missing recovery path: UTRD3 since Wednesday (Tuesday's answer had no gap), two trading
    # days because Thursday was a holiday; UTRD2 since Wednesday, one day.
    gaps = {g.user_id: (g.since, g.days) for g in report.recovery_gaps}
    assert gaps == {"UTRD3": (WED, 2), "UTRD2": (WED, 1)}
    attention = {a.user_id: a.reasons for a in report.attention}
    assert set(attention) == {"UTRD1", "UTRD2", "UTRD3"}  # UTRD1 only for the open escalation
    assert attention["UTRD1"] == ["open escalation"]
    assert "missed 1" in attention["UTRD2"]


def test_recovery_gap_counts_back_into_earlier_weeks(engine: Engine) -> None:
    desk = make_desk(engine, traders=("UTRD1",))
    assert desk.id is not None
    prev_fri = date(2026, 11, 20)
    for day in (date(2026, 11, 19), prev_fri, MON):
        run = post_day(engine, desk.id, day)
        problem(engine, run, "UTRD1", at_local(day, "08:30"), NO_BACKUP)
    report = _report(engine, desk.id)
    assert [(g.since, g.days) for g in report.recovery_gaps] == [(date(2026, 11, 19), 3)]


def test_extensible_columns(engine: Engine, history: int) -> None:
    report = _report(engine, history)
    extra = summary.Metric("api_age", "API credential age (days)")
    report.add_column(extra, {"UTRD1": 12, "UNEW": 3})
    assert report.columns[-1] is extra and report.rows["UNEW"].values == {"api_age": 3}
    table = json.dumps(summary_views.table_block(report, chars=10000)[0])
    assert "API credential age" in table and "UNEW" in table and "Alice" in table


def test_week_to_date_marks_open_days_pending(engine: Engine) -> None:
    desk = make_desk(engine)
    assert desk.id is not None
    run = post_day(engine, desk.id, WED)
    confirm(engine, run, "UTRD1", at_local(WED, "08:10"))
    report = _report(engine, desk.id, now=at_local(WED, "10:00"))
    assert report.rows["UTRD2"].days[WED] is DayOutcome.PENDING
    assert report.rows["UTRD2"].days[MON] is DayOutcome.NOT_POSTED
    assert report.completion_rate == 1.0  # pending and unposted days count nowhere


def test_due_time_uses_the_last_trading_day_close(engine: Engine) -> None:
    desk = make_desk(engine)
    assert weeks.due_at(desk, WEEK) == utc(2026, 11, 27, 18, 30)  # early close 13:00 ET + 30 min
    # Good Friday 2026 (W14): Thursday's 16:00 EDT close + 30 min.
    assert weeks.due_at(desk, "2026-W14") == utc(2026, 4, 2, 20, 30)
    with pytest.raises(ServiceError, match="ISO week"):
        weeks.parse_iso_week("2026-48")
    with pytest.raises(ServiceError, match="2025 has no ISO week 53"):
        weeks.parse_iso_week("2025-W53")


@pytest.mark.parametrize("value", ["2026-W48", " 2026-w05 ", "2026-W53", "2025-W53", "2026-48", "W48", "2026-W00"])
def test_the_clis_week_argument_is_the_services_week(value: str) -> None:
    """``--week`` is checked by bot.clikit without importing the summary: same verdicts, same words."""
    try:
        expected: str | None = weeks.parse_iso_week(value)
        refusal = ""
    except ServiceError as exc:
        expected, refusal = None, str(exc)
    try:
        got: str | None = iso_week_arg(value)
        refused = ""
    except argparse.ArgumentTypeError as exc:
        got, refused = None, str(exc)
    assert (got, refused) == (expected, refusal)


def _count_statements(engine: Engine, desk_id: int) -> int:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        _report(engine, desk_id)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(statements)


def _desk_with(engine: Engine, name: str, traders: int) -> int:
    users = [f"UT{name.upper()}{i:04d}" for i in range(traders)]
    desk = make_desk(engine, name, traders=users)
    assert desk.id is not None
    for day in (MON, TUE, FRI):
        run_id = post_day(engine, desk.id, day)
        with session_scope(engine) as session:  # a day's answers in one transaction: fast to set up
            run = session.get(ChecklistRun, run_id)
            assert run is not None
            for i, user in enumerate(users):
                if i % 5 == 0:
                    checklist.report_problem(
                        session=session, run=run, user_id=user, report=NO_BACKUP, now=at_local(day, "08:30")
                    )
                elif i % 5 != 1:
                    at = at_local(day, "08:10" if i % 2 else "09:20")
                    checklist.confirm(session=session, run=run, user_id=user, now=at)
    return desk.id


@pytest.mark.slow
def test_statement_count_does_not_grow_with_traders(engine: Engine) -> None:
    small = _count_statements(engine, _desk_with(engine, "small", 10))
    large = _count_statements(engine, _desk_with(engine, "large", 100))
    assert small == large
    assert small <= 10  # runs and answers, escalations, recovery gaps, away days, names, members


# --- posting ------------------------------------------------------------------------------


def test_slack_unreachable_releases_the_summary_claim(engine: Engine, history: int, fake_slack: FakeSlack) -> None:
    """A summary Slack could not be reached for is not left claimed: the next tick posts it."""
    due = weeks.due_at(_desk(engine, history), WEEK)
    assert due is not None
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/api/"
    down = WebClient(token=BOT_TOKEN, base_url=dead, timeout=1, retry_handlers=[])
    (result,) = weekly.post_due_summaries(engine, down, now=due)
    assert result.outcome == weekly.UNREACHABLE and "could not be reached" in result.message
    with Session(engine) as session:
        (row,) = session.exec(select(WeeklySummary)).all()
        assert row.claimed_at is None and row.posted_at is None
    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.base_url)
    assert [r.outcome for r in weekly.post_due_summaries(engine, client, now=due)] == ["claimed"]


def test_post_summary_refuses_a_week_that_isnt_due(engine: Engine, history: int, fake_slack: FakeSlack) -> None:
    """The job keeps the service's rule too: an unfinished week is never claimed (it would take
    the real post's place)."""
    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.base_url)
    due = weeks.due_at(_desk(engine, history), WEEK)
    assert due is not None
    with pytest.raises(service.UnfinishedWeek, match=f"{WEEK} isn't finished: the scheduler posts its summary at"):
        weekly.post_summary(engine, client, desk_name="equities", iso_week=WEEK, now=due - timedelta(minutes=1))
    with Session(engine) as session:
        assert session.exec(select(WeeklySummary)).all() == []
    assert fake_slack.calls == []


def test_post_summary_dms_each_manager_with_the_chart_once(engine: Engine, history: int, fake_slack: FakeSlack) -> None:
    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.base_url)
    due = weeks.due_at(_desk(engine, history), WEEK)
    assert due is not None
    assert weekly.post_due_summaries(engine, client, now=due - timedelta(minutes=1)) == []
    results = weekly.post_due_summaries(engine, client, now=due)
    assert [r.outcome for r in results] == ["claimed"]

    methods = [c.method for c in fake_slack.calls]
    per_manager = ["chat.postMessage", "files.getUploadURLExternal", "files.completeUploadExternal"]
    assert methods == ["conversations.open", "conversations.open", *per_manager, *per_manager]
    get_url = fake_slack.of("files.getUploadURLExternal")
    assert get_url[0].params["alt_txt"].startswith("Heatmap of 3 traders")
    assert get_url[0].params["filename"] == "readiness-equities-2026-W48.png"
    completed = fake_slack.of("files.completeUploadExternal")
    file_id = completed[0].params["files"][0]["id"]
    assert fake_slack.uploads[file_id].startswith(b"\x89PNG\r\n\x1a\n")
    assert int(get_url[0].params["length"]) == len(fake_slack.uploads[file_id])
    assert completed[0].params["channel_id"] == "DMGR1" and completed[1].params["channel_id"] == "DMGR2"

    post = fake_slack.of("chat.postMessage")[0]
    blocks = post.params["blocks"]
    assert post.params["channel"] == "DMGR1"
    assert blocks[0]["type"] == "header" and "Completion 92%" in blocks[1]["text"]["text"]
    assert "▼ 8 pts vs last week" in blocks[1]["text"]["text"]
    assert "Thanksgiving Day" in blocks[2]["elements"][0]["text"] and "early close" in blocks[2]["elements"][0]["text"]
    assert "Bob" in blocks[3]["text"]["text"] and "Carol" in blocks[3]["text"]["text"]  # by name
    assert blocks[-1]["elements"][0]["action_id"] == "summary_download_csv"

    # Once: the WeeklySummary row decides, across ticks and the CLI path alike.
    assert weekly.post_due_summaries(engine, client, now=due + timedelta(minutes=5)) == []
    again = weekly.post_summary(engine, client, desk_name="equities", iso_week=WEEK, now=due)
    assert again.outcome == "already_posted"
    assert len(fake_slack.of("chat.postMessage")) == 2
    with session_scope(engine) as session:
        row = session.exec(select(WeeklySummary)).one()
        assert row.posted_at == due and row.message_ts


def test_post_summary_to_managers_channel(engine: Engine, history: int, fake_slack: FakeSlack) -> None:
    with session_scope(engine) as session:
        desk = session.get(Desk, history)
        assert desk is not None
        desk.managers_channel_id = "CMGRS"
    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.base_url)
    result = weekly.post_summary(engine, client, desk_name="equities", iso_week=WEEK, now=AFTER_WEEK)
    assert result.outcome == "claimed"
    assert [c.method for c in fake_slack.calls] == [
        "chat.postMessage",
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]
    assert fake_slack.of("chat.postMessage")[0].params["channel"] == "CMGRS"


def test_failed_post_releases_the_claim(engine: Engine, history: int, fake_slack: FakeSlack) -> None:
    from tests.support.fakes.slack import Fault

    fake_slack.script("chat.postMessage", Fault(body={"ok": False, "error": "channel_not_found"}))
    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.base_url)
    failed = weekly.post_summary(engine, client, desk_name="equities", iso_week=WEEK, now=AFTER_WEEK)
    assert failed.outcome == "failed" and "channel_not_found" in failed.message
    retried = weekly.post_summary(engine, client, desk_name="equities", iso_week=WEEK, now=AFTER_WEEK)
    assert retried.outcome == "claimed"


def test_a_chart_that_fails_to_draw_leaves_the_summary_posted_without_it(
    engine: Engine, history: int, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any failure drawing the chart: the summary goes out without it, saying so."""
    from bot.summary import chart

    def broken(report: Any) -> bytes:
        raise ValueError("a name the font can't draw")

    monkeypatch.setattr(chart, "render_heatmap", broken)
    with session_scope(engine) as session:
        desk = session.get(Desk, history)
        assert desk is not None
        desk.managers_channel_id = "CMGRS"
    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.base_url)
    result = weekly.post_summary(engine, client, desk_name="equities", iso_week=WEEK, now=AFTER_WEEK)
    assert result.outcome == "claimed"
    assert [c.method for c in fake_slack.calls] == ["chat.postMessage"]
    (posted,) = fake_slack.of("chat.postMessage")
    assert weekly.CHART_FAILED in posted.params["text"] and weekly.CHART_FAILED in str(posted.params["blocks"])
    with session_scope(engine) as session:
        assert session.exec(select(WeeklySummary)).one().posted_at == AFTER_WEEK


def test_any_failure_releases_the_claim(
    engine: Engine, history: int, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only Slack's refusals: whatever fails after the claim, the next try is not told
    "being posted elsewhere"."""
    from bot.summary import views as summary_views

    def broken(report: Any) -> str:
        raise RuntimeError("a view that fails")

    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.base_url)
    with monkeypatch.context() as patched:
        patched.setattr(summary_views, "summary_text", broken)
        with pytest.raises(RuntimeError):
            weekly.post_summary(engine, client, desk_name="equities", iso_week=WEEK, now=AFTER_WEEK)
    with session_scope(engine) as session:
        assert session.exec(select(WeeklySummary)).one().claimed_at is None
    assert weekly.post_summary(engine, client, desk_name="equities", iso_week=WEEK, now=AFTER_WEEK).outcome == "claimed"


def _desk(engine: Engine, desk_id: int) -> Desk:
    with session_scope(engine) as session:
        desk = session.get(Desk, desk_id)
        assert desk is not None
        return desk


# --- Slack: /ibstatus week and the Download CSV button ------------------------------------------


def test_ibstatus_week_for_managers_only(bot: Bot, clock: FakeClock) -> None:
    engine = bot.runtime.engine
    desk = make_desk(engine)
    assert desk.id is not None
    escalations(engine, desk.id, thanksgiving_week(engine, desk.id))
    clock.set(AFTER_WEEK)

    refused = bot.command("UTRD1", "week")
    assert refused.status_code == 200
    assert refused.json()["text"] == service.REFUSAL
    assert "blocks" not in refused.json() or not refused.json()["blocks"]

    answer = bot.command("UMGR1", "week 2026-W48").json()
    assert answer["response_type"] == "ephemeral"
    assert "Weekly readiness for equities, 2026-W48" in answer["text"]
    assert "Completion 92%" in json.dumps(answer["blocks"])

    bad = bot.command("UMGR1", "week 2026-W60").json()
    assert "no ISO week 60" in bad["text"]


def test_download_csv_button(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    desk = make_desk(engine)
    assert desk.id is not None
    escalations(engine, desk.id, thanksgiving_week(engine, desk.id))
    value = summary_views.download_value(desk.id, WEEK)

    bot.click("UTRD1", "summary_download_csv", value, channel="DUTRD1")
    bot.settle()
    assert fake_slack.of("files.getUploadURLExternal") == []
    refusal = fake_slack.told("UTRD1")
    assert refusal and "managers" in refusal[-1]

    bot.click("UMGR2", "summary_download_csv", value, channel="DMGR2")
    bot.settle()
    methods = [c.method for c in fake_slack.calls if c.method not in ("response_url", "auth.test")]
    assert methods == ["conversations.open", "files.getUploadURLExternal", "files.completeUploadExternal"]
    assert fake_slack.of("conversations.open")[0].params["users"] == "UMGR2"
    completed = fake_slack.of("files.completeUploadExternal")[0]
    assert completed.params["channel_id"] == "DMGR2"
    content = fake_slack.uploads[completed.params["files"][0]["id"]].decode()
    verdict = chain.verify(content.splitlines(keepends=True), Keyring(SECRET_KEYS))
    assert verdict.ok and verdict.proven, verdict.message  # signed by this instance, not merely consistent
    # The week only: W47's answers are not in it; W48's 13 answer versions (4 + 5 + 4) and 5
    # escalation steps (E1 opened/acknowledged/resolved, E2 opened/acknowledged) are.
    assert "2026-11-16" not in content
    assert verdict.rows == 13 + 5


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_summary_rejects_a_bad_week(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "post", "equities", "--week", "2026-48"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not an ISO week like 2026-W48" in err[0]


def test_cli_summary_post(
    engine: Engine, history: int, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    monkeypatch.setenv("SLACK_API_URL", fake_slack.base_url)
    assert main(["summary", "post", "equities", "--week", "2026-w48"]) == 0
    assert "Posted equities's summary for 2026-W48" in capsys.readouterr().out
    assert main(["summary", "post", "equities", "--week", "2026-W48"]) == 0
    assert "already posted" in capsys.readouterr().out
    assert len(fake_slack.of("chat.postMessage")) == 2


def test_away_days_are_left_out_of_the_denominators(engine: Engine, history: int) -> None:
    from bot.desks.models import Away

    before = _report(engine, history)
    assert before.rows["UTRD2"].days[FRI] is DayOutcome.MISSED
    with session_scope(engine) as session:  # Bob was away on Friday (set before that day)
        session.add(Away(user_id="UTRD2", start=FRI, end=FRI, set_by="UMGR1", created_at=utc(2026, 11, 20)))
    after = _report(engine, history)
    assert after.rows["UTRD2"].days[FRI] is DayOutcome.AWAY
    assert after.rows["UTRD2"].values["away"] == 1
    assert after.rows["UTRD2"].count(summary.MISSED) == before.rows["UTRD2"].count(summary.MISSED) - 1
    assert after.completion_rate is not None and before.completion_rate is not None
    assert after.completion_rate > before.completion_rate  # one fewer expected answer, none fewer given
    table = json.dumps(summary_views.table_block(after, chars=10000)[0])
    assert '"Away"' in table


@pytest.mark.slow
def test_a_200_trader_summary_is_accepted_by_a_strict_slack(engine: Engine, fake_slack: FakeSlack) -> None:
    fake_slack.strict = True
    desk_id = _desk_with(engine, "big", 200)
    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.base_url)
    result = weekly.post_summary(engine, client, desk_name="big", iso_week=WEEK, now=AFTER_WEEK)
    assert result.outcome == "claimed", result.message
    assert fake_slack.rejected == []
    posts = fake_slack.of("chat.postMessage")
    assert len(posts) == 2  # a DM to each manager, with the table block
    assert all(any(b["type"] == "table" for b in p.params["blocks"]) for p in posts)
    assert desk_id > 0
