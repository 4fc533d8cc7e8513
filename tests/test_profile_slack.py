"""The readiness profile in Slack: App Home for traders and managers, every modal's field
errors, saves (each an audit event), the automation register, and who may see or change
what. Signed requests into the real app, the fake Slack over HTTP, both databases."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from slack_sdk.models.blocks import Block as SlackBlock
from slack_sdk.models.views import View
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.audit import AuditEvent
from bot.db import session_scope
from bot.profile import automation as automations
from bot.profile import home, modals, saves, views
from bot.profile.automation import AutomationInput
from bot.profile.gaps import open_gaps
from bot.profile.models import Automation, PlatformPermission, ReadinessGap, SecondFactorRecord, TraderProfile
from bot.slack.ids import ProfileAction, ProfileBlock, ProfileCallback
from tests.support.factories import make_desk
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot
from tests.support.profile_fixtures import (
    audit_actions,
    automation_values,
    checks,
    ephemerals,
    errors_of,
    factors_values,
    home_of,
    home_text,
    interfaces_values,
    keyless_bot,  # noqa: F401 - a fixture
    open_home,
    opened_views,
    permissions_values,
    radio,
    submit,
    user,
)

TODAY = date(2026, 11, 25)


def profiles(bot: Bot) -> dict[str, TraderProfile]:
    with Session(bot.runtime.engine) as session:
        return {p.user_id: p for p in session.exec(select(TraderProfile)).all()}


def test_trader_and_manager_home_views(keyless_bot: Bot, fake_slack: FakeSlack) -> None:  # noqa: F811
    bot = keyless_bot
    make_desk(bot.runtime.engine)
    open_home(bot, "UTRD1")
    trader = home_text(fake_slack, "UTRD1")
    assert "Your readiness profile" in trader and "Desk readiness" not in trader
    for action in (ProfileAction.EDIT_INTERFACES, ProfileAction.EDIT_FACTORS, ProfileAction.ADD_AUTOMATION):
        assert action.value in trader
    assert "never asks for your IBKR password or an IBKR one-time code" in trader
    assert "Enrolment is unavailable" in trader  # this bot has no secret key
    assert len(home_of(fake_slack, "UTRD1")["blocks"]) <= 100

    open_home(bot, "UMGR1")
    manager = home_text(fake_slack, "UMGR1")
    assert "Desk readiness · equities" in manager and "Your readiness profile" not in manager
    for trader_id in ("UTRD1", "UTRD2", "UTRD3"):
        assert f"<@{trader_id}> · standard · 📝 no profile yet" in manager
    assert ProfileAction.SET_TIER.value in manager and ProfileAction.VIEW_TRADER.value in manager
    assert "standard tier: 1 backup, verified every 30 days" in manager
    assert (
        "elevated tier: 2 independent backups (1 without a Digital Security Card+ or other physical card), "
        "verified every 14 days"
    ) in manager


def test_a_trader_records_their_setup_and_each_save_is_audited(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    bot.click("UTRD1", ProfileAction.EDIT_INTERFACES, "")
    bot.settle()
    assert opened_views(fake_slack)[-1]["callback_id"] == ProfileCallback.INTERFACES

    assert submit(bot, "UTRD1", ProfileCallback.INTERFACES, interfaces_values("tws", "client_portal")) == {}
    values = permissions_values("tws", ["us_stocks", "options"], ["us_stocks"], note="NYSE and CBOE")
    assert submit(bot, "UTRD1", ProfileCallback.PERMISSIONS, values) == {}
    dates = {"ib_key": TODAY, "authenticator_app": date(2026, 11, 20)}
    values = factors_values("ib_key", ["ib_key", "authenticator_app"], dates)
    assert submit(bot, "UTRD1", ProfileCallback.FACTORS, values) == {}

    profile = profiles(bot)["UTRD1"]
    assert (profile.primary_interface, profile.secondary_interface) == ("tws", "client_portal")
    with Session(engine) as session:
        (perm,) = session.exec(select(PlatformPermission)).all()
        assert (perm.interface, perm.trading, perm.market_data) == ("tws", "us_stocks,options", "us_stocks")
        methods = sorted(r.method for r in session.exec(select(SecondFactorRecord)).all())
    assert methods == ["authenticator_app", "ib_key"]
    assert [a for a, _ in audit_actions(engine, "profile:UTRD1")] == [
        "interfaces_saved",
        "permissions_saved",
        "second_factors_saved",
    ]
    assert {actor for _, actor in audit_actions(engine, "profile:UTRD1")} == {"UTRD1"}
    # Each save republishes App Home.
    home = home_text(fake_slack, "UTRD1")
    assert "TWS, secondary Client Portal" in home
    assert "TWS: trades US stocks, Options · market data US stocks" in home
    assert "Mobile Authenticator app (TOTP) · backup · verified Fri 20 Nov (your date)" in home
    assert "✅ recovery path ok" in home

    open_home(bot, "UMGR1")
    assert "<@UTRD1> · standard · ✅ recovery path ok" in home_text(fake_slack, "UMGR1")


def test_every_modal_refuses_bad_input_and_stores_nothing(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    tomorrow = date(2026, 11, 26)
    cases = [
        (ProfileCallback.INTERFACES, interfaces_values("warp_drive"), {ProfileBlock.PRIMARY_INTERFACE}),
        (ProfileCallback.INTERFACES, interfaces_values(None, "tws"), {ProfileBlock.PRIMARY_INTERFACE}),
        (ProfileCallback.INTERFACES, interfaces_values("tws", "tws"), {ProfileBlock.SECONDARY_INTERFACE}),
        (ProfileCallback.INTERFACES, interfaces_values("tws", "telex"), {ProfileBlock.SECONDARY_INTERFACE}),
        (ProfileCallback.PERMISSIONS, permissions_values("warp_drive", ["options"]), {ProfileBlock.INTERFACE}),
        (ProfileCallback.PERMISSIONS, permissions_values("tws", ["tulips"]), {ProfileBlock.TRADING}),
        (ProfileCallback.PERMISSIONS, permissions_values("tws", [], note="x" * 301), {ProfileBlock.NOTE}),
        (
            ProfileCallback.FACTORS,
            factors_values("ib_key", ["ib_key", "authenticator_app"], {"authenticator_app": tomorrow}),
            {"verified_authenticator_app"},
        ),
        (ProfileCallback.FACTORS, factors_values("dsc_plus", ["ib_key"]), {ProfileBlock.PRIMARY_FACTOR}),
        (ProfileCallback.FACTORS, factors_values("ib_key", ["ib_key", "carrier_pigeon"]), {ProfileBlock.REGISTERED}),
        (
            ProfileCallback.FACTORS,
            factors_values("ib_key", ["ib_key"], {"dsc_plus": TODAY}),
            {"verified_dsc_plus"},
        ),
        (ProfileCallback.AUTOMATION, automation_values(kill_switch=tomorrow), {ProfileBlock.KILL_SWITCH}),
        (ProfileCallback.AUTOMATION, automation_values(rotated=tomorrow), {ProfileBlock.CREDENTIALS}),
        (ProfileCallback.AUTOMATION, automation_values(name="n" * 65), {ProfileBlock.NAME}),
        (ProfileCallback.AUTOMATION, automation_values(interface="tws"), {ProfileBlock.INTERFACE}),
        (ProfileCallback.AUTOMATION, automation_values(username="my password"), {ProfileBlock.BROKER_USERNAME}),
    ]
    for callback, values, expected in cases:
        errors = errors_of(submit(bot, "UTRD1", callback, values, json.dumps({"automation_id": None})))
        assert set(errors) == expected, (callback, errors)
        assert all(isinstance(message, str) and message for message in errors.values())
    with Session(engine) as session:
        for table in (TraderProfile, PlatformPermission, SecondFactorRecord, Automation):
            assert session.exec(select(table)).all() == [], table
        # Only the desk's own creation is in the trail: no refused submission left an event.
        assert [e.action for e in session.exec(select(AuditEvent)).all()] == ["desk_created"]
    assert fake_slack.of("views.publish") == []


def test_the_automation_register_and_its_flags(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    desk = make_desk(engine)
    assert desk.id is not None
    bot.click("UTRD1", ProfileAction.ADD_AUTOMATION, "")
    bot.settle()
    assert opened_views(fake_slack)[-1]["callback_id"] == ProfileCallback.AUTOMATION
    fenced = automation_values(
        desk_id=desk.id,
        fences=["read_only_api", "trusted_ips", "order_size_limit"],
        kill_switch=date(2026, 11, 20),
        rotated=date(2026, 10, 1),
    )
    assert submit(bot, "UTRD1", ProfileCallback.AUTOMATION, fenced) == {}
    assert "*mean-reversion* · equities · TWS API · live · user `algo_mr1`" in home_text(fake_slack, "UTRD1")
    assert "✅ no flags" in home_text(fake_slack, "UTRD1")
    # A second automation on the same username through another interface, unfenced: two brokerage
    # sessions on one username compete, so both are flagged.
    sloppy = automation_values(desk_id=desk.id, name="momentum", username="ALGO_MR1", interface="cp_web_api")
    assert submit(bot, "UTRD2", ProfileCallback.AUTOMATION, sloppy) == {}
    home = home_text(fake_slack, "UTRD2")
    for flag in ("credentials not rotated in 90 days", "no programmatic order-size limit", "kill switch not tested"):
        assert flag in home
    competing = "another automation logs in with the same username through a different or unrecorded gateway"
    assert competing in home
    open_home(bot, "UTRD1")
    assert competing in home_text(fake_slack, "UTRD1")
    with Session(engine) as session:
        rows = session.exec(select(Automation).order_by(col(Automation.id))).all()
    assert [(a.name, a.owner_id, a.created_by) for a in rows] == [
        ("mean-reversion", "UTRD1", "UTRD1"),
        ("momentum", "UTRD2", "UTRD2"),
    ]
    assert audit_actions(engine, f"automation:{rows[0].id}") == [("automation_added", "UTRD1")]

    # Someone else's automation: a trader can't open it, the desk's manager can.
    bot.click("UTRD2", ProfileAction.EDIT_AUTOMATION, str(rows[0].id))
    bot.settle()
    assert "Only the automation's owner or the desk's managers" in ephemerals(fake_slack, "UTRD2")[-1]
    assert len(opened_views(fake_slack)) == 1
    bot.click("UMGR1", ProfileAction.EDIT_AUTOMATION, str(rows[0].id))
    bot.settle()
    assert opened_views(fake_slack)[-1]["callback_id"] == ProfileCallback.AUTOMATION
    # A trader can't register an automation for someone else.
    other = automation_values(desk_id=desk.id, name="carry", username="algo_c", owner="UTRD3")
    assert set(errors_of(submit(bot, "UTRD1", ProfileCallback.AUTOMATION, other))) == {ProfileBlock.OWNER}
    # The owner removes theirs.
    remove = {**sloppy, ProfileBlock.REMOVE: checks(["remove"])}
    assert submit(bot, "UTRD2", ProfileCallback.AUTOMATION, remove, json.dumps({"automation_id": rows[1].id})) == {}
    with Session(engine) as session:
        assert [a.name for a in session.exec(select(Automation)).all()] == ["mean-reversion"]
        gap = session.exec(select(ReadinessGap).where(ReadinessGap.subject == f"automation:{rows[1].id}")).one()
    assert gap.closed_at is not None and gap.open_key is None  # its hygiene gap closed with it
    assert audit_actions(engine, f"automation:{rows[1].id}") == [
        ("automation_added", "UTRD2"),
        ("automation_removed", "UTRD2"),
    ]


def test_automations_sharing_one_gateway_session_do_not_compete_but_a_person_on_the_username_does(
    engine: Engine,
) -> None:
    """One TWS / IB Gateway session serves several API clients (different client ids), so two
    automations on one username through the same recorded gateway are not flagged; a third on
    another gateway competes with both; a person logging in with the username competes with all."""
    desk = make_desk(engine)
    assert desk.id is not None
    now = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)

    def add(name: str, host: str, *, username: str = "algo_shared", person: bool = False) -> None:
        data = AutomationInput(
            desk.id,
            None,
            name,
            "tws_api",
            username,
            True,
            True,
            True,
            TODAY,
            TODAY,
            session_host=host,
            person_logs_in=person,
        )
        with session_scope(engine) as session:
            automations.save(session=session, actor="UTRD1", automation_id=None, data=data, today=TODAY, now=now)

    def flags() -> dict[str, list[str]]:
        with session_scope(engine) as session:
            rows = automations.owned_by(session=session, user_id="UTRD1")
            found = automations.flags(session=session, automations=rows, today=TODAY)
            return {a.name: [str(f) for f in found[a.id or 0]] for a in rows}

    add("one", "gw-prod-1:4001")
    add("two", " GW-PROD-1:4001 ")
    assert flags() == {"one": [], "two": []}
    add("three", "gw-prod-2:4001")
    assert flags() == {"one": ["competing_session"], "three": ["competing_session"], "two": ["competing_session"]}
    add("solo", "gw-prod-1:4001", username="algo_solo", person=True)
    assert flags()["solo"] == ["shared_with_person"]
    with session_scope(engine) as session:
        row = session.exec(select(Automation).where(Automation.name == "two")).one()
        assert (row.session_host, row.person_logs_in) == ("GW-PROD-1:4001", False)
    bad = AutomationInput(desk.id, None, "bad", "tws_api", "u9", True, True, True, TODAY, TODAY, session_host="gw one")
    assert set(automations.validate(bad, today=TODAY)) == {"session_host"}


def test_a_trader_cannot_open_another_profile_or_the_risk_tier(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    make_desk(engine, "fx", channel="C0999", managers=["UMGRX"], traders=["UFX1"])
    submit(bot, "UTRD2", ProfileCallback.INTERFACES, interfaces_values("tws"))
    before = audit_actions(engine, "profile:UTRD2")

    bot.click("UTRD1", ProfileAction.VIEW_TRADER, "1")
    bot.click("UTRD1", ProfileAction.SET_TIER, "1")
    bot.settle()
    assert opened_views(fake_slack) == []
    replies = ephemerals(fake_slack, "UTRD1")
    assert any("Only a desk's managers can open another trader's readiness profile" in r for r in replies)
    assert any("Only a desk's managers can set a trader's risk tier" in r for r in replies)

    # Forged submissions change nothing.
    errors = errors_of(submit(bot, "UTRD1", ProfileCallback.VIEW, {str(ProfileBlock.TRADER): user("UTRD2")}))
    assert "Only <@UTRD2> and the managers of their desk" in errors[ProfileBlock.TRADER]
    tier: dict[str, Any] = {ProfileBlock.TRADER: user("UTRD2"), ProfileBlock.TIER: radio("elevated")}
    assert ProfileBlock.TRADER in errors_of(submit(bot, "UTRD1", ProfileCallback.TIER, tier))
    # A manager of another desk can do neither for this desk's trader.
    assert ProfileBlock.TRADER in errors_of(submit(bot, "UMGRX", ProfileCallback.TIER, tier))
    assert ProfileBlock.TRADER in errors_of(
        submit(bot, "UMGRX", ProfileCallback.VIEW, {str(ProfileBlock.TRADER): user("UTRD2")})
    )
    assert profiles(bot)["UTRD2"].risk_tier == "standard"
    assert audit_actions(engine, "profile:UTRD2") == before

    # The desk's manager can.
    shown = submit(bot, "UMGR1", ProfileCallback.VIEW, {str(ProfileBlock.TRADER): user("UTRD2")})
    assert shown["response_action"] == "update"
    assert "<@UTRD2>" in json.dumps(shown["view"]) and "TWS (no secondary)" in json.dumps(shown["view"])
    assert submit(bot, "UMGR1", ProfileCallback.TIER, tier) == {}
    profile = profiles(bot)["UTRD2"]
    assert (profile.risk_tier, profile.risk_tier_set_by) == ("elevated", "UMGR1")
    assert audit_actions(engine, "profile:UTRD2")[-1] == ("risk_tier_set", "UMGR1")
    open_home(bot, "UMGR1")
    assert "<@UTRD2> · 🔺 elevated" in home_text(fake_slack, "UMGR1")


def test_every_profile_view_is_block_kit_that_slack_sdk_accepts_unchanged(engine: Engine) -> None:
    """Each modal round-trips through slack_sdk's models (which drop unknown fields and enforce
    lengths: a modal title is at most 24 characters, https://api.slack.com/reference/surfaces/views)
    unchanged; Home, the enrolment DM and the notice parse and validate as blocks."""
    desk = make_desk(engine)
    assert desk.id is not None
    now = datetime(2026, 11, 25, 13, 5, tzinfo=UTC)
    with session_scope(engine) as session:
        saves.save_interfaces(session=session, user_id="UTRD1", primary="tws", secondary="client_portal", now=now)
        saves.save_permissions(
            session=session, user_id="UTRD1", interface="tws", trading=["options"], market_data=[], note="n", now=now
        )
        saves.save_second_factors(
            session=session,
            user_id="UTRD1",
            primary="ib_key",
            registered=["ib_key", "authenticator_app"],
            verified_on={"ib_key": date(2026, 11, 24)},
            now=now,
        )
        data = AutomationInput(desk.id, None, "algo", "tws_api", "u1", True, False, False, None, None)
        automations.save(session=session, actor="UTRD1", automation_id=None, data=data, today=TODAY, now=now)
    with session_scope(engine) as session:
        card = home.card(session=session, user_id="UTRD1", now=now)
        _, overviews = home.home_data(session=session, user_id="UMGR1", now=now)
        (auto,) = automations.owned_by(session=session, user_id="UTRD1")
        gap = open_gaps(session, desk.id)[0]
    built = [
        modals.interfaces_modal(card),
        modals.permissions_modal(card),
        modals.factors_modal(card),
        modals.automation_modal(auto, [desk], owner="UTRD1", can_assign=True),
        modals.automation_modal(None, [desk], owner="UTRD1", can_assign=False),
        modals.drill_modal(),
        modals.enroll_modal(),
        modals.tier_modal(desk.id),
        modals.view_trader_modal(),
        views.profile_view(card),
    ]
    for modal in built:
        view = View(**modal)
        view.validate_json()
        assert view.to_dict() == modal, modal.get("callback_id")
    for blocks in (
        views.profile_home_blocks(card, overviews, keys_configured=True),
        views.enrollment_message("otpauth://totp/IB%20Preflight:a?secret=ABC&issuer=IB%20Preflight")[1],
        views.gap_notice(gap, desk, enrolled=True)[1],
    ):
        parsed = SlackBlock.parse_all(blocks)
        assert len(parsed) == len(blocks)
        for block in parsed:
            block.validate_json()
