"""Alembic: a fresh database upgrades from empty, and the models match the migrations, on both DBs."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

import bot.schema  # noqa: F401  (registers every table)
from bot.db import make_engine
from bot.migrate import alembic_config, upgrade
from tests.support.migration_fixtures import insert_desk


def head_revision(url: str) -> str:
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert head is not None
    return head


def test_upgrade_from_empty_creates_every_table_at_head(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        assert inspect(engine).get_table_names() == []
        upgrade(empty_url)
        tables = set(inspect(engine).get_table_names())
        assert set(SQLModel.metadata.tables) <= tables
        assert tables - set(SQLModel.metadata.tables) == {"alembic_version"}
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == head_revision(empty_url)
        upgrade(empty_url)  # running it again (every start-up does) is a no-op
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert versions == [head_revision(empty_url)]
    finally:
        engine.dispose()


def differences_from_the_models(url: str) -> list[Any]:
    """What Alembic's autogenerate would write to bring the database at ``url`` to the models."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        engine.dispose()


def test_models_match_the_migrations(empty_url: str) -> None:
    upgrade(empty_url)
    diff = differences_from_the_models(empty_url)
    assert diff == [], f"models and migrations differ (add an Alembic revision): {diff}"


def test_the_comparison_would_notice_a_difference(empty_url: str) -> None:
    """Guard against a vacuous pass: a column the migrations don't have is reported."""
    upgrade(empty_url)
    engine = make_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE desk ADD COLUMN stray_column INTEGER"))
    finally:
        engine.dispose()
    diff = differences_from_the_models(empty_url)
    assert [d[0] for d in diff] == ["remove_column"]
    assert diff[0][3].name == "stray_column"


def test_every_downgrade_runs_and_upgrading_again_gives_the_models(empty_url: str) -> None:
    """Down to an empty database, revision by revision, then up again: every downgrade runs
    (they share the helpers of bot/migrations/kit.py with the upgrades), and the schema at head
    is the models' again."""
    from alembic import command

    upgrade(empty_url)
    command.downgrade(alembic_config(empty_url), "base")
    engine = make_engine(empty_url)
    try:
        assert inspect(engine).get_table_names() == ["alembic_version"]
    finally:
        engine.dispose()
    upgrade(empty_url)
    diff = differences_from_the_models(empty_url)
    assert diff == [], f"after a downgrade to base and an upgrade, the schema differs from the models: {diff}"


def test_migration_chain_is_linear() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1, "more than one Alembic head: chain the new revision onto the current head"
    revisions = list(script.walk_revisions())
    assert revisions[-1].down_revision is None


def test_0008_clears_the_stamps_a_drill_left_on_ibkr_methods(empty_url: str) -> None:
    """A drill pass proves the backup device produces IB Preflight's own codes, not that IBKR's
    Mobile Authenticator entry is active: 0008 clears the 'drill' stamps on second_factor and
    leaves declared and checklist ones alone (the drill's time stays in totp_enrollment)."""
    from alembic import command

    script = ScriptDirectory.from_config(alembic_config(empty_url))
    before = script.get_revision("0008").down_revision
    assert isinstance(before, str)
    command.upgrade(alembic_config(empty_url), before)
    engine = make_engine(empty_url)
    try:
        with engine.begin() as conn:
            for method, by in (("authenticator_app", "drill"), ("ib_key", "checklist"), ("dsc_plus", "declared")):
                conn.execute(
                    text(
                        "INSERT INTO second_factor (user_id, method, last_verified_at, verified_by, updated_at) "
                        "VALUES ('U1', :method, :at, :by, :at)"
                    ),
                    {"method": method, "by": by, "at": "2026-11-20 13:00:00+00:00"},
                )
        upgrade(empty_url)
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT method, verified_by, last_verified_at IS NULL FROM second_factor ORDER BY method")
            ).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [
        ("authenticator_app", None, True),
        ("dsc_plus", "declared", False),
        ("ib_key", "checklist", False),
    ]


def test_rebuilding_a_table_on_sqlite_keeps_the_rows_that_refer_to_it(empty_url: str) -> None:
    """0008 rebuilds ``automation`` (SQLite's batch mode: copy, drop, rename). With foreign keys
    enforced, the drop cascaded into the probe endpoints registered for automations and deleted
    them; the migrations run with keys off, then check them (bot/migrations/env.py)."""
    from alembic import command

    command.upgrade(alembic_config(empty_url), "0007")
    engine = make_engine(empty_url)
    at = "2026-11-20 13:00:00+00:00"
    try:
        with engine.begin() as conn:
            insert_desk(conn, at)
            conn.execute(
                text(
                    "INSERT INTO automation (id, desk_id, owner_id, name, interface, broker_username, read_only_api, "
                    "trusted_ips, order_size_limit, created_by, created_at, updated_at) VALUES "
                    "(1, 1, 'U1', 'mean-reversion', 'ib_gateway', 'algo1', false, false, false, 'U1', :at, :at)"
                ),
                {"at": at},
            )
            conn.execute(
                text(
                    "INSERT INTO probe_endpoint (desk_id, trader_id, automation_id, label, kind, host, port, path, "
                    "created_by, created_at) VALUES (1, 'U1', 1, 'gw algo', 'tws', '127.0.0.1', 4001, '', 'cli', :at)"
                ),
                {"at": at},
            )
        upgrade(empty_url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT label, automation_id FROM probe_endpoint")).all()
            assert [tuple(r) for r in rows] == [("gw algo", 1)]
            assert conn.execute(text("SELECT name FROM automation")).scalar_one() == "mean-reversion"
            if engine.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1  # on again for the app
    finally:
        engine.dispose()
