"""The columns of the Alembic revisions in ``versions/``, by the type the models give them:
``string("name", 64)`` is what autogenerate writes as
``sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False)``.

Each builds exactly that Column, so a revision written with them issues the same DDL on SQLite
and PostgreSQL. NOT NULL unless ``nullable=True``; ``default`` is the server default (what the
rows already there get when a column is added). The operations that take them:
bot/migrations/kit.py.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel.sql.sqltypes import AutoString

from bot.dbtypes import UTCDateTime


def column(name: str, type_: Any, *, nullable: bool = False, default: Any = None) -> sa.Column[Any]:
    """A column of any type (the helpers below, and a type they don't cover)."""
    return sa.Column(name, type_, server_default=default, nullable=nullable)


def id_column() -> sa.Column[Any]:
    """``id``, an integer: the key ``kit.create_table`` gives a table unless told another
    (SERIAL on PostgreSQL, where it is the primary key)."""
    return integer("id")


def integer(name: str, *, nullable: bool = False, default: int | None = None) -> sa.Column[Any]:
    return column(name, sa.Integer(), nullable=nullable, default=None if default is None else str(default))


def string(name: str, length: int, *, nullable: bool = False, default: str | None = None) -> sa.Column[Any]:
    """VARCHAR(length): a model's ``str`` field with ``max_length``."""
    return column(name, AutoString(length=length), nullable=nullable, default=default)


def text(name: str, *, nullable: bool = False, default: str | None = None) -> sa.Column[Any]:
    """TEXT, no length limit."""
    return column(name, sa.Text(), nullable=nullable, default=default)


def utc(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    """A timestamp, always UTC (bot.dbtypes.UTCDateTime)."""
    return column(name, UTCDateTime(timezone=True), nullable=nullable)


def boolean(name: str, *, nullable: bool = False, default: bool | None = None) -> sa.Column[Any]:
    """``default=False`` gives the rows already there false (``server_default=sa.false()``)."""
    server_default = None if default is None else (sa.true() if default else sa.false())
    return column(name, sa.Boolean(), nullable=nullable, default=server_default)


def date(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return column(name, sa.Date(), nullable=nullable)


def real(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    """A float."""
    return column(name, sa.Float(), nullable=nullable)
