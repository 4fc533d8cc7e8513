"""``preflight desk list`` reads through the DB-API driver alone at head (no SQLAlchemy, no
SQLModel: its start-up budget, bench/startup.py) and prints exactly what the ORM path prints;
behind head, or whenever unsure, it migrates and takes the ORM path. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from bot import dbapi
from bot.cli import main
from bot.config import describe_database, sqlite_file
from bot.db import session_scope
from bot.desks import listing
from bot.desks import service as desks
from bot.desks.models import Away, Role
from bot.migrate import alembic_config, upgrade
from bot.people import service as people
from tests.support.factories import CREATED, make_desk

ROOT = Path(__file__).resolve().parent.parent


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def populate(engine: Engine) -> None:
    """Desks whose listing exercises every part: order by name, members in the order added
    (after removals), names of every kind (hostile, long, deactivated, none at all), and
    away days and settings beside them that the listing must not trip over."""
    make_desk(engine, "equities_2", managers=["UMGR1"], traders=["UTRD3", "UTRD1"], named=False)  # '-', '_': collation
    make_desk(engine, "rates", managers=["UMGR2", "UMGR1"], traders=["UTRD3", "UTRD1"], named=False)
    make_desk(engine, "equities", channel="C0999", managers=["UMGR1"], traders=["UTRD2", "UZZZ9", "UTRD1"])
    make_desk(
        engine,
        "equities-asia",
        managers=["UMGR3"],
        traders=["UTRD4"],
        timezone="Asia/Tokyo",
        post_at="07:30",
        deadline="08:15",
    )
    with session_scope(engine) as session:
        rates = desks.get_desk(session=session, name="rates")
        assert rates.id is not None
        desks.update_desk(
            session=session, desk_id=rates.id, add_traders=["UTRD0", "UAAA1"], remove_traders=["UTRD3"], now=CREATED
        )  # member ids now differ from the order of the user IDs
        for profile in (
            people.Profile(user_id="UMGR1", display_name="Mia\u202e reganaM", real_name="Mia Manager"),
            people.Profile(user_id="UMGR2", real_name="  Max\u200b   Manager  "),  # real name only, spaces
            people.Profile(user_id="UTRD1", handle="alice"),  # only the @handle
            people.Profile(user_id="UTRD2", display_name="<!channel> " + "B" * 60),  # hostile and long
            people.Profile(user_id="UTRD3", display_name="Carol", deleted=True),  # deactivated
            people.Profile(user_id="UTRD4", display_name="Kenji\x1b[31m"),  # a control character
        ):
            people.remember(session=session, profile=profile, now=CREATED)
        people.remember_failure(session=session, user_id="UMGR3", error="user_not_found", now=CREATED)  # no name
        session.add(Away(user_id="UTRD1", start=date(2026, 12, 1), end=date(2026, 12, 3), set_by="UMGR1"))
        desks.configure_desk(
            session=session,
            name="rates",
            keys=None,
            reminder_minutes=10,
            escalation_channel="C0777",
            managers_channel="C0888",
            grace_minutes=20,
            now=CREATED,
        )


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def env(engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # no stray .env from the repository
    for key in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "PREFLIGHT_CLOCK_OFFSET"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DATABASE_URL", url_of(engine))
    return {"DATABASE_URL": url_of(engine)}


def orm_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The desk list as it was: migrate, then the ORM."""
    monkeypatch.setattr(listing, "read_quick", lambda url: None)


