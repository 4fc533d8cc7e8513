"""bot.db.read_scope: reads that never queue behind writers, and refuse to write."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.db import read_scope, session_scope
from bot.desks.models import Desk
from tests.support.factories import make_desk


def test_reads_while_a_writer_holds_its_transaction(engine: Engine) -> None:
    make_desk(engine)
    with session_scope(engine) as writer:
        # An open write transaction (on SQLite: BEGIN IMMEDIATE holds the write lock).
        writer.execute(update(Desk).values(post_at="08:15"))
        with read_scope(engine) as reader:
            desks = reader.exec(select(Desk)).all()
        assert [(d.name, d.post_at) for d in desks] == [("equities", "08:00")]  # the committed snapshot
    with read_scope(engine) as reader:
        assert reader.exec(select(Desk.post_at)).one() == "08:15"


def test_a_write_through_a_read_scope_raises_and_changes_nothing(engine: Engine) -> None:
    make_desk(engine)
    with pytest.raises(RuntimeError, match="read-only"), read_scope(engine) as reader:
        reader.execute(update(Desk).values(post_at="07:00"))
    with pytest.raises(RuntimeError, match="read-only"), read_scope(engine) as reader:
        desk = reader.exec(select(Desk)).one()
        desk.deadline = "10:00"
        reader.flush()
    with read_scope(engine) as reader:
        assert reader.exec(select(Desk.post_at, Desk.deadline)).one() == ("08:00", "09:00")


def test_per_statement_reads_skip_the_transaction_round_trips_on_postgresql(engine: Engine) -> None:
    """A request's short reads (``Deps.read``): on PostgreSQL no transaction around them (the
    driver sends no BEGIN: the server reports the session idle after a SELECT); the default read
    scope (exports stream through a server-side cursor) keeps its transaction; SQLite keeps its
    one snapshot in both. Both still refuse writes."""
    make_desk(engine)
    for per_statement in (True, False):
        with read_scope(engine, per_statement=per_statement) as reader:
            assert reader.exec(select(Desk.name)).one() == "equities"
            driver = reader.connection().connection.dbapi_connection
            if engine.dialect.name == "postgresql":
                idle = driver.info.transaction_status.name == "IDLE"  # type: ignore[union-attr]
                assert idle is per_statement
            else:
                assert driver.in_transaction  # type: ignore[union-attr]
    with pytest.raises(RuntimeError, match="read-only"), read_scope(engine, per_statement=True) as reader:
        reader.execute(update(Desk).values(post_at="07:00"))
