"""Helpers for tests that run the bot as real processes (``python -m bot serve``): a free port,
the environment a served process needs, waiting for ``/healthz``, reading its output as it
comes, and a signed request."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx

from tests.support.harness import BOT_TOKEN, SIGNING_SECRET, sign

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_env(tmp_path: Path, slack_api_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SLACK_APP_TOKEN", "LOG_LEVEL")}
    return env | {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'preflight.db'}",
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack_api_url,
        "PORT": str(free_port()),
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def wait_for_health(base: str, seconds: float = 30) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return httpx.get(f"{base}/healthz", timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class Output:
    """A process's output, read as it comes."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for raw in stream:  # type: ignore[attr-defined]
            self.lines.append(raw.decode(errors="replace"))

    def pids_answering(self) -> set[str]:
        pattern = re.compile(r'"POST /slack/events HTTP/1\.1" 200 .* pid=<(\d+)>')
        return {m.group(1) for line in list(self.lines) if (m := pattern.search(line))}

    def text(self) -> str:
        return "".join(self.lines)


def signed_post(base: str, body: bytes, content_type: str, **headers: str) -> httpx.Response:
    """POST ``body`` to ``base``'s Slack endpoint, signed now, on a new connection."""
    ts = str(int(time.time()))
    sent = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sign(body, ts),
        "Connection": "close",  # a new connection each time: any worker may accept it
        **headers,
    }
    return httpx.post(f"{base}/slack/events", content=body, headers=sent, timeout=10)


def signed_help(base: str) -> httpx.Response:
    body = b"command=%2Fibstatus&text=help&user_id=UTRD1&channel_id=C0123&team_id=T1&trigger_id=1"
    return signed_post(base, body, "application/x-www-form-urlencoded")
