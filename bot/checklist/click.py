"""The "All three confirmed" click in a few prebuilt Core statements.

A click is the hottest path of the bot: a whole desk presses the same button within minutes of
the post. Through the ORM it cost about a dozen statements and most of the request's CPU (run,
desk, membership and latest answer read one by one, the insert, the version bump, then the
hooks of ``bot.checklist.events`` reloading what they need). Here a *first* confirmation — by
far the commonest click — does, at once:

1. the replay record (``bot.interactions``: INSERT … ON CONFLICT DO NOTHING);
2. the probe: the run, its desk's name and time zone, the trader's membership, their latest
   answer, and each subscriber's ``ConfirmRule`` conditions (``bot.checklist.events``);
3. the answer INSERT (version 1, ON CONFLICT DO NOTHING: a concurrent click of the same trader
   stored it first), the run's ``answers_version`` bump, and the statements the subscribers
   declared for a confirmation (the readiness profile: the primary second factor is verified);
4. the commit — before the acknowledgement, as every stored answer.

On PostgreSQL all of it is **one statement** in autocommit (``_decide``: a data-modifying
``WITH``, atomic as any statement): the decision is taken in SQL — the desk's today from its
time zone (``timezone(desk.timezone, now)``), the close, membership, the latest answer, the
rules — and the record, the answer, the bump and the rules' statements are written only when
it says so; the statement returns five columns (the decision, what its sentence needs, the
record's and the answer's ids). No BEGIN, no COMMIT: one round trip. On SQLite (no INSERT
inside WITH, and cheap statements) the same steps are four statements in one transaction and
the decision is taken in Python (``_confirm``).

Anything else — a confirmation replacing a report, a trader with an open escalation on the run
(its automatic resolution pages and updates messages), a subscriber asking for its full hook, a
subscribed hook that declared no rule at all (it is never bypassed) —
writes nothing (on SQLite the transaction is rolled back; on PostgreSQL the statement writes
only when the decision is not this one, the replay record included) and takes the ORM path
(``Outcome.FULL``), which is the reference: the same checks,
the same messages (``bot.checklist.service``), every hook. ``tests/test_click_path.py`` runs both
paths on the same states and compares the rows they leave.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from threading import Lock
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Date,
    Delete,
    Insert,
    Integer,
    Select,
    Table,
    Update,
    and_,
    case,
    exists,
    false,
    func,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError

from bot import calendar
from bot.checklist import events
from bot.checklist.models import Answer, ChecklistRun
from bot.checklist.service import CONFIRMATION, closed_message, not_on_desk_message
from bot.db import conflict_insert, write_connection
from bot.desks.models import Desk, DeskMember, Role
from bot.interactions import SeenInteraction, first_time_core, purge_core, record_cte, record_params


class Outcome(StrEnum):
    STORED = "stored"  # a new answer: the roster changes
    ALREADY = "already"  # the trader's current answer is already this confirmation
    REPLAYED = "replayed"  # the same signed payload again: nothing changed
    STALE = "stale"  # no such checklist
    REFUSED = "refused"  # not a trader of the desk, or the checklist has closed (``message``)
    FULL = "full"  # take the ORM path (nothing was written)


@dataclass(frozen=True)
class Click:
    outcome: Outcome
    message: str = ""


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


RUN, DESK, MEMBER, ANSWER = (_table(m) for m in (ChecklistRun, Desk, DeskMember, Answer))
RUN_ID, USER_ID = events.RUN_ID, events.USER_ID
FIRST: dict[str, Any] = {**CONFIRMATION, "version": 1, "restricted": False}  # and the run, the trader, the time
_BUMP = update(RUN).where(RUN.c.id == RUN_ID).values(answers_version=RUN.c.answers_version + 1)


def _columns(rules: tuple[events.ConfirmRule, ...], latest: Any) -> list[Any]:
    member = exists().where(
        MEMBER.c.desk_id == RUN.c.desk_id, MEMBER.c.user_id == USER_ID, MEMBER.c.role == Role.TRADER.value
    )
    columns: list[Any] = [
        RUN.c.trading_date,
        RUN.c.market_close_at,
        DESK.c.name,
        DESK.c.timezone,
        member.label("member"),
        latest.c.version,
        *(latest.c[k] for k in CONFIRMATION),
    ]
    for i, rule in enumerate(rules):
        columns.append((rule.full_path if rule.full_path is not None else false()).label(f"full_{i}"))
        if rule.applies is not None:
            columns.append(rule.applies.label(f"applies_{i}"))
    return columns


def _latest() -> tuple[Any, Any]:
    """The trader's latest answer on the run, as an alias and its join condition."""
    latest = ANSWER.alias("latest")
    newest = (
        select(func.max(ANSWER.c.version))
        .where(ANSWER.c.run_id == RUN_ID, ANSWER.c.user_id == USER_ID)
        .scalar_subquery()
    )
    return latest, and_(latest.c.run_id == RUN.c.id, latest.c.user_id == USER_ID, latest.c.version == newest)


