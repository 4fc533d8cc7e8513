"""The attestation export: every answer version and escalation step, hash-chained and signed;
formula cells neutralised; each escalation row at its own moment; the verifier names the first
edited, removed or moved row and tells a file this instance signed from a consistent forgery;
the CLI."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.checklist.models import Check, PermissionGap, Platform
from bot.checklist.service import ProblemReport
from bot.cli import main
from bot.crypto import Keyring, SignatureCheck
from bot.db import session_scope
from bot.desks import service as desks
from bot.desks.models import Desk
from bot.errors import ServiceError
from bot.escalation import actions, passes
from bot.escalation.models import Escalation
from bot.summary import chain, export
from tests.support.factories import make_desk
from tests.support.weekly_history import (
    NO_SECOND_DEVICE,
    WED,
    at_local,
    escalations,
    post_day,
    problem,
    thanksgiving_week,
)

NOV_FROM, NOV_TO = date(2026, 11, 1), date(2026, 11, 30)
KEY, OLD_KEY, OTHER_KEY = "export-test-key-current", "export-test-key-old", "someone-elses-key"


@pytest.fixture
def desk_id(engine: Engine) -> int:
    desk = make_desk(engine)
    assert desk.id is not None
    escalations(engine, desk.id, thanksgiving_week(engine, desk.id))
    return desk.id


def _export(
    engine: Engine, desk_id: int, start: date = NOV_FROM, end: date = NOV_TO, keys: Keyring | None = None
) -> str:
    out = io.StringIO()
    with session_scope(engine) as session:
        desk = session.get(Desk, desk_id)
        assert desk is not None
        export.write_csv(session=session, desk=desk, start=start, end=end, out=out, keys=keys)
    return out.getvalue()


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def _text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _verify(text: str, keys: Keyring | None = None) -> chain.Verdict:
    return chain.verify(io.StringIO(text, newline=""), keys=keys)


def _rechain(rows: list[list[str]]) -> list[list[str]]:
    """What a careful forger does after an edit: recompute every hash from the header on."""
    prev = chain.genesis()
    out = [rows[0]]
    for row in rows[1:]:
        prev = chain.chain_hash(prev, row[:-1])
        out.append([*row[:-1], prev])
    return out


def test_export_holds_every_version_and_escalation_step(engine: Engine, desk_id: int) -> None:
    rows = _rows(_export(engine, desk_id))
    header, body, end = rows[0], rows[1:-1], rows[-1]
    assert tuple(header) == chain.HEADER and "sha256" in header[-1]
    col = {name: i for i, name in enumerate(header)}
    answers = [r for r in body if r[col["event"]] == "answer"]
    # W47 Monday: 3; W48: UTRD1 4, UTRD2 5 (two edits kept), UTRD3 4.
    assert len(answers) == 16
    utrd2_wed = [r for r in answers if r[col["trader"]] == "UTRD2" and r[col["trading_date"]] == "2026-11-25"]
    assert [(r[col["answer_version"]], r[col["status"]]) for r in utrd2_wed] == [("1", "confirmed"), ("2", "problem")]
    assert utrd2_wed[1][col["contingency_gaps"]] == "no_backup_factor" and utrd2_wed[1][col["restricted"]] == "true"
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
    # Each escalation row holds the level of its own moment: E3 opened at level 1, rose to 2.
    e3 = [r for r in body if r[col["event"]].startswith("escalation.") and r[col["escalation_kind"]] == "silent"]
    assert [(r[col["event"]], r[col["escalation_level"]]) for r in e3] == [
        ("escalation.opened", "1"),
        ("escalation.level2", "2"),
    ]
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
    monkeypatch.setenv("PREFLIGHT_SECRET_KEYS", KEY)
    out = tmp_path / "nov.csv"
    code = main(["export", "--desk", "equities", "--from", "2026-11-01", "--to", "2026-11-30", "--out", str(out)])
    assert code == 0
    captured = capsys.readouterr()
    assert "Wrote 23 events" in captured.out and "signed with key" in captured.out and captured.err == ""
    assert main(["export", "verify", str(out)]) == 0
    assert "intact and signed by this instance" in capsys.readouterr().out
    original = out.read_text(encoding="utf-8")

    rows = _rows(original)
    rows[12][2] = "answer-edited"
    out.write_text(_text(rows), encoding="utf-8")
    assert main(["export", "verify", str(out)]) == 1
    assert "tampered at row 12: (seq 12) breaks the hash chain" in capsys.readouterr().out

    out.write_text(_text(_rechain(rows)), encoding="utf-8")  # the forger recomputes the chain
    assert main(["export", "verify", str(out)]) == 1
    verdict = capsys.readouterr().out
    assert "consistent but unsigned or signed by another key — cannot prove origin" in verdict
    assert "signature does not match" in verdict

    assert main(["export", "--desk", "equities", "--from", "2026-11-01", "--to", "2026-11-30"]) == 0
    assert capsys.readouterr().out.startswith("seq,at_utc,event,")


def test_cli_export_without_keys_is_unsigned_and_says_so(
    engine: Engine, desk_id: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    _env(monkeypatch, engine)
    monkeypatch.delenv("PREFLIGHT_SECRET_KEYS", raising=False)
    monkeypatch.delenv("PREFLIGHT_SECRET_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env from anywhere else
    out = tmp_path / "nov.csv"
    assert main(["export", "--desk", "equities", "--from", "2026-11-01", "--to", "2026-11-30", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "; unsigned." in captured.out
    assert len(captured.err.splitlines()) == 1 and "unsigned" in captured.err
    assert main(["export", "verify", str(out)]) == 1
    assert "cannot prove origin (it carries no signature)" in capsys.readouterr().out


def test_a_rotated_key_still_proves_old_exports_while_it_is_listed(
    engine: Engine, desk_id: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    _env(monkeypatch, engine)
    out = tmp_path / "nov.csv"
    out.write_text(_export(engine, desk_id, keys=Keyring(OLD_KEY)), encoding="utf-8")
    monkeypatch.setenv("PREFLIGHT_SECRET_KEYS", f"{KEY},{OLD_KEY}")
    assert main(["export", "verify", str(out)]) == 0
    assert "intact and signed by this instance" in capsys.readouterr().out
    monkeypatch.setenv("PREFLIGHT_SECRET_KEYS", KEY)
    assert main(["export", "verify", str(out)]) == 1
    assert "not among this instance's keys" in capsys.readouterr().out


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


# --- the record proves itself -------------------------------------------------------------


def test_only_a_file_this_instance_signed_is_proven(engine: Engine, desk_id: int) -> None:
    keys = Keyring([KEY])
    signed = _export(engine, desk_id, keys=keys)
    verdict = _verify(signed, keys)
    assert verdict.proven and verdict.message.startswith("intact and signed by this instance")
    end = _rows(signed)[-1]
    assert end[chain.DETAIL].startswith("rows=23 from=2026-11-01 to=2026-11-30 signed=hmac-sha256:")
    assert KEY not in signed

    # Edit a row and recompute the chain (the signature kept): consistent, but not proven.
    rows = _rows(signed)
    col = {name: i for i, name in enumerate(rows[0])}
    row = next(i for i, r in enumerate(rows) if r[col["status"]] == "problem")
    rows[row][col["status"]] = "confirmed"
    forged = _verify(_text(_rechain(rows)), keys)
    assert forged.ok and not forged.proven and forged.signature is SignatureCheck.MISMATCH
    assert forged.message.startswith(chain.NOT_PROVEN) and "recomputed" in forged.message

    # The same edit, signature stripped: consistent, unsigned.
    rows[-1][col["detail"]] = rows[-1][col["detail"]].split(" signed=")[0]
    stripped = _verify(_text(_rechain(rows)), keys)
    assert stripped.ok and not stripped.proven and "carries no signature" in stripped.message

    # The untouched file, checked elsewhere: another instance's keys, or none.
    elsewhere = _verify(signed, Keyring([OTHER_KEY]))
    assert elsewhere.ok and not elsewhere.proven and elsewhere.signature is SignatureCheck.UNKNOWN_KEY
    assert "not among this instance's keys" in elsewhere.message
    keyless = _verify(signed)
    assert keyless.ok and not keyless.proven and "can't be checked" in keyless.message

    # Without the forger's recomputation the edit is still named by its row.
    edited = _rows(signed)
    edited[row][col["status"]] = "confirmed"
    broken = _verify(_text(edited), keys)
    assert not broken.ok and broken.message.startswith(f"tampered at row {row}")


def test_an_export_signed_by_another_instance_is_not_proven_here(engine: Engine, desk_id: int) -> None:
    theirs = _export(engine, desk_id, keys=Keyring([OTHER_KEY]))
    verdict = _verify(theirs, Keyring([KEY]))
    assert verdict.ok and not verdict.proven and verdict.message.startswith(chain.NOT_PROVEN)


HYPERLINK = '=HYPERLINK("https://evil.example","x")'


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        (HYPERLINK, "'" + HYPERLINK),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("＝1+1", "'＝1+1"),
        ("'quoted", "''quoted"),  # reversible: drop one leading quote to get the text back
        ("phone lost", "phone lost"),
        ("2026-11-25T13:05:00.000000+00:00", "2026-11-25T13:05:00.000000+00:00"),
        ("", ""),
    ],
)
def test_formula_starts_are_neutralised(cell: str, written: str) -> None:
    assert chain.neutralize(cell) == written


def test_a_formula_in_a_note_is_written_inert_and_the_chain_verifies(engine: Engine) -> None:
    desk = make_desk(engine)
    assert desk.id is not None
    run_id = post_day(engine, desk.id, WED)
    problem(
        engine,
        run_id,
        "UTRD1",
        at_local(WED, "08:20"),
        ProblemReport(
            failed=frozenset({Check.PERMISSIONS}),
            platform=Platform.TWS,
            missing_permissions="+cmd|' /C calc'!A0",
            permission_gaps=frozenset({PermissionGap.TRADING}),
            note=HYPERLINK,
        ),
    )
    problem(
        engine,
        run_id,
        "UTRD2",
        at_local(WED, "08:25"),
        ProblemReport(
            failed=frozenset({Check.PERMISSIONS}),
            platform=Platform.TWS,
            missing_permissions="@SUM(1+1)*cmd",
            permission_gaps=frozenset({PermissionGap.TRADING}),
            note="-2+3",
        ),
    )
    text = _export(engine, desk.id, WED, WED, keys=Keyring([KEY]))
    rows = _rows(text)
    assert "'" + HYPERLINK in {cell for row in rows for cell in row}
    assert not [cell for row in rows for cell in row if cell and cell[0] in "=+-@\t\r"], "a cell opens as a formula"
    col = {name: i for i, name in enumerate(rows[0])}
    assert [(r[col["missing_permissions"]], r[col["note"]]) for r in rows[1:-1]] == [
        ("'+cmd|' /C calc'!A0", "'" + HYPERLINK),
        ("'@SUM(1+1)*cmd", "'-2+3"),
    ]
    assert _verify(text, Keyring([KEY])).proven  # the chain is over the cells as written


def test_each_escalation_row_holds_the_state_of_its_own_moment(engine: Engine) -> None:
    """Opened at level 1, raised to 2, acknowledged and resolved at 2: the opened row says 1,
    though the escalation is at level 2 by the time of the export."""
    desk = make_desk(engine)
    assert desk.id is not None
    run_id = post_day(engine, desk.id, WED)
    problem(engine, run_id, "UTRD3", at_local(WED, "08:30"), NO_SECOND_DEVICE)  # escalates at once
    with session_scope(engine) as session:
        passes.run_pass(
            session=session, desk=desks.get_desk(session=session, name="equities"), now=at_local(WED, "08:50")
        )
    with session_scope(engine) as session:
        (esc,) = session.exec(select(Escalation)).all()
        assert esc.id is not None and esc.level == 2
        actions.acknowledge(session=session, escalation_id=esc.id, user_id="UMGR1", now=at_local(WED, "09:05"))
        actions.resolve(
            session=session,
            escalation_id=esc.id,
            user_id="UMGR2",
            note="=cmd second device",
            now=at_local(WED, "09:40"),
        )
    rows = _rows(_export(engine, desk.id, WED, WED))
    col = {name: i for i, name in enumerate(rows[0])}
    steps = [
        (r[col["event"]], r[col["escalation_level"]], r[col["actor"]], r[col["at_utc"]][11:16], r[col["detail"]])
        for r in rows[1:-1]
        if r[col["event"]].startswith("escalation.")
    ]
    assert [s[:4] for s in steps] == [
        ("escalation.opened", "1", "", "13:30"),
        ("escalation.level2", "2", "", "13:50"),
        ("escalation.acknowledged", "2", "UMGR1", "14:05"),
        ("escalation.resolved", "2", "UMGR2", "14:40"),
    ]
    assert steps[0][4] == "Contingency: no backup second factor"  # the report that opened it
    assert steps[3][4] == "'=cmd second device"


def test_files_written_before_the_permission_gaps_column_still_verify(engine: Engine, desk_id: int) -> None:
    """An export made before answers said which permission was missing (no permission_gaps
    column) is still checked, and still caught when edited."""
    rows = _rows(_export(engine, desk_id))
    drop = rows[0].index("permission_gaps")
    assert tuple(rows[0][:drop] + rows[0][drop + 1 :]) == chain.HEADER_V1
    prev = chain.genesis(chain.HEADER_V1)
    old = [list(chain.HEADER_V1)]
    for row in rows[1:]:
        cells = row[:drop] + row[drop + 1 : -1]
        prev = chain.chain_hash(prev, cells)
        old.append([*cells, prev])
    verdict = _verify(_text(old))
    assert verdict.ok and verdict.rows == len(rows) - 2
    old[3][3] = "another-desk"
    assert _verify(_text(old)).bad_row == 3
    permissions = rows[0].index("permission_gaps")
    assert any(r[permissions] == "trading_permission" for r in rows[1:])
