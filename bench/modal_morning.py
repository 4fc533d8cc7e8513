"""An outage morning for modals: 200 traders press *Report a problem* within a short window
while the after-ack pool is busy with other work and Slack rate-limits ``views.open``.

Slack's ``trigger_id`` expires 3 seconds after the click
(https://api.slack.com/interactivity/handling#modal_responses). Two set-ups of the same app,
driven through signed HTTP requests against the fake Slack (which refuses a trigger older
than 3 s with ``expired_trigger_id`` and answers 429 + Retry-After above the rate):

- ``before``: modal opens queued on the shared after-ack pool, through a WebClient with
  slack_sdk's RateLimitErrorRetryHandler (what the bot did before issue 12);
- ``after``: modal opens on their own pool (``Deps.urgent``) with a client without retry
  handlers, never attempted past 2.5 s (``bot.slack.deps.open_view``).

Prints opened / expired triggers / rate-limited / asked to click again / never answered.

    .venv/bin/python bench/modal_morning.py                 # 200 clicks over 60 s, both set-ups
    .venv/bin/python bench/modal_morning.py --clicks 100 --window 10 --busy 400

Target: 0 expired triggers in ``after``.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.checklist import posting
from bot.db import make_engine, session_scope
from bot.desks import service as desks
from bot.migrate import upgrade
from bot.slack.ids import Action
from tests.support.fakes.slack import TRIGGER_LIFE_NS, FakeSlack
from tests.support.harness import BOT_TOKEN, Bot, FakeClock

NOW = datetime(2026, 11, 25, 13, 5, tzinfo=UTC)  # 08:05 New York: the checklist is open


@dataclass
class Row:
    setup: str
    clicks: int
    opened: int
    expired: int
    limited: int
    told: int
    silent: int


def run(setup: str, clicks: int, window: float, busy: int, rate: float) -> Row:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        engine = make_engine(url)
        fake = FakeSlack().start()
        fake.rate_limit("views.open", per_second=rate, retry_after=1)
        bot = Bot(engine, fake.base_url, FakeClock(NOW))
        shared = ThreadPoolExecutor(max_workers=8, thread_name_prefix="after-ack")
        if setup == "before":
            bot.runtime.deps.executor = shared
            bot.runtime.deps.urgent_executor = shared  # the same pool as everything else
            bot.runtime.deps.modal_client = WebClient(
                token=BOT_TOKEN,
                base_url=fake.base_url,
                timeout=15,
                retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=3)],
            )
        else:
            bot.runtime.deps.executor = shared
        traders = [f"UB{i:05d}" for i in range(clicks)]
        with session_scope(engine) as session:
            desks.add_desk(
                session=session,
                name="equities",
                channel_id="C0123",
                managers=["UMGR1"],
                traders=traders,
                timezone="America/New_York",
                post_at="08:00",
                deadline="09:00",
                now=NOW,
            )
        result = posting.post_checklist(engine, bot.client, desk_name="equities", day=date(2026, 11, 25), now=NOW)
        # Other work already queued on the after-ack pool (replies, uploads: ~0.2 s each).
        for _ in range(busy):
            shared.submit(time.sleep, 0.2)
        start = time.monotonic()
        random.seed(12)
        offsets = sorted(random.uniform(0, window) for _ in traders)

        def click(user: str, at: float) -> None:
            time.sleep(max(0.0, start + at - time.monotonic()))
            bot.click(user, Action.REPORT_PROBLEM, str(result.run_id))

        threads = [threading.Thread(target=click, args=(u, at)) for u, at in zip(traders, offsets, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        shared.shutdown(wait=True)
        bot.urgent.shutdown(wait=True)
        time.sleep(1.0)
        opened = {c.params["trigger_id"] for c in fake.of("views.open")}
        expired = limited = 0
        for call in fake.rejected:
            if call.method != "views.open":
                continue
            issued = int(str(call.params["trigger_id"]).rsplit("-", 1)[-1])
            if call.at * 1e9 - issued > TRIGGER_LIFE_NS:
                expired += 1
            else:
                limited += 1
        told = sum(
            1
            for c in fake.calls
            if c.method in ("chat.postEphemeral", "chat.postMessage") and "click again" in str(c.params.get("text"))
        )
        answered = {
            c.params.get("user") or c.params.get("channel")
            for c in fake.calls
            if "click again" in str(c.params.get("text"))
        }
        opened_users = {t.split("-")[1] for t in opened}
        silent = sum(1 for u in traders if u not in opened_users and u not in answered)
        bot.close()
        fake.stop()
        engine.dispose()
        return Row(setup, clicks, len(opened), expired, limited, told, silent)


def main() -> None:
    logging.disable(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=200)
    parser.add_argument("--window", type=float, default=60.0, help="seconds over which the clicks arrive")
    parser.add_argument("--busy", type=int, default=300, help="0.2 s tasks already queued on the after-ack pool")
    parser.add_argument(
        "--rate", type=float, default=100 / 60, help="views.open calls a second before 429 (Tier 4: 100+/min)"
    )
    parser.add_argument("--setup", choices=("before", "after", "both"), default="both")
    args = parser.parse_args()
    setups = ["before", "after"] if args.setup == "both" else [args.setup]
    rows = [run(s, args.clicks, args.window, args.busy, args.rate) for s in setups]
    print("| setup | clicks | modals opened | expired triggers | 429s | asked to click again | no answer |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.setup} | {r.clicks} | {r.opened} | {r.expired} | {r.limited} | {r.told} | {r.silent} |")


if __name__ == "__main__":
    main()
