"""The CLI (``preflight`` == ``python -m bot``), in-process and as a real subprocess, on both DBs."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bot.cli import main
from bot.config import describe_database
from bot.migrate import upgrade
from tests.support.cli import ADD, pretend_now, run
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import BOT_TOKEN, SIGNING_SECRET, utc

ROOT = Path(__file__).resolve().parent.parent


def with_option(argv: list[str], option: str, value: str) -> list[str]:
    out = list(argv)
    out[out.index(option) + 1] = value
    return out


def without_option(argv: list[str], option: str) -> list[str]:
    out = list(argv)
    i = out.index(option)
    del out[i : i + 2]
    return out


def sent(fake_slack: FakeSlack) -> list[str]:
    """What the CLI asked Slack to do, beyond ``desk add`` checking the bot is in the channel."""
    return [c.method for c in fake_slack.calls if c.method != "conversations.info"]


def snapshot(engine: Engine) -> tuple[list[Any], list[Any], list[Any]]:
    with engine.connect() as conn:
        return (
            [tuple(r) for r in conn.execute(text("SELECT * FROM desk ORDER BY id"))],
            [tuple(r) for r in conn.execute(text("SELECT * FROM desk_member ORDER BY id"))],
            [tuple(r) for r in conn.execute(text("SELECT * FROM checklist_run ORDER BY id"))],
        )


def test_desk_add_then_list(env: dict[str, str], engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, ["desk", "list"])
    assert code == 0 and err == ""
    assert "No desks yet" in out
    code, out, err = run(capsys, ADD)
    assert code == 0, err
    assert err == ""
    assert "Added desk equities" in out
    assert "2 manager(s), 3 trader(s)" in out
    code, out, err = run(capsys, ["desk", "list"])
    assert code == 0 and err == ""
    header, row = out.strip().splitlines()
    assert header.split() == ["NAME", "CHANNEL", "TIMEZONE", "POST", "DEADLINE", "MANAGERS", "TRADERS"]
    assert row.split() == ["equities", "C0123", "America/New_York", "08:00", "09:00", "U01,U02", "U03,U04,U05"]
    desks_rows, members, _ = snapshot(engine)
    assert len(desks_rows) == 1 and len(members) == 5


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["checklist", "post", "nosuch"], "no desk named 'nosuch'"),
        (with_option(ADD, "--timezone", "Mars/Olympus"), "unknown time zone"),
        (with_option(ADD, "--timezone", "EST5EDT-nonsense"), "unknown time zone"),
        (with_option(ADD, "--post-at", "8am"), "HH:MM"),
        (with_option(ADD, "--deadline", "25:00"), "HH:MM"),
        (with_option(ADD, "--deadline", "07:59"), "must be after the post time"),
        (with_option(ADD, "--deadline", "08:00"), "must be after the post time"),
        (with_option(ADD, "--channel", "general"), "not a Slack channel ID"),
        (with_option(ADD, "--channel", "U0123"), "not a Slack channel ID"),
        (with_option(ADD, "--managers", "U01,bob"), "not a Slack user ID"),
        (with_option(ADD, "--traders", "U03,,U04"), "not a Slack user ID"),
        (with_option(ADD, "--traders", "C0123"), "not a Slack user ID"),
        (with_option(["desk", "add", "Equities Desk", *ADD[3:]], "--post-at", "08:00"), "desk name"),
        (without_option(ADD, "--channel"), "--channel"),
        (without_option(ADD, "--deadline"), "--deadline"),
        (["desk", "add"], "required"),
        (["desk", "show"], "the following arguments are required: NAME"),  # clikit.desk_command
        (["summary", "post"], "the following arguments are required: NAME"),
        (["desk"], "required"),
        (["frobnicate"], "invalid choice"),
        (["checklist", "post", "equities", "--date", "2026-13-01"], "YYYY-MM-DD"),
        (["checklist", "post", "equities", "--date", "tomorrow"], "YYYY-MM-DD"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    env: dict[str, str], engine: Engine, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    assert run(capsys, ADD)[0] == 0  # an existing desk, to prove nothing changes
    before = snapshot(engine)
    code, out, err = run(capsys, argv)
    assert code == 2
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("preflight")
    assert needle in err
    assert "Traceback" not in err
    assert snapshot(engine) == before


def test_duplicate_desk_name_is_refused(
    env: dict[str, str], engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, ADD)[0] == 0
    before = snapshot(engine)
    code, out, err = run(capsys, with_option(ADD, "--channel", "C0999"))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "already exists" in err
    assert snapshot(engine) == before


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SLACK_BOT_TOKEN", "xoxp-user-token"),
        ("SLACK_APP_TOKEN", "not-an-app-token"),
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("DATABASE_URL", "mysql://db/preflight"),
        ("DATABASE_URL", "preflight.db"),
        ("SLACK_API_URL", "slack.com/api"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_malformed_setting_is_one_line_naming_it(
    env: dict[str, str],
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
) -> None:
    monkeypatch.setenv(name, value)
    code, out, err = run(capsys, ADD)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and name in err, err
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM desk")).scalar_one() == 0


def test_missing_slack_token_for_posting_is_one_line(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(capsys, ADD)[0] == 0
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    code, out, err = run(capsys, ["checklist", "post", "equities", "--date", "2026-11-27"])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "SLACK_BOT_TOKEN" in err


def test_checklist_post_on_a_holiday_posts_nothing(
    env: dict[str, str], engine: Engine, fake_slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, ADD)[0] == 0
    code, out, err = run(capsys, ["checklist", "post", "equities", "--date", "2026-11-26"])
    assert code == 0 and err == ""
    assert "not an NYSE trading day" in out and "Thanksgiving" in out and "nothing posted" in out
    assert fake_slack.of("chat.postMessage") == []
    assert snapshot(engine)[2] == []


def test_checklist_post_twice_posts_once(
    env: dict[str, str],
    engine: Engine,
    fake_slack: FakeSlack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pretend_now(monkeypatch, datetime(2026, 11, 27, 13, 5, tzinfo=UTC))  # Fri 27 Nov, 08:05 New York
    assert run(capsys, ADD)[0] == 0
    code, out, err = run(capsys, ["checklist", "post", "equities", "--date", "2026-11-27"])
    assert code == 0 and err == ""
    assert out.startswith("Posted equities's checklist for 2026-11-27 to C0123")
    code, out, err = run(capsys, ["checklist", "post", "equities", "--date", "2026-11-27"])
    assert code == 0 and err == ""
    assert "already posted" in out
    (call,) = fake_slack.of("chat.postMessage")
    assert call.params["channel"] == "C0123"
    assert call.token == BOT_TOKEN
    runs = snapshot(engine)[2]
    assert len(runs) == 1


@pytest.mark.slow
def test_python_m_bot_runs_as_a_subprocess(
    env: dict[str, str], engine: Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run(capsys, ADD)[0] == 0
    child_env = {**os.environ, **env}
    listed = subprocess.run(
        [sys.executable, "-m", "bot", "desk", "list"],
        cwd=tmp_path,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert "equities" in listed.stdout and "U03,U04,U05" in listed.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "bot", "checklist", "post", "nosuch"],
        cwd=tmp_path,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stdout == ""
    where = describe_database(env["DATABASE_URL"])
    assert bad.stderr.strip().splitlines() == [
        f"preflight: error: there is no desk named 'nosuch' in the database {where} (see 'preflight desk list')"
    ]


# --- manual commands can't spend the future (issue 8) ------------------------------------------


def _table(engine: Engine, name: str) -> list[Any]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {name}"))]


def test_checklist_post_for_a_future_day_is_refused_and_the_day_still_posts(
    env: dict[str, str],
    engine: Engine,
    fake_slack: FakeSlack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pretend_now(monkeypatch, datetime(2026, 11, 25, 13, 5, tzinfo=UTC))
    assert run(capsys, ADD)[0] == 0
    code, out, err = run(capsys, ["checklist", "post", "equities", "--date", "2026-12-01"])
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "2026-12-01 is in the future: the scheduler posts it at 08:00 EST on Tue 01 Dec 2026" in err
    assert sent(fake_slack) == [] and snapshot(engine)[2] == []
    # The real morning is untouched: on Dec 1 it posts.
    pretend_now(monkeypatch, datetime(2026, 12, 1, 13, 5, tzinfo=UTC))
    code, out, err = run(capsys, ["checklist", "post", "equities"])
    assert code == 0 and out.startswith("Posted equities's checklist for 2026-12-01")


def test_checklist_post_after_the_close_is_refused(
    env: dict[str, str],
    engine: Engine,
    fake_slack: FakeSlack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pretend_now(monkeypatch, datetime(2026, 11, 25, 21, 5, tzinfo=UTC))  # 16:05 New York
    assert run(capsys, ADD)[0] == 0
    code, out, err = run(capsys, ["checklist", "post", "equities"])
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "market closed at 16:00 EST on Wed 25 Nov 2026" in err
    assert sent(fake_slack) == [] and snapshot(engine)[2] == []


@pytest.mark.parametrize("week", ["2026-W48", "2026-W50"])
def test_summary_post_for_an_unfinished_or_future_week_is_refused(
    env: dict[str, str],
    engine: Engine,
    fake_slack: FakeSlack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    week: str,
) -> None:
    pretend_now(monkeypatch, datetime(2026, 11, 25, 15, 0, tzinfo=UTC))  # Wed of W48
    assert run(capsys, ADD)[0] == 0
    code, out, err = run(capsys, ["summary", "post", "equities", "--week", week])
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"{week} isn't finished: the scheduler posts its summary at" in err and "--preview" in err
    if week == "2026-W48":  # Friday 27 Nov closes early (13:00) and the summary follows 30 min later
        assert "Fri 27 Nov 2026 13:30 EST" in err
    assert sent(fake_slack) == [] and _table(engine, "weekly_summary") == []


def test_summary_preview_prints_and_writes_the_chart_and_posts_nothing(
    env: dict[str, str],
    engine: Engine,
    fake_slack: FakeSlack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    pretend_now(monkeypatch, datetime(2026, 11, 25, 15, 0, tzinfo=UTC))
    assert run(capsys, ADD)[0] == 0
    chart = tmp_path / "w48.png"
    code, out, err = run(capsys, ["summary", "post", "equities", "--preview", "--chart", str(chart)])
    assert code == 0 and err == ""
    assert "Weekly readiness for equities, 2026-W48" in out and "Nothing was posted" in out
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert sent(fake_slack) == [] and _table(engine, "weekly_summary") == []
    code, out, err = run(capsys, ["summary", "post", "equities", "--chart", str(chart)])
    assert code == 2 and "--chart goes with --preview" in err


def test_escalations_run_at_a_future_instant_is_refused(
    env: dict[str, str],
    engine: Engine,
    fake_slack: FakeSlack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pretend_now(monkeypatch, datetime(2026, 11, 25, 13, 5, tzinfo=UTC))
    assert run(capsys, ADD)[0] == 0
    assert run(capsys, ["checklist", "post", "equities"])[0] == 0
    code, out, err = run(capsys, ["escalations", "run", "equities", "--at", "2026-11-25T09:00-05:00"])
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "is in the future: the scheduler runs the pass every 30 seconds" in err
    assert _table(engine, "escalation") == [] and _table(engine, "outbox") == []
    # A past instant replays the pass.
    code, out, err = run(capsys, ["escalations", "run", "equities", "--at", "2026-11-25T08:04-05:00"])
    assert code == 0 and "equities: 0 reminder(s) queued" in out


def test_a_deadline_after_the_close_and_the_grace_period(
    env: dict[str, str], engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, with_option(ADD, "--deadline", "16:30"))
    assert code == 2 and err.count("\n") == 1
    assert "after the NYSE close" in err and "(--deadline)" in err
    assert snapshot(engine)[0] == []
    assert run(capsys, ADD)[0] == 0
    code, out, err = run(capsys, ["desk", "set", "equities", "--grace-minutes", "20"])
    assert code == 0 and "a late checklist gets at least 20 min" in out
    code, out, err = run(capsys, ["desk", "set", "equities", "--grace-minutes", "-1"])
    assert code == 2 and "grace period" in err and "(--grace-minutes)" in err


def test_desk_remove_members_rename_and_names_in_the_listing(
    env: dict[str, str], engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.factories import name_people

    assert run(capsys, ADD)[0] == 0
    name_people(engine, {"U03": "Ada Lovelace", "U01": "Mia"})
    code, out, _ = run(capsys, ["desk", "list"])
    assert out.strip().splitlines()[1].endswith("Mia (U01),U02  Ada Lovelace (U03),U04,U05")  # names and IDs

    before = snapshot(engine)
    for argv, needle in (
        (["desk", "remove", "equities"], "--yes"),
        (["desk", "remove", "nosuch", "--yes"], "no desk named 'nosuch'"),
        (["desk", "members", "equities"], "nothing to change"),
        (["desk", "members", "equities", "--add-traders", "bob"], "not a Slack user ID"),
        (["desk", "members", "equities", "--remove-managers", "U01,U02"], "at least one manager"),
        (["desk", "rename", "equities", "Equities Desk"], "desk name"),
    ):
        code, out, err = run(capsys, argv)
        assert (code, out) == (2, ""), argv
        assert err.count("\n") == 1 and needle in err, (argv, err)
    assert snapshot(engine) == before

    code, out, err = run(capsys, ["desk", "members", "equities", "--add-traders", "U06", "--remove-traders", "U03"])
    assert code == 0 and "added 1 traders, removed 1 traders" in out and "now 2 manager(s), 3 trader(s)" in out
    assert run(capsys, ["desk", "rename", "equities", "global-equities"])[0] == 0
    code, out, _ = run(capsys, ["desk", "list"])
    assert "global-equities" in out and "U06" in out and "U03" not in out
    with engine.connect() as conn:
        actions = [r[0] for r in conn.execute(text("SELECT action FROM audit_event ORDER BY id"))]
        actors = {r[0] for r in conn.execute(text("SELECT actor FROM audit_event"))}
    assert actions == ["desk_created", "desk_changed", "desk_changed"] and actors == {"cli"}

    code, out, err = run(capsys, ["desk", "remove", "global-equities", "--yes"])
    assert code == 0 and "Removed desk global-equities" in out
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM desk")).scalar_one() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM desk_member")).scalar_one() == 0
        removed = conn.execute(text("SELECT action, subject, desk_id FROM audit_event")).all()
    assert [tuple(r) for r in removed] == [("desk_removed", "desk:global-equities", None)]


# --- one line when the database or Slack fails ------------------------------------------------


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens there


def one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.strip()


@pytest.fixture
def read_only_sqlite(tmp_path: Path) -> str:
    """A migrated SQLite database opened read-only (chmod is no obstacle when tests run as root)."""
    path = tmp_path / "ro" / "preflight.db"
    path.parent.mkdir()
    upgrade(f"sqlite:///{path}")
    return f"sqlite:///file:{path}?mode=ro&uri=true"


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("postgresql://postgres@127.0.0.1:{port}/preflight?connect_timeout=5", "127.0.0.1"),
        ("postgresql://postgres@127.0.0.1:5432/preflight_no_such_database", "does not exist"),
        ("sqlite:////proc/no-such-folder/preflight.db", "unable to open database file"),
        ("sqlite:////nonexistent-dir/cannot/create/preflight.db", "unable to open database file"),
    ],
    ids=["postgres-unreachable", "postgres-no-database", "sqlite-unwritable-folder", "sqlite-missing-folder"],
)
@pytest.mark.parametrize("argv", [["desk", "list"], ADD, ["migrate"], ["serve"]])
def test_a_database_that_cannot_be_used_is_one_line_exit_2(
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    needle: str,
    argv: list[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", url.format(port=closed_port()))
    code, out, err = run(capsys, argv)
    assert code == 2 and out == ""
    line = one_line(err)
    assert line.startswith("preflight: error: cannot use the database ")
    assert needle in line


@pytest.mark.parametrize(
    "argv", [ADD, ["desk", "set", "equities", "--reminder-minutes", "10"], ["checklist", "post", "equities"]]
)
def test_a_read_only_database_is_one_line_exit_2_when_written(
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    read_only_sqlite: str,
    argv: list[str],
) -> None:
    writable = read_only_sqlite.replace("file:", "").replace("?mode=ro&uri=true", "")
    pretend_now(monkeypatch, utc(2026, 11, 25, 13, 30))  # a trading morning: the post would go ahead
    monkeypatch.setenv("DATABASE_URL", writable)
    if argv is not ADD:
        assert run(capsys, ADD)[0] == 0
    monkeypatch.setenv("DATABASE_URL", read_only_sqlite)
    code, out, err = run(capsys, with_option(ADD, "--channel", "C0999") if argv is ADD else argv)
    assert code == 2 and out == ""
    line = one_line(err)
    assert line.startswith("preflight: error: cannot use the database ") and "readonly database" in line


def test_slack_unreachable_during_checklist_post_is_one_line_and_frees_the_post(
    env: dict[str, str],
    engine: Engine,
    fake_slack: FakeSlack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pretend_now(monkeypatch, datetime(2026, 11, 27, 13, 5, tzinfo=UTC))  # 08:05 New York: the morning is open
    assert run(capsys, ADD)[0] == 0
    dead = f"http://127.0.0.1:{closed_port()}/api/"
    monkeypatch.setenv("SLACK_API_URL", dead)
    code, out, err = run(capsys, ["checklist", "post", "equities", "--date", "2026-11-27"])
    assert code == 2 and out == ""
    line = one_line(err)
    assert "Slack could not be reached" in line and "Connection refused" in line and "nothing posted" in line
    with engine.connect() as conn:
        claimed, error = conn.execute(text("SELECT post_claimed_at, post_error FROM checklist_run")).one()
    assert claimed is None and error == "Connection refused"  # the lease is released at once
    # Slack is back: the next try posts (no "being posted by another process" for 2 minutes).
    monkeypatch.setenv("SLACK_API_URL", env["SLACK_API_URL"])
    code, out, err = run(capsys, ["checklist", "post", "equities", "--date", "2026-11-27"])
    assert code == 0 and err == ""
    assert out.startswith("Posted equities's checklist for 2026-11-27 to C0123")
    assert len(fake_slack.of("chat.postMessage")) == 1


def test_slack_unreachable_during_summary_post_is_one_line(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pretend_now(monkeypatch, datetime(2026, 11, 27, 13, 5, tzinfo=UTC))  # 08:05 New York: the morning is open
    assert run(capsys, ADD)[0] == 0
    dead = f"http://127.0.0.1:{closed_port()}/api/"
    monkeypatch.setenv("SLACK_API_URL", dead)
    code, out, err = run(capsys, ["summary", "post", "equities", "--week", "2026-W47"])
    assert code == 2 and out == ""
    line = one_line(err)
    assert "Slack could not be reached" in line and "Connection refused" in line and "nothing posted" in line


@pytest.mark.parametrize(
    "argv",
    [
        ["checklist", "post", "nosuch"],
        ["summary", "post", "nosuch"],
        ["escalations", "run", "nosuch"],
        ["desk", "set", "nosuch", "--reminder-minutes", "10"],
        ["export", "--desk", "nosuch", "--from", "2026-11-01", "--to", "2026-11-30"],
    ],
)
def test_a_desk_that_is_not_found_names_the_database_looked_in(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run(capsys, argv)
    assert code == 2 and out == ""
    line = one_line(err)
    where = describe_database(env["DATABASE_URL"])
    assert (
        line == f"preflight: error: there is no desk named 'nosuch' in the database {where} (see 'preflight desk list')"
    )
    assert "s3cret" not in line


def test_empty_listings_name_the_database(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    where = describe_database(env["DATABASE_URL"])
    assert run(capsys, ["desk", "list"])[1].splitlines()[0] == f"No desks yet in {where}."
    assert run(capsys, ["escalations", "list", "--open"])[1].splitlines()[0] == f"No open escalations in {where}."
    assert run(capsys, ["escalations", "list"])[1].splitlines()[0] == f"No escalations in {where}."


# --- where the database lives when DATABASE_URL is unset -----------------------------------


def cli(cwd: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_the_default_database_is_the_same_from_every_folder_and_is_named_when_empty(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    here, there = tmp_path / "desk-admin", tmp_path / "somewhere" / "else"
    for folder in (home, here, there):
        folder.mkdir(parents=True)
    child = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LOG_LEVEL", "SLACK_APP_TOKEN")}
    child |= {"HOME": str(home), "XDG_DATA_HOME": str(data), "SLACK_BOT_TOKEN": BOT_TOKEN}
    child |= {"SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake_slack.base_url}
    database = data / "ib-preflight" / "preflight.db"

    added = cli(here, child, *ADD)
    assert added.returncode == 0, added.stderr
    assert database.is_file()
    assert list(here.iterdir()) == [] and list(there.iterdir()) == []  # no ./preflight.db anywhere
    listed = cli(there, child, "desk", "list")
    assert listed.returncode == 0 and "equities" in listed.stdout  # another folder, the same desks

    # Another user (another data directory): an empty database, and the CLI says which one.
    other = {**child, "XDG_DATA_HOME": str(tmp_path / "other-data")}
    empty = tmp_path / "other-data" / "ib-preflight" / "preflight.db"
    listed = cli(there, other, "desk", "list")
    assert listed.returncode == 0 and listed.stdout.splitlines()[0] == f"No desks yet in {empty}."
    escalations = cli(there, other, "escalations", "list", "--open")
    assert escalations.stdout.splitlines()[0] == f"No open escalations in {empty}."
    missing = cli(there, other, "checklist", "post", "equities")
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.strip().splitlines() == [
        f"preflight: error: there is no desk named 'equities' in the database {empty} (see 'preflight desk list')"
    ]


@pytest.mark.slow
def test_a_preflight_db_left_in_the_folder_is_refused_in_one_line_not_ignored(tmp_path: Path) -> None:
    home, data, folder = tmp_path / "home", tmp_path / "data", tmp_path / "old-checkout"
    home.mkdir()
    folder.mkdir()
    (folder / "preflight.db").write_bytes(b"")
    child = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LOG_LEVEL", "SLACK_APP_TOKEN")}
    child |= {"HOME": str(home), "XDG_DATA_HOME": str(data), "SLACK_BOT_TOKEN": BOT_TOKEN}
    child |= {"SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": f"http://127.0.0.1:{closed_port()}/api/"}
    for argv in (["desk", "list"], ["migrate"], ["serve"]):
        refused = cli(folder, child, *argv)
        assert refused.returncode == 2 and refused.stdout == "", refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        assert "DATABASE_URL" in line and f"sqlite:///{folder}/preflight.db" in line
    assert not data.exists()  # nothing was created in the data directory
    used = cli(folder, {**child, "DATABASE_URL": "sqlite:///preflight.db"}, "desk", "list")
    assert used.returncode == 0 and f"No desks yet in {folder / 'preflight.db'}." in used.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("setting", "value", "argv", "needle"),
    [
        ("DATABASE_URL", "postgresql://postgres@127.0.0.1:{port}/x", ["desk", "list"], "cannot use the database"),
        ("DATABASE_URL", "sqlite:////proc/nowhere/preflight.db", ADD, "cannot use the database"),
        ("SLACK_API_URL", "http://127.0.0.1:{port}/api/", ["checklist", "post", "equities"], "could not be reached"),
    ],
    ids=["postgres-unreachable", "sqlite-unwritable", "slack-unreachable"],
)
def test_failures_outside_are_exactly_one_line_from_a_real_process(
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    setting: str,
    value: str,
    argv: list[str],
    needle: str,
) -> None:
    pretend_now(monkeypatch, utc(2026, 11, 25, 13, 30))  # a trading day before the close, whenever this runs
    assert run(capsys, with_option(ADD, "--timezone", "UTC"))[0] == 0
    child = {**os.environ, **env, setting: value.format(port=closed_port())}
    failed = cli(tmp_path, child, *argv)
    assert failed.returncode == 2 and failed.stdout == ""
    assert len(failed.stderr.splitlines()) == 1, failed.stderr
    (line,) = failed.stderr.splitlines()  # no log lines, no traceback: one sentence
    assert line.startswith("preflight") and needle in line


def test_every_subcommand_about_one_desk_takes_its_name_first(capsys: pytest.CaptureFixture[str]) -> None:
    """``clikit.desk_command``: the same NAME argument, explained the same way, everywhere."""
    for argv in (["desk", "set"], ["escalations", "run"], ["checklist", "post"], ["profile", "policy"]):
        with pytest.raises(SystemExit) as done:
            main([*argv, "--help"])
        out = capsys.readouterr().out
        assert done.value.code == 0
        usage = out.split("\n\n")[0]
        assert usage.startswith(f"usage: preflight {' '.join(argv)}") and usage.rstrip().endswith("NAME"), out
        assert "the desk's name" in out, out
