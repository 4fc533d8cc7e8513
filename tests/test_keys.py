"""Secret keys (issue 9): PREFLIGHT_SECRET_KEYS as a list, `preflight keys new|rotate|check`,
`serve` refusing to start when stored secrets can't be read, an unreadable secret at delivery
as a visible failure, and the pager secret read from a file or standard input. Both DBs."""

from __future__ import annotations

import io
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.engine import Engine

from bot import keys
from bot.checklist import service as checklist
from bot.cli import main
from bot.config import ConfigError, load_settings
from bot.crypto import Keyring
from bot.db import session_scope
from bot.delivery.outbox import Kind
from bot.delivery.pager import Pager
from bot.desks import service as desks
from bot.profile import drill
from bot.runtime import deliver_due
from tests.support.escalation_fixtures import (
    SECRET_KEY,
    configure,
    delivery_client,
    fake_pager,  # noqa: F401 - a fixture
    outbox_rows,
    run_pass,
)
from tests.support.factories import make_desk
from tests.support.fakes.pager import FakePager
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import BOT_TOKEN, SIGNING_SECRET, utc

NEW_KEY = "the-new-current-key"
T0 = utc(2026, 11, 25, 14, 0)


# --- settings -----------------------------------------------------------------------------


def test_keys_come_as_a_list_current_first() -> None:
    settings = load_settings({"PREFLIGHT_SECRET_KEYS": " k2 , k1,, k2 "}, env_file=None)
    assert settings.secret_keys == ("k2", "k1") and settings.secret_key == "k2"
    single = load_settings({"PREFLIGHT_SECRET_KEY": "only,with,commas"}, env_file=None)
    assert single.secret_keys == ("only,with,commas",)  # the old single key is taken whole
    both = load_settings({"PREFLIGHT_SECRET_KEYS": "k2,k1", "PREFLIGHT_SECRET_KEY": "k1"}, env_file=None)
    assert both.secret_keys == ("k2", "k1")
    assert load_settings({}, env_file=None).secret_keys == ()
    with pytest.raises(ConfigError, match="PREFLIGHT_SECRET_KEY is set but is not in PREFLIGHT_SECRET_KEYS"):
        load_settings({"PREFLIGHT_SECRET_KEYS": "k2", "PREFLIGHT_SECRET_KEY": "k1"}, env_file=None)


# --- preflight keys -----------------------------------------------------------------------


@pytest.fixture
def cli(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.delenv("PREFLIGHT_SECRET_KEY", raising=False)
    monkeypatch.delenv("PREFLIGHT_SECRET_KEYS", raising=False)
    make_desk(engine)
    return engine


def stored_secret(engine: Engine) -> str | None:
    with session_scope(engine) as session:
        return desks.get_desk(session=session, name="equities").pager_secret


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.out == "", captured
    return captured.err


def test_keys_new_prints_a_fresh_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "new"]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["keys", "new"]) == 0
    second = capsys.readouterr().out.strip()
    assert first != second and len(first) == 44
    Fernet(first.encode())  # a valid Fernet key (and any passphrase works too)
    assert Keyring([first]).decrypt(Keyring([first]).encrypt("x")) == "x"


