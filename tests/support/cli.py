"""Running the CLI in-process in tests: its environment (a fixture: the test's database and fake
Slack), the clock it reads, a desk to add, and one call with its exit code and output."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bot.cli import main
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import BOT_TOKEN, SIGNING_SECRET

ADD = [
    "desk",
    "add",
    "equities",
    "--channel",
    "C0123",
    "--managers",
    "U01,U02",
    "--traders",
    "U03,U04,U05",
    "--timezone",
    "America/New_York",
    "--post-at",
    "08:00",
    "--deadline",
    "09:00",
]


@pytest.fixture
def env(engine: Engine, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # no stray .env from the repository
    values = {
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.base_url,
    }
    for key in ("SLACK_APP_TOKEN", "PORT", "WEB_THREADS", "LOG_LEVEL", "PREFLIGHT_CLOCK_OFFSET"):
        monkeypatch.delenv(key, raising=False)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def pretend_now(monkeypatch: pytest.MonkeyPatch, when: datetime) -> None:
    """Move the CLI's clock (PREFLIGHT_CLOCK_OFFSET, whole seconds) so that it reads ``when``."""
    monkeypatch.setenv("PREFLIGHT_CLOCK_OFFSET", str(round((when - datetime.now(UTC)).total_seconds())))


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err
