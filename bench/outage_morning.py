"""The outage morning (issue 18): 300 traders each report a problem within about two minutes
while Slack's rate tiers refuse what goes over them.

The running app (signed HTTP requests, waitress, SQLite) against the fake Slack, which answers
429 + Retry-After 30 to ``views.open`` and ``chat.postEphemeral`` calls closer together than
Tier 4's 100 a minute (as a strict interval: burstier than real Slack) and refuses a trigger
older than 3 s. Each trader, at a random moment of the window:

- ``one-click`` (the bot as built): half press *Report a problem*; when the form opens they
  submit it 5–20 s later, when Slack refuses it they use the one-click buttons of the reply
  that came through the click's ``response_url``; the other half click a one-click report
  (*Can't log in* / *Permission missing*) straight from the message or the reminder DM;
- ``modal only``: everyone uses the form, as before one-click reports existed: refused, they
  click again 5 s later, up to 3 tries.

Prints: traders, reports recorded, time from the first click to the last report stored, modal
opens attempted / refused, replies through response_url, chat.postEphemeral calls / refused.

    .venv/bin/python bench/outage_morning.py                     # 300 traders over 120 s
    .venv/bin/python bench/outage_morning.py --traders 100 --window 30 --setup one-click
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlmodel import Session, select

from bot.checklist import posting
from bot.checklist.models import Answer
from bot.db import make_engine, session_scope
from bot.desks import service as desks
from bot.migrate import upgrade
from bot.slack.ids import Action, Callback
from tests.support.escalation_fixtures import report_values
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot, FakeClock

NOW = datetime(2026, 11, 25, 13, 5, tzinfo=UTC)  # 08:05 New York: the checklist is open
TIER4 = 100 / 60  # views.open, chat.postEphemeral: Tier 4, 100+ a minute
QUICK = (Action.QUICK_CANT_LOG_IN, Action.QUICK_PERMISSION_MISSING)


@dataclass
class Row:
    setup: str
    traders: int
    recorded: int
    last: float
    attempted: int
    refused: int
    responses: int
    ephemerals: int
    ephemerals_refused: int


def _outcome(fake: FakeSlack, user: str, replies_before: int, timeout: float = 4.0) -> bool | None:
    """After a *Report a problem* click: True when the form opened, False when a reply said it
    couldn't, None when neither happened in ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(str(c.params.get("trigger_id", "")).startswith(f"trig-{user}-") for c in fake.of("views.open")):
            return True
        if len(fake.responded(user)) > replies_before:
            return False
        time.sleep(0.05)
    return None


def run(setup: str, traders_n: int, window: float, seed: int = 18) -> Row:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        engine = make_engine(url)
        fake = FakeSlack().start()
        for method in ("views.open", "chat.postEphemeral"):
            fake.rate_limit(method, per_second=TIER4, retry_after=30)
        bot = Bot(engine, fake.base_url, FakeClock(NOW))
        traders = [f"UO{i:04d}" for i in range(traders_n)]
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
        run_id = str(result.run_id)
        meta = json.dumps({"run_id": result.run_id, "channel_id": "C0123"})
        rng = random.Random(seed)
        offsets = {u: rng.uniform(0, window) for u in traders}
        modal_first = {u for u in traders if setup == "modal only" or rng.random() < 0.5}
        stored_at: dict[str, float] = {}
        lock = threading.Lock()
        start = time.monotonic()

        def stored(user: str) -> None:
            with lock:
                stored_at[user] = time.monotonic() - start

        def trader(user: str) -> None:
            time.sleep(max(0.0, start + offsets[user] - time.monotonic()))
            if user not in modal_first:
                bot.click(user, QUICK[int(user[2:]) % 2], run_id)
                stored(user)
                return
            for _ in range(3):
                before = len(fake.responded(user))
                bot.click(user, Action.REPORT_PROBLEM, run_id)
                opened = _outcome(fake, user, before)
                if opened:
                    time.sleep(rng.uniform(5, 20))  # filling the form in
                    values = report_values(["permissions"], platform="tws", missing="ES futures")
                    if bot.submit_view(user, Callback.REPORT_MODAL, values, meta).status_code == 200:
                        stored(user)
                    return
                if setup == "one-click":  # the reply's one-click buttons
                    time.sleep(rng.uniform(1, 3))
                    bot.click(user, Action.QUICK_CANT_LOG_IN, run_id)
                    stored(user)
                    return
                time.sleep(5)  # modal only: click again

        threads = [threading.Thread(target=trader, args=(u,)) for u in traders]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        bot.settle(timeout=60)
        with Session(engine) as session:
            recorded = {a.user_id for a in session.exec(select(Answer)).all()}
        last = max((at for u, at in stored_at.items() if u in recorded), default=0.0)
        attempted = len(fake.of("views.open")) + sum(1 for c in fake.rejected if c.method == "views.open")
        refused = sum(1 for c in fake.rejected if c.method == "views.open")
        ephemerals = len(fake.of("chat.postEphemeral"))
        ephemerals_refused = sum(1 for c in fake.rejected if c.method == "chat.postEphemeral")
        row = Row(
            setup,
            traders_n,
            len(recorded),
            last,
            attempted,
            refused,
            len(fake.responded()),
            ephemerals + ephemerals_refused,
            ephemerals_refused,
        )
        bot.close()
        fake.stop()
        engine.dispose()
        return row


def main() -> None:
    logging.disable(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traders", type=int, default=300)
    parser.add_argument("--window", type=float, default=120.0, help="seconds over which the traders report")
    parser.add_argument("--setup", choices=("one-click", "modal only", "both"), default="both")
    args = parser.parse_args()
    setups = ["modal only", "one-click"] if args.setup == "both" else [args.setup]
    rows = [run(s, args.traders, args.window) for s in setups]
    print(
        "| setup | traders | reports recorded | last report stored | modal opens attempted | refused "
        "| response_url replies | chat.postEphemeral calls | refused |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.setup} | {r.traders} | {r.recorded} | {r.last:.1f} s | {r.attempted} | {r.refused} "
            f"| {r.responses} | {r.ephemerals} | {r.ephemerals_refused} |"
        )


if __name__ == "__main__":
    main()
