"""A delivering process for tests/test_processes.py: an OutboxWorker against DATABASE and the
fake Slack, started when GO exists, stopped once nothing is left to deliver.

    python -m tests.support.outbox_process DATABASE_URL SLACK_API_URL TOKEN PACER_SERVICE RATE GO_FILE
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from slack_sdk import WebClient

import bot.schema  # noqa: F401  (every table: the outbox row refers to desk)
from bot.db import make_engine
from bot.delivery.lanes import next_due
from bot.delivery.tiers import POST, SlackBudgets
from bot.delivery.worker import OutboxWorker


def main(argv: list[str]) -> int:
    url, api, token, service, rate, go = argv
    engine = make_engine(url)
    worker = OutboxWorker(engine, WebClient(token=token, base_url=api, timeout=10), None, poll=0.05)
    # The budgets this process draws on: under "slack" (the worker's own) shared with every
    # other process; another namespace gives this process budgets of its own.
    worker.budgets = SlackBudgets(engine, rates={POST: float(rate)}, namespace=service)
    next_due(engine)  # connected, and the first query's one-time costs paid before the start line
    Path(f"{go}.ready-{token}").touch()  # imported and connected: the test starts both together
    deadline = time.monotonic() + 60
    while not Path(go).exists():
        if time.monotonic() > deadline:
            return 3
        time.sleep(0.01)
    worker.start()
    while next_due(engine) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.stop()
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
