"""The attestation export: every answer version and escalation step, hash-chained; the verifier
names the first edited, removed or moved row; the CLI."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from bot.cli import main
from bot.db import session_scope
from bot.desks.models import Desk
from bot.errors import ServiceError
from bot.summary import export
from tests.factories import make_desk
from tests.weekly_history import escalations, thanksgiving_week

NOV_FROM, NOV_TO = date(2026, 11, 1), date(2026, 11, 30)


@pytest.fixture
def desk_id(engine: Engine) -> int:
    desk = make_desk(engine)
    assert desk.id is not None
    escalations(engine, desk.id, thanksgiving_week(engine, desk.id))
    return desk.id


def _export(engine: Engine, desk_id: int, start: date = NOV_FROM, end: date = NOV_TO) -> str:
    out = io.StringIO()
    with session_scope(engine) as session:
        desk = session.get(Desk, desk_id)
        assert desk is not None
        export.write_csv(session=session, desk=desk, start=start, end=end, out=out)
    return out.getvalue()


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def _text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _verify(text: str) -> export.Verdict:
    return export.verify(io.StringIO(text, newline=""))


def test_export_holds_every_version_and_escalation_step(engine: Engine, desk_id: int) -> None:
    rows = _rows(_export(engine, desk_id))
    header, body, end = rows[0], rows[1:-1], rows[-1]
    assert tuple(header) == export.HEADER and "sha256" in header[-1]
    col = {name: i for i, name in enumerate(header)}
    answers = [r for r in body if r[col["event"]] == "answer"]
    # W47 Monday: 3; W48: UTRD1 4, UTRD2 5 (two edits kept), UTRD3 4.
    assert len(answers) == 16
    utrd2_wed = [r for r in answers if r[col["trader"]] == "UTRD2" and r[col["trading_date"]] == "2026-11-25"]
    assert [(r[col["answer_version"]], r[col["status"]]) for r in utrd2_wed] == [("1", "confirmed"), ("2", "problem")]
    assert utrd2_wed[1][col["contingency_gaps"]] == "recovery_code" and utrd2_wed[1][col["restricted"]] == "true"
    steps = [r[col["event"]] for r in body if r[col["event"]] != "answer"]
    assert sorted(steps) == sorted(
        [
            "escalation.opened",
            "escalation.level2",
            "escalation.opened",
            "escalation.acknowledged",
            "escalation.resolved",
            "escalation.opened",
            "escalation.acknowledged",
        ]
    )
    stamps = [r[col["at_utc"]] for r in body]
    assert stamps == sorted(stamps) and all(s.endswith("+00:00") for s in stamps)
    assert body[0][col["at_utc"]] == "2026-11-16T13:05:00.000000+00:00"
    note = next(r for r in body if r[col["note"]])
    assert note[col["note"]] == 'phone lost, "IB Key" moved'
    assert [r[0] for r in rows[1:]] == [str(i) for i in range(1, len(rows))]
    assert end[col["event"]] == "end" and end[col["detail"]].startswith(f"rows={len(body)} ")
    verdict = _verify(_export(engine, desk_id))
    assert verdict.ok and verdict.rows == len(body)


def test_export_is_deterministic_and_scoped_to_the_dates(engine: Engine, desk_id: int) -> None:
    assert _export(engine, desk_id) == _export(engine, desk_id)
    week = _rows(_export(engine, desk_id, date(2026, 11, 23), date(2026, 11, 29)))
    assert {r[4] for r in week[1:-1]} == {"2026-11-23", "2026-11-24", "2026-11-25", "2026-11-27"}
    empty = _rows(_export(engine, desk_id, date(2026, 12, 1), date(2026, 12, 31)))
    assert len(empty) == 2 and _verify(_text(empty)).ok
    with pytest.raises(ServiceError, match="is before the start date"):
        _export(engine, desk_id, NOV_TO, NOV_FROM)


def test_verifier_names_the_first_bad_row(engine: Engine, desk_id: int) -> None:
    rows = _rows(_export(engine, desk_id))
    col = {name: i for i, name in enumerate(rows[0])}

    edited = [list(r) for r in rows]
    edited[5][col["status"]] = "confirmed" if edited[5][col["status"]] == "problem" else "problem"
    verdict = _verify(_text(edited))
    assert not verdict.ok and verdict.bad_row == 5 and "row 5" in verdict.message

    deleted = rows[:7] + rows[8:]
    verdict = _verify(_text(deleted))
    assert not verdict.ok and verdict.bad_row == 7  # the row after the gap no longer chains

    swapped = [list(r) for r in rows]
    swapped[9], swapped[10] = swapped[10], swapped[9]
    verdict = _verify(_text(swapped))
    assert not verdict.ok and verdict.bad_row == 9

    renumbered = [list(r) for r in deleted]  # a careful forger renumbers seq: the hash still breaks
    for i, r in enumerate(renumbered[1:], start=1):
        r[0] = str(i)
    assert _verify(_text(renumbered)).bad_row == 7

    truncated = rows[:-2]
    verdict = _verify(_text(truncated))
    assert not verdict.ok and "without its end row" in verdict.message

    appended = [*rows, rows[3]]
    assert _verify(_text(appended)).bad_row == len(rows)

    assert _verify("not,a,preflight,export\n").bad_row == 0


def _env(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> None:
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))


def test_cli_export_and_verify(
    engine: Engine, desk_id: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    _env(monkeypatch, engine)
    out = tmp_path / "nov.csv"
    code = main(["export", "--desk", "equities", "--from", "2026-11-01", "--to", "2026-11-30", "--out", str(out)])
    assert code == 0
    assert "Wrote 23 events" in capsys.readouterr().out
    assert main(["export", "verify", str(out)]) == 0
    assert "intact: 23 event rows" in capsys.readouterr().out

    rows = _rows(out.read_text(encoding="utf-8"))
    rows[12][2] = "answer-edited"
    out.write_text(_text(rows), encoding="utf-8")
    assert main(["export", "verify", str(out)]) == 1
    assert "row 12 (seq 12) breaks the hash chain" in capsys.readouterr().out

    assert main(["export", "--desk", "equities", "--from", "2026-11-01", "--to", "2026-11-30"]) == 0
    assert capsys.readouterr().out.startswith("seq,at_utc,event,")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "--from", "2026-11-01", "--to", "2026-11-30"], "--desk required"),
        (["export", "--desk", "equities", "--from", "2026-11-31", "--to", "2026-11-30"], "not a date"),
        (
            ["export", "--desk", "equities", "--from", "2026-11-30", "--to", "2026-11-01"],
            "is before the start date 2026-11-30 (--to)",
        ),
        (["export", "--desk", "nope", "--from", "2026-11-01", "--to", "2026-11-30"], "no desk named 'nope'"),
        (["export", "verify", "/nonexistent/file.csv"], "cannot read"),
    ],
)
def test_cli_export_errors_are_one_line(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: Any, argv: list[str], message: str
) -> None:
    _env(monkeypatch, engine)
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and captured.out == ""
