"""The desk runs from Slack (issue 12), through signed requests into the running app and a fake
Slack over HTTP, on both databases: names from users.info and user_change; App Home and
/ibstatus for traders, managers and everyone else; the desk settings modal (field errors,
refusals, audit, export); away days; acting reminders; grouped escalation messages; DMs updated
through the id Slack returned."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.audit import AuditEvent
from bot.checklist.models import Answer, PermissionGap
from bot.db import session_scope
from bot.desks import away
from bot.desks import service as desks
from bot.desks.models import Away, Desk, Role
from bot.people.models import Person
from bot.runtime import deliver_due
from bot.scheduler import Scheduler
from bot.slack.ids import FIELD, Action, Callback, Event
from bot.summary import export
from tests.support.desk_fixtures import desk_row, settings_values
from tests.support.escalation_fixtures import (
    blocks_text,
    delivery_client,
    escalations,
    outbox_rows,
    post_checklist,
    run_pass,
)
from tests.support.factories import make_desk, name_people
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot, utc

TODAY = date(2026, 11, 25)


def deliver(bot: Bot, fake: FakeSlack) -> int:
    return deliver_due(bot.runtime.engine, delivery_client(fake.base_url), None, now=bot.clock(), limit=1000).delivered


def command(bot: Bot, user: str, text: str = "") -> str:
    response = bot.command(user, text)
    assert response.status_code == 200, response.text
    bot.settle()
    return str(response.json().get("text") or "") if response.content.strip() else ""


def home_of(bot: Bot, fake: FakeSlack, user: str) -> str:
    before = len(fake.of("views.publish"))
    assert bot.event({"type": Event.APP_HOME_OPENED, "user": user, "tab": "home", "event_ts": "1.0"}).status_code == 200
    bot.settle()
    published = [c for c in fake.of("views.publish") if c.params["user_id"] == user]
    assert len(fake.of("views.publish")) > before and published
    return json.dumps(published[-1].params["view"], ensure_ascii=False)


def said_to(fake: FakeSlack, user: str) -> list[str]:
    """Ephemerals to ``user`` and DMs (a refusal from App Home has no channel: it comes by DM)."""
    texts = fake.told(user)
    return texts + [str(c.params.get("text")) for c in fake.of("chat.postMessage") if c.params.get("channel") == user]


def audit(bot: Bot, action: str) -> list[AuditEvent]:
    with Session(bot.runtime.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


# --- names -------------------------------------------------------------------------------------


def test_names_come_from_users_info_then_user_change_and_never_ping(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine, named=False)
    fake_slack.add_user("UTRD1", "Alice", "Alice Liddell")
    fake_slack.add_user("UTRD2", "", "Bob Builder")  # no display name: the real name shows
    fake_slack.add_user("UTRD3", "<!channel> Eve", "Eve")  # user-controlled text
    fake_slack.add_user("UMGR1", "Mia", "Mia Manager", is_admin=True)
    scheduler = Scheduler(engine, bot.client, bot.runtime.refresher, bot.clock)
    assert scheduler.refresh_names() == 5  # UMGR2 is unknown to Slack (user_not_found): remembered as such
    assert len(fake_slack.of("users.info")) == 4 and [c.params["user"] for c in fake_slack.rejected] == ["UMGR2"]
    assert scheduler.refresh_names() == 0 and len(fake_slack.of("users.info")) == 4  # cached for a day

    result = post_checklist(bot)
    roster = blocks_text(fake_slack.of("chat.postMessage")[-1].params)
    assert "⏳ Alice — pending" in roster and "⏳ Bob Builder — pending" in roster
    assert "&lt;!channel&gt; Eve" in roster and "<!channel>" not in roster and "<@UTRD" not in roster

    # Alice renames herself: the event carries the user, no users.info call.
    user = {**fake_slack.users["UTRD1"], "profile": {"display_name": "Alice L.", "real_name": "Alice Liddell"}}
    assert bot.event({"type": Event.USER_CHANGE, "user": user, "event_ts": "2.0"}).status_code == 200
    bot.settle()
    assert len(fake_slack.of("users.info")) == 4
    bot.click("UTRD1", Action.CONFIRM_ALL, str(result.run_id))
    bot.settle()
    assert "✅ Alice L. — ready" in blocks_text(fake_slack.of("chat.update")[-1].params)
    with Session(engine) as session:
        mia = session.get(Person, "UMGR1")
        assert mia is not None and mia.is_admin and mia.tz == "America/New_York"


# --- App Home and /ibstatus by role ------------------------------------------------------------


def test_app_home_and_ibstatus_for_each_role(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    make_desk(engine, "rates", channel="C0999", managers=["UMGR1"], traders=["UTRD9"])
    result = post_checklist(bot)
    bot.click("UTRD2", Action.CONFIRM_ALL, str(result.run_id))
    bot.settle()

    manager = home_of(bot, fake_slack, "UMGR1")  # manages two desks, trades on none
    assert "Your desks" in manager and manager.count(Action.HOME_DESK_SETTINGS) == 2
    assert "*equities*: ✅ 1 ready · 🚫 0 restricted · ⏳ 2 pending" in manager
    assert "Alice" in manager and "This week (2026-W48)" in manager
    assert "not a trader" not in manager and "Your checklist today" not in manager
    status = command(bot, "UMGR1")
    assert "Your desks today" in status and "*equities*: ✅ 1 ready" in status and "*rates*" in status
    assert "not a trader" not in status

    trader = home_of(bot, fake_slack, "UTRD1")
    assert "Your checklist today" in trader and Action.CONFIRM_ALL in trader and Action.HOME_AWAY in trader
    assert "Your desks" not in trader
    # Answering from App Home: the same stored answer, and App Home is drawn again.
    publishes = len(fake_slack.of("views.publish"))
    assert bot.home_click("UTRD1", Action.CONFIRM_ALL, str(result.run_id)).status_code == 200
    bot.settle()
    with Session(engine) as session:
        assert session.exec(select(Answer).where(Answer.user_id == "UTRD1")).first() is not None
    assert len(fake_slack.of("views.publish")) == publishes + 1
    assert "✅ ready" in json.dumps(fake_slack.of("views.publish")[-1].params["view"], ensure_ascii=False)

    outsider = home_of(bot, fake_slack, "UNOBODY")
    assert "runs the Interactive Brokers pre-market checklist" in outsider and "add you" in outsider
    assert Action.HOME_NEW_DESK not in outsider
    text = command(bot, "UNOBODY")
    assert "You're not on any desk yet" in text and "Mia Manager" in text

    garbage = command(bot, "UTRD1", "frobnicate <!channel>")
    assert garbage.startswith("Sorry, I didn't understand that.") and "/ibstatus help" in garbage
    assert "frobnicate" not in garbage and "<!channel>" not in garbage


# --- desk settings -----------------------------------------------------------------------------


def test_desk_settings_modal_changes_the_desk_with_field_errors_refusals_and_audit(
    bot: Bot, fake_slack: FakeSlack
) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    desk = desk_row(bot)
    assert desk is not None and desk.id is not None

    # A trader can't open it: an ephemeral sentence (by DM from App Home), no modal.
    bot.home_click("UTRD1", Action.HOME_DESK_SETTINGS, str(desk.id))
    bot.settle()
    assert fake_slack.of("views.open") == []
    assert any("Only the desk's managers and workspace admins" in t for t in said_to(fake_slack, "UTRD1"))

    # The manager opens it from App Home: the desk's values are filled in.
    bot.home_click("UMGR1", Action.HOME_DESK_SETTINGS, str(desk.id))
    bot.settle()
    (opened,) = fake_slack.of("views.open")
    view = opened.params["view"]
    assert view["callback_id"] == Callback.DESK_SETTINGS_MODAL
    by_block = {b.get("block_id"): b for b in view["blocks"]}
    assert by_block["traders"]["element"]["initial_users"] == ["UTRD1", "UTRD2", "UTRD3"]
    assert by_block["post_at"]["element"]["initial_time"] == "08:00"
    assert by_block["timezone"]["element"]["initial_option"]["value"] == "America/New_York"
    meta = view["private_metadata"]

    # Refused values come back as the field's error and change nothing.
    before = desk_row(bot)
    for changes, block in (
        ({"post_at": "09:30"}, "deadline"),
        ({"desk_name": "Equities Desk"}, "desk_name"),
        ({"traders": []}, "traders"),
        ({"reminder_minutes": "900"}, "reminder_minutes"),
        ({"pager_kind": "pagerduty"}, "pager_secret"),
        ({"pager_kind": "webhook", "pager_url": "ftp://files.example/hook"}, "pager_url"),
    ):
        response = bot.submit_view("UMGR1", Callback.DESK_SETTINGS_MODAL, settings_values(**changes), meta)
        assert response.status_code == 200
        body = response.json()
        assert body["response_action"] == "errors" and list(body["errors"]) == [block], (changes, body)
    assert desk_row(bot) == before

    # Someone else submitting the same modal (a forged payload) is refused too.
    response = bot.submit_view("UTRD1", Callback.DESK_SETTINGS_MODAL, settings_values(post_at="07:00"), meta)
    assert response.json()["response_action"] == "errors"
    assert desk_row(bot) == before

    # A valid change: saved, recorded (who, before -> after), shown where the CLI looks.
    bot.clock.set(utc(2026, 11, 25, 15, 0))
    values = settings_values(
        post_at="07:30",
        traders=["UTRD1", "UTRD2", "UTRD4"],
        reminder_minutes="20",
        escalation_channel="CESC",
        pager_kind="pagerduty",
        pager_secret="routing-key-secret",
    )
    response = bot.submit_view("UMGR1", Callback.DESK_SETTINGS_MODAL, values, meta)
    assert response.status_code == 200 and not response.content.strip(b"{} ")
    bot.settle()
    after = desk_row(bot)
    assert after is not None
    assert (after.post_at, after.reminder_minutes, after.escalation_channel_id, after.pager_kind) == (
        "07:30",
        20,
        "CESC",
        "pagerduty",
    )
    with Session(engine) as session:
        assert desks.members(session=session, desk_id=desk.id, role=Role.TRADER) == ["UTRD1", "UTRD2", "UTRD4"]
    (changed,) = audit(bot, "desk_changed")
    assert changed.actor == "UMGR1"
    assert json.loads(changed.detail)["changes"] == {
        "post_at": ["08:00", "07:30"],
        "traders": {"added": ["UTRD4"], "removed": ["UTRD3"]},
    }
    (settings,) = audit(bot, "settings_changed")
    detail = json.loads(settings.detail)["changes"]
    assert detail["reminder_minutes"] == [30, 20] and detail["pager_secret"] == ["(none)", "(changed)"]
    assert "routing-key-secret" not in settings.detail
    assert any("Desk *equities* saved" in t for t in said_to(fake_slack, "UMGR1"))

    # The export of that day carries the changes, with who made them, and no secret.
    out = io.StringIO()
    with session_scope(engine) as session:
        export.write_csv(session=session, desk=after, start=TODAY, end=TODAY, out=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    exported = [r for r in rows if r["event"].startswith("desk.")]
    assert [r["event"] for r in exported] == ["desk.desk_changed", "desk.settings_changed"]
    assert exported[0]["actor"] == "UMGR1" and exported[0]["actor_name"] == "Mia Manager"
    assert "routing-key-secret" not in out.getvalue()

    # /ibstatus setup opens the same modal at once.
    assert command(bot, "UMGR1", "setup") == ""
    assert fake_slack.of("views.open")[-1].params["view"]["callback_id"] == Callback.DESK_SETTINGS_MODAL
    assert "Only the desk's managers" in command(bot, "UTRD1", "setup equities")


def test_new_desk_from_slack_for_workspace_admins_only(bot: Bot, fake_slack: FakeSlack) -> None:
    fake_slack.add_user("UADMIN", "Ada Admin", "Ada Admin", is_admin=True)
    fake_slack.add_user("UPLAIN", "Pat", "Pat")
    assert Action.HOME_NEW_DESK in home_of(bot, fake_slack, "UADMIN")  # learned her role on the first visit
    assert Action.HOME_NEW_DESK not in home_of(bot, fake_slack, "UPLAIN")

    bot.home_click("UPLAIN", Action.HOME_NEW_DESK)
    bot.settle()
    assert fake_slack.of("views.open") == []
    assert any("Only workspace admins and owners can create a desk" in t for t in said_to(fake_slack, "UPLAIN"))

    bot.home_click("UADMIN", Action.HOME_NEW_DESK)
    bot.settle()
    (opened,) = fake_slack.of("views.open")
    view = opened.params["view"]
    assert view["title"]["text"] == "New desk" and json.loads(view["private_metadata"])["desk_id"] is None
    values = settings_values(desk_name="fx", channel="C0FX", managers=["UADMIN"], traders=["UTRD7", "UTRD8"])
    taken = settings_values(desk_name="fx", channel="C0FX", managers=["UADMIN"], traders=["UTRD7"], deadline="07:00")
    assert list(
        bot.submit_view("UADMIN", Callback.DESK_SETTINGS_MODAL, taken, view["private_metadata"]).json()["errors"]
    ) == ["deadline"]
    response = bot.submit_view("UADMIN", Callback.DESK_SETTINGS_MODAL, values, view["private_metadata"])
    assert response.status_code == 200 and not response.content.strip(b"{} ")
    bot.settle()
    fx = desk_row(bot, "fx")
    assert fx is not None and fx.channel_id == "C0FX"
    (created,) = audit(bot, "desk_created")
    assert created.actor == "UADMIN"
    # The names of the new desk's people are looked up after the save (not while saving).
    asked = {c.params["user"] for c in [*fake_slack.of("users.info"), *fake_slack.rejected]}
    assert asked >= {"UTRD7", "UTRD8"}


# --- away days -----------------------------------------------------------------------------------


def test_away_days_silence_reminders_and_escalations_and_leave_the_figures(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    result = post_checklist(bot)

    for text, needle in (
        ("away 2026-11-20 2026-11-21", "in the past"),
        ("away 2026-11-27 2026-11-26", "before the first"),
        ("away 2026-11-25 2027-02-01", "at most 60 days"),
        ("away tomorrow", "Usage"),
        ("away 25/11/2026 2026-11-26", "YYYY-MM-DD"),
    ):
        assert needle in command(bot, "UTRD3", text), text
    assert "Only managers of their desk" in command(bot, "UTRD1", "away <@UTRD2|bob> 2026-11-25 2026-11-26")
    with Session(engine) as session:
        assert session.exec(select(Away)).all() == []

    assert "away Wed 25 Nov – Fri 27 Nov 2026" in command(bot, "UTRD3", "away 2026-11-25 2026-11-27 dentist")
    assert "Bob is away" in command(bot, "UMGR1", "away <@UTRD2|bob> 2026-11-25 2026-11-25")
    bot.settle()
    roster = blocks_text(fake_slack.of("chat.update")[-1].params)
    assert "🌴 Carol — away" in roster and "🌴 2 away" in roster and "⏳ Alice — pending" in roster

    bot.clock.set(utc(2026, 11, 25, 13, 30))  # reminder time: only Alice, who isn't away
    assert run_pass(engine, bot.clock()).reminders == 1
    bot.clock.set(utc(2026, 11, 25, 14, 0))  # deadline: only Alice escalates
    run_pass(engine, bot.clock())
    assert [e.trader_id for e in escalations(engine)] == ["UTRD1"]

    assert "Welcome back" in command(bot, "UTRD2", "back")
    with Session(engine) as session:
        (carol,) = session.exec(select(Away)).all()
    assert carol.user_id == "UTRD3"

    # Carol sees her away days in App Home and cancels them there.
    home = home_of(bot, fake_slack, "UTRD3")
    assert "🌴 Wed 25 Nov – Fri 27 Nov 2026 — dentist" in home and Action.HOME_AWAY_CANCEL in home
    assert "🌴 away today" in home
    bot.home_click("UTRD3", Action.HOME_AWAY_CANCEL, str(carol.id))
    bot.settle()
    with Session(engine) as session:
        assert session.exec(select(Away)).all() == []
    assert "dentist" not in json.dumps(fake_slack.of("views.publish")[-1].params["view"], ensure_ascii=False)
    assert result.run_id is not None


def test_a_managers_away_applies_on_their_desks_only(bot: Bot, fake_slack: FakeSlack) -> None:
    """Authority by desk: Bob trades on equities and rates. Rates' manager marking him away
    doesn't silence equities (its managers still hear of him); his own away silences both."""
    engine = bot.runtime.engine
    make_desk(engine)
    make_desk(engine, "rates", channel="C0999", managers=["UMGR9"], traders=["UTRD2"])
    post_checklist(bot)

    assert "Bob is away Wed 25 Nov – Wed 25 Nov 2026: no reminders, no escalations on rates." in command(
        bot, "UMGR9", "away <@UTRD2|bob> 2026-11-25 2026-11-25"
    )
    with Session(engine) as session:
        (theirs,) = session.exec(select(Away)).all()
    roster = blocks_text(fake_slack.of("chat.update")[-1].params) if fake_slack.of("chat.update") else ""
    assert "🌴" not in roster  # equities' roster doesn't show him away
    # Equities' manager can't remove rates' away; saying he's back leaves it alone.
    bot.home_click("UMGR1", Action.HOME_AWAY_CANCEL, str(theirs.id))
    bot.settle()
    assert any("another desk's managers" in str(c.params["text"]) for c in fake_slack.of("chat.postMessage"))
    assert "no away days were set" in command(bot, "UMGR1", "back <@UTRD2|bob>")
    with Session(engine) as session:
        assert [a.id for a in session.exec(select(Away)).all()] == [theirs.id]

    bot.clock.set(utc(2026, 11, 25, 13, 30))  # equities still reminds Bob
    assert run_pass(engine, bot.clock()).reminders == 3
    bot.clock.set(utc(2026, 11, 25, 14, 0))  # and escalates him to equities' managers
    run_pass(engine, bot.clock())
    assert sorted(e.trader_id for e in escalations(engine)) == ["UTRD1", "UTRD2", "UTRD3"]
    with Session(engine) as session:
        ids = {d.name: d.id for d in session.exec(select(Desk)).all()}
        day = date(2026, 11, 25)
        assert away.away_on(session=session, user_ids=["UTRD2"], day=day, desk_id=ids["equities"]) == set()
        assert away.away_on(session=session, user_ids=["UTRD2"], day=day, desk_id=ids["rates"]) == {"UTRD2"}

    # His own away applies on every desk he trades on.
    assert "You're away Thu 26 Nov – Thu 26 Nov 2026: no reminders, no escalations." in command(
        bot, "UTRD2", "away 2026-11-26 2026-11-26"
    )
    with Session(engine) as session:
        desk_ids = [d.id for d in session.exec(select(Desk)).all()]
        assert all(
            away.away_on(session=session, user_ids=["UTRD2"], day=date(2026, 11, 26), desk_id=d) == {"UTRD2"}
            for d in desk_ids
        )
        assert len(session.exec(select(Away)).all()) == 2  # rates' own period is untouched
    # Even when his own period overlaps it: rates' period is theirs to change.
    command(bot, "UTRD2", "away 2026-11-25 2026-11-26")
    with Session(engine) as session:
        assert sorted((a.desks is None, a.start.day, a.end.day) for a in session.exec(select(Away)).all()) == [
            (False, 25, 25),
            (True, 25, 26),
        ]