def _probe(rules: tuple[events.ConfirmRule, ...]) -> Select[Any]:
    """One row for the run (none if there is no such run)."""
    latest, on = _latest()
    return (
        select(*_columns(rules, latest))
        .select_from(RUN)
        .join(DESK, DESK.c.id == RUN.c.desk_id)
        .outerjoin(latest, on)
        .where(RUN.c.id == RUN_ID)
    )


_INSERT: dict[str, Insert] = {}  # dialect -> INSERT ... ON CONFLICT DO NOTHING RETURNING id


def _insert(dialect: str) -> Insert:
    if dialect not in _INSERT:  # built on first use (no dialect module imported at start)
        _INSERT[dialect] = conflict_insert(dialect, ANSWER).on_conflict_do_nothing().returning(ANSWER.c.id)
    return _INSERT[dialect]


class Decision(StrEnum):
    """What PostgreSQL's one statement decided (``_decide``), in the order ``_confirm`` checks."""

    STALE = "stale"  # no such checklist
    NOT_ON_DESK = "not_on_desk"
    CLOSED = "closed"  # not the desk's today any more, or past the close
    ALREADY = "already"  # the latest answer is this confirmation
    FULL = "full"  # the ORM path decides: nothing was written, not even the replay record
    STORE = "store"  # a first confirmation: stored unless a concurrent click stored it first


def _sql(value: Any) -> Any:
    """A constant of the code (never user input) written into the statement, not bound: the
    statement stays short, and psycopg caches its parsing only up to 4,096 characters."""
    if value is None or isinstance(value, bool):
        return literal_column({None: "NULL", True: "true", False: "false"}[value])
    if isinstance(value, int):
        return literal_column(str(value))
    assert isinstance(value, str) and "'" not in value and "%" not in value
    return literal_column(f"'{value}'")


_WRITTEN = (RUN, ANSWER, _table(SeenInteraction))  # a rule writing these can't join the statement


def _foldable(rule: events.ConfirmRule) -> bool:
    """A rule whose statement can be one more data-modifying CTE: an UPDATE or DELETE of a table
    the statement doesn't write already (a statement can't change a row twice)."""
    statement = rule.statement
    if statement is None:
        return True
    return isinstance(statement, Update | Delete) and all(statement.table is not t for t in _WRITTEN)


