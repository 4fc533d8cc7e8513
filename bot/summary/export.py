"""The attestation record: a CSV of every answer version and escalation transition, hash-chained.

Scope: the runs (checklists) of one desk whose trading date is in [from, to], inclusive.
Events, in order of their UTC timestamp (ties: answers before escalation steps, then by id):

- ``answer``: every stored version of every trader's answer (edits are new versions; all kept);
- ``escalation.opened`` / ``escalation.level2`` / ``escalation.acknowledged`` /
  ``escalation.resolved``: one row per transition in the escalation's audit trail
  (``bot.audit.AuditEvent`` rows ``escalation:{id}``: opened, re_escalated, acknowledged,
  resolved), each with the state *at its own moment* (the level it had then, who acted, the
  note written then). An escalation without a trail (rows older than the trail) falls back
  to its own timestamps, its level at each moment read from ``level2_at``. Escalations of
  the readiness profile have no run: they count on the desk-local day they were opened;
- ``desk.*``: the desk's settings changes from the audit trail (``desk.desk_created``,
  ``desk.desk_changed``, ``desk.settings_changed``, ``desk.away_set``…) whose UTC time falls in
  the desk-local days [from, to]: who (``actor``), and before -> after in ``detail`` (JSON;
  secrets never appear, see ``bot.desks.service.shown``);
- a final ``end`` row holding the number of event rows, so a file cut short is evident, and
  the signature of the chain (below).

Cells are neutralised against spreadsheet formula injection (OWASP "CSV injection"; ASVS
1.2.10): a cell that begins with ``=``, ``+``, ``-``, ``@``, a tab, a carriage return, a line
feed, NUL, their full-width forms, or a single quote gets one single quote (``'``) in front,
so no spreadsheet runs it as a formula. The quote is part of the cell as written and hashed,
so ``verify`` recomputes the chain from the file alone; the original text is the cell with
that one leading quote removed (the rule also quotes a leading quote, so it is reversible).

People are kept by Slack ID (``trader``, ``actor``) and named (``trader_name``,
``actor_name``) as the names cache knows them at export time.

Timestamps are UTC, ISO 8601 with microseconds and ``+00:00``. Empty values are empty strings.
Answers keep their recorded values (a contingency gap recorded as ``recovery_code`` exports
as such); ``permission_gaps`` (trading permission / market data) is empty for answers
recorded before it was asked. An automatic resolution (its condition no longer held) has
the actor ``system`` and its reason as detail. Files written before the ``permission_gaps``
column existed (``HEADER_V1``) still verify.

The hash chain and its signature, and ``verify``: ``bot.summary.chain``.

The export streams: answers are read with ``yield_per`` (a server-side cursor on PostgreSQL)
and written row by row, so memory stays flat as rows grow.
"""

from __future__ import annotations

import csv
import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TextIO

from sqlalchemy import and_, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from bot import calendar
from bot.audit import AuditEvent
from bot.checklist.models import Answer, ChecklistRun
from bot.crypto import Keyring
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.errors import ServiceError
from bot.escalation.models import Escalation
from bot.people import service as people
from bot.people.service import Names
from bot.summary import chain
from bot.summary.chain import COLUMNS, DETAIL, HEADER, SIGNATURE_SCHEME, chain_hash, genesis, neutralize

SYSTEM_ACTOR = "system"  # the actor of an automatic resolution
YIELD_PER = 1000
TRANSITIONS = ("opened", "re_escalated", "acknowledged", "resolved")

Event = tuple[tuple[datetime, int, int, int], dict[str, str]]