def test_away_modal_field_errors(bot: Bot, fake_slack: FakeSlack) -> None:
    make_desk(bot.runtime.engine)
    bot.home_click("UTRD1", Action.HOME_AWAY, "self")
    bot.settle()
    meta = fake_slack.of("views.open")[-1].params["view"]["private_metadata"]

    def values(start: str, end: str) -> dict[str, Any]:
        return {
            "start": {FIELD: {"type": "datepicker", "selected_date": start}},
            "end": {FIELD: {"type": "datepicker", "selected_date": end}},
            "note": {FIELD: {"type": "plain_text_input", "value": "trip"}},
        }

    response = bot.submit_view("UTRD1", Callback.AWAY_MODAL, values("2026-11-30", "2026-11-26"), meta)
    assert response.json() == {
        "response_action": "errors",
        "errors": {"end": "The last day (Thu 26 Nov) is before the first (Mon 30 Nov)."},
    }
    response = bot.submit_view("UTRD1", Callback.AWAY_MODAL, values("2026-11-30", "2026-12-02"), meta)
    assert response.status_code == 200 and not response.content.strip(b"{} ")
    bot.settle()
    with Session(bot.runtime.engine) as session:
        (away,) = session.exec(select(Away)).all()
    assert (away.user_id, away.start, away.end, away.note, away.set_by) == (
        "UTRD1",
        date(2026, 11, 30),
        date(2026, 12, 2),
        "trip",
        "UTRD1",
    )


