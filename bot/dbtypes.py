"""Column types shared by the models and the migrations, and ``lookup`` for the enum values
text columns record."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``; SQLite stores naive UTC text. Naive
    datetimes are refused on the way in, so a local time cannot slip through.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


E = TypeVar("E", bound=StrEnum)
V = TypeVar("V")


def lookup(table: Mapping[E, V], kind: type[E], value: str, *, unknown: V) -> V:
    """``table``'s entry for a ``kind`` value recorded as text; ``unknown`` when the text is
    none of ``kind``'s values (recorded by another version of the bot) or has no entry."""
    try:
        return table[kind(value)]
    except (ValueError, KeyError):
        return unknown