def test_the_quick_listing_prints_exactly_what_the_orm_listing_prints(
    env: dict[str, str], engine: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(engine)
    assert listing.read_quick(env["DATABASE_URL"]) is not None  # at head: the quick path is taken
    code, fast, err = run(capsys, ["desk", "list"])
    assert (code, err) == (0, "")
    orm_only(monkeypatch)
    code, slow, err = run(capsys, ["desk", "list"])
    assert (code, err) == (0, "")
    assert fast == slow
    lines = fast.splitlines()
    assert sorted(line.split()[0] for line in lines[1:]) == ["equities", "equities-asia", "equities_2", "rates"]
    assert "(deactivated) (UTRD3)" in fast and "UMGR3" in fast and "UZZZ9" in fast
    assert "\u202e" not in fast and "\x1b" not in fast and "\u200b" not in fast


def test_the_quick_and_orm_readings_agree_field_by_field(env: dict[str, str], engine: Engine) -> None:
    populate(engine)
    quick = listing.read_quick(env["DATABASE_URL"])
    orm = listing.read_orm(engine)
    assert quick is not None
    assert quick.desks == orm.desks
    everyone = {u for d in orm.desks for u in (*d.managers, *d.traders)}
    assert {u: (u in quick.names, quick.names(u)) for u in everyone} == {
        u: (u in orm.names, orm.names(u)) for u in everyone
    }
    assert listing.MANAGER == Role.MANAGER and listing.TRADER == Role.TRADER


def test_an_empty_database_is_listed_the_same_way(
    env: dict[str, str], engine: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    quick = listing.read_quick(env["DATABASE_URL"])
    assert quick is not None and quick.desks == []
    fast = run(capsys, ["desk", "list"])
    orm_only(monkeypatch)
    assert run(capsys, ["desk", "list"]) == fast
    assert fast[1].splitlines()[0] == f"No desks yet in {describe_database(env['DATABASE_URL'])}."


def in_a_fresh_process(code: str, cwd: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL"))}
    env |= {"PYTHONPATH": str(ROOT), "DATABASE_URL": url}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


PROBE = """
import sys
from bot.cli import main
code = main(['desk', 'list'])
print('imported:', sorted(m for m in ('sqlalchemy', 'sqlmodel', 'alembic', 'pydantic') if m in sys.modules))
sys.exit(code)
"""


@pytest.mark.slow
def test_desk_list_at_head_imports_neither_sqlalchemy_nor_sqlmodel(
    env: dict[str, str], engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(engine)
    done = in_a_fresh_process(PROBE, tmp_path, env["DATABASE_URL"])
    assert done.returncode == 0 and done.stderr == "", done.stderr[-2000:]
    *table, imported = done.stdout.splitlines(keepends=True)
    assert imported == "imported: []\n"
    assert "".join(table) == run(capsys, ["desk", "list"])[1]  # the same bytes as in-process


@pytest.mark.slow
def test_behind_head_desk_list_migrates_and_uses_the_orm(env: dict[str, str], engine: Engine, tmp_path: Path) -> None:
    populate(engine)
    url = env["DATABASE_URL"]
    command.downgrade(alembic_config(url), "-1")
    try:
        assert listing.read_quick(url) is None  # not at head: unsure
        done = in_a_fresh_process(PROBE, tmp_path, url)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "imported: ['alembic', 'pydantic', 'sqlalchemy', 'sqlmodel']" in done.stdout  # migrated, then the ORM
        assert "equities" in done.stdout and "equities-asia" in done.stdout
        assert listing.read_quick(url) is not None  # and now at head
    finally:
        upgrade(url)


def test_an_unknown_revision_is_not_read_quickly(env: dict[str, str], engine: Engine) -> None:
    url = env["DATABASE_URL"]
    with engine.begin() as conn:
        (current,) = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffffffff'"))
    try:
        assert listing.read_quick(url) is None
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": current})
    assert listing.read_quick(url) is not None


def test_the_quick_reader_cannot_write(env: dict[str, str], engine: Engine) -> None:
    populate(engine)
    url = env["DATABASE_URL"]
    with pytest.raises(dbapi.driver_errors(url)):
        with dbapi.read_at_head(url) as reader:
            assert reader is not None
            reader.rows("DELETE FROM desk_member")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM desk_member")).scalar_one() > 0


def test_no_file_no_table_or_another_url_form_is_not_read_quickly(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    assert listing.read_quick(f"sqlite:///{missing}") is None
    assert not missing.exists()  # not created by looking
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert listing.read_quick(f"sqlite:///{empty}") is None  # no alembic_version table
    assert listing.read_quick("sqlite://") is None
    assert listing.read_quick(f"sqlite:///file:{missing}?mode=ro&uri=true") is None


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///preflight.db",
        "sqlite:////abs/path/preflight.db",
        "sqlite:///with%20space.db",
        "sqlite:///a b@c:d#e.db",
        "sqlite+pysqlite:///x.db",
        "sqlite:///file:x.db?mode=ro&uri=true",
        "sqlite:///:memory:",
        "sqlite://",
        "sqlite:///x.db?timeout=3",
        "postgresql+psycopg://u:secret@host:5432/db?sslmode=require&application_name=p",
        "postgresql+psycopg://u@/db?host=/tmp",
    ],
)
def test_the_sqlite_file_and_the_label_are_sqlalchemys(url: str) -> None:
    parsed = make_url(url)
    name = sqlite_file(url)
    if name is not None:
        assert parsed.get_backend_name() == "sqlite" and parsed.database == name and not parsed.query
    expected = (
        (parsed.database or ":memory:")
        if parsed.get_backend_name() == "sqlite"
        and (not parsed.database or parsed.database == ":memory:" or parsed.database.startswith("file:"))
        else str(Path(parsed.database or "").absolute())
        if parsed.get_backend_name() == "sqlite"
        else parsed.render_as_string(hide_password=True)
    )
    assert describe_database(url) == expected
