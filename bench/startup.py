"""Benchmark (issue 11): how fast the commands start on an already-migrated database.

- ``preflight serve``: a real subprocess (``python -m bot serve``) on a migrated SQLite file
  (or ``--database-url``), with the fake Slack Web API (tests/support/fakes/slack.py) in this process;
  the time from ``Popen`` until ``GET /healthz`` first answers 200 (polled every 10 ms on a
  fresh connection), then SIGTERM.
- ``preflight desk list``: the wall time of the whole command (``python -m bot desk list``),
  one desk registered.
- ``python -c pass``: the interpreter alone, and ``import sqlalchemy.orm, sqlmodel``: what any
  command that reads the database imports at least -- for context.

Bytecode: by default the commands run as an installed package does, with the modules' bytecode
cached (``PYTHONPYCACHEPREFIX`` in the benchmark's temporary folder, written by one discarded
warm-up run of each command; ``pip install`` byte-compiles a package the same way). The
development environment sets ``PYTHONDONTWRITEBYTECODE=1`` and installs ``bot`` editable, so
there every start compiles ``bot/`` from source (~16,000 lines): ``--source`` measures that.

Prints a table with the median (and min / max) wall time of ``--runs`` runs next to the
targets (healthz within 1.5 s, desk list within 0.5 s), and the median CPU time the command
used until then (user + system, from /proc or getrusage): on a shared machine the wall time
grows with the load average, the CPU time much less. ``--importtime`` adds the heaviest modules
that ``import bot.serve`` and ``import bot.cli`` + a desk list pull in (``python -X importtime``).

    .venv/bin/python -m bench.startup                    # 7 runs each
    .venv/bin/python -m bench.startup --runs 3 --importtime
    .venv/bin/python -m bench.startup --runs 3 --source     # compile bot/ at every start
"""

from __future__ import annotations

import argparse
import http.client
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.fakes.slack import FakeSlack  # noqa: E402  (the repository root is on sys.path first)

