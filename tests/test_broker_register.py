"""What the register knows about the broker (issue 19 part 3), through Slack and the CLI, on both
databases: a trader's IBKR usernames (a person and an automation on one username detected as
competing sessions), who holds an automation's second factor, paper vs live, the broker-side
fences the elevated tier asks for (gaps that open and close, counted in the weekly summary), and
the desk's security contact named in the guidance."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.desks.models import Desk
from bot.profile.models import Automation, BrokerUsername, ReadinessGap, TraderProfile
from bot.slack.ids import FIELD, Callback, ProfileAction, ProfileBlock, ProfileCallback
from bot.summary import report as summary
from tests.support.cli import run
from tests.support.desk_fixtures import settings_values
from tests.support.factories import make_desk
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot, utc
from tests.support.profile_fixtures import (
    automation_values,
    checks,
    dm_texts,
    errors_of,
    home_text,
    open_home,
    opened_views,
    radio,
    submit,
    text,
    user,
)

MEMBERS = ["--managers", "UMGR1,UMGR2", "--traders", "UTRD1,UTRD2,UTRD3"]


def broker_values(usernames: str | None, fences: list[str] | None = None) -> dict[str, Any]:
    return {ProfileBlock.USERNAMES: text(usernames), ProfileBlock.BROKER_FENCES: checks(fences or [])}


def open_gaps(engine: Engine) -> list[tuple[str, str, str, str]]:
    with Session(engine) as session:
        rows = session.exec(
            select(ReadinessGap).where(col(ReadinessGap.open_key).is_not(None)).order_by(col(ReadinessGap.id))
        ).all()
        return [(g.user_id, g.kind, g.subject, g.detail) for g in rows]


def fence_gaps(engine: Engine) -> list[tuple[str, str, str]]:
    return [(u, s, d) for u, k, s, d in open_gaps(engine) if k == "fences"]


def elevate(bot: Bot, trader: str) -> None:
    tier: dict[str, Any] = {ProfileBlock.TRADER: user(trader), ProfileBlock.TIER: radio("elevated")}
    assert submit(bot, "UMGR1", ProfileCallback.TIER, tier) == {}


def test_a_traders_username_shared_with_an_automation_is_detected(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    desk = make_desk(engine)
    assert desk.id is not None
    # Alice's automation on its own username: fenced, no person declared on it.
    fenced = automation_values(
        desk_id=desk.id,
        fences=["read_only_api", "trusted_ips", "order_size_limit"],
        kill_switch=date(2026, 11, 20),
        rotated=date(2026, 10, 1),
    )
    assert submit(bot, "UTRD1", ProfileCallback.AUTOMATION, fenced) == {}
    assert [g for g in open_gaps(engine) if g[1] == "automation"] == []

    # Bob opens his broker setup from App Home and records his usernames — one is the automation's.
    open_home(bot, "UTRD2")
    assert ProfileAction.EDIT_BROKER.value in home_text(fake_slack, "UTRD2")
    bot.click("UTRD2", ProfileAction.EDIT_BROKER, "")
    bot.settle()
    assert opened_views(fake_slack)[-1]["callback_id"] == ProfileCallback.BROKER
    assert submit(bot, "UTRD2", ProfileCallback.BROKER, broker_values("bob_t1, ALGO_MR1")) == {}
    with Session(engine) as session:
        names = session.exec(select(BrokerUsername.username).order_by(col(BrokerUsername.id))).all()
    assert list(names) == ["bob_t1", "ALGO_MR1"]
    bobs = home_text(fake_slack, "UTRD2")
    assert "IBKR usernames: `bob_t1`, `ALGO_MR1`" in bobs
    assert "`algo_mr1` is also the username of the automation *mean-reversion* (equities)" in bobs
    # Two brokerage sessions on one username: the automation is flagged and its owner has a gap.
    ((owner, _, subject, detail),) = [g for g in open_gaps(engine) if g[1] == "automation"]
    assert owner == "UTRD1" and subject.startswith("automation:")
    assert "a person also logs in with its username" in detail
    open_home(bot, "UTRD1")
    assert "a person also logs in with its username" in home_text(fake_slack, "UTRD1")

    # Bob drops it: the flag goes and the gap closes.
    assert submit(bot, "UTRD2", ProfileCallback.BROKER, broker_values("bob_t1")) == {}
    assert [g for g in open_gaps(engine) if g[1] == "automation"] == []


@pytest.mark.parametrize(
    ("usernames", "says"),
    [
        ("123456", "looks like a password or a one-time code"),
        ("bob password: hunter2", "looks like a password"),
        ("U1234567", "is an account number"),
        ("bob smith!", "Enter IBKR usernames only"),
        ("a,b,c,d,e,f", "At most 5 usernames"),
    ],
)
def test_the_broker_modal_refuses_bad_usernames_and_stores_nothing(
    bot: Bot, fake_slack: FakeSlack, usernames: str, says: str
) -> None:
    make_desk(bot.runtime.engine)
    errors = errors_of(submit(bot, "UTRD1", ProfileCallback.BROKER, broker_values(usernames, ["order_precautions"])))
    assert list(errors) == [ProfileBlock.USERNAMES] and says in errors[ProfileBlock.USERNAMES]
    assert "hunter2" not in json.dumps(errors)
    with Session(bot.runtime.engine) as session:
        assert session.exec(select(BrokerUsername)).all() == []
        assert session.exec(select(TraderProfile)).all() == []


def test_an_automation_whose_bot_holds_the_second_factor_is_flagged_and_paper_needs_no_live_fences(
    bot: Bot, fake_slack: FakeSlack
) -> None:
    engine = bot.runtime.engine
    desk = make_desk(engine)
    assert desk.id is not None
    values = automation_values(desk_id=desk.id, rotated=date(2026, 11, 1))
    values[ProfileBlock.SECOND_FACTOR_HOLDER] = radio("bot")
    values[ProfileBlock.ACCOUNT_KIND] = radio("paper")
    assert submit(bot, "UTRD1", ProfileCallback.AUTOMATION, values) == {}
    ((_, _, _, detail),) = [g for g in open_gaps(engine) if g[1] == "automation"]
    # Paper: no order-size limit or kill-switch test asked; the bot holding the 2FA secret is flagged.
    assert "holds the username's IBKR second-factor secret" in detail
    assert "order-size limit" not in detail and "kill switch" not in detail
    home = home_text(fake_slack, "UTRD1")
    assert "paper" in home and "2FA held by the bot" in home

    # Live, and a person's device holds the second factor: the live fences are asked again.
    with Session(engine) as session:
        auto_id = session.exec(select(Automation.id)).one()
    values[ProfileBlock.SECOND_FACTOR_HOLDER] = radio("person")
    values[ProfileBlock.ACCOUNT_KIND] = radio("live")
    meta = json.dumps({"automation_id": auto_id})
    assert submit(bot, "UTRD1", ProfileCallback.AUTOMATION, values, meta) == {}
    ((_, _, _, detail),) = [g for g in open_gaps(engine) if g[1] == "automation"]
    assert "order-size limit" in detail and "kill switch not tested" in detail
    assert "second-factor secret" not in detail
    # Read-Only API on: it can't place orders, so neither the order-size limit nor the kill switch is asked.
    values[ProfileBlock.FENCES] = checks(["read_only_api"])
    assert submit(bot, "UTRD1", ProfileCallback.AUTOMATION, values, meta) == {}
    assert [g for g in open_gaps(engine) if g[1] == "automation"] == []
    values[ProfileBlock.FENCES] = checks([])

    # A password in the kill switch text is a field error; nothing changes.
    values[ProfileBlock.KILL_SWITCH_HOW] = text("ssh gw-1, sudo password: hunter2")
    errors = errors_of(submit(bot, "UTRD1", ProfileCallback.AUTOMATION, values, meta))
    assert list(errors) == [ProfileBlock.KILL_SWITCH_HOW]
    with Session(engine) as session:
        assert session.exec(select(Automation.kill_switch_how)).one() is None


def test_fence_gaps_on_the_elevated_tier_open_resolve_and_count_in_the_weekly_summary(
    bot: Bot, fake_slack: FakeSlack
) -> None:
    engine = bot.runtime.engine
    desk = make_desk(engine)
    assert desk.id is not None
    bot.clock.set(utc(2026, 11, 23, 14, 0))  # Mon 23 Nov
    # A standard trader without fences has no fence gap (the tier asks for none).
    assert submit(bot, "UTRD2", ProfileCallback.BROKER, broker_values("bob_t1")) == {}
    assert fence_gaps(engine) == []
    # Elevated: order precautions missing; an automation with no kill switch recorded.
    elevate(bot, "UTRD1")
    assert fence_gaps(engine) == [("UTRD1", "profile:UTRD1", "no order precautions (size / value limits) recorded "
                                   "on the platforms traded, manual and mobile included")]  # fmt: skip
    assert submit(bot, "UTRD1", ProfileCallback.AUTOMATION, automation_values(desk_id=desk.id)) == {}
    with Session(engine) as session:
        auto_id = session.exec(select(Automation.id)).one()
    assert ("UTRD1", f"automation:{auto_id}", "mean-reversion: no kill switch recorded (who can stop it, and how)") in (
        fence_gaps(engine)
    )
    # The desk uses IP restrictions: the elevated trader's and automation's are asked too.
    with Session(engine) as session:
        row = session.get(Desk, desk.id)
        assert row is not None
        row.ip_restrictions = True
        session.add(row)
        session.commit()
    assert submit(bot, "UTRD1", ProfileCallback.BROKER, broker_values("alice_t", ["order_precautions"])) == {}
    ((_, _, detail),) = [g for g in fence_gaps(engine) if g[1] == "profile:UTRD1"]
    assert detail == "the account's IP restriction isn't recorded as covering this username"
    home = home_text(fake_slack, "UTRD1")
    assert "🚧" in home and "IP restriction" in home
    open_home(bot, "UMGR1")
    assert "🚧 2 broker-side fence gap(s)" in home_text(fake_slack, "UMGR1")
    ((_, _, detail),) = [g for g in fence_gaps(engine) if g[1] == f"automation:{auto_id}"]
    assert "no kill switch recorded" in detail and "IP restriction" in detail

    bot.clock.set(utc(2026, 11, 25, 14, 0))
    with Session(engine) as session:
        found = session.get(Desk, desk.id)
        assert found is not None
        week = summary.build_summary(session=session, desk=found, iso_week="2026-W48", now=utc(2026, 11, 28))
    # One gap per subject (its detail follows what is missing): the trader's and the automation's.
    assert week.rows["UTRD1"].values["fence_gaps"] == 2
    assert week.rows["UTRD2"].values["fence_gaps"] == 0
    assert "2 broker-side fence gaps" in {a.user_id: a.reasons for a in week.attention}["UTRD1"]

    # Recording them closes the gaps.
    assert (
        submit(bot, "UTRD1", ProfileCallback.BROKER, broker_values("alice_t", ["order_precautions", "ip_restricted"]))
        == {}
    )
    fixed = automation_values(desk_id=desk.id, fences=["ip_restricted"])
    fixed[ProfileBlock.KILL_SWITCH_HOW] = text("Alice or any manager: stop the gw-1 container, then cancel all in TWS")
    assert submit(bot, "UTRD1", ProfileCallback.AUTOMATION, fixed, json.dumps({"automation_id": auto_id})) == {}
    assert fence_gaps(engine) == []
    assert "kill switch: Alice or any manager" in home_text(fake_slack, "UTRD1")


def test_the_desk_names_its_security_contact_in_the_guidance(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    desk = make_desk(engine)
    assert desk.id is not None
    values = settings_values()
    values["security_contact_user"] = {FIELD: {"type": "users_select", "selected_user": "UMGR2"}}
    values["security_contact_text"] = {FIELD: {"type": "plain_text_input", "value": None}}
    values["ip_restrictions"] = {FIELD: {"type": "checkboxes", "selected_options": []}}
    meta = json.dumps({"desk_id": desk.id, "large": False, "home": True})
    response = bot.submit_view("UMGR1", Callback.DESK_SETTINGS_MODAL, values, meta)
    assert response.status_code == 200 and not response.content, response.text
    bot.settle()
    with Session(engine) as session:
        row = session.get(Desk, desk.id)
        assert row is not None and (row.security_contact_user, row.security_contact_text) == ("UMGR2", None)

    # The trader's App Home and second-factor modal name the contact (by name, not the raw id).
    open_home(bot, "UTRD1")
    assert "Adding a second factor may need your account's primary user: ask Max Manager." in home_text(
        fake_slack, "UTRD1"
    )
    bot.click("UTRD1", ProfileAction.EDIT_FACTORS, "")
    bot.settle()
    assert "ask Max Manager" in json.dumps(opened_views(fake_slack)[-1])

    # The gap DM where a second factor is missing names them too.
    from bot.runtime import deliver_due
    from tests.support.escalation_fixtures import delivery_client
    from tests.support.profile_fixtures import factors_values

    assert submit(bot, "UTRD1", ProfileCallback.FACTORS, factors_values("ib_key", ["ib_key"])) == {}
    bot.clock.set(utc(2026, 11, 25, 21, 0))
    from bot.profile import jobs as profile_jobs

    profile_jobs.profile_pass(engine, now=bot.clock())
    deliver_due(engine, delivery_client(fake_slack.base_url), None, now=bot.clock(), limit=100)
    (notice,) = dm_texts(fake_slack, "UTRD1")
    assert "ask Max Manager" in notice and "UMGR2" not in notice

    # A secret where the contact's text goes is a field error; nothing changes.
    values["security_contact_user"] = {FIELD: {"type": "users_select", "selected_user": None}}
    values["security_contact_text"] = {FIELD: {"type": "plain_text_input", "value": "root password: hunter2"}}
    body = bot.submit_view("UMGR1", Callback.DESK_SETTINGS_MODAL, values, meta).json()
    assert body["response_action"] == "errors" and list(body["errors"]) == ["security_contact_text"]
    # A person and a text at once: which one is meant? A field error, not one silently dropped.
    values["security_contact_user"] = {FIELD: {"type": "users_select", "selected_user": "UMGR1"}}
    values["security_contact_text"] = {FIELD: {"type": "plain_text_input", "value": "the ops desk"}}
    body = bot.submit_view("UMGR1", Callback.DESK_SETTINGS_MODAL, values, meta).json()
    assert body["response_action"] == "errors" and "not both" in body["errors"]["security_contact_text"]
    with Session(engine) as session:
        row = session.get(Desk, desk.id)
        assert row is not None and (row.security_contact_user, row.security_contact_text) == ("UMGR2", None)


def test_the_cli_records_usernames_fences_automations_and_the_security_contact(
    env: dict[str, str],
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    desk = make_desk(engine)
    assert desk.id is not None
    # Usernames and fences of a trader.
    code, out, err = run(
        capsys, ["profile", "broker", "UTRD2", "--usernames", "bob_t1,algo_mr1", "--order-precautions", "yes"]
    )
    assert (code, err) == (0, ""), err
    assert out.strip() == "UTRD2: IBKR usernames bob_t1, algo_mr1; order precautions yes; IP restriction no."
    for bad, says in (("123456", "looks like a password"), ("U1234567", "is an account number")):
        code, out, err = run(capsys, ["profile", "broker", "UTRD2", "--usernames", bad])
        assert (code, out) == (2, "") and len(err.strip().splitlines()) == 1, err
        assert says in err and "(--usernames)" in err
    code, out, _ = run(capsys, ["profile", "broker", "UTRD2"])
    assert "bob_t1, algo_mr1" in out  # unchanged by the refusals

    # An automation registered in Slack, then its broker facts from the CLI.
    from bot.db import session_scope
    from bot.profile import automation as automations
    from bot.profile.automation import AutomationInput

    with session_scope(engine) as session:
        data = AutomationInput(desk.id, None, "mean-reversion", "tws_api", "algo_mr1", True, True, True, None, None)
        automations.save(session=session, actor="UTRD1", automation_id=None, data=data, today=date(2026, 11, 25),
                         now=utc(2026, 11, 25, 14))  # fmt: skip
    args = ["profile", "automation", "equities", "Mean-Reversion", "--second-factor", "bot", "--kill-switch",
            "Alice: docker stop algo-mr"]  # fmt: skip
    code, out, err = run(capsys, args)
    assert (code, err) == (0, ""), err
    assert "second factor held by the bot (flagged); kill switch: Alice: docker stop algo-mr" in out
    code, out, err = run(capsys, ["profile", "automations", "equities"])
    assert code == 0 and "mean-reversion" in out
    assert "bot_holds_second_factor" in out and "shared_with_person" in out  # Bob logs in with algo_mr1
    assert "fences: read-only API, trusted IPs, order-size limit" in out
    for flags, says in (
        (["--kill-switch", "pwd: hunter2!"], "(--kill-switch)"),
        (["--account", "demo"], "invalid choice"),
    ):
        code, out, err = run(capsys, ["profile", "automation", "equities", "mean-reversion", *flags])
        assert (code, out) == (2, "") and says in err and "hunter2" not in err, err
    code, _, err = run(capsys, ["profile", "automation", "equities", "nosuch", "--account", "paper"])
    assert code == 2 and "no automation named 'nosuch'" in err

    # The desk's security contact and IP restrictions.
    code, out, err = run(
        capsys, ["desk", "set", "equities", "--security-contact", "@UMGR1", "--ip-restrictions", "yes"]
    )
    assert (code, err) == (0, ""), err
    assert "security contact Mia Manager (UMGR1); IP restrictions yes." in out
    code, out, err = run(capsys, ["desk", "set", "equities", "--security-contact", "account holder: J. Doe, ext 42"])
    assert code == 0 and "security contact account holder: J. Doe, ext 42;" in out
    code, out, err = run(capsys, ["desk", "set", "equities", "--security-contact", "passcode: 99xx!"])
    assert (code, out) == (2, "") and "(--security-contact)" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run(capsys, ["desk", "show", "equities"])
    assert "account holder: J. Doe, ext 42" in out and "ip restrictions:" in out
    with Session(engine) as session:
        row = session.get(Desk, desk.id)
        assert row is not None and (row.security_contact_user, row.ip_restrictions) == (None, True)


def test_a_security_contact_is_a_slack_user_or_text_and_never_shown_as_a_raw_id() -> None:
    from bot.desks import contact
    from bot.errors import ServiceError
    from bot.people.names import Names

    assert contact.parse_contact("@U0123ABCD") == ("U0123ABCD", None)
    assert contact.parse_contact("<@U0123ABCD|jane>") == ("U0123ABCD", None)
    assert contact.parse_contact("UBS desk, ext 42") == (None, "UBS desk, ext 42")
    assert contact.parse_contact("  ") == (None, None)
    with pytest.raises(ServiceError) as refused:
        contact.parse_contact("pwd: hunter2!")
    assert refused.value.field == "security_contact"
    desk = Desk(name="equities", channel_id="C1", timezone="UTC", post_at="08:00", deadline="09:00")
    desk.security_contact_user = "U0123ABCD"
    assert contact.contact_name(desk, Names()) == "the security contact in your desk's settings"
    assert contact.contact_name(desk, Names({"U0123ABCD": "Jane"})) == "Jane"
    assert contact.guidance([]).endswith("your desk hasn't recorded who to ask.")
    assert contact.guidance([("a", "Jane"), ("b", "Joe")]).endswith("ask Jane (a); Joe (b).")
