"""The confirmation click's prebuilt statements (bot.checklist.click) against the ORM path.

The ORM path (``checklist.confirm`` with every ``answer_stored`` hook) is the reference. For each
state a click can meet, one trader clicks through the fast path and an identical twin goes
through the ORM path; the rows they leave (answers, the run's version, the readiness profile's
second factors, escalations) must be the same, and the fast path must hand over to the ORM path
(writing nothing) whenever it can't be sure. Then through the real endpoint: signed clicks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

import bot.profile.hooks  # noqa: F401  (the profile's answer hook and ConfirmRule, as the bot registers them)
from bot.checklist import click, events
from bot.checklist import service as checklist
from bot.checklist.models import Answer, Check, ChecklistRun, PermissionGap, Platform
from bot.db import session_scope
from bot.desks import service as desks
from bot.errors import ServiceError
from bot.escalation.models import Escalation, EscalationState
from bot.interactions import SeenInteraction, first_time
from bot.profile import saves
from bot.profile.models import SecondFactorRecord
from bot.slack.ids import Action
from tests.support.escalation_fixtures import TODAY, post_checklist, run_pass
from tests.support.factories import make_desk
from tests.support.harness import Bot

FAST, TWIN = "UTRD1", "UTRD2"


def body_of(user: str, run_id: int | None, n: int = 0) -> dict[str, Any]:
    """A click's payload as the listener sees it (what the replay record hashes)."""
    return {
        "type": "block_actions",
        "user": {"id": user},
        "trigger_id": f"trig-{user}-{n}",
        "actions": [{"action_id": Action.CONFIRM_ALL.value, "value": str(run_id), "action_ts": f"{n}.0"}],
    }


def fast(engine: Engine, run_id: int | None, user: str, now: datetime, n: int = 0) -> click.Click:
    return click.confirm(engine, run_id=run_id, user_id=user, body=body_of(user, run_id, n), now=now)


def orm(engine: Engine, run_id: int, user: str, now: datetime, n: int = 0) -> str:
    """The ORM path as the listener runs it; the outcome, or the refusal's sentence."""
    with session_scope(engine) as session:
        assert first_time(session=session, body=body_of(user, run_id, n), now=now)
        run = session.get(ChecklistRun, run_id)
        assert run is not None
        try:
            return checklist.confirm(session=session, run=run, user_id=user, now=now).outcome.value
        except ServiceError as exc:
            return str(exc)


def answers(engine: Engine, user: str) -> list[tuple[Any, ...]]:
    with Session(engine) as session:
        rows = session.exec(select(Answer).where(Answer.user_id == user).order_by(col(Answer.version))).all()
        return [tuple(v for k, v in a.model_dump().items() if k not in ("id", "user_id")) for a in rows]


def factors(engine: Engine, user: str) -> list[tuple[Any, ...]]:
    with Session(engine) as session:
        rows = session.exec(
            select(SecondFactorRecord).where(SecondFactorRecord.user_id == user).order_by(SecondFactorRecord.method)
        ).all()
        return [(r.method, r.last_verified_at, r.verified_by, r.unverified_reason, r.updated_at) for r in rows]


def version(engine: Engine, run_id: int) -> int:
    with Session(engine) as session:
        run = session.get(ChecklistRun, run_id)
        assert run is not None
        return run.answers_version


def register(engine: Engine, user: str, verified_on: dict[str, Any], now: datetime) -> None:
    """The trader's registered second factors (the first is the primary), saved the day before."""
    with session_scope(engine) as session:
        saves.save_second_factors(
            session=session,
            user_id=user,
            primary=next(iter(verified_on)),
            registered=list(verified_on),
            verified_on=verified_on,
            now=now - timedelta(days=1),
        )


