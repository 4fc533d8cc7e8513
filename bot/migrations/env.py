"""Alembic environment: SQLModel.metadata and the app's own settings and engine."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlmodel import SQLModel

import bot.schema  # noqa: F401  (registers every table on SQLModel.metadata)
from bot.config import load_settings
from bot.db import make_engine

config = context.config
target_metadata = SQLModel.metadata


def _url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    return str(url) if url else load_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=True,
    )
    # SQLite: batch mode rebuilds a table (copy, drop, rename), and with foreign keys enforced
    # dropping it would cascade into the rows that refer to it (0008 rebuilt ``automation`` and
    # took the probe endpoints registered for automations with it). Keys are off while the
    # migrations run (the pragma is ignored inside a transaction, so it is set before one begins),
    # checked afterwards, and on again.
    raw = _sqlite_dbapi(connection)
    if raw is not None:
        raw.execute("PRAGMA foreign_keys=OFF")
    try:
        with context.begin_transaction():
            context.run_migrations()
        if raw is not None:
            broken = raw.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the migrations left rows whose references are gone: {broken[:5]}")
    finally:
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=ON")


def _sqlite_dbapi(connection: object) -> Any:
    """The DB-API connection under ``connection`` when it is SQLite's, else None."""
    if getattr(getattr(connection, "dialect", None), "name", None) != "sqlite":
        return None
    return connection.connection.dbapi_connection  # type: ignore[attr-defined]


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