def _decide(rules: tuple[events.ConfirmRule, ...]) -> Select[Any]:
    """PostgreSQL: the whole click in one statement. ``probe`` reads the run (one row even when
    there is no such run) and decides; ``seen`` records the interaction unless the ORM path
    must decide; ``stored`` inserts the answer when the decision is to store and the record is
    new (a replay stores nothing); then the run's bump and each rule's statement, only when an
    answer was stored. Returns one row: the decision, the desk's name and the trading date (for
    the refusals' sentences), the record's id (None: a replay) and the answer's (None: not
    stored)."""
    latest, on = _latest()
    want = select(sql_cast(RUN_ID, Integer).label("run_id")).cte("want")
    member = exists().where(
        MEMBER.c.desk_id == RUN.c.desk_id, MEMBER.c.user_id == USER_ID, MEMBER.c.role == _sql(Role.TRADER.value)
    )
    today = sql_cast(func.timezone(DESK.c.timezone, events.NOW), Date)
    same = and_(*(latest.c[k].is_(None) if v is None else latest.c[k] == _sql(v) for k, v in CONFIRMATION.items()))
    full = or_(false(), *(rule.full_path for rule in rules if rule.full_path is not None))
    decision = case(
        (RUN.c.id.is_(None), _sql(Decision.STALE.value)),
        (~member, _sql(Decision.NOT_ON_DESK.value)),
        (or_(today != RUN.c.trading_date, events.NOW >= RUN.c.market_close_at), _sql(Decision.CLOSED.value)),
        (and_(latest.c.version.is_not(None), same), _sql(Decision.ALREADY.value)),
        (or_(latest.c.version.is_not(None), full), _sql(Decision.FULL.value)),
        else_=_sql(Decision.STORE.value),
    )
    applies = [
        (rule.applies if rule.applies is not None else true()).label(f"applies_{i}")
        for i, rule in enumerate(rules)
        if rule.statement is not None
    ]
    probe = (
        select(decision.label("decision"), DESK.c.name, RUN.c.trading_date, *applies)
        .select_from(want)
        .outerjoin(RUN.join(DESK, DESK.c.id == RUN.c.desk_id), RUN.c.id == want.c.run_id)
        .outerjoin(latest, on)
        .cte("probe")
    )
    seen = record_cte(when=~exists().where(probe.c.decision == _sql(Decision.FULL.value)))
    answer = {k: _sql(v) for k, v in FIRST.items()}
    answer |= {"run_id": sql_cast(RUN_ID, Integer), "user_id": USER_ID, "created_at": events.NOW}
    rows = select(*answer.values()).where(
        exists().where(probe.c.decision == _sql(Decision.STORE.value)), exists(select(seen.c.id))
    )
    insert = conflict_insert("postgresql", ANSWER).from_select(list(answer), rows)
    stored = insert.on_conflict_do_nothing().returning(ANSWER.c.id).cte("stored")
    was_stored = exists(select(stored.c.id))
    writes = [
        update(RUN).where(RUN.c.id == RUN_ID, was_stored).values(answers_version=RUN.c.answers_version + 1).cte("bump")
    ]
    for i, rule in enumerate(rules):
        if rule.statement is not None:
            statement = cast(Update | Delete, rule.statement)
            writes.append(statement.where(was_stored, exists().where(probe.c[f"applies_{i}"])).cte(f"rule_{i}"))
    return (
        select(
            probe.c.decision,
            probe.c.name,
            probe.c.trading_date,
            select(seen.c.id).scalar_subquery().label("seen_id"),
            select(stored.c.id).scalar_subquery().label("stored_id"),
        )
        .select_from(probe)
        .add_cte(*writes)
    )


@dataclass(frozen=True)
class Plan:
    """The statements for the rules declared now: ``probe`` (SQLite, and PostgreSQL when a rule
    can't join one statement), or ``decide`` (PostgreSQL)."""

    rules: tuple[events.ConfirmRule, ...]
    fast: bool = True  # False: a subscribed hook declared no rule, so every click takes the ORM path
    probe: Select[Any] | None = None
    decide: Select[Any] | None = None
    compiled: dict[str, Driver] = field(default_factory=dict)  # ``decide`` per driver (``_driver``)


@dataclass(frozen=True)
class Driver:
    """``decide`` as the driver receives it, rendered once: executed as is, it skips SQLAlchemy's
    per-execution work (the cache lookup, each expanding ``IN`` rendered again, the
    parameters' processing): a third of what the statement cost the app. ``constants`` are its
    bound values that the code fixed (a rule's ``IN`` list, ...)."""

    sql: str
    constants: dict[str, Any]


_PARAMS = ("click_run", "click_user", "click_now", *record_params({}, datetime.now(UTC)))
_PROCESSED = {"click_now", "seen_time"}  # UTC datetimes, given as such (``UTCDateTime``'s processing)


def _driver(engine: Engine, plan: Plan) -> Driver | None:
    """``plan.decide`` rendered for ``engine``'s driver; None when a constant needs processing
    on its way to the driver (then SQLAlchemy executes the statement)."""
    key = engine.dialect.driver
    if key not in plan.compiled:
        assert plan.decide is not None
        compiled = plan.decide.compile(dialect=engine.dialect)
        if set(compiled._bind_processors) - _PROCESSED:  # no public accessor
            return None
        expanded = compiled.construct_expanded_state(dict.fromkeys(_PARAMS))
        constants = {k: v for k, v in expanded.parameters.items() if k not in _PARAMS}
        plan.compiled[key] = Driver(expanded.statement, constants)
    return plan.compiled[key]


_built: dict[str, Plan] = {}
_built_lock = Lock()


def _plan(dialect: str) -> Plan:
    """Built once per dialect (and again if a rule is declared later): SQLAlchemy then
    compiles each statement once and reuses it."""
    rules = events.confirm_rules()
    with _built_lock:
        plan = _built.get(dialect)
        if not events.all_hooks_have_rules():
            return Plan(rules, fast=False)
        if plan is None or plan.rules != rules:
            if dialect == "postgresql" and all(_foldable(rule) for rule in rules):
                plan = Plan(rules, decide=_decide(rules))
            else:
                plan = Plan(rules, probe=_probe(rules))
            _built[dialect] = plan
        return plan