def test_rotate_re_encrypts_every_secret_under_the_first_key(
    cli: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(cli, pager_kind="pagerduty", pager_secret="routing-key-1")
    before = stored_secret(cli)
    assert before is not None and Keyring([SECRET_KEY]).decrypt(before) == "routing-key-1"

    monkeypatch.setenv("PREFLIGHT_SECRET_KEYS", f"{NEW_KEY},{SECRET_KEY}")
    assert main(["keys", "rotate"]) == 0
    assert "Re-encrypted 1 stored secret(s) under the first key (desk pager secrets: 1, " in capsys.readouterr().out
    after = stored_secret(cli)
    assert after is not None and after != before
    assert Keyring([NEW_KEY]).decrypt(after) == "routing-key-1"  # the old key can go now
    assert not Keyring([SECRET_KEY]).readable(after)

    monkeypatch.setenv("PREFLIGHT_SECRET_KEYS", NEW_KEY)
    assert main(["keys", "check"]) == 0
    assert "all 1 stored secret(s) can be read" in capsys.readouterr().out


def test_rotate_covers_the_backup_authenticator_secrets(
    cli: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The drill's TOTP secrets are in the one list of stores: rotated and checked with the rest."""
    with session_scope(cli) as session:
        new = drill.start_enrollment(
            session=session, user_id="UTRD1", account_name="Alice", keys=Keyring([SECRET_KEY]), now=T0
        )
    monkeypatch.setenv("PREFLIGHT_SECRET_KEYS", f"{NEW_KEY},{SECRET_KEY}")
    assert main(["keys", "rotate"]) == 0
    assert "backup-authenticator (TOTP) secrets: 1" in capsys.readouterr().out
    with session_scope(cli) as session:
        row = drill.enrollment(session, "UTRD1")
        assert row is not None and row.pending_secret is not None
        assert Keyring([NEW_KEY]).decrypt(row.pending_secret) == new.secret
        assert not Keyring([SECRET_KEY]).readable(row.pending_secret)
    monkeypatch.setenv("PREFLIGHT_SECRET_KEYS", "a-key-that-never-stored-it")
    assert main(["keys", "check"]) == 2
    assert "backup-authenticator (TOTP) secrets: 1" in capsys.readouterr().err


def test_rotate_changes_nothing_when_a_secret_is_unreadable(
    cli: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(cli, pager_kind="pagerduty", pager_secret="routing-key-1")
    before = stored_secret(cli)
    monkeypatch.setenv("PREFLIGHT_SECRET_KEYS", NEW_KEY)  # the old key forgotten
    assert main(["keys", "rotate"]) == 2
    line = one_line(capsys)
    assert "1 stored secret(s) can't be decrypted with PREFLIGHT_SECRET_KEYS (desk pager secrets: 1)" in line
    assert "nothing was re-encrypted" in line and "routing-key-1" not in line
    assert stored_secret(cli) == before
    assert main(["keys", "check"]) == 2
    assert "can't be decrypted" in one_line(capsys)
    monkeypatch.delenv("PREFLIGHT_SECRET_KEYS")
    assert main(["keys", "rotate"]) == 2
    assert "PREFLIGHT_SECRET_KEYS is not set" in one_line(capsys)


# --- serve checks the keys before it starts ----------------------------------------------------


def test_serve_refuses_to_start_when_stored_secrets_cannot_be_read(
    cli: Engine, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(cli, pager_kind="pagerduty", pager_secret="routing-key-1")
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("SLACK_API_URL", fake_slack.base_url)
    monkeypatch.setenv("PORT", "1")  # never reached: it stops before it listens
    for wrong in (NEW_KEY, None):
        if wrong:
            monkeypatch.setenv("PREFLIGHT_SECRET_KEYS", wrong)
        else:
            monkeypatch.delenv("PREFLIGHT_SECRET_KEYS")
        assert main(["serve"]) == 2
        line = one_line(capsys)
        assert ("can't be decrypted" if wrong else "PREFLIGHT_SECRET_KEYS is not set") in line
    keys.check_at_start(cli, [NEW_KEY, SECRET_KEY])  # the right key among them: it would start
    keys.check_at_start(cli, [SECRET_KEY])


def test_healthz_detail_for_secrets(cli: Engine) -> None:
    assert keys.secrets_health(cli, [SECRET_KEY]) == {"secrets": "ok"}
    configure(cli, pager_kind="pagerduty", pager_secret="routing-key-1")
    assert keys.secrets_health(cli, [SECRET_KEY]) == {"secrets": "ok"}
    assert keys.secrets_health(cli, [NEW_KEY]) == {
        "secrets": "1 of 1 stored secrets unreadable with PREFLIGHT_SECRET_KEYS"
    }


# --- a secret unreadable at delivery: a recorded, visible failure ----------------------------------


def test_an_unreadable_pager_secret_is_a_visible_failure(
    cli: Engine,
    fake_slack: FakeSlack,
    fake_pager: FakePager,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure(cli, pager_kind="pagerduty", pager_url=fake_pager.url, pager_secret="routing-key-1")
    with session_scope(cli) as session:
        desk = desks.get_desk(session=session, name="equities")
        claim = checklist.claim_post(session=session, desk=desk, day=T0.date(), now=utc(2026, 11, 25, 13, 0))
        assert claim.run is not None and claim.run.id is not None
        checklist.mark_posted(session=session, run_id=claim.run.id, ts="1.0", now=utc(2026, 11, 25, 13, 0))
    run_pass(cli, T0)  # silent traders at the deadline
    run_pass(cli, T0 + timedelta(minutes=15))  # level 2: pages
    wrong = Pager(keys=[NEW_KEY], timeout=1, retries=0, allow_private=True)
    with caplog.at_level(logging.WARNING, logger="bot.delivery.worker"):
        deliver_due(cli, delivery_client(fake_slack.base_url), wrong, now=T0 + timedelta(minutes=16), limit=1000)
    wrong.close()
    pages = [m for m in outbox_rows(cli) if m.kind == Kind.PAGER]
    assert pages and all(p.failed_at is not None and "pager secret unreadable" in (p.last_error or "") for p in pages)
    assert fake_pager.requests == []
    assert any("pager secret unreadable" in r.getMessage() for r in caplog.records)

    monkeypatch.setenv("PREFLIGHT_SECRET_KEYS", NEW_KEY)
    assert main(["escalations", "list"]) == 0
    out = capsys.readouterr().out
    assert "failed (pager secret unreadable" in out and f"{len(pages)} failed for good" in out
    assert "routing-key-1" not in out


# --- the pager secret from a file or standard input ---------------------------------------------


def test_pager_secret_from_a_file_or_standard_input(
    cli: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PREFLIGHT_SECRET_KEYS", SECRET_KEY)
    secret_file = tmp_path / "routing-key"
    secret_file.write_text("  rk-from-file\n", encoding="utf-8")
    argv = ["desk", "set", "equities", "--pager-kind", "pagerduty", "--pager-secret-file", str(secret_file)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "(secret set)" in out and "rk-from-file" not in out
    token = stored_secret(cli)
    assert token is not None and Keyring([SECRET_KEY]).decrypt(token) == "rk-from-file"

    monkeypatch.setattr("sys.stdin", io.StringIO("rk-from-stdin\n"))
    assert main(["desk", "set", "equities", "--pager-secret-file", "-"]) == 0
    token = stored_secret(cli)
    assert token is not None and Keyring([SECRET_KEY]).decrypt(token) == "rk-from-stdin"
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--pager-secret-file", "/nonexistent/routing-key"], "cannot read the pager secret from /nonexistent"),
        (["--pager-secret-file", "EMPTY"], "it is empty"),
        (["--pager-secret", "rk", "--pager-secret-file", "-"], "not allowed with argument"),
    ],
)
def test_pager_secret_file_errors_are_one_line(
    cli: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    needle: str,
) -> None:
    monkeypatch.setenv("PREFLIGHT_SECRET_KEYS", SECRET_KEY)
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    argv = [str(empty) if a == "EMPTY" else a for a in argv]
    assert main(["desk", "set", "equities", "--pager-kind", "pagerduty", *argv]) == 2
    assert needle in one_line(capsys)
    assert stored_secret(cli) is None


def test_help_offers_the_file_and_warns_about_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["desk", "set", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--pager-secret-file PATH" in text and "standard input with '-'" in text
    assert "visible in shell history and to 'ps'" in text