# --- reminders that act, grouped escalations, DM ids ----------------------------------------------


def test_reminder_dm_answers_in_one_click(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    result = post_checklist(bot)
    bot.clock.set(utc(2026, 11, 25, 13, 30))
    assert run_pass(engine, bot.clock()).reminders == 3
    assert deliver(bot, fake_slack) == 3
    dm = next(c for c in fake_slack.of("chat.postMessage") if c.params["channel"] == "UTRD3")
    body = blocks_text(dm.params)
    assert Action.CONFIRM_ALL in body and Action.REPORT_PROBLEM in body
    assert f"https://slack.com/archives/C0123/p{str(result.ts).replace('.', '')}" in body
    # One click in the DM (its channel is the D… id): the same stored answer and roster update.
    bot.click("UTRD3", Action.CONFIRM_ALL, str(result.run_id), channel="DTRD3")
    bot.settle()
    assert "✅ Carol — ready" in blocks_text(fake_slack.of("chat.update")[-1].params)
    assert fake_slack.of("chat.update")[-1].params["channel"] == "C0123"


def test_a_pass_opening_many_escalations_sends_one_grouped_message_per_manager(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    traders = [f"UTRD{i}" for i in range(1, 7)]
    make_desk(engine, traders=traders)
    post_checklist(bot)
    bot.clock.set(utc(2026, 11, 25, 14, 0))
    assert len(run_pass(engine, bot.clock()).opened) == 6
    assert deliver(bot, fake_slack) == 2  # not 12 DMs
    digests = {
        c.params["channel"]: blocks_text(c.params)
        for c in fake_slack.of("chat.postMessage")
        if c.params["channel"].startswith("U")
    }
    assert set(digests) == {"UMGR1", "UMGR2"}
    assert "6 escalations" in digests["UMGR1"] and "Carol" in digests["UMGR1"] and "UTRD6" in digests["UMGR1"]
    assert digests["UMGR1"].count(f'"action_id": "{Action.ESCALATION_ACK.value}"') == 6
    assert Action.ESCALATION_ACK_ALL in digests["UMGR1"]

    carol = next(e for e in escalations(engine) if e.trader_id == "UTRD3")
    bot.click("UMGR1", Action.ESCALATION_ACK, str(carol.id), channel="DMGR1")
    bot.settle()
    assert deliver(bot, fake_slack) == 2
    updates = fake_slack.of("chat.update")
    assert {u.params["channel"] for u in updates} == {"DMGR1", "DMGR2"}  # the ids Slack returned
    assert "👀 *Acknowledged* by Mia Manager" in blocks_text(updates[-1].params)

    key = next(
        r.dedup_key for r in outbox_rows(engine) if r.dedup_key.startswith("digest:") and r.dedup_key.endswith("UMGR2")
    )
    bot.click("UMGR2", Action.ESCALATION_ACK_ALL, key, channel="DMGR2")
    bot.settle()
    assert {e.state for e in escalations(engine)} == {"acknowledged"}
    assert deliver(bot, fake_slack) == 2  # one more update of each grouped message, not one per escalation
    assert "⏳ 0 open · 👀 6 acknowledged" in blocks_text(fake_slack.of("chat.update")[-1].params)


def test_every_later_dm_call_uses_the_channel_slack_returned(bot: Bot, fake_slack: FakeSlack) -> None:
    """Slack answers a DM sent to a user ID with the D… id; chat.update with a user ID fails
    (the fake refuses it like Slack), so every update must have used the returned id."""
    engine = bot.runtime.engine
    make_desk(engine, traders=["UTRD1"])
    post_checklist(bot)
    bot.clock.set(utc(2026, 11, 25, 14, 0))
    run_pass(engine, bot.clock())
    deliver(bot, fake_slack)
    (esc,) = escalations(engine)
    bot.click("UMGR1", Action.ESCALATION_ACK, str(esc.id), channel="DMGR1")
    bot.settle()
    deliver(bot, fake_slack)
    assert [r.failed_at for r in outbox_rows(engine)] == [None] * len(outbox_rows(engine))
    assert all(u.params["channel"].startswith("D") for u in fake_slack.of("chat.update"))
    assert not [c for c in fake_slack.rejected if c.method == "chat.update"]


# --- Slack's limits, as a strict stand-in enforces them ---------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("n", [200, 1000])
def test_big_desks_are_accepted_by_a_strict_slack(bot: Bot, fake_slack: FakeSlack, n: int) -> None:
    from bot.checklist import service as checklist
    from bot.checklist.models import Check, ChecklistRun, ContingencyGap, Platform
    from bot.checklist.service import ProblemReport

    fake_slack.strict = True
    engine = bot.runtime.engine
    users = [f"UT{i:06d}" for i in range(n)]
    make_desk(engine, traders=users)
    name_people(engine, {u: f"<!here> Trader number {i} with a long name" for i, u in enumerate(users)})
    result = post_checklist(bot)
    long = ProblemReport(
        failed=frozenset({Check.PERMISSIONS, Check.CONTINGENCY}),
        platform=Platform.TWS,
        missing_permissions=", ".join(f"ES{i} futures" for i in range(60))[:500],
        permission_gaps=frozenset({PermissionGap.TRADING}),
        gaps=frozenset({ContingencyGap.SECONDARY_INTERFACE}),
        note="n" * 500,
    )
    with session_scope(engine) as session:  # an outage morning: most report long problems
        run = session.get(ChecklistRun, result.run_id)
        assert run is not None
        for i, user in enumerate(users):
            if i % 3:
                checklist.report_problem(session=session, run=run, user_id=user, report=long, now=bot.clock())
            elif i % 2:
                checklist.confirm(session=session, run=run, user_id=user, now=bot.clock())
    assert bot.runtime.refresher.refresh(result.run_id or 0) is None
    assert fake_slack.rejected == [] and len(fake_slack.of("chat.update")) == 1
    status = command(bot, "UMGR1", "desk equities")
    assert 0 < len(status) <= 12000 and "…and " in status


def test_a_refused_roster_is_not_retried_unchanged(bot: Bot, fake_slack: FakeSlack) -> None:
    from tests.support.fakes.slack import Fault

    make_desk(bot.runtime.engine)
    result = post_checklist(bot)
    refused = Fault(body={"ok": False, "error": "msg_blocks_too_long"})
    fake_slack.script("chat.update", refused, refused)
    bot.click("UTRD1", Action.CONFIRM_ALL, str(result.run_id))
    bot.settle()
    assert len(fake_slack.rejected) == 2  # the full roster, then once in compact form
    refresher = bot.runtime.refresher
    assert refresher.refresh(result.run_id or 0) is None  # given up for this version: no loop
    assert len(fake_slack.rejected) == 2 and fake_slack.of("chat.update") == []
    bot.click("UTRD2", Action.CONFIRM_ALL, str(result.run_id))  # a new answer draws again
    bot.settle()
    assert len(fake_slack.of("chat.update")) == 1 and "✅ 2 ready" in blocks_text(
        fake_slack.of("chat.update")[0].params
    )


def test_views_open_never_uses_an_expired_trigger(bot: Bot, fake_slack: FakeSlack) -> None:
    from tests.support.fakes.slack import Fault

    make_desk(bot.runtime.engine)
    result = post_checklist(bot)

    def limited(seconds: str) -> Fault:
        return Fault(status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": seconds})

    # A 429 is never retried (a pool thread asleep on Retry-After, however short, makes the
    # clicks queued behind it miss their own triggers): the user is told, through the click's
    # response_url, and offered the one-click reports instead.
    for user, seconds in (("UTRD1", "30"), ("UTRD3", "1")):
        fake_slack.script("views.open", limited(seconds))
        bot.click(user, Action.REPORT_PROBLEM, str(result.run_id))
        bot.settle()
        (reply,) = fake_slack.responded(user)
        assert "couldn't open" in reply["text"] and Action.QUICK_CANT_LOG_IN in json.dumps(reply["blocks"])
    assert len(fake_slack.rejected) == 2 and fake_slack.of("views.open") == []
    assert fake_slack.of("chat.postEphemeral") == []  # rate-tiered too

    # A trigger Slack already considers expired: refused, and the user is told (no response_url
    # in this payload: an ephemeral message).
    payload = {
        "type": "block_actions",
        "user": {"id": "UTRD2"},
        "api_app_id": "A1",
        "team": {"id": "T1"},
        "container": {"type": "message", "channel_id": "C0123", "message_ts": "1.0"},
        "channel": {"id": "C0123"},
        "trigger_id": "trig-UTRD2-1",
        "actions": [
            {"action_id": Action.REPORT_PROBLEM, "value": str(result.run_id), "type": "button", "block_id": "b"}
        ],
    }
    bot.post_form({"payload": json.dumps(payload)})
    bot.settle()
    assert any("couldn't open" in t for t in said_to(fake_slack, "UTRD2"))
    assert fake_slack.of("views.open") == []


def test_roster_updates_honour_retry_after_and_share_one_budget(bot: Bot, fake_slack: FakeSlack) -> None:
    """A 429 on chat.update pauses every roster update for Retry-After (no retry inside the
    call: the refresher's client has no retry handlers), and the roster's budget spaces its
    calls across all desks."""
    from bot.checklist.roster_refresher import RosterRefresher
    from tests.support.fakes.slack import Fault

    make_desk(bot.runtime.engine)
    result = post_checklist(bot)
    refresher = bot.runtime.refresher
    fake_slack.script(
        "chat.update", Fault(status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": "30"})
    )
    with session_scope(bot.runtime.engine) as session:
        from bot.checklist import service as checklist
        from bot.checklist.models import ChecklistRun

        run = session.get(ChecklistRun, result.run_id)
        assert run is not None
        checklist.confirm(session=session, run=run, user_id="UTRD1", now=bot.clock())
    wait = refresher.refresh(result.run_id or 0)
    assert wait is not None and wait >= 29  # Retry-After, not a blind retry
    assert len(fake_slack.rejected) == 1 and fake_slack.of("chat.update") == []
    assert refresher.refresh(result.run_id or 0) is not None  # still paused: no call made
    assert len(fake_slack.rejected) == 1

    # One call every 100 minutes, whichever desk (and whichever process: the budget is a row) asks.
    engine = bot.runtime.engine
    one, two = (RosterRefresher(engine, bot.client, rate_per_minute=0.01) for _ in range(2))
    assert one.budgets.take(one.budget).delay is not None
    one.budgets.done(one.budget)
    later = two.budgets.take(two.budget, within=60)
    assert later.delay is None and later.free_in > 5000