def _ts(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


def check_range(start: date, end: date) -> None:
    if end < start:
        raise ServiceError(f"the end date {end} is before the start date {start}", field="to")


def _answers(session: Session, desk: Desk, start: date, end: date) -> Iterator[Event]:
    query = (
        sa_select(
            col(Answer.id),
            col(Answer.created_at),
            col(ChecklistRun.trading_date),
            col(Answer.user_id),
            col(Answer.version),
            col(Answer.status),
            col(Answer.failed_checks),
            col(Answer.auth_layer),
            col(Answer.platform),
            col(Answer.missing_permissions),
            col(Answer.permission_gaps),
            col(Answer.contingency_gaps),
            col(Answer.restricted),
            col(Answer.note),
        )
        .join(ChecklistRun, col(ChecklistRun.id) == col(Answer.run_id))
        .where(
            col(ChecklistRun.desk_id) == desk.id,
            col(ChecklistRun.trading_date) >= start,
            col(ChecklistRun.trading_date) <= end,
        )
        .order_by(col(Answer.created_at), col(Answer.id))
        .execution_options(yield_per=YIELD_PER)
    )
    for (
        aid,
        at,
        day,
        user,
        version,
        status,
        failed,
        layer,
        platform,
        perms,
        kinds,
        gaps,
        restricted,
        note,
    ) in session.execute(query):
        yield (
            (at, 0, aid, 0),
            {
                "at_utc": _ts(at),
                "event": "answer",
                "trading_date": day.isoformat(),
                "trader": user,
                "answer_version": str(version),
                "status": status,
                "failed_checks": failed,
                "auth_layer": layer or "",
                "platform": platform or "",
                "missing_permissions": perms or "",
                "permission_gaps": kinds,
                "contingency_gaps": gaps,
                "restricted": "true" if restricted else "false",
                "note": note or "",
                "actor": user,
            },
        )


def _trails(session: Session, desk: Desk, escalations: list[Escalation]) -> dict[str, list[AuditEvent]]:
    """The transitions in the audit trail of each of ``escalations``, oldest first, by subject."""
    if not escalations:
        return {}
    since = min(e.opened_at for e in escalations)
    trails: dict[str, list[AuditEvent]] = {}
    for event in session.exec(
        select(AuditEvent)
        .where(
            AuditEvent.desk_id == desk.id,
            col(AuditEvent.subject).startswith("escalation:"),
            col(AuditEvent.action).in_(TRANSITIONS),
            col(AuditEvent.at) >= since,
        )
        .order_by(col(AuditEvent.at), col(AuditEvent.id))
    ):
        trails.setdefault(event.subject, []).append(event)
    return trails


def _detail(event: AuditEvent) -> dict[str, object]:
    try:
        value = json.loads(event.detail or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


Step = tuple[str, datetime, int, str, str]  # (event name, at, level then, actor, detail)


def _steps_from_trail(esc: Escalation, trail: list[AuditEvent]) -> list[Step] | None:
    """Each transition with the escalation's state at that moment, or None when ``trail`` is
    not this escalation's (no opened event matching it: an id reused after a deletion)."""
    opened = trail[0] if trail else None
    if opened is None or opened.action != "opened" or opened.at != esc.opened_at:
        return None
    facts = _detail(opened)
    if facts.get("trader", esc.trader_id) != esc.trader_id or facts.get("kind", esc.kind) != esc.kind:
        return None
    steps: list[Step] = []
    level = 1
    for event in trail:
        facts = _detail(event)
        if event.action == "opened":
            if steps:  # a second "opened" for one subject is not a transition of this escalation
                continue
            level = _int(facts.get("level"), 1)
            steps.append(("opened", event.at, level, event.actor or "", esc.detail))
        elif event.action == "re_escalated":
            level = _int(facts.get("level"), level + 1)
            steps.append((f"level{level}", event.at, level, event.actor or "", ""))
        elif event.action == "acknowledged":
            steps.append(("acknowledged", event.at, level, event.actor or "", ""))
        elif event.action == "resolved":
            note = facts.get("note")
            steps.append(("resolved", event.at, level, event.actor or "", note if isinstance(note, str) else ""))
    return steps


def _steps_from_timestamps(esc: Escalation) -> list[Step]:
    """For an escalation without an audit trail: its timestamps; the level at each moment is 2
    from ``level2_at`` on, 1 before."""

    def level_at(at: datetime) -> int:
        return 2 if esc.level2_at is not None and esc.level2_at <= at else 1

    steps: list[Step] = [("opened", esc.opened_at, 1, "", esc.detail)]
    if esc.level2_at is not None:
        steps.append(("level2", esc.level2_at, 2, "", ""))
    if esc.acknowledged_at is not None:
        steps.append(
            ("acknowledged", esc.acknowledged_at, level_at(esc.acknowledged_at), esc.acknowledged_by or "", "")
        )
    if esc.resolved_at is not None:
        by = esc.resolved_by or (SYSTEM_ACTOR if esc.resolved_automatically else "")
        steps.append(("resolved", esc.resolved_at, level_at(esc.resolved_at), by, esc.resolution_note or ""))
    return steps


def _escalations(session: Session, desk: Desk, start: date, end: date) -> list[Event]:
    """Escalation transitions (few next to answers): loaded, then sorted."""
    events: list[Event] = []
    tz = calendar.zone(desk.timezone)
    first, after = (calendar.local_to_utc(d, time(0, 0), tz) for d in (start, end + timedelta(days=1)))
    rows = session.execute(
        sa_select(Escalation, col(ChecklistRun.trading_date))
        .outerjoin(ChecklistRun, col(ChecklistRun.id) == col(Escalation.run_id))
        .where(
            col(Escalation.desk_id) == desk.id,
            or_(
                and_(col(ChecklistRun.trading_date) >= start, col(ChecklistRun.trading_date) <= end),
                and_(
                    col(Escalation.run_id).is_(None),
                    col(Escalation.opened_at) >= first,
                    col(Escalation.opened_at) < after,
                ),
            ),
        )
    ).all()
    trails = _trails(session, desk, [esc for esc, _ in rows])
    for esc, run_day in rows:
        assert esc.id is not None
        # Escalations of the readiness profile have no run: they count on the desk-local day
        # they were opened.
        day = run_day if run_day is not None else calendar.local_date(esc.opened_at, tz)
        steps = _steps_from_trail(esc, trails.get(f"escalation:{esc.id}", [])) or _steps_from_timestamps(esc)
        for order, (name, at, level, actor, detail) in enumerate(steps):
            events.append(
                (
                    (at, 1, esc.id, order),
                    {
                        "at_utc": _ts(at),
                        "event": f"escalation.{name}",
                        "trading_date": day.isoformat(),
                        "trader": esc.trader_id,
                        "escalation_id": str(esc.id),
                        "escalation_kind": esc.kind,
                        "escalation_level": str(level),
                        "actor": actor,
                        "detail": detail,
                    },
                )
            )
    events.sort(key=lambda e: e[0])
    return events


def _settings(session: Session, desk: Desk, start: date, end: date) -> list[Event]:
    """The desk's settings changes (audit events ``desk:{id}``) in the desk-local days."""
    tz = calendar.zone(desk.timezone)
    since = calendar.local_to_utc(start, time(0, 0), tz)
    until = calendar.local_to_utc(end + timedelta(days=1), time(0, 0), tz)
    rows = session.execute(
        sa_select(
            col(AuditEvent.id),
            col(AuditEvent.at),
            col(AuditEvent.actor),
            col(AuditEvent.action),
            col(AuditEvent.detail),
        )
        .where(
            col(AuditEvent.desk_id) == desk.id,
            col(AuditEvent.subject) == f"desk:{desk.id}",
            col(AuditEvent.at) >= since,
            col(AuditEvent.at) < until,
        )
        .order_by(col(AuditEvent.at), col(AuditEvent.id))
    ).all()
    events: list[Event] = []
    for event_id, at, actor, action, detail in rows:
        try:
            data = json.loads(detail)
        except ValueError:
            data = {}
        trader = data.get("trader") if isinstance(data, dict) else None
        events.append(
            (
                (at, 2, event_id, 0),
                {
                    "at_utc": _ts(at),
                    "event": f"desk.{action}",
                    "trader": str(trader or ""),
                    "actor": actor or "",
                    "detail": json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
                },
            )
        )
    return events


def _named(session: Session, values: dict[str, str], names: dict[str, Names]) -> dict[str, str]:
    """Add the names of the row's trader and actor (members preloaded; others looked up once)."""
    for key, name_key in (("trader", "trader_name"), ("actor", "actor_name")):
        user = values.get(key) or ""
        if not user:
            continue
        if user not in names:
            names[user] = people.names_for(session=session, user_ids=[user])
        known = names[user]
        if user in known:
            values[name_key] = known(user)  # neutralised with every other cell
    return values


def iter_rows(
    *, session: Session, desk: Desk, start: date, end: date, keys: Keyring | None = None
) -> Iterator[list[str]]:
    """Every row of the export, header first, each ending with its chain hash; the end row is
    signed when ``keys`` holds a key."""
    check_range(start, end)
    yield list(HEADER)
    prev = genesis()
    seq = 0
    assert desk.id is not None
    members = [
        *desks.members(session=session, desk_id=desk.id, role=Role.TRADER),
        *desks.members(session=session, desk_id=desk.id, role=Role.MANAGER),
    ]
    preloaded = people.names_for(session=session, user_ids=members)
    names: dict[str, Names] = dict.fromkeys(members, preloaded)
    events = heapq.merge(
        _answers(session, desk, start, end),
        _escalations(session, desk, start, end),
        _settings(session, desk, start, end),
        key=lambda e: e[0],
    )
    for _, values in events:
        values = _named(session, values, names)
        seq += 1
        cells = [
            neutralize(str(seq) if c == "seq" else desk.name if c == "desk" else values.get(c, "")) for c in COLUMNS
        ]
        prev = chain_hash(prev, cells)
        yield [*cells, prev]
    summary = f"rows={seq} from={start} to={end}"
    end_values = {"event": "end", "desk": desk.name, "detail": summary}
    cells = [neutralize(str(seq + 1) if c == "seq" else end_values.get(c, "")) for c in COLUMNS]
    if keys is not None and keys.configured:
        key_id, signature = keys.sign(chain.signed_message(prev, cells))
        cells[DETAIL] = f"{summary} signed={SIGNATURE_SCHEME}:{key_id}:{signature}"
    yield [*cells, chain_hash(prev, cells)]


@dataclass(frozen=True)
class ExportResult:
    rows: int  # event rows (the end row not counted)
    head: str  # the last hash: record it elsewhere to pin the whole file
    signed_by: str | None  # the signing key's id, or None when unsigned (no key configured)


def write_csv(
    *, session: Session, desk: Desk, start: date, end: date, out: TextIO, keys: Keyring | None = None
) -> ExportResult:
    writer = csv.writer(out, lineterminator="\n")
    rows = 0
    last: list[str] = []
    for row in iter_rows(session=session, desk=desk, start=start, end=end, keys=keys):
        writer.writerow(row)
        rows += 1
        last = row
    signature = chain.signature_of(last[DETAIL])
    return ExportResult(rows=rows - 2, head=last[-1], signed_by=signature[1] if signature else None)
