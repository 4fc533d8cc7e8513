"""Plain DB-API reads for a command that must start fast (``preflight desk list``).

Importing SQLAlchemy costs about 0.4 s and SQLModel's ORM about as much again: more than the
desk list's 0.5 s budget (bench/README.md, start-up). So a read-only command may read with
plain SQL through the driver itself: the standard library's ``sqlite3`` for a plain
``sqlite:///FILE`` URL, psycopg for ``postgresql+psycopg://...`` (the URL libpq takes once
the ``+psycopg`` is dropped). ``read_at_head`` opens a read-only transaction only when it is
sure of what it reads: the URL is one of those forms, the SQLite file exists, and the
database's ``alembic_version`` is the head of ``bot/migrations/versions`` (``bot.migrate``).
Anything else -- another URL form, a missing file, any driver error, a database behind or
ahead of the code -- gives None, and the caller takes the normal path (migrate, then the
ORM), which reports problems in its own words.

Shared ground: imports no capability, and neither SQLAlchemy nor SQLModel.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from bot.config import sqlite_file
from bot.migrate import script_head

PSYCOPG_PREFIX = "postgresql+psycopg://"


class Reader(Protocol):
    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query; ``?`` marks a parameter (on either database)."""
        ...


class _Sqlite:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.conn.execute(sql, tuple(params)).fetchall()]


class _Postgres:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.conn.execute(sql.replace("?", "%s"), tuple(params)).fetchall()]


def _at_head(reader: Reader) -> bool:
    head = script_head()
    return head is not None and reader.rows("SELECT version_num FROM alembic_version") == [(head,)]


@contextmanager
def read_at_head(database_url: str) -> Iterator[Reader | None]:
    """A reader in one read-only transaction (one snapshot) of a database at head, or None
    when unsure. Driver errors inside the block propagate as the driver's own exceptions
    (``driver_errors``), for the caller to fall back on."""
    path = sqlite_file(database_url)
    if path is not None:
        with _sqlite(path) as reader:
            yield reader
    elif database_url.startswith(PSYCOPG_PREFIX):
        with _postgres("postgresql://" + database_url[len(PSYCOPG_PREFIX) :]) as reader:
            yield reader
    else:
        yield None


def driver_errors(database_url: str) -> tuple[type[Exception], ...]:
    """The exceptions a driver raises on a database problem (for the fall back)."""
    if sqlite_file(database_url) is not None:
        import sqlite3

        return (sqlite3.Error,)
    if database_url.startswith(PSYCOPG_PREFIX):
        import psycopg

        return (psycopg.Error,)
    return ()


@contextmanager
def _sqlite(path: str) -> Iterator[Reader | None]:
    import sqlite3

    if not os.path.isfile(path):  # sqlite3 would create it; the normal path creates and migrates it
        yield None
        return
    # The same busy timeout as bot.db's engine; a deferred BEGIN reads one snapshot (WAL) and
    # never takes the write lock; query_only refuses any write on this connection.
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA query_only=ON")
        conn.execute("BEGIN")
        reader = _Sqlite(conn)
        yield reader if _at_head(reader) else None
        conn.execute("COMMIT")
    finally:
        conn.close()


@contextmanager
def _postgres(conninfo: str) -> Iterator[Reader | None]:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            reader = _Postgres(conn)
            yield reader if _at_head(reader) else None
        finally:
            conn.execute("ROLLBACK")
