"""Run Alembic migrations programmatically (``preflight migrate`` and at start-up).

Every command that touches data calls ``upgrade`` first. Importing Alembic costs about a
second (``import alembic`` pulls in ``alembic.context`` and its DDL machinery), so it is
imported only when there is something to do: ``upgrade`` first compares the database's
``alembic_version`` with the head of ``bot/migrations/versions`` read straight from the revision
files (``revision = ...`` / ``down_revision = ...``). At head: done, no Alembic. Behind, ahead,
no version table, or anything the quick reading can't be sure of (a merge revision, two
heads, an unreadable file): the full Alembic upgrade, which decides.

``script_head`` imports neither SQLAlchemy nor Alembic: ``preflight desk list`` checks the
head with it over a plain DB-API connection (``bot.dbapi``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

# The revisions ship inside the package (bot/migrations), so a plain ``pip install .`` (a
# Dockerfile, a PaaS build) migrates as well as an editable install. Developers run the Alembic
# CLI with the repository's alembic.ini, which points at the same folder.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSIONS = MIGRATIONS / "versions"
_LOCK_ID = 7_345_001  # pg advisory lock: replicas starting together migrate one at a time


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    cfg = Config()  # no ini file: an installed package has none, and env.py needs nothing from it
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["database_url"] = database_url
    return cfg


_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.MULTILINE)


def _revision_of(path: Path) -> tuple[str, str | None] | None:
    """(revision, down_revision) assigned at the top level of one revision file, or None when
    they aren't a plain string and a string/None (a merge's tuple, a computed value...)."""
    found: dict[str, object] = {}
    for name, value in _ASSIGNMENT.findall(path.read_text(encoding="utf-8")):
        try:
            found[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return None
    revision, down = found.get("revision"), found.get("down_revision", ...)
    if not isinstance(revision, str) or not (down is None or isinstance(down, str)):
        return None
    return revision, down


def script_head(versions: Path = VERSIONS) -> str | None:
    """The head revision of a linear chain of revision files, without importing Alembic;
    None when unsure (no files, a file it can't read, a merge, a fork, a dangling parent)."""
    try:
        pairs = [_revision_of(p) for p in sorted(versions.glob("*.py"))]
    except (OSError, SyntaxError, ValueError):
        return None
    if not pairs or any(p is None for p in pairs):
        return None
    parents = {rev: down for rev, down in (p for p in pairs if p is not None)}
    if len(parents) != len(pairs):  # a revision id used twice
        return None
    children = [down for down in parents.values() if down is not None]
    if len(set(children)) != len(children) or not set(children) <= parents.keys():
        return None  # a fork, or a parent that isn't there
    if sum(down is None for down in parents.values()) != 1:
        return None
    heads = parents.keys() - set(children)
    return next(iter(heads)) if len(heads) == 1 else None


def _current(conn: Connection) -> list[str] | None:
    """The database's alembic_version rows, or None when it has no such table."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    try:
        return [str(v) for v in conn.execute(text("SELECT version_num FROM alembic_version")).scalars()]
    except DBAPIError:
        conn.rollback()
        return None


def at_head(database_url: str) -> bool:
    """True when the database is certainly at the head of ``bot/migrations/versions``."""
    head = script_head()
    if head is None:
        return False
    from bot.db import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return _current(conn) == [head]
    finally:
        engine.dispose()


def upgrade(database_url: str) -> None:
    """Bring the database to the newest schema; safe to run from several processes at once."""
    if at_head(database_url):
        return
    from alembic import command
    from sqlalchemy import text

    from bot.db import make_engine

    cfg = alembic_config(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _LOCK_ID})
                conn.commit()
            cfg.attributes["connection"] = conn
            try:
                command.upgrade(cfg, "head")
                conn.commit()
            finally:
                if engine.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _LOCK_ID})
                    conn.commit()
    finally:
        engine.dispose()