@pytest.fixture
def run_id(bot: Bot) -> int:
    make_desk(bot.runtime.engine)
    result = post_checklist(bot)
    assert result.run_id is not None
    return result.run_id


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """The statements this thread sends (the bot's roster thread works beside it), but BEGIN."""
    seen: list[str] = []
    me = threading.get_ident()

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        verb = statement.split(None, 1)[0].upper()
        if threading.get_ident() == me and verb != "BEGIN":
            seen.append(verb)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_a_first_confirmation_leaves_what_the_orm_path_leaves(bot: Bot, run_id: int, statements: list[str]) -> None:
    engine, now = bot.runtime.engine, bot.clock()
    assert fast(engine, run_id, "UTRD3", now).outcome is click.Outcome.STORED  # and purges old replay records
    assert "DELETE" in statements
    before, statements[:] = version(engine, run_id), []
    assert fast(engine, run_id, FAST, now).outcome is click.Outcome.STORED
    if engine.dialect.name == "postgresql":  # record, probe, answer, version, rules: one data-modifying WITH
        assert statements == ["WITH"]
    else:
        assert statements == ["INSERT", "SELECT", "INSERT", "UPDATE"]  # replay record, probe, answer, version
    assert orm(engine, run_id, TWIN, now) == "stored"
    assert answers(engine, FAST) == answers(engine, TWIN) != []
    assert version(engine, run_id) == before + 2


def test_the_primary_factor_is_verified_as_the_orm_hook_does(bot: Bot, run_id: int) -> None:
    engine, now = bot.runtime.engine, bot.clock()
    for user in (FAST, TWIN):
        register(engine, user, {"ib_key": None, "authenticator_app": TODAY - timedelta(days=3)}, now)
    unverified = factors(engine, FAST)
    assert fast(engine, run_id, FAST, now).outcome is click.Outcome.STORED
    assert orm(engine, run_id, TWIN, now) == "stored"
    assert factors(engine, FAST) == factors(engine, TWIN) != unverified
    ib_key = next(f for f in factors(engine, FAST) if f[0] == "ib_key")
    assert ib_key[1:4] == (now, "checklist", None)


def test_without_a_record_of_the_primary_factor_nothing_else_changes(bot: Bot, run_id: int) -> None:
    engine, now = bot.runtime.engine, bot.clock()
    for user in (FAST, TWIN):
        register(engine, user, {"dsc_plus": TODAY - timedelta(days=2)}, now)
        with session_scope(engine) as session:  # the primary's record is gone (edited by hand)
            row = session.exec(select(SecondFactorRecord).where(SecondFactorRecord.user_id == user)).one()
            row.method = "authenticator_app"
            session.add(row)
    before = factors(engine, FAST)
    assert fast(engine, run_id, FAST, now).outcome is click.Outcome.STORED
    assert orm(engine, run_id, TWIN, now) == "stored"
    assert factors(engine, FAST) == before
    assert factors(engine, TWIN) == factors(engine, FAST)


def test_a_repeated_confirmation_stores_nothing(bot: Bot, run_id: int) -> None:
    engine, now = bot.runtime.engine, bot.clock()
    assert fast(engine, run_id, FAST, now).outcome is click.Outcome.STORED
    v = version(engine, run_id)
    assert fast(engine, run_id, FAST, now, n=1).outcome is click.Outcome.ALREADY
    assert orm(engine, run_id, FAST, now, n=2) == "unchanged"
    assert len(answers(engine, FAST)) == 1 and version(engine, run_id) == v


def test_the_same_payload_twice_is_a_replay(bot: Bot, run_id: int) -> None:
    engine, now = bot.runtime.engine, bot.clock()
    assert fast(engine, run_id, FAST, now).outcome is click.Outcome.STORED
    assert fast(engine, run_id, FAST, now).outcome is click.Outcome.REPLAYED
    with Session(engine) as session:
        assert len(session.exec(select(SeenInteraction)).all()) == 1


def test_refusals_say_what_the_orm_path_says_and_write_only_the_replay_record(bot: Bot, run_id: int) -> None:
    engine, now = bot.runtime.engine, bot.clock()
    make_desk(engine, "rates", channel="C0999", traders=["UOTHER"])
    outsider = fast(engine, run_id, "UOTHER", now)
    assert outsider.outcome is click.Outcome.REFUSED
    assert outsider.message == orm(engine, run_id, "UOTHER", now, n=1)
    assert "not a trader on the equities desk" in outsider.message
    with Session(engine) as session:
        run = session.get(ChecklistRun, run_id)
        assert run is not None
        closing = run.market_close_at
    closed = fast(engine, run_id, FAST, closing)
    assert closed.outcome is click.Outcome.REFUSED
    assert closed.message == orm(engine, run_id, FAST, closing, n=1)
    assert "has closed" in closed.message
    assert fast(engine, run_id + 1000, FAST, now).outcome is click.Outcome.STALE
    assert fast(engine, None, FAST, now, n=5).outcome is click.Outcome.STALE
    assert answers(engine, FAST) == [] and answers(engine, "UOTHER") == []


