"""Start-up: a database already at head is recognised without importing Alembic (it costs
about a second); anything else still goes through Alembic. Timings are in bench/startup.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bot.migrate import alembic_config, at_head, script_head, upgrade

ROOT = Path(__file__).resolve().parent.parent


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_the_quick_head_is_alembics_head() -> None:
    assert script_head() == ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def revision_file(folder: Path, name: str, revision: str, down: str) -> None:
    (folder / f"{name}.py").write_text(
        f'"""{name}\n\nRevision ID: {revision}\n"""\n\nrevision: str = "{revision}"\ndown_revision = {down}\n'
    )


@pytest.mark.parametrize(
    ("files", "head"),
    [
        ([("a", "0001", "None"), ("b", "0002", '"0001"'), ("c", "0003", '"0002"')], "0003"),
        ([("a", "0001", "None"), ("b", "0002", '"0001"'), ("c", "0003", '"0001"')], None),  # a fork
        ([("a", "0001", "None"), ("b", "0002", '"0001"'), ("m", "0003", '("0001", "0002")')], None),  # a merge
        ([("a", "0001", "None"), ("b", "0002", '"0009"')], None),  # a parent that isn't there
        ([("a", "0001", "None"), ("b", "0001", '"0001"')], None),  # an id used twice
        ([], None),
    ],
)
def test_the_quick_head_is_none_when_unsure(tmp_path: Path, files: list[tuple[str, str, str]], head: str) -> None:
    for name, revision, down in files:
        revision_file(tmp_path, name, revision, down)
    assert script_head(tmp_path) == head


def imports_alembic(code: str, cwd: Path, env: dict[str, str] | None = None) -> bool:
    """Run ``code`` in a fresh interpreter; did it import Alembic?"""
    probe = code + "\nimport sys\nprint('alembic' in sys.modules)"
    environment = os.environ | {"PYTHONPATH": str(ROOT)} | (env or {})
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.slow
def test_at_head_no_alembic_is_imported(engine: Engine, tmp_path: Path) -> None:
    url = url_of(engine)
    assert at_head(url)
    assert not imports_alembic(f"from bot.migrate import upgrade; upgrade({url!r})", tmp_path)
    # nor by a CLI command that touches data
    assert not imports_alembic(
        "from bot.cli import main; main(['desk', 'list'])", tmp_path, {"DATABASE_URL": url, "SLACK_BOT_TOKEN": ""}
    )


@pytest.mark.slow
def test_a_database_behind_head_is_upgraded_by_alembic(engine: Engine, tmp_path: Path) -> None:
    url = url_of(engine)
    cfg = alembic_config(url)
    command.downgrade(cfg, "-1")
    try:
        assert not at_head(url)
        assert imports_alembic(f"from bot.migrate import upgrade; upgrade({url!r})", tmp_path)
        assert at_head(url)
    finally:
        upgrade(url)  # leave the shared test database at head whatever happened


def test_a_database_with_an_unknown_revision_goes_to_alembic(engine: Engine) -> None:
    url = url_of(engine)
    with engine.begin() as conn:
        (current,) = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffffffff'"))
    try:
        assert not at_head(url)
        with pytest.raises(Exception, match="ffffffff"):  # Alembic decides, and it can't locate it
            upgrade(url)
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": current})
    assert at_head(url)


def test_an_empty_database_is_not_at_head(tmp_path: Path) -> None:
    assert not at_head(f"sqlite:///{tmp_path / 'empty.db'}")
