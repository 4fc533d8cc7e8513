"""The live roster of a 2,000-trader desk: load and render, cold and warm. Prints a table.

What the roster refresher does per update (``bot.checklist.roster_refresher``), without Slack:

- **cold**: an empty cache (``bot.checklist.roster_cache.RosterCache``) — the full load (desk, traders,
  every answer version, names, away days, profile facts) and a render with an empty memo:
  what every update cost before the cache;
- **warm**: one new answer stored (``checklist.service.confirm``), then the incremental read
  (answers with ``id > last seen``) and a render with the run's memo.

*load* = reading the snapshot into the cache; *render* = from having the data to having text
and blocks (``checklist_message``). Wall time and thread CPU time, median and p95; *blocks*
= bytes of the blocks as JSON (as slack_sdk sends them, ``ensure_ascii``) and as UTF-8.
Half the desk has answered (a quarter of those restricted), names are known for everyone.

Usage: .venv/bin/python -m bench.roster_render [--traders 2000] [--repeat 30] [--only sqlite|postgresql]
PostgreSQL: TEST_PG_ADMIN_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text, update
from sqlalchemy.engine import Engine
from sqlmodel import col

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bot.profile.hooks  # noqa: F401  (registers the profile's facts provider, as the bot does)
from bot.checklist import rosters
from bot.checklist import service as checklist
from bot.checklist.models import Answer, AnswerStatus, ChecklistRun
from bot.checklist.roster_cache import LiveRoster, RosterCache, snapshot
from bot.checklist.roster_views import checklist_message
from bot.db import make_engine, session_scope
from bot.desks.models import Desk, DeskMember, Role
from bot.migrate import upgrade
from bot.people.models import Person

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DAY = date(2026, 11, 25)
NOW = datetime(2026, 11, 25, 13, 5, tzinfo=UTC)  # 08:05 in New York


def populate(engine: Engine, traders: int) -> tuple[int, list[str]]:
    """A desk of ``traders`` with names, its posted run, and half of them answered."""
    users = [f"UB{i:06d}" for i in range(traders)]
    with session_scope(engine) as session:
        desk = Desk(name="bench", channel_id="C0BENCH", timezone="America/New_York", post_at="08:00", deadline="09:00")
        session.add(desk)
        session.flush()
        assert desk.id is not None
        session.execute(
            insert(DeskMember),
            [{"desk_id": desk.id, "user_id": u, "role": Role.TRADER} for u in users]
            + [{"desk_id": desk.id, "user_id": "UBMGR", "role": Role.MANAGER}],
        )
        session.execute(
            insert(Person),
            [
                {"user_id": u, "display_name": f"Trader {i:04d}", "real_name": "", "fetched_at": NOW}
                for i, u in enumerate(users)
            ],
        )
        claim = checklist.claim_post(session=session, desk=desk, day=DAY, now=NOW)
        assert claim.run is not None and claim.run.id is not None
        run_id = claim.run.id
        checklist.mark_posted(session=session, run_id=run_id, ts="1.0", now=NOW)
        answered = users[: traders // 2]
        rows = []
        for i, u in enumerate(answered):
            problem = i % 4 == 1
            rows.append(
                {
                    "run_id": run_id,
                    "user_id": u,
                    "version": 1,
                    "status": AnswerStatus.PROBLEM if problem else AnswerStatus.CONFIRMED,
                    "failed_checks": "permissions" if problem else "",
                    "platform": "tws" if problem else None,
                    "missing_permissions": "ES futures" if problem else None,
                    "permission_gaps": "trading_permission" if problem else "",
                    "contingency_gaps": "",
                    "restricted": problem,
                    "created_at": NOW,
                }
            )
        session.execute(insert(Answer), rows)
        session.execute(update(ChecklistRun).where(col(ChecklistRun.id) == run_id).values(answers_version=len(rows)))
    return run_id, users[traders // 2 :]


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.thread_time()
    out = fn()
    return out, (time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000


def render(live: LiveRoster) -> tuple[str, list[dict[str, Any]]]:
    return checklist_message(live.roster(), memo=live.memo)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def measure(engine: Engine, run_id: int, pending: list[str], repeat: int) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for mode in ("cold", "warm"):
        load_wall: list[float] = []
        load_cpu: list[float] = []
        render_wall: list[float] = []
        render_cpu: list[float] = []
        sizes: tuple[int, int] = (0, 0)
        cache = RosterCache()
        for i in range(repeat + 1):
            if mode == "cold":
                cache = RosterCache()
            else:  # one new answer since the last render
                with session_scope(engine) as session:
                    run = session.get(ChecklistRun, run_id)
                    assert run is not None
                    checklist.confirm(session=session, run=run, user_id=pending.pop(), now=NOW)
            with snapshot(engine) as session:
                run = session.get(ChecklistRun, run_id)
                assert run is not None
                live, lw, lc = timed(partial(cache.read, session, run))
            assert cache.last_load == ("full" if mode == "cold" or i == 0 else "incremental"), cache.last_load
            (txt, blocks), rw, rc = timed(partial(render, live))
            if i == 0:
                continue  # warm-up (for warm: the cache's first, full, load)
            load_wall.append(lw)
            load_cpu.append(lc)
            render_wall.append(rw)
            render_cpu.append(rc)
            sizes = (len(json.dumps(blocks)), len(json.dumps(blocks, ensure_ascii=False).encode()))
        # The output must be what a render from scratch gives.
        with snapshot(engine) as session:
            run = session.get(ChecklistRun, run_id)
            assert run is not None
            assert checklist_message(rosters.roster(session=session, run=run)) == (txt, blocks)
        results[mode] = {
            "load": (statistics.median(load_wall), p95(load_wall), statistics.median(load_cpu)),
            "render": (statistics.median(render_wall), p95(render_wall), statistics.median(render_cpu)),
            "sizes": sizes,
        }
    return results


def run_backend(label: str, url: str, traders: int, repeat: int) -> list[str]:
    upgrade(url)
    engine = make_engine(url)
    try:
        run_id, pending = populate(engine, traders)
        results = measure(engine, run_id, pending, repeat)
    finally:
        engine.dispose()
    rows = []
    for mode, r in results.items():
        lm, lp, lc = r["load"]
        rm, rp, rc = r["render"]
        ascii_bytes, utf8 = r["sizes"]
        rows.append(
            f"| {label} | {mode} | {lm:.1f} / {lp:.1f} ({lc:.1f}) | {rm:.2f} / {rp:.2f} ({rc:.2f}) "
            f"| {ascii_bytes:,} / {utf8:,} |"
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--traders", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    print(
        f"nproc {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {args.traders} traders"
    )
    rows = [
        "| backend | mode | load ms median / p95 (CPU) | render ms median / p95 (CPU) | blocks bytes JSON / UTF-8 |",
        "|---|---|---|---|---|",
    ]
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            rows += run_backend("SQLite", f"sqlite:///{tmp}/bench.db", args.traders, args.repeat)
    if args.only in (None, "postgresql"):
        name = f"preflight_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            rows += run_backend("PostgreSQL", PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", args.traders, args.repeat)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print("\n".join(rows))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