def test_a_report_replaced_or_an_open_escalation_goes_to_the_orm_path(bot: Bot, run_id: int) -> None:
    engine, now = bot.runtime.engine, bot.clock()
    with session_scope(engine) as session:
        run = session.get(ChecklistRun, run_id)
        assert run is not None
        report = checklist.ProblemReport(
            failed=frozenset({Check.PERMISSIONS}),
            platform=Platform.TWS,
            permission_gaps=frozenset({PermissionGap.TRADING}),
            missing_permissions="options",
        )
        checklist.report_problem(session=session, run=run, user_id=FAST, report=report, now=now)
    v = version(engine, run_id)
    assert fast(engine, run_id, FAST, now, n=1).outcome is click.Outcome.FULL
    assert len(answers(engine, FAST)) == 1 and version(engine, run_id) == v  # rolled back
    with Session(engine) as session:  # the hand-over wrote nothing, not even the replay record
        assert session.exec(select(SeenInteraction)).all() == []

    after_deadline = now + timedelta(hours=1)
    run_pass(engine, after_deadline)  # TWIN is silent past the deadline: escalated
    with Session(engine) as session:
        open_ = session.exec(select(Escalation).where(Escalation.trader_id == TWIN)).all()
        assert [e.state for e in open_] == [EscalationState.OPEN]
    assert fast(engine, run_id, TWIN, after_deadline).outcome is click.Outcome.FULL
    assert answers(engine, TWIN) == []


def test_through_the_endpoint_each_path_answers_and_resolves(bot: Bot, run_id: int) -> None:
    engine = bot.runtime.engine
    assert bot.click("UTRD3", Action.CONFIRM_ALL, str(run_id)).status_code == 200  # fast: stored, the roster follows
    bot.settle()
    assert len(answers(engine, "UTRD3")) == 1
    later = bot.clock() + timedelta(hours=1)
    bot.clock.set(later)
    run_pass(engine, later)
    assert (
        bot.click(TWIN, Action.CONFIRM_ALL, str(run_id)).status_code == 200
    )  # the ORM path resolves the silent escalation
    bot.settle()
    with Session(engine) as session:
        states = [e.state for e in session.exec(select(Escalation).where(Escalation.trader_id == TWIN)).all()]
    assert states == [EscalationState.RESOLVED]
    assert len(answers(engine, TWIN)) == 1
    with session_scope(engine) as session:  # and membership is read at the click, not cached
        desk = desks.get_desk(session=session, name="equities")
        assert desk.id is not None
        desks.update_desk(session=session, desk_id=desk.id, now=bot.clock(), remove_traders=[FAST])
    assert bot.click(FAST, Action.CONFIRM_ALL, str(run_id)).status_code == 200
    bot.settle()
    assert answers(engine, FAST) == []


def test_a_hook_without_a_rule_is_never_bypassed(bot: Bot, run_id: int) -> None:
    """A subscriber of ``answer_stored`` that declared no ``ConfirmRule`` sends every click to the
    ORM path, where its hook runs."""
    engine, now = bot.runtime.engine, bot.clock()
    called: list[str] = []

    def undeclared(_session: Session, _run: ChecklistRun, answer: Answer, _now: datetime) -> None:
        called.append(answer.user_id)

    events.subscribe(undeclared)
    try:
        assert fast(engine, run_id, FAST, now).outcome is click.Outcome.FULL
        assert answers(engine, FAST) == []  # the hand-over wrote nothing
        assert bot.click(FAST, Action.CONFIRM_ALL, str(run_id)).status_code == 200
        bot.settle()
        assert called == [FAST] and len(answers(engine, FAST)) == 1
    finally:
        events._hooks.remove(undeclared)
    assert fast(engine, run_id, TWIN, now).outcome is click.Outcome.STORED  # covered again: fast


