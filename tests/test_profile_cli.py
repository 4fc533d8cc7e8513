"""``preflight profile policy`` and ``preflight profile gaps``, in-process, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.profile.models import ProfilePolicy
from tests.support.cli import ADD, run


def test_profile_policy_shows_changes_and_refuses_bad_windows(
    env: dict[str, str],
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(capsys, ADD)[0] == 0
    code, out, err = run(capsys, ["profile", "policy", "equities"])
    assert (code, err) == (0, "")
    assert "standard tier verifies a backup every 30 days, elevated every 14" in out

    code, out, err = run(capsys, ["profile", "policy", "equities", "--elevated-drill-days", "0"])
    assert (code, out) == (2, "")
    assert err.strip().splitlines() == [
        "preflight: error: The elevated tier's drill window must be between 1 and 365 days, got 0"
        " (--elevated-drill-days)"
    ]
    with Session(engine) as session:
        assert session.exec(select(ProfilePolicy)).all() == []

    code, out, err = run(capsys, ["profile", "policy", "equities", "--standard-drill-days", "45"])
    assert (code, err) == (0, "")
    assert "every 45 days (1 backup), elevated every 14 days (2 independent backups)" in out
    with Session(engine) as session:
        (row,) = session.exec(select(ProfilePolicy)).all()
    assert (row.standard_drill_days, row.elevated_drill_days) == (45, 14)

    code, out, err = run(capsys, ["profile", "gaps", "equities"])
    assert (code, err) == (0, "")
    assert out.startswith("equities: 0 readiness gap(s) opened, 0 closed, 0 escalated.")
    code, _, err = run(capsys, ["profile", "policy", "nosuch"])
    assert code == 2 and "no desk named 'nosuch'" in err
