"""CPU per request of the click and of /ibstatus, in-process, one request at a time. Prints a table.

``bench/checklist_http.py`` measures the whole server under load; this isolates what one request
costs the bot, to see what each lever of issue 11 is worth: the real WSGI app
(``bot.runtime.build(settings).web``: signature check, Bolt, the listener) called directly with
signed bodies (no HTTP server, no client threads), on a 2,000-trader desk with its checklist
posted, every click from a distinct trader (a first confirmation), then own ``/ibstatus``
requests. Per backend and kind: the process's CPU per request (``time.process_time``: every
thread of this process), the PostgreSQL server's CPU per request (all ``postgres`` processes,
from ``/proc``, so other databases' work on the machine counts too), and wall time. With
``--refresher`` the roster refresher runs as in the server (its first, cold load of the desk
included).

Usage: .venv/bin/python -m bench.click_cpu [--clicks 1000] [--backend sqlite|postgresql|both] [--refresher]
"""

from __future__ import annotations

import argparse
import io
import os
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient

from bench import checklist_http as http
from bot.config import Settings
from bot.db import make_engine
from bot.runtime import build

WARMUP = 50


def postgres_cpu() -> float:
    """Seconds of CPU used so far by every ``postgres`` process (0 where /proc can't tell)."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() not in ("postgres", "postmaster"):
                    continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / http.CLK_TCK
        except OSError:
            continue
    return total


def call(wsgi: Callable[..., Any], body: bytes) -> str:
    stamp = str(int(time.time()))
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/slack/events",
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "SERVER_NAME": "bench",
        "SERVER_PORT": "1",
        "wsgi.url_scheme": "http",
        "HTTP_X_SLACK_REQUEST_TIMESTAMP": stamp,
        "HTTP_X_SLACK_SIGNATURE": http._sign(body, stamp),
    }
    status: list[str] = []
    b"".join(wsgi(environ, lambda s, _h, _e=None: status.append(s)))
    return status[0]


def measure(backend: str, clicks: int, refresher: bool) -> list[str]:
    rows: list[str] = []
    slack = http.SlackProcess()
    try:
        with http.scratch_database(backend) as url:
            engine = make_engine(url)
            settings = Settings(
                database_url=url,
                slack_bot_token=http.BOT_TOKEN,
                slack_signing_secret=http.SIGNING_SECRET,
                slack_api_url=slack.base_url,
            )
            client = WebClient(token=http.BOT_TOKEN, base_url=slack.base_url, timeout=15)
            runtime = build(settings, engine=engine, client=client, clock=lambda: http.DOMAIN_NOW)
            if refresher:
                runtime.refresher.start()
            cell = http.make_cell(engine, client, "C", clicks + WARMUP, http.DESK_TRADERS)
            for spec in cell.clickers[:WARMUP]:
                assert call(runtime.web, http._body(spec, 1)).startswith("200")
            specs = cell.clickers[WARMUP : WARMUP + clicks]
            kinds = {
                "click (first confirmation)": [http._body(s, 1) for s in specs],
                "own /ibstatus": [
                    http._body(http.Spec("status", s.user, s.run_id, s.channel, s.message_ts), 1)
                    for s in specs[: max(1, clicks // 4)]
                ],
            }
            for kind, bodies in kinds.items():
                db0, cpu0, wall0 = postgres_cpu(), time.process_time(), time.perf_counter()
                for body in bodies:
                    status = call(runtime.web, body)
                    assert status.startswith("200"), status
                cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
                db = postgres_cpu() - db0
                n = len(bodies)
                db_text = f"{1000 * db / n:.2f}" if backend == "postgresql" else "–"
                rows.append(f"| {backend} | {kind} | {n} | {1000 * cpu / n:.2f} | {db_text} | {1000 * wall / n:.2f} |")
            stored, pairs = http.stored_answers(engine, [d.run_id for d in cell.desks])
            assert stored == pairs == clicks + WARMUP, (stored, pairs)  # every click stored once
            if refresher:
                runtime.refresher.stop()
            engine.dispose()
    finally:
        slack.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=1000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--refresher", action="store_true", help="run the roster refresher, as the server does")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    load = os.getloadavg()[0]
    lines = [
        "| backend | request | n | bot CPU ms/req | PostgreSQL CPU ms/req | wall ms/req |",
        "|---|---|---|---|---|---|",
    ]
    for backend in backends:
        lines += measure(backend, args.clicks, args.refresher)
    print("\n".join(lines))
    print(
        f"\n{os.cpu_count()} cores; 1-minute load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