def test_concurrent_clicks_of_one_trader_store_one_answer(bot: Bot, run_id: int) -> None:
    """Eight different clicks of the same trader at once (a double click, a second device):
    one answer, one version bump, the others told it is already so."""
    engine, now = bot.runtime.engine, bot.clock()
    before = version(engine, run_id)
    start = threading.Barrier(8)
    outcomes: list[click.Outcome] = []

    def one(n: int) -> None:
        start.wait()
        outcomes.append(fast(engine, run_id, FAST, now, n=n).outcome)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == sorted([click.Outcome.STORED] + [click.Outcome.ALREADY] * 7)
    assert len(answers(engine, FAST)) == 1 and version(engine, run_id) == before + 1
    with Session(engine) as session:  # every click was a new interaction: each is recorded once
        assert len(session.exec(select(SeenInteraction)).all()) == 8


def test_after_the_deadline_until_the_close_a_confirmation_is_stored(bot: Bot, run_id: int) -> None:
    engine = bot.runtime.engine
    with Session(engine) as session:
        run = session.get(ChecklistRun, run_id)
        assert run is not None
        late, close = run.deadline_at + timedelta(minutes=5), run.market_close_at
    assert fast(engine, run_id, FAST, late).outcome is click.Outcome.STORED  # no pass ran: no escalation
    assert orm(engine, run_id, TWIN, late) == "stored"
    assert answers(engine, FAST) == answers(engine, TWIN)
    assert fast(engine, run_id, "UTRD3", close - timedelta(seconds=1)).outcome is click.Outcome.STORED
    assert fast(engine, run_id, "UTRD3", close, n=1).outcome is click.Outcome.REFUSED


@pytest.mark.parametrize("zone", ["America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Kolkata"])
# 13:05 UTC (the tests' clock): the run's day in New York, Pago Pago (UTC-11) and Kolkata; tomorrow in Kiritimati
def test_the_desks_today_is_decided_as_the_orm_path_decides(bot: Bot, run_id: int, zone: str) -> None:
    """The run's day against the desk's today in its time zone (in SQL on PostgreSQL): a desk
    whose zone now puts today a day away from the run's date refuses the click as closed."""
    engine, now = bot.runtime.engine, bot.clock()
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name="equities")
        desk.timezone = zone
        session.add(desk)
    fast_click = fast(engine, run_id, FAST, now)
    expected = orm(engine, run_id, TWIN, now)
    if expected == "stored":
        assert fast_click.outcome is click.Outcome.STORED
    else:
        assert fast_click.outcome is click.Outcome.REFUSED and fast_click.message == expected.replace(TWIN, FAST)
    if zone == "Pacific/Kiritimati":  # 13:05 UTC is already tomorrow there (UTC+14)
        assert expected != "stored"
    assert answers(engine, FAST) == answers(engine, TWIN)


def test_a_replayed_refusal_is_a_replay(bot: Bot, run_id: int) -> None:
    engine = bot.runtime.engine
    with Session(engine) as session:
        run = session.get(ChecklistRun, run_id)
        assert run is not None
        closing = run.market_close_at
    assert fast(engine, run_id, FAST, closing).outcome is click.Outcome.REFUSED
    assert fast(engine, run_id, FAST, closing).outcome is click.Outcome.REPLAYED
    assert fast(engine, run_id + 1000, FAST, closing, n=1).outcome is click.Outcome.STALE
    assert fast(engine, run_id + 1000, FAST, closing, n=1).outcome is click.Outcome.REPLAYED


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)  # SQLite's path decides the day in Python
def test_a_zone_postgresql_does_not_know_hands_over_having_written_nothing(bot: Bot, run_id: int) -> None:
    engine, now = bot.runtime.engine, bot.clock()
    with engine.begin() as conn:  # bypassing the service, which would refuse the name
        conn.execute(text("UPDATE desk SET timezone = 'Nowhere/Atlantis' WHERE name = 'equities'"))
    assert fast(engine, run_id, FAST, now).outcome is click.Outcome.FULL
    with Session(engine) as session:
        assert session.exec(select(SeenInteraction)).all() == []
    assert answers(engine, FAST) == []


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)  # the one statement is PostgreSQL's
def test_the_postgresql_statement_stays_inside_psycopgs_parse_cache(engine: Engine) -> None:
    """psycopg parses a statement's placeholders once and caches the result only for statements
    of at most 4,096 characters: above it every click would pay the parse again (~0.3 ms)."""
    from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH

    plan = click._plan("postgresql")
    assert plan.decide is not None
    driver = click._driver(engine, plan)
    assert driver is not None
    assert len(driver.sql) <= MAX_CACHED_STATEMENT_LENGTH
