"""The README's "Setting up" examples run as written, in order (issue 17).

Every shell line of that section that calls ``.venv/bin/preflight`` is run with bash, one
after the other, in a fresh folder (``.venv`` there is this test's venv) against a new SQLite
database and the fake Slack; each must exit 0. Standard input carries a pager routing key (the
example reads it with ``--pager-secret-file -``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fakes.slack import FakeSlack
from tests.support.harness import BOT_TOKEN, SIGNING_SECRET

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def setting_up_examples(readme: str) -> list[str]:
    """The ``.venv/bin/preflight`` command lines of the README's "Setting up" section, in order
    (backslash continuations joined)."""
    section = readme.split("\n## Setting up\n", 1)[1].split("\n## ", 1)[0]
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL):
        joined = re.sub(r"\\\n\s*", " ", block)
        commands += [line.strip() for line in joined.splitlines() if ".venv/bin/preflight" in line]
    return commands


def test_the_examples_are_found() -> None:
    commands = setting_up_examples((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(commands) >= 8, commands
    assert any(c.startswith(".venv/bin/preflight desk add") for c in commands)
    assert any("--pager-secret-file -" in c for c in commands)


def test_the_setting_up_examples_run_as_written_in_order(tmp_path: Path, fake_slack: FakeSlack) -> None:
    commands = setting_up_examples((ROOT / "README.md").read_text(encoding="utf-8"))
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'preflight.db'}",
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.base_url,
    }
    for command in commands:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            cwd=tmp_path,
            env=env,
            input="routing-key-from-stdin\n",
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
    # The desk the examples set up was checked with Slack and ended removed, as step 5 says.
    assert {c.params.get("channel") for c in fake_slack.of("conversations.info")} >= {"C0123", "C0456"}
    assert "PREFLIGHT_SECRET_KEYS=" in (tmp_path / ".env").read_text()
