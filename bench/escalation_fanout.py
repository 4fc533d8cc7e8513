"""Morning reminder fan-out to a 500-trader desk against a rate-limited fake Slack.

The escalation pass queues one reminder DM per pending trader in the outbox; the real
``OutboxWorker`` (its own thread, wall clock) delivers them while the fake Slack answers
429 + Retry-After to any ``chat.postMessage`` faster than the limit. Prints, per
backend, the wall time next to the floor the rate limit allows in the same run
((N − 1) / rate: the first call is free), the 429s received and duplicates (must be 0).

    .venv/bin/python bench/escalation_fanout.py                 # SQLite and PostgreSQL
    .venv/bin/python bench/escalation_fanout.py --backend sqlite --traders 200
    .venv/bin/python bench/escalation_fanout.py --compare-unpaced   # + 429-only delivery, 10 DMs

Target: wall ≤ 1.3 × floor.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slack_sdk import WebClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from bot.checklist import service as checklist
from bot.db import make_engine, session_scope
from bot.delivery.models import OutboxMessage
from bot.desks import service as desks
from bot.escalation import passes
from bot.migrate import upgrade
from bot.runtime import outbox_worker
from tests.support.fakes.slack import FakeSlack

PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DAY = date(2026, 11, 25)
POSTED_AT = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)  # 08:00 New York
REMIND_AT = datetime(2026, 11, 25, 13, 30, tzinfo=UTC)  # deadline 09:00 − 30 min


@dataclass
class Row:
    backend: str
    mode: str
    traders: int
    delivered: int
    duplicates: int
    rejected: int
    wall: float
    floor: float

    @property
    def ratio(self) -> float:
        return self.wall / self.floor if self.floor else float("nan")


@contextmanager
def database(backend: str) -> Iterator[Engine]:
    if backend == "sqlite":
        folder = tempfile.mkdtemp(prefix="fanout-")
        url = f"sqlite:///{folder}/bench.db"
        upgrade(url)
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()
            shutil.rmtree(folder, ignore_errors=True)
        return
    name = f"preflight_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def queue_reminders(engine: Engine, traders: int) -> int:
    with session_scope(engine) as session:
        desk = desks.add_desk(
            session=session,
            name="fanout",
            channel_id="C0FANOUT",
            managers=["UMGR00001"],
            traders=[f"U{n:08d}" for n in range(traders)],
            timezone="America/New_York",
            post_at="08:00",
            deadline="09:00",
            now=datetime(2026, 1, 5, tzinfo=UTC),
        )
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name="fanout")
        claim = checklist.claim_post(session=session, desk=desk, day=DAY, now=POSTED_AT)
        assert claim.run is not None and claim.run.id is not None
        checklist.mark_posted(session=session, run_id=claim.run.id, ts="1.0", now=POSTED_AT)
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name="fanout")
        report = passes.run_pass(session=session, desk=desk, now=REMIND_AT)
    return report.reminders


def undelivered(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).where(col(OutboxMessage.delivered_at).is_(None))).one())


def run(backend: str, traders: int, rate: float, retry_after: int, pacer_rate: float | None, mode: str) -> Row:
    fake = FakeSlack().start()
    fake.rate_limit("chat.postMessage", per_second=rate, retry_after=retry_after)
    try:
        with database(backend) as engine:
            queued = queue_reminders(engine, traders)
            assert queued == traders, queued
            client = WebClient(token="xoxb-bench", base_url=fake.base_url, timeout=10)
            start = time.monotonic()

            def clock() -> datetime:  # the morning of the bench, advancing in real time
                return REMIND_AT + timedelta(seconds=time.monotonic() - start)

            worker = outbox_worker(engine, client, None, clock=clock, slack_rate=pacer_rate, poll=0.05, batch=25)
            worker.start()
            while len(fake.of("chat.postMessage")) < traders:
                time.sleep(0.01)
            wall = time.monotonic() - start
            worker.stop()
            calls = fake.of("chat.postMessage")
            channels = [str(c.params["channel"]) for c in calls]
            assert undelivered(engine) == 0
            return Row(
                backend=backend,
                mode=mode,
                traders=traders,
                delivered=len(set(channels)),
                duplicates=len(channels) - len(set(channels)),
                rejected=len(fake.rejected),
                wall=wall,
                floor=(traders - 1) / rate,
            )
    finally:
        fake.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--traders", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="the fake's limit, calls per second")
    parser.add_argument("--retry-after", type=int, default=1)
    parser.add_argument(
        "--headroom", type=float, default=1.0, help="the worker paces at this fraction of the published rate"
    )
    parser.add_argument("--compare-unpaced", action="store_true", help="also: no pacing, 429 + Retry-After only")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    rows: list[Row] = []
    for backend in backends:
        mode = f"paced {args.rate * args.headroom:g}/s"
        rows.append(run(backend, args.traders, args.rate, args.retry_after, args.rate * args.headroom, mode))
        if args.compare_unpaced:
            rows.append(run(backend, 10, args.rate, args.retry_after, None, "429 only (10 DMs)"))
    print(
        f"\nReminder fan-out, fake Slack limit {args.rate:g} chat.postMessage/s, 429 Retry-After {args.retry_after}s\n"
    )
    print("| backend | delivery | traders | delivered | duplicates | 429s | wall | floor | wall/floor |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.backend} | {r.mode} | {r.traders} | {r.delivered} | {r.duplicates} | {r.rejected} | "
            f"{r.wall:.2f} s | {r.floor:.2f} s | {r.ratio:.2f}× |"
        )
    ok = all(r.duplicates == 0 and r.delivered == r.traders for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
