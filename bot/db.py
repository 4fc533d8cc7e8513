"""Engine and session factory: SQLite pragmas for one desk, a pool for PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session, SQLModel, create_engine


def make_engine(url: str, *, echo: bool = False) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=10,
            max_overflow=20,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _configure_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, and ``BEGIN IMMEDIATE`` so concurrent writers queue instead of failing."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Read-only sessions (read_scope) take a deferred BEGIN: under WAL they read a snapshot
        # and never queue behind writers for the write lock.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("readonly") else "BEGIN IMMEDIATE")


_sqlite_writers: WeakKeyDictionary[Engine, threading.RLock] = WeakKeyDictionary()
_sqlite_writers_guard = threading.Lock()


def _writer_lock(engine: Engine) -> AbstractContextManager[object]:
    """On SQLite, writing sessions of one process queue on a lock that wakes the next writer
    at once; SQLite's own busy handler (still there for other processes, such as the CLI)
    polls with sleeps of up to 100 ms, which made a burst of clicks wait in steps."""
    if engine.dialect.name != "sqlite":
        return nullcontext()
    with _sqlite_writers_guard:
        return _sqlite_writers.setdefault(engine, threading.RLock())


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with _writer_lock(engine), Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def read_scope(engine: Engine) -> Iterator[Session]:
    """A read-only session (for answers such as /ibstatus). On SQLite it does not take the
    write lock, so reads don't wait behind a burst of clicks; a write through it raises."""
    with Session(engine.execution_options(readonly=True), expire_on_commit=False) as session:
        event.listen(session, "do_orm_execute", _reject_write)
        event.listen(session, "before_flush", _reject_flush)
        yield session


def _reject_write(state: ORMExecuteState) -> None:
    if not state.is_select:
        raise RuntimeError("read_scope is read-only: use session_scope to write")


def _reject_flush(session: Session, _context: Any, _instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("read_scope is read-only: use session_scope to write")


def insert_or_skip(session: Session, table: type[SQLModel], values: dict[str, Any]) -> int | None:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` on SQLite and PostgreSQL alike: the new
    row's id, or None when a unique key already held (no savepoint round trips)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(table).values(**values).on_conflict_do_nothing().returning(table.id)  # type: ignore[attr-defined]
    new_id = session.execute(stmt).scalar_one_or_none()
    return int(new_id) if new_id is not None else None


def ping(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
