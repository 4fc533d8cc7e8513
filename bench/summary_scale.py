"""Weekly summary and export at scale, on SQLite and PostgreSQL. Prints tables; asserts nothing.

A desk of 1,000 traders with 52 weeks of history (about 260 trading days, ~290k answer
versions, escalations for missing recovery paths), plus desks of 10 and 100 traders, inserted
with bulk ``executemany`` inserts. Measures:

- building one weekly summary (2026-W48): wall time (best of 3) and peak Python memory
  (tracemalloc), plus the process's max RSS; targets < 2 s and < 200 MB;
- SQL statements per summary for 10 / 100 / 1,000 traders (must be equal);
- exporting 1 week / 1 month / 3 months / 6 months to a file: rows and peak memory (flat).

Usage: .venv/bin/python bench/summary_scale.py [--traders 1000] [--weeks 52] [--only sqlite|postgresql]
PostgreSQL: TEST_PG_ADMIN_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, insert, text
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot import calendar
from bot.checklist.models import Answer, ChecklistRun
from bot.checklist.service import schedule
from bot.db import make_engine, session_scope
from bot.desks.models import Desk, DeskMember, Role
from bot.escalation.models import Escalation
from bot.migrate import upgrade
from bot.summary import chain, export
from bot.summary import report as summary

WEEK = "2026-W48"
LAST_DAY = date(2026, 11, 27)
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
CHUNK = 5000


def populate(engine: Engine, name: str, traders: int, weeks: int, seed: int = 7) -> int:
    """A desk with ``traders`` traders and ``weeks`` weeks of history, bulk-inserted."""
    rng = random.Random(seed)
    with session_scope(engine) as session:
        desk = Desk(name=name, channel_id="C0BENCH", timezone="America/New_York", post_at="08:00", deadline="09:00")
        session.add(desk)
        session.flush()
        assert desk.id is not None
        desk_id = desk.id
        users = [f"U{name[:3].upper()}{i:05d}" for i in range(traders)]
        session.execute(
            insert(DeskMember),
            [{"desk_id": desk_id, "user_id": u, "role": Role.TRADER} for u in users]
            + [{"desk_id": desk_id, "user_id": "UMGR00001", "role": Role.MANAGER}],
        )
        start = LAST_DAY - timedelta(weeks=weeks) + timedelta(days=1)
        plans = [p for p in (schedule(desk, d) for d in calendar.trading_days(start, LAST_DAY)) if p is not None]
        runs = [
            {
                "desk_id": desk_id,
                "trading_date": p.trading_date,
                "early_close": p.early_close,
                "channel_id": "C0BENCH",
                "post_due_at": p.post_at,
                "deadline_at": p.deadline,
                "market_close_at": p.market_close,
                "created_at": p.post_at,
                "message_ts": f"{p.trading_date:%Y%m%d}.000001",
                "posted_at": p.post_at,
            }
            for p in plans
        ]
        session.execute(insert(ChecklistRun), runs)
        run_ids = dict(
            session.execute(text("SELECT trading_date, id FROM checklist_run WHERE desk_id = :d"), {"d": desk_id}).all()
        )
    answers: list[dict[str, Any]] = []
    escalations: list[dict[str, Any]] = []
    flagged = set(rng.sample(users, max(1, traders // 50)))  # a few traders without a recovery path for weeks

    def flush(force: bool = False) -> None:
        if answers and (force or len(answers) >= CHUNK):
            with engine.begin() as conn:
                conn.execute(insert(Answer), answers)
            answers.clear()

    for p in plans:
        run_id = run_ids[p.trading_date] if p.trading_date in run_ids else run_ids[str(p.trading_date)]
        for user in users:
            roll = rng.random()
            if roll < 0.05:
                continue  # missed
            first = p.post_at + timedelta(minutes=rng.randint(1, 55) if roll < 0.85 else rng.randint(61, 200))
            versions: list[tuple[str, str, str | None, str]]
            base = {"run_id": run_id, "user_id": user, "note": None, "platform": None, "missing_permissions": None}
            if user in flagged and p.trading_date > LAST_DAY - timedelta(days=60):
                versions = [("problem", "contingency", None, "second_mfa_device,recovery_code")]
                escalations.append(
                    {
                        "desk_id": desk_id,
                        "run_id": run_id,
                        "trader_id": user,
                        "kind": "recovery_path",
                        "state": "acknowledged",
                        "detail": "",
                        "opened_at": first,
                        "acknowledged_at": first + timedelta(minutes=rng.randint(2, 40)),
                        "acknowledged_by": "UMGR00001",
                        "level": 1,
                    }
                )
            elif roll < 0.93:
                versions = [("confirmed", "", None, "")]
                if rng.random() < 0.1:  # edited after submission
                    versions = [("problem", "authentication", "identity", ""), *versions]
            else:
                versions = [("problem", "permissions", None, "")]
            for v, (status, failed, layer, gaps) in enumerate(versions, start=1):
                answers.append(
                    {
                        **base,
                        "version": v,
                        "status": status,
                        "failed_checks": failed,
                        "auth_layer": layer,
                        "contingency_gaps": gaps,
                        "restricted": status == "problem",
                        "created_at": first + timedelta(minutes=20 * (v - 1)),
                    }
                )
            flush()
    flush(force=True)
    with engine.begin() as conn:
        for i in range(0, len(escalations), CHUNK):
            conn.execute(insert(Escalation), escalations[i : i + CHUNK])
    return desk_id


@contextmanager
def count_statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def on(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", on)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on)


def build(engine: Engine, desk_id: int) -> summary.WeeklyReport:
    with session_scope(engine) as session:
        desk = session.get(Desk, desk_id)
        assert desk is not None
        return summary.build_summary(session=session, desk=desk, iso_week=WEEK, now=calendar.market_close(LAST_DAY))


def peak_mb(fn: Callable[[], Any]) -> tuple[Any, float]:
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak / 1e6


def export_to(engine: Engine, desk_id: int, start: date, end: date, path: Path) -> int:
    with session_scope(engine) as session, path.open("w", encoding="utf-8", newline="") as out:
        desk = session.get(Desk, desk_id)
        assert desk is not None
        return export.write_csv(session=session, desk=desk, start=start, end=end, out=out).rows


def run_backend(label: str, engine: Engine, traders: int, weeks: int) -> list[str]:
    lines: list[str] = []
    t0 = time.perf_counter()
    ids = {n: populate(engine, f"desk{n}", n, weeks) for n in sorted({10, 100, traders})}
    with engine.connect() as conn:
        n_answers = conn.execute(text("SELECT count(*) FROM answer")).scalar_one()
    lines.append(f"{label}: inserted {n_answers:,} answer versions in {time.perf_counter() - t0:.1f} s")

    counts = {}
    for n, desk_id in ids.items():
        with count_statements(engine) as seen:
            build(engine, desk_id)
        counts[n] = len(seen)
    lines.append(f"{label}: SQL statements per summary " + ", ".join(f"{n} traders: {c}" for n, c in counts.items()))

    big = ids[traders]
    build(engine, big)  # warm caches (calendar, statement cache)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        report = build(engine, big)
        times.append(time.perf_counter() - t)
    _, peak = peak_mb(lambda: build(engine, big))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines.append(
        f"{label}: summary of {len(report.rows):,} traders: best {min(times):.2f} s "
        f"(of {', '.join(f'{x:.2f}' for x in times)}), peak traced {peak:.1f} MB, process max RSS so far {rss:.0f} MB"
    )

    with tempfile.TemporaryDirectory() as tmp:
        for span, start in (
            ("1 week", date(2026, 11, 23)),
            ("1 month", date(2026, 11, 1)),
            ("3 months", date(2026, 9, 1)),
            ("6 months", date(2026, 6, 1)),
        ):
            path = Path(tmp) / "export.csv"
            t = time.perf_counter()
            rows, peak = peak_mb(lambda s=start, p=path: export_to(engine, big, s, LAST_DAY, p))  # type: ignore[misc]
            elapsed = time.perf_counter() - t
            ok = chain.verify(path.open(encoding="utf-8", newline="")).ok
            lines.append(
                f"{label}: export {span:<8} {rows:>9,} rows  peak traced {peak:6.1f} MB  {elapsed:5.1f} s"
                f"  verify={'ok' if ok else 'BAD'}"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traders", type=int, default=1000)
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    out: list[str] = []
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            upgrade(url)
            engine = make_engine(url)
            out += run_backend("sqlite", engine, args.traders, args.weeks)
            engine.dispose()
    if args.only in (None, "postgresql"):
        name = f"preflight_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        try:
            upgrade(url)
            engine = make_engine(url)
            out += run_backend("postgresql", engine, args.traders, args.weeks)
            engine.dispose()
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
