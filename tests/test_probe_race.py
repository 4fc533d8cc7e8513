"""Exactly one PROBE_FAILED escalation per failing trader, however many processes probe at once
(issue 19, part 2), on SQLite and PostgreSQL: the partial unique index
``uq_escalation_standing_open`` and ``INSERT ... ON CONFLICT DO NOTHING`` decide, as unique keys
decide every other escalation. Real concurrent attempts: threads with sessions of their own."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.db import make_engine, session_scope
from bot.desks import service as desks
from bot.escalation import opening
from bot.escalation.models import Escalation, EscalationKind, EscalationState
from bot.migrate import alembic_config, upgrade
from bot.probe import service, wiring
from bot.probe.models import ProbeState
from bot.probe.tws import TwsTimeouts
from tests.support.escalation_fixtures import outbox_rows
from tests.support.factories import make_desk
from tests.support.fake_gateway import closed_port
from tests.support.migration_fixtures import insert_desk

NOW = datetime(2026, 11, 25, 13, 5, tzinfo=UTC)  # Wed 08:05 New York: the morning's probes are due
HOW = wiring.Probes(tws_timeouts=TwsTimeouts(connect=0.5, answer=0.3))


def probe_failed(engine: Engine) -> list[Escalation]:
    with Session(engine) as session:
        query = select(Escalation).where(Escalation.kind == EscalationKind.PROBE_FAILED).order_by(Escalation.id)  # type: ignore[arg-type]
        return list(session.exec(query).all())


def together(*attempts: Callable[[], Any]) -> list[Any]:
    """Run ``attempts`` on threads released at the same instant; their results (or errors)."""
    start = threading.Barrier(len(attempts))
    results: list[Any] = [None] * len(attempts)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = attempts[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(attempts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def _open(engine: Engine, held: threading.Event | None = None, release: threading.Event | None = None) -> int | None:
    """One attempt in a session of its own; with ``held``/``release``: signal once opened and keep
    the transaction open until told."""
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name="equities")
        esc = opening.open_escalation(
            session=session,
            desk=desk,
            run=None,
            trader_id="UTRD1",
            kind=EscalationKind.PROBE_FAILED,
            detail="down",
            now=NOW,
        )
        if held is not None and release is not None:
            held.set()
            release.wait(10)
        return esc.id if esc is not None else None


def test_a_second_opener_waits_for_the_first_and_opens_nothing(engine: Engine) -> None:
    """The interleaving a check-then-insert loses: the first attempt has inserted but not yet
    committed when the second one tries. The second waits on the index (PostgreSQL) or the
    write lock (SQLite's BEGIN IMMEDIATE), then inserts nothing and tells nobody."""
    make_desk(engine)
    held, release = threading.Event(), threading.Event()
    first = threading.Thread(target=lambda: results.append(("first", _open(engine, held, release))))
    results: list[tuple[str, int | None]] = []
    first.start()
    assert held.wait(10)
    second = threading.Thread(target=lambda: results.append(("second", _open(engine))))
    second.start()
    second.join(0.5)  # it can't finish while the first transaction holds the row
    assert second.is_alive()
    release.set()
    first.join(10)
    second.join(10)
    outcome = dict(results)
    assert outcome["first"] is not None and outcome["second"] is None
    (esc,) = probe_failed(engine)
    assert esc.id == outcome["first"]
    assert sorted(r.dedup_key for r in outbox_rows(engine)) == [
        f"escalation:{esc.id}:dm:UMGR1",
        f"escalation:{esc.id}:dm:UMGR2",
    ]


def test_many_openers_at_once_open_one(engine: Engine) -> None:
    make_desk(engine)
    results = together(*(lambda: _open(engine) for _ in range(6)))
    assert not [r for r in results if isinstance(r, Exception)], results
    opened = [r for r in results if r is not None]
    assert len(opened) == 1
    assert [e.id for e in probe_failed(engine)] == opened
    assert len(outbox_rows(engine)) == 2  # one DM per manager, once


def test_the_index_refuses_a_second_open_one_and_allows_one_after_resolution(engine: Engine) -> None:
    make_desk(engine)
    first = _open(engine)
    assert first is not None
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        desk = desks.get_desk(session=session, name="equities")
        session.add(
            Escalation(desk_id=desk.id or 0, trader_id="UTRD1", kind=EscalationKind.PROBE_FAILED, opened_at=NOW)
        )
    with session_scope(engine) as session:  # another trader, another kind, a resolved one: all fine
        desk = desks.get_desk(session=session, name="equities")
        session.add(
            Escalation(desk_id=desk.id or 0, trader_id="UTRD2", kind=EscalationKind.PROBE_FAILED, opened_at=NOW)
        )
        for _ in range(2):  # the profile's standing kinds are opened once by their gap rows instead
            session.add(
                Escalation(desk_id=desk.id or 0, trader_id="UTRD1", kind=EscalationKind.API_HYGIENE, opened_at=NOW)
            )
        row = session.get(Escalation, first)
        assert row is not None
        row.state = EscalationState.RESOLVED
        row.resolved_at = NOW
    again = _open(engine)
    assert again is not None and again != first  # resolved by a manager and still failing: opened again


def setup_failing(engine: Engine) -> None:
    make_desk(engine)
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name="equities")
        data = service.EndpointInput(trader_id="UTRD1", label="alice-tws", tws=f"127.0.0.1:{closed_port()}")
        service.add_endpoint(session=session, desk=desk, data=data, actor="cli", now=NOW - timedelta(days=1))


