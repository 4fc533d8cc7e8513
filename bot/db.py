"""Engine and session factory: SQLite pragmas for one desk, a pool for PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import ColumnElement, event, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import ORMExecuteState, SessionTransaction
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session, SQLModel, create_engine

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql.dml import Insert as PostgresqlInsert
    from sqlalchemy.dialects.sqlite.dml import Insert as SqliteInsert

T = TypeVar("T", bound=SQLModel)

# How long a statement may wait on a lock. Jobs and the CLI wait long (another process may hold
# SQLite's write lock for a while); a Slack request waits at most REQUEST_WAIT, so that its user
# hears within Slack's 3 seconds that nothing was recorded (bot.outage) instead of nothing.
BACKGROUND_WAIT = 30.0
REQUEST_WAIT = 2.0
CONNECT_TIMEOUT = 2  # seconds (PostgreSQL): a database that doesn't answer is unavailable
_wait: ContextVar[float | None] = ContextVar("db_wait", default=None)


@contextmanager
def waiting_at_most(seconds: float) -> Iterator[None]:
    """Database work in this block (this thread) waits at most ``seconds`` on a lock: SQLite's
    busy timeout and the in-process writer queue, PostgreSQL's ``lock_timeout`` and
    ``statement_timeout``. The WSGI layer wraps every Slack request in it; /healthz's probe too."""
    token = _wait.set(seconds)
    try:
        yield
    finally:
        _wait.reset(token)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": BACKGROUND_WAIT},
            pool_size=10,
            max_overflow=20,
        )
        _configure_sqlite(engine)
        return engine
    engine = create_engine(
        url,
        echo=echo,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT} if url.startswith("postgresql") else {},
    )
    _configure_postgresql(engine)
    return engine


def _configure_postgresql(engine: Engine) -> None:
    """A connection checked out inside ``waiting_at_most`` gets that ``lock_timeout`` and
    ``statement_timeout``; one checked out outside it, none (the server's default). Set only
    when it changes (the pool's connections keep it), committed so a rollback can't undo it."""

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        wanted = _wait.get()
        if record.info.get("wait") == wanted:
            return
        ms = 0 if wanted is None else int(wanted * 1000)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET lock_timeout = {ms}")
        cursor.execute(f"SET statement_timeout = {0 if wanted is None else ms + 500}")
        cursor.close()
        if not getattr(dbapi_connection, "autocommit", False):
            dbapi_connection.commit()
        record.info["wait"] = wanted


def _configure_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, and ``BEGIN IMMEDIATE`` so concurrent writers queue instead of failing."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(BACKGROUND_WAIT * 1000)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        # A request's session waits ~2 s for another process's write lock, a job 30 s.
        wanted = _wait.get() or BACKGROUND_WAIT
        if record.info.get("busy") != wanted:
            dbapi_connection.execute(f"PRAGMA busy_timeout={int(wanted * 1000)}")
            record.info["busy"] = wanted

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Read-only sessions (read_scope) take a deferred BEGIN: under WAL they read a snapshot
        # and never queue behind writers for the write lock.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("readonly") else "BEGIN IMMEDIATE")


_sqlite_writers: WeakKeyDictionary[Engine, threading.RLock] = WeakKeyDictionary()
_sqlite_writers_guard = threading.Lock()


class WriterBusy(TimeoutError):
    """The in-process writer queue was not free within the request's wait (``waiting_at_most``)."""


def _writer_lock(engine: Engine) -> AbstractContextManager[object]:
    """On SQLite, writing sessions of one process queue on a lock that wakes the next writer
    at once; SQLite's own busy handler (still there for other processes, such as the CLI)
    polls with sleeps of up to 100 ms, which made a burst of clicks wait in steps. Inside
    ``waiting_at_most`` the wait is bounded (WriterBusy)."""
    if engine.dialect.name != "sqlite":
        return nullcontext()
    with _sqlite_writers_guard:
        lock = _sqlite_writers.setdefault(engine, threading.RLock())
    wait = _wait.get()
    return lock if wait is None else _bounded(lock, wait)


