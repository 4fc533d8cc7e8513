"""The "All three confirmed" click in a few prebuilt Core statements.

A click is the hottest path of the bot: a whole desk presses the same button within minutes of
the post. Through the ORM it cost about a dozen statements and most of the request's CPU (run,
desk, membership and latest answer read one by one, the insert, the version bump, then the
hooks of ``bot.checklist.events`` reloading what they need). Here a *first* confirmation — by
far the commonest click — is, in one transaction:

1. the replay record (``bot.interactions.first_time_core``: one INSERT … ON CONFLICT DO NOTHING);
2. one SELECT: the run, its desk's name and time zone, the trader's membership, their latest
   answer, and each subscriber's ``ConfirmRule`` conditions (``bot.checklist.events``);
3. the answer INSERT (version 1, ON CONFLICT DO NOTHING: a concurrent click of the same trader
   stored it first), the run's ``answers_version`` bump, and the statements the subscribers
   declared for a confirmation (the readiness profile: the primary second factor is verified);
4. COMMIT — before the acknowledgement, as every stored answer.

Anything else — a confirmation replacing a report, a trader with an open escalation on the run
(its automatic resolution pages and updates messages), a subscriber asking for its full hook, a
subscribed hook that declared no rule at all (it is never bypassed) —
rolls back and takes the ORM path (``Outcome.FULL``), which is the reference: the same checks,
the same messages (``bot.checklist.service``), every hook. ``tests/test_click_path.py`` runs both
paths on the same states and compares the rows they leave.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from threading import Lock
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Insert,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    exists,
    false,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine

from bot import calendar
from bot.checklist import events
from bot.checklist.models import Answer, AnswerStatus, ChecklistRun
from bot.checklist.service import closed_message, not_on_desk_message
from bot.db import conflict_insert, write_connection
from bot.desks.models import Desk, DeskMember, Role
from bot.interactions import first_time_core, purge_core, record_cte, record_params


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
# What a confirmation stores (the fields ``service._same`` compares, as ``service.confirm`` sets them).
CONFIRMATION: dict[str, Any] = {
    "status": AnswerStatus.CONFIRMED.value,
    "failed_checks": "",
    "auth_layer": None,
    "platform": None,
    "missing_permissions": None,
    "permission_gaps": "",
    "contingency_gaps": "",
    "note": None,
}
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


def _recorded_probe(rules: tuple[events.ConfirmRule, ...]) -> Select[Any]:
    """PostgreSQL: the replay record and the probe in one statement. No row: a replay; a row
    whose run columns are NULL: no such run."""
    seen = record_cte()
    latest, on = _latest()
    return (
        select(seen.c.id.label("seen_id"), *_columns(rules, latest))
        .select_from(seen)
        .outerjoin(RUN.join(DESK, DESK.c.id == RUN.c.desk_id), RUN.c.id == RUN_ID)
        .outerjoin(latest, on)
    )


_INSERT: dict[str, Insert] = {}  # dialect -> INSERT ... ON CONFLICT DO NOTHING RETURNING id


def _insert(dialect: str) -> Insert:
    if dialect not in _INSERT:  # built on first use (no dialect module imported at start)
        _INSERT[dialect] = conflict_insert(dialect, ANSWER).on_conflict_do_nothing().returning(ANSWER.c.id)
    return _INSERT[dialect]


_ANSWER_PARAMS = {c.name: f"answer_{c.name}" for c in ANSWER.c if c.name != "id"}


def _insert_and_bump() -> Update:
    """PostgreSQL: the answer's INSERT and the run's version bump in one statement; a row when
    the answer was stored (none when a concurrent click of the same trader stored it first)."""
    values = {column: bindparam(param, type_=ANSWER.c[column].type) for column, param in _ANSWER_PARAMS.items()}
    insert = conflict_insert("postgresql", ANSWER).values(values)
    stored = insert.on_conflict_do_nothing().returning(ANSWER.c.id).cte("stored")
    return (
        update(RUN)
        .where(RUN.c.id == RUN_ID, exists(select(stored.c.id)))
        .values(answers_version=RUN.c.answers_version + 1)
        .returning(RUN.c.id)
        .add_cte(stored)
    )


@dataclass(frozen=True)
class Plan:
    """The statements for the rules declared now: ``probe`` (SQLite), or ``recorded_probe``
    and ``insert_and_bump`` (PostgreSQL)."""

    rules: tuple[events.ConfirmRule, ...]
    fast: bool = True  # False: a subscribed hook declared no rule, so every click takes the ORM path
    probe: Select[Any] | None = None
    recorded_probe: Select[Any] | None = None
    insert_and_bump: Update | None = None


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
            if dialect == "postgresql":
                plan = Plan(rules, recorded_probe=_recorded_probe(rules), insert_and_bump=_insert_and_bump())
            else:
                plan = Plan(rules, probe=_probe(rules))
            _built[dialect] = plan
        return plan


def confirm(engine: Engine, *, run_id: int | None, user_id: str, body: dict[str, Any], now: datetime) -> Click:
    """Record the click and, for a first confirmation, store it; ``Outcome.FULL`` when the ORM
    path must do it (this transaction is then rolled back: nothing was written)."""
    plan = _plan(engine.dialect.name)
    if not plan.fast:
        return Click(Outcome.FULL)
    with write_connection(engine) as conn:
        click = _confirm(conn, plan, run_id=run_id, user_id=user_id, body=body, now=now)
        if click.outcome is Outcome.FULL:
            conn.rollback()
        return click


def _confirm(
    conn: Connection, plan: Plan, *, run_id: int | None, user_id: str, body: dict[str, Any], now: datetime
) -> Click:
    params: dict[str, Any] = {"click_run": run_id, "click_user": user_id}
    if plan.recorded_probe is not None:  # PostgreSQL, 2 statements: record + probe, insert + bump
        purge_core(conn, now=now)
        row = conn.execute(plan.recorded_probe, {**params, **record_params(body, now)}).mappings().first()
        if row is None:
            return Click(Outcome.REPLAYED)
    else:  # 4 statements (SQLite has no INSERT inside WITH, and its statements are cheap)
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
    values = {
        **CONFIRMATION,
        "run_id": run_id,
        "user_id": user_id,
        "version": 1,
        "restricted": False,
        "created_at": now,
    }
    if plan.insert_and_bump is not None:
        answer = {_ANSWER_PARAMS[k]: v for k, v in values.items()}
        stored = conn.execute(plan.insert_and_bump, {**params, **answer}).first() is not None
    else:
        stored = conn.execute(_insert(conn.dialect.name), values).scalar_one_or_none() is not None
        if stored:
            conn.execute(_BUMP, params)
    if not stored:
        return Click(Outcome.ALREADY)  # a concurrent click of the same trader stored it first
    for i, rule in enumerate(plan.rules):
        if rule.statement is not None and (rule.applies is None or row[f"applies_{i}"]):
            conn.execute(rule.statement, {**params, "click_now": now})
    return Click(Outcome.STORED)
