"""Fixtures: every database test runs on SQLite and on PostgreSQL; Slack is a fake over HTTP.

``--backends sqlite`` (or ``PREFLIGHT_TEST_BACKENDS=sqlite``) runs only the SQLite side: the
fast inner loop (``./scripts/test --fast``). Without it, both backends run (CI).

Under pytest-xdist each worker has its own PostgreSQL database (``pg_url``), its own SQLite
files (``tmp_path``) and its own per-user data directory (``XDG_DATA_HOME``): workers share
nothing but the PostgreSQL server.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from bot.db import make_engine
from bot.migrate import upgrade
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot, FakeClock, utc

# Fixtures every test module may use without importing them: the CLI's env, a fresh database URL
# per backend, a TLS certificate and a stand-in gateway.
pytest_plugins = ["tests.support.cli", "tests.support.migration_fixtures", "tests.support.fake_gateway"]

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "postgresql")
# Fixtures parametrised by backend (their param is the backend's name).
BACKEND_FIXTURES = ("engine", "empty_url")
DATA_HOME = pytest.StashKey[tuple[str, str | None]]()  # (the session's data directory, XDG_DATA_HOME before)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backends",
        default=os.environ.get("PREFLIGHT_TEST_BACKENDS") or ",".join(BACKENDS),
        help="comma-separated databases to test on: sqlite, postgresql (default both; env PREFLIGHT_TEST_BACKENDS)",
    )


def backends(config: pytest.Config) -> set[str]:
    chosen = {b.strip() for b in str(config.getoption("backends")).split(",") if b.strip()}
    if not chosen or chosen - set(BACKENDS):
        raise pytest.UsageError(f"--backends: choose among {', '.join(BACKENDS)} (got {sorted(chosen)})")
    return chosen


def pytest_configure(config: pytest.Config) -> None:
    backends(config)
    # Nothing may touch the real per-user data directory (~/.local/share/ib-preflight, where
    # the default database lives): a test that forgets to name a database gets a private one.
    # Subprocesses inherit it; each xdist worker makes its own. Tests about that directory set their own.
    data_home = tempfile.mkdtemp(prefix="preflight-test-data-")
    config.stash[DATA_HOME] = (data_home, os.environ.get("XDG_DATA_HOME"))
    os.environ["XDG_DATA_HOME"] = data_home


def pytest_unconfigure(config: pytest.Config) -> None:
    if DATA_HOME not in config.stash:
        return
    data_home, before = config.stash[DATA_HOME]
    shutil.rmtree(data_home, ignore_errors=True)
    if before is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = before


def uses_backends(item: pytest.Item) -> set[str]:
    """The databases a collected test runs on."""
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    used = {str(params[name]) for name in BACKEND_FIXTURES if name in params}
    if "pg_url" in getattr(item, "fixturenames", ()):
        used.add("postgresql")
    return used


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chosen = backends(config)
    if chosen == set(BACKENDS):
        return
    kept = [item for item in items if uses_backends(item) <= chosen]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if uses_backends(item) - chosen])
        items[:] = kept


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of this test session's own (of this xdist worker's own), migrated
    once, dropped at the end."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"preflight_test_{worker}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def empty_postgresql(conn: Connection) -> None:
    """Every table emptied and every sequence restarted (ids count from 1 again), as
    ``TRUNCATE ... RESTART IDENTITY`` would: DELETE, children first, is ~20x faster on tables
    this small (TRUNCATE makes new files for every table)."""
    for table in reversed(SQLModel.metadata.sorted_tables):
        conn.execute(text(f'DELETE FROM "{table.name}"'))
    conn.execute(
        text(
            "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, start_value, false) "
            "FROM pg_sequences WHERE schemaname = current_schema()"
        )
    )


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "preflight.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        eng = make_engine(f"sqlite:///{path}")
        yield eng
        eng.dispose()
        return
    url = request.getfixturevalue("pg_url")
    eng = make_engine(url)
    with eng.begin() as conn:
        empty_postgresql(conn)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> FakeClock:
    # Wed 25 Nov 2026, 08:05 in New York (13:05 UTC): a trading day.
    return FakeClock(utc(2026, 11, 25, 13, 5))


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    yield fake
    fake.stop()


@pytest.fixture
def bot(engine: Engine, fake_slack: FakeSlack, clock: FakeClock) -> Iterator[Bot]:
    running = Bot(engine, fake_slack.base_url, clock)
    yield running
    running.close()