@contextmanager
def _bounded(lock: threading.RLock, wait: float) -> Iterator[None]:
    if not lock.acquire(timeout=wait):
        raise WriterBusy(f"the database is busy: no write within {wait:g} s")
    try:
        yield
    finally:
        lock.release()


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


_AT_COMMIT = "preflight.add_at_commit"  # session.info key: (table, column, id) -> [model, by]


def add_at_commit(session: Session, model: type[SQLModel], column: str, row_id: int, by: int = 1) -> None:
    """Add ``by`` to ``model.column`` of row ``row_id`` as the transaction's last statement,
    just before its COMMIT, and not at all if it rolls back. A counter that every concurrent
    transaction bumps (a checklist run's ``answers_version``: each answer redraws the roster)
    is then row-locked for the commit alone, not through all the work the transaction does
    after deciding to bump it (escalations, notices): on PostgreSQL a report no longer queues
    behind another's hooks."""
    pending: dict[tuple[str, str, int], list[Any]] = session.info.setdefault(_AT_COMMIT, {})
    pending.setdefault((str(model.__tablename__), column, row_id), [model, 0])[1] += by


@event.listens_for(Session, "before_commit")
def _apply_additions(session: Session) -> None:
    pending: dict[tuple[str, str, int], list[Any]] = session.info.pop(_AT_COMMIT, {})
    for (_, column, row_id), (model, by) in sorted(pending.items()):  # one lock order: no deadlocks
        session.execute(update(model).where(model.id == row_id).values({column: getattr(model, column) + by}))


