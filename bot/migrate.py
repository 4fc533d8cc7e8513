"""Run Alembic migrations programmatically (``preflight migrate`` and at start-up)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from bot.db import make_engine

ROOT = Path(__file__).resolve().parent.parent
_LOCK_ID = 7_345_001  # pg advisory lock: replicas starting together migrate one at a time


def alembic_config(database_url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str) -> None:
    """Bring the database to the newest schema; safe to run from several processes at once."""
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
