"""A fresh, empty database URL per backend (a fixture) for migration tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, text

import bot.schema  # noqa: F401  (registers every table)
from tests.conftest import PG_ADMIN_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A brand-new, empty database: a fresh SQLite file or a scratch PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"preflight_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def insert_desk(conn: Connection, at: str) -> None:
    """Desk 1 written with SQL, as a database at an older revision holds it (no ORM: the models
    are at head)."""
    conn.execute(
        text(
            "INSERT INTO desk (id, name, channel_id, timezone, post_at, deadline, created_at, grace_minutes, "
            "reminder_minutes, ack_timeout_minutes, pager_kind, summary_delay_minutes) VALUES "
            "(1, 'equities', 'C1', 'America/New_York', '08:00', '09:00', :at, 15, 30, 15, 'none', 30)"
        ),
        {"at": at},
    )