def _decided(
    engine: Engine, plan: Plan, *, run_id: int | None, user_id: str, body: dict[str, Any], now: datetime
) -> Click:
    """PostgreSQL's one statement (``_decide``), and what its row means."""
    now = now.astimezone(UTC)
    params = {"click_run": run_id, "click_user": user_id, "click_now": now, **record_params(body, now)}
    driver = _driver(engine, plan)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")  # one statement: no BEGIN, no COMMIT
        purge_core(conn, now=now)
        try:
            if driver is not None:
                row = conn.exec_driver_sql(driver.sql, {**driver.constants, **params}).one()
            else:
                assert plan.decide is not None
                row = conn.execute(plan.decide, params).one()
        except DataError:  # a time zone PostgreSQL doesn't know (Python's does): the ORM path decides
            return Click(Outcome.FULL)
    decision = Decision(row.decision)
    if decision is Decision.FULL:
        return Click(Outcome.FULL)
    if row.seen_id is None:
        return Click(Outcome.REPLAYED)
    if decision is Decision.STALE:
        return Click(Outcome.STALE)
    if decision is Decision.NOT_ON_DESK:
        return Click(Outcome.REFUSED, not_on_desk_message(row.name))
    if decision is Decision.CLOSED:
        return Click(Outcome.REFUSED, closed_message(row.trading_date))
    if decision is Decision.ALREADY or row.stored_id is None:  # or a concurrent click stored it first
        return Click(Outcome.ALREADY)
    return Click(Outcome.STORED)


def _values(run_id: int | None, user_id: str, now: datetime) -> dict[str, Any]:
    """The first confirmation's row (``service.confirm`` stores the same)."""
    return {**FIRST, "run_id": run_id, "user_id": user_id, "created_at": now}


def confirm(engine: Engine, *, run_id: int | None, user_id: str, body: dict[str, Any], now: datetime) -> Click:
    """Record the click and, for a first confirmation, store it; ``Outcome.FULL`` when the ORM
    path must do it (nothing was written: on SQLite this transaction is then rolled back)."""
    plan = _plan(engine.dialect.name)
    if not plan.fast:
        return Click(Outcome.FULL)
    if plan.decide is not None:
        return _decided(engine, plan, run_id=run_id, user_id=user_id, body=body, now=now)
    with write_connection(engine) as conn:
        click = _confirm(conn, plan, run_id=run_id, user_id=user_id, body=body, now=now)
        if click.outcome is Outcome.FULL:
            conn.rollback()
        return click


def _confirm(
    conn: Connection, plan: Plan, *, run_id: int | None, user_id: str, body: dict[str, Any], now: datetime
) -> Click:
    """The statements one by one, the decision in Python (SQLite; PostgreSQL when a rule can't
    join ``_decide``'s statement)."""
    params: dict[str, Any] = {"click_run": run_id, "click_user": user_id}
    if not first_time_core(conn, body=body, now=now):
        return Click(Outcome.REPLAYED)
    assert plan.probe is not None
    row = conn.execute(plan.probe, params).mappings().first() if run_id is not None else None
    if row is None or row["trading_date"] is None:
        return Click(Outcome.STALE)
    if not row["member"]:
        return Click(Outcome.REFUSED, not_on_desk_message(row["name"]))
    today = calendar.local_date(now, calendar.zone(row["timezone"]))
    if today != row["trading_date"] or now >= row["market_close_at"]:
        return Click(Outcome.REFUSED, closed_message(row["trading_date"]))
    if row["version"] is not None:
        if all(row[k] == v for k, v in CONFIRMATION.items()):
            return Click(Outcome.ALREADY)
        return Click(Outcome.FULL)  # it replaces a report: the ORM path says what changed
    if any(row[f"full_{i}"] for i in range(len(plan.rules))):
        return Click(Outcome.FULL)
    stored = conn.execute(_insert(conn.dialect.name), _values(run_id, user_id, now)).scalar_one_or_none() is not None
    if not stored:
        return Click(Outcome.ALREADY)  # a concurrent click of the same trader stored it first
    conn.execute(_BUMP, params)
    for i, rule in enumerate(plan.rules):
        if rule.statement is not None and (rule.applies is None or row[f"applies_{i}"]):
            conn.execute(rule.statement, {**params, "click_now": now})
    return Click(Outcome.STORED)
