"""Readiness gaps and the checklist: a gap is escalated once, the afternoon before the
checklist it affects, resolves itself when fixed, shows in the roster and the weekly summary;
lower-severity gaps never reach level 2; the Monday re-login guard; a verified backup is not
asked again; a device-trust failure unverifies the primary method. Both databases."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest
from sqlmodel import Session, col, select

from bot.checklist import posting
from bot.db import session_scope
from bot.desks import service as desks
from bot.escalation.models import Escalation, EscalationKind, EscalationState
from bot.profile import jobs as profile_jobs
from bot.profile.models import ReadinessGap, SecondFactorRecord
from bot.profile.weekly import week_figures
from bot.runtime import deliver_due
from bot.slack.ids import Action, Block, Callback, ProfileCallback
from bot.summary import report as summary
from bot.summary import views as summary_views
from tests.support.escalation_fixtures import delivery_client, report_values, run_pass
from tests.support.factories import make_desk
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot, utc
from tests.support.profile_fixtures import (
    automation_values,
    dm_texts,
    factors_values,
    interfaces_values,
    opened_views,
    submit,
)

UTRD1 = SecondFactorRecord.user_id == "UTRD1"


def escalations(bot: Bot) -> list[Escalation]:
    with Session(bot.runtime.engine) as session:
        return list(session.exec(select(Escalation).order_by(col(Escalation.id))).all())


def gaps(bot: Bot) -> list[ReadinessGap]:
    with Session(bot.runtime.engine) as session:
        return list(session.exec(select(ReadinessGap).order_by(col(ReadinessGap.id))).all())


def deliver(bot: Bot, fake: FakeSlack) -> None:
    deliver_due(bot.runtime.engine, delivery_client(fake.base_url), None, now=bot.clock(), limit=1000)


def gap_pass(bot: Bot, at: datetime) -> list[str]:
    bot.clock.set(at)
    return profile_jobs.profile_pass(bot.runtime.engine, now=at)


def test_a_gap_is_escalated_once_before_the_morning_and_resolves_itself(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    # Wed 25 Nov, 08:05 ET: UTRD1 records IB Key only. The next checklist is Fri 27 Nov (Thanksgiving).
    assert submit(bot, "UTRD1", ProfileCallback.FACTORS, factors_values("ib_key", ["ib_key"])) == {}
    (gap,) = gaps(bot)
    assert (gap.user_id, gap.kind, gap.escalated_at) == ("UTRD1", "recovery", None)
    assert "no backup second factor" in gap.detail
    assert escalations(bot) == []  # the trader has the day to fix it

    gap_pass(bot, utc(2026, 11, 25, 20, 59))
    assert escalations(bot) == []
    gap_pass(bot, utc(2026, 11, 25, 21, 0))  # the close of the trading day before Friday's checklist
    (esc,) = escalations(bot)
    assert (esc.kind, esc.run_id, esc.trader_id, esc.state) == (EscalationKind.PROFILE_RECOVERY, None, "UTRD1", "open")
    deliver(bot, fake_slack)
    for manager in ("UMGR1", "UMGR2"):
        (dm,) = dm_texts(fake_slack, manager)
        assert "No recovery path (readiness profile)" in dm and "From the readiness profile" in dm
    (notice,) = dm_texts(fake_slack, "UTRD1")
    assert "Before the next checklist on equities" in notice and "profile_enroll" in notice
    assert "never asks for your IBKR password" in notice

    # Once per gap: not again on the morning, nor the next day.
    for at in (utc(2026, 11, 27, 12, 0), utc(2026, 11, 27, 21, 0), utc(2026, 11, 30, 12, 0)):
        gap_pass(bot, at)
    assert len(escalations(bot)) == 1 and len(gaps(bot)) == 1

    # Fixed: a verified Digital Security Card+ closes the gap and resolves the escalation.
    fixed = factors_values("ib_key", ["ib_key", "dsc_plus"], {"dsc_plus": date(2026, 11, 30)})
    assert submit(bot, "UTRD1", ProfileCallback.FACTORS, fixed) == {}
    (gap,) = gaps(bot)
    assert gap.closed_at == bot.clock() and gap.open_key is None
    (esc,) = escalations(bot)
    assert (esc.state, esc.resolved_by, esc.resolution_note) == (
        EscalationState.RESOLVED,
        None,
        "Fixed in the trader's readiness profile.",
    )
    deliver(bot, fake_slack)
    updates = [json.dumps(c.params["blocks"], ensure_ascii=False) for c in fake_slack.of("chat.update")]
    assert len(updates) == 2 and all("Resolved* automatically" in u for u in updates)

    # A new gap later is a new escalation.
    assert submit(bot, "UTRD1", ProfileCallback.FACTORS, factors_values("ib_key", ["ib_key"])) == {}
    gap_pass(bot, utc(2026, 11, 30, 21, 0))
    assert len(escalations(bot)) == 2 and len(gaps(bot)) == 2


def test_recovery_paths_escalated_in_one_pass_are_one_dm_per_manager(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    for trader in ("UTRD1", "UTRD2", "UTRD3"):
        assert submit(bot, trader, ProfileCallback.FACTORS, factors_values("ib_key", ["ib_key"])) == {}
    gap_pass(bot, utc(2026, 11, 25, 21, 0))
    assert [e.kind for e in escalations(bot)] == [EscalationKind.PROFILE_RECOVERY] * 3
    deliver(bot, fake_slack)
    for manager in ("UMGR1", "UMGR2"):
        (dm,) = dm_texts(fake_slack, manager)  # one grouped message, not a DM per trader
        assert "3 escalations" in dm and "No recovery path" in dm
    # One of them fixed: the grouped message shows it, updated in place.
    fixed = factors_values("ib_key", ["ib_key", "dsc_plus"], {"dsc_plus": date(2026, 11, 25)})
    assert submit(bot, "UTRD2", ProfileCallback.FACTORS, fixed) == {}
    deliver(bot, fake_slack)
    updates = [json.dumps(c.params["blocks"], ensure_ascii=False) for c in fake_slack.of("chat.update")]
    assert len(updates) == 2 and all("✅ 1 resolved" in u for u in updates)


def test_lower_severity_gaps_never_reach_level_2(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    desk = make_desk(engine)
    assert desk.id is not None
    with session_scope(engine) as session:
        desks.configure_desk(session=session, name="equities", keys=None, escalation_channel="CESCAL")
    sms = factors_values("ib_key", ["ib_key", "sms"], {"sms": date(2026, 11, 25)})
    assert submit(bot, "UTRD1", ProfileCallback.FACTORS, sms) == {}
    assert submit(bot, "UTRD2", ProfileCallback.AUTOMATION, automation_values(desk_id=desk.id)) == {}
    assert submit(bot, "UTRD3", ProfileCallback.FACTORS, factors_values("ib_key", ["ib_key"])) == {}
    gap_pass(bot, utc(2026, 11, 25, 21, 0))
    kinds = {e.kind: e for e in escalations(bot)}
    assert set(kinds) == {EscalationKind.PROFILE_SMS_ONLY, EscalationKind.API_HYGIENE, EscalationKind.PROFILE_RECOVERY}
    assert "mean-reversion" in kinds[EscalationKind.API_HYGIENE].detail
    assert kinds[EscalationKind.API_HYGIENE].trader_id == "UTRD2"
    run_pass(engine, utc(2026, 11, 25, 21, 30))  # well past the acknowledgement timeout
    levels = {e.kind: e.level for e in escalations(bot)}
    assert levels == {
        EscalationKind.PROFILE_SMS_ONLY: 1,
        EscalationKind.API_HYGIENE: 1,
        EscalationKind.PROFILE_RECOVERY: 2,  # a missing recovery path is what the desk cares most about
    }


def _roster(fake: FakeSlack) -> str:
    return json.dumps(fake.of("chat.update")[-1].params["blocks"], ensure_ascii=False)


@pytest.mark.parametrize(
    ("day", "at", "guard"),
    [
        (date(2026, 11, 30), utc(2026, 11, 30, 13, 30), True),  # a Monday
        (date(2026, 5, 26), utc(2026, 5, 26, 12, 30), True),  # Tuesday after Memorial Day (Mon 25 May 2026)
        (date(2026, 12, 1), utc(2026, 12, 1, 13, 30), False),  # an ordinary Tuesday
    ],
)
def test_monday_relogin_guard(bot: Bot, fake_slack: FakeSlack, day: date, at: datetime, guard: bool) -> None:
    make_desk(bot.runtime.engine)
    bot.clock.set(at)
    assert submit(bot, "UTRD1", ProfileCallback.INTERFACES, interfaces_values("tws", "client_portal")) == {}
    assert submit(bot, "UTRD2", ProfileCallback.INTERFACES, interfaces_values("client_portal")) == {}
    result = posting.post_checklist(bot.runtime.engine, bot.client, desk_name="equities", day=day, now=at)
    assert result.run_id is not None
    message = json.dumps(fake_slack.of("chat.postMessage")[-1].params["blocks"], ensure_ascii=False)
    if not guard:
        assert "Weekly login" not in message and "weekly login" not in message
        return
    assert "🔁 *Weekly login*" in message and "Sunday at 01:00 ET" in message
    weekly = next(
        b["text"]["text"] for b in fake_slack.of("chat.postMessage")[-1].params["blocks"] if "Weekly" in str(b)
    )
    assert "Alice" in weekly and "Bob" not in weekly and "Carol" not in weekly  # names, never pings
    assert "⏳ Alice — pending · 🔁 weekly login due" in message
    bot.click("UTRD1", Action.CONFIRM_ALL, str(result.run_id))
    bot.settle()
    assert "Alice — ready" in _roster(fake_slack) and "🔁 weekly login done" in _roster(fake_slack)
    assert "Bob — pending · 🔁" not in _roster(fake_slack)  # Client Portal only: no weekly login


def test_a_verified_backup_is_not_asked_again_and_a_device_trust_failure_unverifies_the_primary(
    bot: Bot, fake_slack: FakeSlack
) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    dates = {"ib_key": date(2026, 11, 24), "authenticator_app": date(2026, 11, 24)}
    assert (
        submit(bot, "UTRD1", ProfileCallback.FACTORS, factors_values("ib_key", ["ib_key", "authenticator_app"], dates))
        == {}
    )
    assert submit(bot, "UTRD3", ProfileCallback.FACTORS, factors_values("ib_key", ["ib_key"])) == {}
    result = posting.post_checklist(engine, bot.client, desk_name="equities", day=date(2026, 11, 25), now=bot.clock())
    assert result.run_id is not None
    message = json.dumps(fake_slack.of("chat.postMessage")[-1].params["blocks"], ensure_ascii=False)
    assert "aren't asked about it again" in message
    assert "Carol — pending · 🆘 no backup second factor besides the primary one (profile)" in message

    for who in ("UTRD1", "UTRD2"):
        bot.click(who, Action.REPORT_PROBLEM, str(result.run_id))
        bot.settle()
    mine, theirs = (v for v in opened_views(fake_slack)[-2:])
    assert "Your readiness profile shows a verified backup (Mobile Authenticator app (TOTP), verified" in json.dumps(
        mine, ensure_ascii=False
    )
    assert "verified backup" not in json.dumps(theirs, ensure_ascii=False)
    # Ticking "Contingency" shows its choices: the backup ones only to the trader without a verified backup.
    redrawn = []
    for who, view in (("UTRD1", mine), ("UTRD2", theirs)):
        assert bot.tick(who, view, Block.FAILED, ["contingency"]).status_code == 200
        bot.settle()
        redrawn.append(json.dumps(fake_slack.of("views.update")[-1].params["view"], ensure_ascii=False))
    mine_text, theirs_text = redrawn
    assert "no_backup_factor" not in mine_text and "sms_only" not in mine_text
    assert "secondary_interface" in mine_text and "Your readiness profile shows a verified backup" in mine_text
    assert "no_backup_factor" in theirs_text and "verified backup" not in theirs_text

    # A device-trust failure (phone lost, prompt fails, IB Key moved) unverifies IB Key.
    values = report_values(["authentication"], platform="tws")
    values["auth_layer"] = {"value": {"type": "radio_buttons", "selected_option": {"value": "device_trust"}}}
    assert bot.submit_view("UTRD1", Callback.REPORT_MODAL, values, mine["private_metadata"]).status_code == 200
    bot.settle()
    with Session(engine) as session:
        ib_key = session.exec(
            select(SecondFactorRecord).where(
                SecondFactorRecord.user_id == "UTRD1", SecondFactorRecord.method == "ib_key"
            )
        ).one()
    assert ib_key.last_verified_at is None
    assert ib_key.unverified_reason == "reported a device-trust failure on Wed 25 Nov"
    # Confirming authentication later verifies it again (from the morning checklist).
    bot.clock.advance(minutes=20)
    bot.click("UTRD1", Action.CONFIRM_ALL, str(result.run_id))
    bot.settle()
    with Session(engine) as session:
        ib_key = session.exec(
            select(SecondFactorRecord).where(
                SecondFactorRecord.user_id == "UTRD1", SecondFactorRecord.method == "ib_key"
            )
        ).one()
    assert (ib_key.last_verified_at, ib_key.verified_by, ib_key.unverified_reason) == (bot.clock(), "checklist", None)


def test_the_weekly_summary_shows_profile_gaps(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    desk = make_desk(engine)
    assert desk.id is not None
    bot.clock.set(utc(2026, 11, 23, 14, 0))  # Mon 23 Nov
    assert submit(bot, "UTRD1", ProfileCallback.FACTORS, factors_values("ib_key", ["ib_key"])) == {}
    sms = factors_values("ib_key", ["ib_key", "sms"], {"sms": date(2026, 11, 23)})
    assert submit(bot, "UTRD2", ProfileCallback.FACTORS, sms) == {}
    assert submit(bot, "UTRD3", ProfileCallback.AUTOMATION, automation_values(desk_id=desk.id)) == {}
    with Session(engine) as session:
        found = desks.get_desk(session=session, name="equities")
        report = summary.build_summary(session=session, desk=found, iso_week="2026-W48", now=utc(2026, 11, 28, 0, 0))
        previous = summary.build_summary(session=session, desk=found, iso_week="2026-W47", now=utc(2026, 11, 28))
    assert report.rows["UTRD1"].values["profile_gap"] == "no recovery path"
    assert report.rows["UTRD2"].values["profile_gap"] == "SMS only"
    assert report.rows["UTRD3"].values["profile_gap"] is None
    assert report.rows["UTRD3"].values["automation_flags"] == 1
    reasons = {a.user_id: a.reasons for a in report.attention}
    assert "profile: no recovery path" in reasons["UTRD1"] and "1 flagged automation" in reasons["UTRD3"]
    assert all(row.values["profile_gap"] is None for row in previous.rows.values())  # not before it opened
    table = json.dumps(summary_views.table_block(report, chars=11000)[0])
    assert "Profile" in table and "no recovery path" in table
    with Session(engine) as session:
        assert (
            week_figures(session=session, desk_id=desk.id, start=utc(2026, 11, 30), end=utc(2026, 12, 7))[
                "UTRD1"
            ].recovery
            == "no recovery path"
        )  # still open the next week


def test_the_roster_follows_the_profile_within_the_refresh(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    assert submit(bot, "UTRD3", ProfileCallback.FACTORS, factors_values("ib_key", ["ib_key"])) == {}
    result = posting.post_checklist(engine, bot.client, desk_name="equities", day=date(2026, 11, 25), now=bot.clock())
    assert result.run_id is not None
    posted = json.dumps(fake_slack.of("chat.postMessage")[-1].params["blocks"], ensure_ascii=False)
    assert "Carol — pending · 🆘" in posted
    fixed = factors_values("ib_key", ["ib_key", "dsc_plus"], {"dsc_plus": date(2026, 11, 25)})
    assert submit(bot, "UTRD3", ProfileCallback.FACTORS, fixed) == {}  # settles the refresher too
    roster = _roster(fake_slack)
    assert "⏳ Carol — pending\\n" in roster or roster.endswith('⏳ Carol — pending"}}]')
    assert "🆘" not in roster