@event.listens_for(Session, "after_transaction_end")
def _drop_additions(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended (committed: already applied)
        session.info.pop(_AT_COMMIT, None)


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A Core connection in a transaction that commits on success (``BEGIN IMMEDIATE`` on
    SQLite, queued on the same in-process writer lock as ``session_scope``): for hot paths
    that run a few prebuilt statements without the ORM's per-statement cost."""
    with _writer_lock(engine), engine.begin() as conn:
        yield conn


@contextmanager
def read_scope(engine: Engine, *, per_statement: bool = False) -> Iterator[Session]:
    """A read-only session (for answers such as /ibstatus). On SQLite it does not take the
    write lock, so reads don't wait behind a burst of clicks; a write through it raises.

    ``per_statement`` (short reads on a request's path): on PostgreSQL each statement runs
    in autocommit, reading what is committed when it starts — what READ COMMITTED gives each
    statement inside a transaction anyway — without the BEGIN and ROLLBACK round trips. Not
    for server-side cursors (``yield_per``), which need a transaction. On SQLite it changes
    nothing (one deferred transaction, one snapshot)."""
    options: dict[str, Any] = {"readonly": True}
    if (
        per_statement
        and engine.dialect.name == "postgresql"
        and "isolation_level" not in engine.get_execution_options()
    ):
        options["isolation_level"] = "AUTOCOMMIT"
    with Session(engine.execution_options(**options), expire_on_commit=False) as session:
        event.listen(session, "do_orm_execute", _reject_write)
        event.listen(session, "before_flush", _reject_flush)
        yield session


def _reader(engine: Engine, per_statement: bool) -> Engine:
    options: dict[str, Any] = {"readonly": True}
    own = engine.get_execution_options()
    if per_statement and engine.dialect.name == "postgresql" and "isolation_level" not in own:
        options["isolation_level"] = "AUTOCOMMIT"
    return engine.execution_options(**options)


def _reject_write(state: ORMExecuteState) -> None:
    if not state.is_select:
        raise RuntimeError("read_scope is read-only: use session_scope to write")


def _reject_flush(session: Session, _context: Any, _instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("read_scope is read-only: use session_scope to write")


def conflict_insert(dialect: str, table: Any) -> PostgresqlInsert | SqliteInsert:
    """The dialect's INSERT, which has ``on_conflict_do_nothing``. Imported here, not at the top:
    ``sqlalchemy.dialects.postgresql`` costs ~0.1 s to import, which a SQLite process would
    otherwise pay at start (a PostgreSQL engine has loaded it already)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def insert_or_skip(session: Session, table: type[SQLModel], values: dict[str, Any]) -> int | None:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` on SQLite and PostgreSQL alike: the new
    row's id, or None when a unique key already held (no savepoint round trips)."""
    stmt = (
        conflict_insert(session.get_bind().dialect.name, table)
        .values(**values)
        .on_conflict_do_nothing()
        .returning(table.id)  # type: ignore[attr-defined]
    )
    new_id = session.execute(stmt).scalar_one_or_none()
    return int(new_id) if new_id is not None else None


PING_WAIT = 1.0  # seconds: /healthz answers in under a second


def ping(engine: Engine) -> bool:
    """Whether the database answers a read: a read-only probe (a deferred BEGIN on SQLite, never
    queued behind a writer) that waits at most PING_WAIT on a lock."""
    try:
        with waiting_at_most(PING_WAIT), engine.execution_options(readonly=True).connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


# --- leases -----------------------------------------------------------------------------


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"  # the caller holds the lease and does the work
    DONE = "done"  # the work is already done
    BUSY = "busy"  # someone else holds an unexpired lease


def claim_lease(
    session: Session,
    table: type[SQLModel],
    row_id: int,
    *,
    column: str,
    now: datetime,
    lease: timedelta,
    where: Sequence[ColumnElement[bool]] = (),
    values: dict[str, Any] | None = None,
) -> bool:
    """Take the lease on one row: a conditional UPDATE sets ``column = now`` (and ``values``)
    when the row is unclaimed or its lease has expired and ``where`` holds. True when this
    caller holds it. One statement, so concurrent threads, processes and replicas agree on
    SQLite and PostgreSQL alike. Used by the checklist post, the weekly summary, the outbox
    and the roster refresher."""
    claimed = getattr(table, column)
    stmt = (
        update(table)
        .where(
            getattr(table, "id") == row_id,  # noqa: B009 - every leased table has an id
            claimed.is_(None) | (claimed <= now - lease),
            *where,
        )
        .values({column: now, **(values or {})})
    )
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def claim_row(
    session: Session,
    *,
    find: Callable[[], T | None],
    make: Callable[[], T],
    done: Callable[[T], bool],
    column: str,
    now: datetime,
    lease: timedelta,
    values: dict[str, Any] | None = None,
) -> tuple[ClaimOutcome, T | None]:
    """Decide who does a once-only piece of work keyed by a unique row (a day's checklist, a
    week's summary): insert the row already claimed, or — when it exists, isn't ``done`` and its
    lease expired — take its lease. The unique key decides between concurrent inserters. The
    caller's ``session_scope`` commits the claim (services never commit)."""
    row = find()
    if row is None:
        row = make()
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            row = find()
            assert row is not None
            return (ClaimOutcome.DONE if done(row) else ClaimOutcome.BUSY), row
        return ClaimOutcome.CLAIMED, row
    if done(row):
        return ClaimOutcome.DONE, row
    row_id = getattr(row, "id")  # noqa: B009
    if not claim_lease(session, type(row), row_id, column=column, now=now, lease=lease, values=values):
        return ClaimOutcome.BUSY, row
    session.refresh(row)
    if done(row):  # finished between our read and our claim
        return ClaimOutcome.DONE, row
    return ClaimOutcome.CLAIMED, row


class PurgeSchedule:
    """When a table of short-lived rows (replayed interactions, handled events) is next purged:
    at most once per ``every`` of the domain clock per process and database, and whenever the
    clock went back. Purging rides on the requests that insert, so no job is needed."""

    def __init__(self, every: timedelta) -> None:
        self.every = every
        self._lock = threading.Lock()
        self._last: dict[str, datetime] = {}  # database URL -> last purge

    def due(self, database: str, now: datetime) -> bool:
        with self._lock:
            last = self._last.get(database)
            if last is not None and last <= now < last + self.every:
                return False
            self._last[database] = now
            return True