SIGNING_SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench-token"
HEALTHZ_TARGET = 1.5
DESK_LIST_TARGET = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthz(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Sample = tuple[float, float]  # wall seconds, CPU seconds


def time_serve(env: dict[str, str], cwd: Path, timeout: float = 60.0) -> Sample:
    port = free_port()
    env = env | {"PORT": str(port)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        while True:
            if healthz(port):
                elapsed = time.perf_counter() - t0
                cpu = cpu_of(proc.pid)
                break
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise SystemExit(f"preflight serve exited with {proc.returncode}:\n{out[-2000:]}")
            if time.perf_counter() - t0 > timeout:
                raise SystemExit(f"preflight serve did not answer /healthz within {timeout:.0f} s")
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    return elapsed, cpu


def time_command(argv: list[str], env: dict[str, str], cwd: Path) -> Sample:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, timeout=60)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {done.returncode}: {done.stderr.decode()[-2000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def importtime(
    code: str, env: dict[str, str], cwd: Path, top: int
) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """For ``code`` (``python -X importtime``, microseconds): the ``top`` modules with the largest
    cumulative import time, and the self time summed by package (``bot.*`` by sub-package), the
    largest first: where the time goes."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], cwd=cwd, env=env, capture_output=True, timeout=120, text=True
    )
    rows: list[tuple[int, str]] = []
    by_package: dict[str, int] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        head, cumulative, name = line.split("|")
        rows.append((int(cumulative.strip()), name.rstrip()[1:]))  # one space, then two per nesting level
        parts = name.strip().split(".")
        package = ".".join(parts[:2]) if parts[0] == "bot" else parts[0]
        by_package[package] = by_package.get(package, 0) + int(head.split(":")[1].strip())
    total = sum(c for c, name in rows if not name.startswith(" "))
    rows.sort(reverse=True)
    packages = sorted(((t, p) for p, t in by_package.items()), reverse=True)
    return [(total, "(all top-level imports)")] + rows[:top], packages[:top]


@dataclass
class Row:
    what: str
    samples: list[Sample]
    target: float | None

    def line(self) -> str:
        wall = [w for w, _ in self.samples]
        med = statistics.median(wall)
        cpu = statistics.median(c for _, c in self.samples)
        verdict = "–" if self.target is None else ("✅" if med <= self.target else "❌")
        target = f"≤ {self.target:.1f} s" if self.target is not None else "–"
        return f"| {self.what} | {med:.2f} | {cpu:.2f} | {min(wall):.2f} | {max(wall):.2f} | {target} | {verdict} |"


def measure(runs: int, fn: Callable[[], Sample]) -> list[Sample]:
    return [fn() for _ in range(runs)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--database-url", help="a database to migrate and use (default: a fresh SQLite file)")
    parser.add_argument("--importtime", action="store_true", help="also print the heaviest imports")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument(
        "--source", action="store_true", help="no cached bytecode: every start compiles bot/ (PYTHONDONTWRITEBYTECODE)"
    )
    args = parser.parse_args(argv)

    start_load = os.getloadavg()
    fake = FakeSlack().start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
            cwd = Path(tmp)
            url = args.database_url or f"sqlite:///{cwd / 'preflight.db'}"
            env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "PORT"))}
            env.pop("PYTHONPYCACHEPREFIX", None)
            if args.source:
                env["PYTHONDONTWRITEBYTECODE"] = "1"
            else:
                env.pop("PYTHONDONTWRITEBYTECODE", None)
                env["PYTHONPYCACHEPREFIX"] = str(cwd / "pycache")
            env |= {
                "DATABASE_URL": url,
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": fake.base_url,
                "PYTHONPATH": str(ROOT),
                "LOG_LEVEL": "WARNING",
            }
            cli = [sys.executable, "-m", "bot"]
            # Migrate and register one desk (the measured commands then find the schema at head).
            time_command(cli + ["migrate"], env, cwd)
            add = cli + ["desk", "add", "startup-bench", "--channel", "C0123", "--managers", "UMGR1"]
            add += ["--traders", "UTRD1,UTRD2", "--timezone", "America/New_York"]
            add += ["--post-at", "08:00", "--deadline", "09:00"]
            if (
                args.database_url is None
                or "startup-bench"
                not in subprocess.run(cli + ["desk", "list"], cwd=cwd, env=env, capture_output=True, text=True).stdout
            ):
                time_command(add, env, cwd)
            # Warm-up, not measured: with cached bytecode, these runs write it.
            time_command(cli + ["desk", "list"], env, cwd)
            time_serve(env, cwd)
            time_command([sys.executable, "-c", "import sqlalchemy.orm, sqlmodel"], env, cwd)
            rows = [
                Row("python -c pass (interpreter alone)", measure(args.runs, lambda: time_command(
                    [sys.executable, "-c", "pass"], env, cwd)), None),
                Row("python -c 'import sqlalchemy.orm, sqlmodel' (the floor of a command that reads the database)",
                    measure(args.runs, lambda: time_command(
                        [sys.executable, "-c", "import sqlalchemy.orm, sqlmodel"], env, cwd)), None),
                Row("preflight desk list (whole command)", measure(args.runs, lambda: time_command(
                    cli + ["desk", "list"], env, cwd)), DESK_LIST_TARGET),
                Row("preflight serve: start → /healthz 200", measure(args.runs, lambda: time_serve(env, cwd)),
                    HEALTHZ_TARGET),
            ]  # fmt: skip
            load = os.getloadavg()
            backend = url.split("://")[0]
            bytecode = "compiled from source at every start" if args.source else "bytecode cached"
            print(
                f"{os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (at the start "
                f"{start_load[0]:.2f}); database {backend}, migrated; {bytecode}; {args.runs} runs each; "
                f"Python {sys.version.split()[0]}"
            )
            print()
            print("| command | median s | median CPU s | min s | max s | target | |")
            print("|---|---|---|---|---|---|---|")
            for row in rows:
                print(row.line())
            if args.importtime:
                for title, code in (
                    ("import bot.serve", "import bot.serve"),
                    ("desk list", "from bot.cli import main; main(['desk', 'list'])"),
                ):
                    heaviest, packages = importtime(code, env, cwd, args.top)
                    print()
                    print(f"heaviest imports ({title}; cumulative ms, -X importtime):")
                    for micros, name in heaviest:
                        print(f"  {micros / 1000:8.1f}  {name}")
                    print()
                    print(f"self time by package ({title}; ms, -X importtime):")
                    for micros, name in packages:
                        print(f"  {micros / 1000:8.1f}  {name}")
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
