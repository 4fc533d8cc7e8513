"""The operations, keys and indexes the Alembic revisions in ``versions/`` repeat, so that each
revision reads as its schema change::

    create_table("away", id_column(), string("user_id", 32), date("end"), indexed("user_id"))
    ...
    drop_table("away", indexed("user_id"))

(the columns: bot/migrations/columns.py). Each helper issues exactly the operations Alembic's
autogenerate wrote out (``op.create_table`` with a ``PrimaryKeyConstraint``, then the indexes in
a ``batch_alter_table`` block...), so the DDL is the same on SQLite and PostgreSQL, upgrade and
downgrade.

Batch mode (``batch=True``, the default, what ``render_as_batch`` writes) lets SQLite alter a
table by copying it; ``batch=False`` issues plain ``ALTER TABLE ... ADD/DROP COLUMN``, which
SQLite does without copying: copying ``desk`` drops the old table, and the drop would cascade
to every row that references a desk.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

# --- what a table has besides its columns ------------------------------------------------------


def fk(name: str, table: str, *, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    """Column ``name`` refers to ``table.id``; deleting that row deletes this one (or ``ondelete``)."""
    return sa.ForeignKeyConstraint([name], [f"{table}.id"], ondelete=ondelete)


def unique(*columns: str) -> sa.UniqueConstraint:
    return sa.UniqueConstraint(*columns)


class Indexes(NamedTuple):
    """Non-unique indexes, an item of ``create_table`` / ``drop_table`` as ``sa.Index`` is of a
    ``sa.Table``: one named ``name`` on ``columns``, or (``name`` None) one per column, each
    named ``ix_<table>_<column>``."""

    name: str | None
    columns: tuple[str, ...]

    def named(self, table: str) -> list[tuple[str, list[str]]]:
        if self.name is not None:
            return [(self.name, list(self.columns))]
        return [(op.f(f"ix_{table}_{column}"), [column]) for column in self.columns]


def indexed(*columns: str) -> Indexes:
    """An index on each of ``columns``, named ``ix_<table>_<column>`` (a model's ``index=True``)."""
    return Indexes(None, columns)


def index(name: str, *columns: str) -> Indexes:
    """The index ``name`` on ``columns`` together."""
    return Indexes(name, columns)


# --- operations --------------------------------------------------------------------------------


def create_table(name: str, *items: sa.schema.SchemaItem | Indexes, primary_key: str = "id") -> None:
    """The table (its columns, foreign keys and unique constraints, keyed by the column
    ``primary_key``), then its ``indexed(...)`` / ``index(...)`` items in the order given."""
    op.create_table(name, *(i for i in items if not isinstance(i, Indexes)), sa.PrimaryKeyConstraint(primary_key))
    create_indexes(name, *(i for i in items if isinstance(i, Indexes)))


def drop_table(name: str, *indexes: Indexes) -> None:
    """``create_table`` undone: its indexes (the same items), last first, then the table."""
    drop_indexes(name, *indexes)
    op.drop_table(name)


def create_indexes(table: str, *indexes: Indexes) -> None:
    named = [each for item in indexes for each in item.named(table)]
    if named:
        with op.batch_alter_table(table, schema=None) as batch:
            for index_name, columns in named:
                batch.create_index(index_name, columns, unique=False)


def drop_indexes(table: str, *indexes: Indexes) -> None:
    """``create_indexes`` undone: the same items, dropped last first."""
    named = [each for item in indexes for each in item.named(table)]
    if named:
        with op.batch_alter_table(table, schema=None) as batch:
            for index_name, _ in reversed(named):
                batch.drop_index(index_name)


def add_columns(table: str, *columns: sa.Column[Any], batch: bool = True) -> None:
    _each(table, "add_column", columns, batch=batch)


def drop_columns(table: str, *names: str, batch: bool = True) -> None:
    """The columns, dropped in the order given."""
    _each(table, "drop_column", names, batch=batch)


def _each(table: str, operation: str, args: Iterable[Any], *, batch: bool) -> None:
    """``operation`` (add_column, drop_column) on ``table`` with each of ``args``: in one batch
    block, or as plain ``op.<operation>(table, arg)`` statements."""
    if not batch:
        for arg in args:
            getattr(op, operation)(table, arg)
        return
    with op.batch_alter_table(table, schema=None) as batch_op:
        for arg in args:
            getattr(batch_op, operation)(arg)


def alter_length(table: str, name: str, old: int, new: int) -> None:
    """A NOT NULL string column's length, ``old`` to ``new`` (batch mode)."""
    with op.batch_alter_table(table, schema=None) as batch:
        batch.alter_column(
            name, existing_type=AutoString(length=old), type_=AutoString(length=new), existing_nullable=False
        )