def test_two_scheduler_passes_at_once_open_one(engine: Engine) -> None:
    """Two replicas' ``probes`` jobs on the same failing endpoint at the same minute."""
    setup_failing(engine)
    results = together(*(lambda: wiring.probe_pass(engine, clock=lambda: NOW, how=HOW) for _ in range(2)))
    assert not [r for r in results if isinstance(r, Exception)], results
    (esc,) = probe_failed(engine)
    assert esc.trader_id == "UTRD1" and "not running or not logged in" in esc.detail
    assert len(outbox_rows(engine)) == 2


def test_the_scheduler_and_ibstatus_probe_at_once_open_one(engine: Engine) -> None:
    """The scheduler's job and a trader's ``/ibstatus probe`` (``probe_for``) at the same moment."""
    setup_failing(engine)
    results = together(
        lambda: wiring.probe_pass(engine, clock=lambda: NOW, how=HOW),
        lambda: wiring.probe_for(engine, user_id="UTRD1", clock=lambda: NOW, how=HOW),
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len(probe_failed(engine)) == 1
    assert len(outbox_rows(engine)) == 2
    (answer,) = results[1]  # the trader's answer says what the probe found
    assert [s.state for s in answer.statuses["UTRD1"]] == [ProbeState.NOT_RUNNING]


def test_0011_keeps_the_first_of_duplicates_a_race_left(empty_url: str) -> None:
    """Duplicates opened before the index existed would stop it being created: 0011 keeps the
    first open one and resolves the others."""
    from alembic import command

    script = ScriptDirectory.from_config(alembic_config(empty_url))
    before = script.get_revision("0011").down_revision
    assert isinstance(before, str)
    command.upgrade(alembic_config(empty_url), before)
    engine = make_engine(empty_url)
    try:
        with engine.begin() as conn:
            insert_desk(conn, "2026-11-20 13:00:00+00:00")
            for trader in ("U1", "U1", "U1", "U2"):
                conn.execute(
                    text(
                        "INSERT INTO escalation (desk_id, run_id, trader_id, kind, level, state, detail, opened_at) "
                        "VALUES (1, NULL, :trader, 'probe_failed', 1, 'open', '', :at)"
                    ),
                    {"trader": trader, "at": "2026-11-20 13:00:00+00:00"},
                )
        upgrade(empty_url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, trader_id, state FROM escalation ORDER BY id")).all()
    finally:
        engine.dispose()
    assert [tuple(r)[1:] for r in rows] == [("U1", "open"), ("U1", "resolved"), ("U1", "resolved"), ("U2", "open")]
