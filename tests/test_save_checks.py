"""Promises kept when a desk is saved (issue 17), through the CLI and the signed Slack modal,
on both databases: pager URLs go through the one guard (bot.netguard), the bot must be in the
desk's channels, one-line errors name their option, and commands with nothing to show say so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.cli import main
from bot.desks.models import Desk
from bot.slack.ids import Action, Callback
from tests.support.desk_fixtures import settings_values
from tests.support.factories import make_desk
from tests.support.fake_gateway import closed_port
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import BOT_TOKEN, Bot

INVITE = "Invite the bot with /invite @IB Preflight in that channel"


def desk_row(engine: Engine) -> dict[str, Any]:
    with Session(engine) as session:
        desk = session.exec(select(Desk).where(Desk.name == "equities")).one()
        return desk.model_dump()


def open_settings(bot: Bot, fake_slack: FakeSlack) -> str:
    desk = desk_row(bot.runtime.engine)
    bot.home_click("UMGR1", Action.HOME_DESK_SETTINGS, str(desk["id"]))
    bot.settle()
    (opened,) = fake_slack.of("views.open")
    return str(opened.params["view"]["private_metadata"])


def field_errors(bot: Bot, meta: str, **changes: Any) -> dict[str, str]:
    response = bot.submit_view("UMGR1", Callback.DESK_SETTINGS_MODAL, settings_values(**changes), meta)
    assert response.status_code == 200
    body = response.json() if response.content.strip() else {}
    assert body.get("response_action") == "errors", (changes, body)
    return dict(body["errors"])


# --- the Slack modal --------------------------------------------------------------------------


def test_the_modal_refuses_internal_pager_targets_as_a_field_error(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    bot.runtime.deps.allow_private_pager = False  # the default outside tests (the harness allows it)
    meta = open_settings(bot, fake_slack)
    before = desk_row(engine)
    for url, needle in (
        ("http://169.254.169.254/latest/meta-data/iam", "must start with https://"),
        ("https://169.254.169.254/latest/meta-data/iam", "metadata address"),
        ("https://127.0.0.1/hook", "loopback address"),
        ("https://192.168.1.10/hook", "private address"),
    ):
        errors = field_errors(bot, meta, pager_kind="webhook", pager_url=url)
        assert list(errors) == ["pager_url"] and needle in errors["pager_url"], (url, errors)
    # Allowed private targets (an on-premises pager) still never reach the metadata service.
    bot.runtime.deps.allow_private_pager = True
    errors = field_errors(bot, meta, pager_kind="webhook", pager_url="https://169.254.169.254/x")
    assert "metadata address" in errors["pager_url"]
    assert desk_row(engine) == before


def test_the_modal_refuses_a_channel_the_bot_is_not_in(bot: Bot, fake_slack: FakeSlack) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    meta = open_settings(bot, fake_slack)
    before = desk_row(engine)
    fake_slack.leave("C0123")
    errors = field_errors(bot, meta)
    assert list(errors) == ["channel"] and INVITE in errors["channel"] and "C0123" in errors["channel"]
    fake_slack.join("C0123")
    fake_slack.leave("CESC")
    errors = field_errors(bot, meta, escalation_channel="CESC")
    assert list(errors) == ["escalation_channel"] and INVITE in errors["escalation_channel"]
    fake_slack.missing.add("CGONE")
    errors = field_errors(bot, meta, escalation_channel="CGONE")
    assert "was not found" in errors["escalation_channel"]
    assert desk_row(engine) == before
    # Invited: the same save goes through.
    fake_slack.join("CESC")
    response = bot.submit_view("UMGR1", Callback.DESK_SETTINGS_MODAL, settings_values(escalation_channel="CESC"), meta)
    assert response.status_code == 200 and not response.content.strip(b"{} ")
    assert desk_row(engine)["escalation_channel_id"] == "CESC"


# --- the command line -------------------------------------------------------------------------

ADD = ["desk", "add", "equities", "--channel", "C0123", "--managers", "UMGR1", "--traders", "UTRD1"]
ADD += ["--timezone", "America/New_York", "--post-at", "08:00", "--deadline", "09:00"]


@pytest.fixture
def cli(engine: Engine, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Engine:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", fake_slack.base_url)
    for name in ("PREFLIGHT_SECRET_KEY", "PREFLIGHT_SECRET_KEYS", "PREFLIGHT_CLOCK_OFFSET"):
        monkeypatch.delenv(name, raising=False)
    return engine


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    assert err.count("\n") == 1, err
    return err


def desks_in(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return [d.name for d in session.exec(select(Desk)).all()]


def test_desk_add_refuses_a_channel_the_bot_is_not_in(
    cli: Engine, fake_slack: FakeSlack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_slack.leave("C0123")
    code, out, err = run(capsys, ADD)
    line = one_line(err)
    assert code == 2 and out == "" and INVITE in line and line.rstrip().endswith("(--channel)")
    assert desks_in(cli) == []
    # Slack unreachable, or no token to ask with: said in one line, nothing saved.
    monkeypatch.setenv("SLACK_API_URL", f"http://127.0.0.1:{closed_port()}/api/")
    code, _, err = run(capsys, ADD)
    assert code == 2 and "Slack could not be reached" in one_line(err) and "(--channel)" in err
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    code, _, err = run(capsys, ADD)
    assert code == 2 and "SLACK_BOT_TOKEN is not set" in one_line(err)
    assert desks_in(cli) == []
    # Invited: added.
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", fake_slack.base_url)
    fake_slack.join("C0123")
    assert run(capsys, ADD)[0] == 0
    assert desks_in(cli) == ["equities"]


def test_desk_set_refuses_an_escalation_channel_the_bot_is_not_in(
    cli: Engine, fake_slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, ADD)[0] == 0
    fake_slack.leave("CESC")
    code, _, err = run(capsys, ["desk", "set", "equities", "--escalation-channel", "CESC"])
    line = one_line(err)
    assert code == 2 and INVITE in line and line.rstrip().endswith("(--escalation-channel)")
    assert desk_row(cli)["escalation_channel_id"] is None


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        ([*ADD[:4], "#general", *ADD[5:]], "--channel"),
        ([*ADD[:6], "bob", *ADD[7:]], "--managers"),
        ([*ADD[:8], "U1,bob", *ADD[9:]], "--traders"),
        ([*ADD[:-1], "25:00"], "--deadline"),
    ],
)
def test_every_one_line_error_names_its_option(
    cli: Engine, capsys: pytest.CaptureFixture[str], argv: list[str], flag: str
) -> None:
    code, _, err = run(capsys, argv)
    assert code == 2 and f"({flag})" in one_line(err)


def test_desk_members_errors_name_the_option(cli: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, ADD)[0] == 0
    code, _, err = run(capsys, ["desk", "members", "equities", "--add-traders", "bob"])
    assert code == 2 and "(--add-traders)" in one_line(err)


def test_desk_show_prints_every_setting_but_the_secret(
    cli: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.crypto import new_key

    monkeypatch.setenv("PREFLIGHT_SECRET_KEYS", new_key())
    assert run(capsys, ADD)[0] == 0
    argv = ["desk", "set", "equities", "--reminder-minutes", "20", "--grace-minutes", "25"]
    argv += ["--escalation-channel", "CESC", "--pager-kind", "pagerduty", "--pager-secret", "rk-very-secret"]
    argv += ["--managers-channel", "CMGRS", "--summary-delay-minutes", "45"]
    assert run(capsys, argv)[0] == 0
    code, out, err = run(capsys, ["desk", "show", "equities"])
    assert code == 0 and err == ""
    assert "rk-very-secret" not in out
    for needle in (
        "channel:",
        "C0123",
        "America/New_York",
        "20 min before the deadline",
        "at least 25 min",
        "CESC",
        "pagerduty, URL default, secret set, stored encrypted",
        "45 min after the week's close, to CMGRS",
        "UMGR1",
        "UTRD1",
    ):
        assert needle in out, (needle, out)
    code, _, err = run(capsys, ["desk", "show", "nosuch"])
    assert code == 2 and "there is no desk named 'nosuch'" in one_line(err)


def test_profile_gaps_on_an_empty_database_says_so(cli: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, ["profile", "gaps"])
    assert code == 0 and err == "" and out.startswith("No desks yet in ") and "no readiness gaps" in out
    assert run(capsys, ADD)[0] == 0
    code, out, _ = run(capsys, ["profile", "gaps"])
    assert code == 0 and "No open readiness gaps" in out
