"""A level-2 pass on an outage morning (issue 18): what it queues for Slack and how long until
the managers see it in the escalation channel.

Every trader of an N-trader desk is silent at the deadline (09:00 New York); the escalation
pass opens N escalations (each manager gets one grouped DM), and at 09:15 the level-2 pass
raises all of them. The real ``OutboxWorker`` thread then delivers to the fake Slack with
Slack's limits on (``FakeSlack.slack_tiers``: one post a second per channel, ``chat.update``
at Tier 3's 50 a minute, strict intervals; 429 + Retry-After 1 beyond them). SQLite file.

Prints: Slack calls the pass queued (posts / updates), how many level-2 messages reached the
escalation channel by the end (or the cap, when the worker is stopped), seconds from the pass
until the first and the last of them got there, until the queue was empty, and the 429s.
``--code DIR`` runs the bot's code from another checkout (``before``: ``--code /work/main``);
the fake Slack is always this checkout's.

    .venv/bin/python bench/level2_pass.py --traders 60 200
    .venv/bin/python bench/level2_pass.py --code /work/main --label before
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def _fake_slack_class() -> type:
    spec = importlib.util.spec_from_file_location("bench_fake_slack", HERE / "tests/support/fakes/slack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_fake_slack"] = module
    spec.loader.exec_module(module)
    return module.FakeSlack  # type: ignore[no-any-return]


POSTED = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
DEADLINE = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
LEVEL2 = datetime(2026, 11, 25, 14, 15, tzinfo=UTC)


@dataclass
class Row:
    label: str
    traders: int
    posts: int
    updates: int
    first: float | None
    last: float | None
    drained: float | None
    rejected: int
    in_channel: int  # level-2 messages that reached the escalation channel by the end (or the cap)


def run(label: str, traders_n: int, cap: float) -> Row:
    from slack_sdk import WebClient
    from sqlmodel import Session, col, select

    from bot.checklist import posting
    from bot.db import make_engine, session_scope
    from bot.delivery.models import OutboxMessage
    from bot.delivery.worker import OutboxWorker, next_due
    from bot.desks import service as desks
    from bot.escalation import passes
    from bot.migrate import upgrade
    from bot.slack.notifications import render

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        engine = make_engine(url)
        fake = _fake_slack_class()().start()
        client = WebClient(token="xoxb-bench", base_url=fake.base_url, timeout=10)
        traders = [f"UL{i:05d}" for i in range(traders_n)]
        with session_scope(engine) as session:
            desks.add_desk(
                session=session,
                name="equities",
                channel_id="C0123",
                managers=["UMGR1", "UMGR2"],
                traders=traders,
                timezone="America/New_York",
                post_at="08:00",
                deadline="09:00",
                now=datetime(2026, 11, 24, tzinfo=UTC),
            )
            desks.configure_desk(session=session, name="equities", keys=None, escalation_channel="CESCAL")
        posting.post_checklist(engine, client, desk_name="equities", day=date(2026, 11, 25), now=POSTED)
        base, t0 = [DEADLINE], [time.monotonic()]  # the domain clock moves with real time from a set instant

        def clock() -> datetime:
            return base[0] + timedelta(seconds=time.monotonic() - t0[0])

        worker = OutboxWorker(engine, client, None, render=render, clock=clock, poll=0.05)
        with session_scope(engine) as session:
            passes.run_pass(session=session, desk=desks.get_desk(session=session, name="equities"), now=DEADLINE)
        worker.start()
        while next_due(engine) is not None:
            time.sleep(0.05)
        worker.stop()
        # Slack's limits from here on: what the pass sends must keep them.
        if hasattr(fake, "slack_tiers"):
            fake.slack_tiers()
        with Session(engine) as session:
            last_id = session.exec(select(OutboxMessage.id).order_by(col(OutboxMessage.id).desc())).first() or 0
        base[0], t0[0] = LEVEL2, time.monotonic()
        with session_scope(engine) as session:
            passes.run_pass(session=session, desk=desks.get_desk(session=session, name="equities"), now=LEVEL2)
        start = time.monotonic()
        with Session(engine) as session:
            queued = session.exec(select(OutboxMessage.kind).where(col(OutboxMessage.id) > last_id)).all()
        worker.start()
        drained = None
        while time.monotonic() - start < cap:
            if next_due(engine) is None:
                drained = time.monotonic() - start
                break
            time.sleep(0.1)
        worker.stop()
        in_channel = [c.at - start for c in fake.of("chat.postMessage") if c.params.get("channel") == "CESCAL"]
        row = Row(
            label,
            traders_n,
            sum(1 for k in queued if k in ("slack.post", "slack.dm")),
            sum(1 for k in queued if k == "slack.update"),
            min(in_channel) if in_channel else None,
            max(in_channel) if in_channel else None,
            drained,
            len(fake.rejected),
            len(in_channel),
        )
        fake.stop()
        engine.dispose()
        return row


def _s(value: float | None, cap: float) -> str:
    return f"{value:.1f} s" if value is not None else f"> {cap:.0f} s"


def main() -> None:
    logging.disable(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traders", type=int, nargs="+", default=[60, 200])
    parser.add_argument("--code", type=Path, default=HERE, help="the checkout whose bot/ runs")
    parser.add_argument("--label", default="after")
    parser.add_argument("--cap", type=float, default=120.0, help="seconds to wait for the queue to drain")
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    rows = [run(args.label, n, args.cap) for n in args.traders]
    print(
        "| code | traders | Slack calls queued by the pass (posts / updates) | level-2 messages in the channel "
        "| first one there | last one | queue empty | 429s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.label} | {r.traders} | {r.posts + r.updates} ({r.posts} / {r.updates}) | {r.in_channel} "
            f"| {_s(r.first, args.cap)} | {_s(r.last, args.cap)} | {_s(r.drained, args.cap)} | {r.rejected} |"
        )


if __name__ == "__main__":
    main()
