"""The attestation record: a CSV of every answer version and escalation transition, hash-chained.

Scope: the runs (checklists) of one desk whose trading date is in [from, to], inclusive.
Events, in order of their UTC timestamp (ties: answers before escalation steps, then by id):

- ``answer``: every stored version of every trader's answer (edits are new versions; all kept);
- ``escalation.opened`` / ``escalation.level2`` / ``escalation.acknowledged`` /
  ``escalation.resolved``: from the Escalation row's timestamps (``opened_at``, ``level2_at``,
  ``acknowledged_at``, ``resolved_at``), the database's own record of each transition;
- ``desk.*``: the desk's settings changes from the audit trail (``desk.desk_created``,
  ``desk.desk_changed``, ``desk.settings_changed``, ``desk.away_set``…) whose UTC time falls in
  the desk-local days [from, to]: who (``actor``), and before -> after in ``detail`` (JSON;
  secrets never appear, see ``bot.desks.service.shown``);
- a final ``end`` row holding the number of event rows, so a file cut short is evident.

People are kept by Slack ID (``trader``, ``actor``) and named (``trader_name``,
``actor_name``) as the names cache knows them at export time.

Timestamps are UTC, ISO 8601 with microseconds and ``+00:00``. Empty values are empty strings.

Canonical serialization and the chain (also spelled out in the last header cell):

- ``canonical(row)`` = the UTF-8 bytes of ``json.dumps(cells, ensure_ascii=False,
  separators=(",", ":"))`` where ``cells`` is the list of the row's CSV cells, as strings,
  in header order, *without* the hash cell;
- the chain starts from ``sha256(canonical(header))`` (the header row, all its cells);
- ``hash(row) = sha256(prev_hash_hex + "\\n" + canonical(row))`` as lowercase hex, where
  ``prev_hash_hex`` is the previous row's hash (or the start value for the first row).

Editing a row breaks its own hash; removing or reordering rows breaks the next row's hash;
removing rows at the end removes (or breaks) the ``end`` row. ``verify`` names the first bad row.

The export streams: answers are read with ``yield_per`` (a server-side cursor on PostgreSQL)
and written row by row, so memory stays flat as rows grow.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TextIO

from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from bot import calendar
from bot.audit import AuditEvent
from bot.checklist.models import Answer, ChecklistRun
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.errors import ServiceError
from bot.escalation.models import Escalation
from bot.people import service as people
from bot.people.service import Names

HASH_HEADER = 'hash=sha256(prev_hash+"\\n"+json(cells before hash)); first prev_hash=sha256(json(header))'
COLUMNS: tuple[str, ...] = (
    "seq",
    "at_utc",
    "event",
    "desk",
    "trading_date",
    "trader",
    "trader_name",
    "answer_version",
    "status",
    "failed_checks",
    "auth_layer",
    "platform",
    "missing_permissions",
    "contingency_gaps",
    "restricted",
    "note",
    "escalation_id",
    "escalation_kind",
    "escalation_level",
    "actor",
    "actor_name",
    "detail",
)
HEADER: tuple[str, ...] = (*COLUMNS, HASH_HEADER)
YIELD_PER = 1000

Event = tuple[tuple[datetime, int, int, int], dict[str, str]]


def canonical(cells: Iterable[str]) -> bytes:
    return json.dumps(list(cells), ensure_ascii=False, separators=(",", ":")).encode()


def genesis() -> str:
    return hashlib.sha256(canonical(HEADER)).hexdigest()


def chain_hash(prev: str, cells: Iterable[str]) -> str:
    return hashlib.sha256(prev.encode() + b"\n" + canonical(cells)).hexdigest()


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
    for aid, at, day, user, version, status, failed, layer, platform, perms, gaps, restricted, note in session.execute(
        query
    ):
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
                "contingency_gaps": gaps,
                "restricted": "true" if restricted else "false",
                "note": note or "",
                "actor": user,
            },
        )


def _escalations(session: Session, desk: Desk, start: date, end: date) -> list[Event]:
    """Escalation transitions (few next to answers): loaded, then sorted."""
    events: list[Event] = []
    rows = session.execute(
        sa_select(Escalation, col(ChecklistRun.trading_date))
        .join(ChecklistRun, col(ChecklistRun.id) == col(Escalation.run_id))
        .where(
            col(Escalation.desk_id) == desk.id,
            col(ChecklistRun.trading_date) >= start,
            col(ChecklistRun.trading_date) <= end,
        )
    ).all()
    for esc, day in rows:
        assert esc.id is not None
        steps: list[tuple[str, datetime | None, str | None, str]] = [
            ("opened", esc.opened_at, None, esc.detail),
            ("level2", esc.level2_at, None, ""),
            ("acknowledged", esc.acknowledged_at, esc.acknowledged_by, ""),
            ("resolved", esc.resolved_at, esc.resolved_by, esc.resolution_note or ""),
        ]
        for order, (name, at, actor, detail) in enumerate(steps):
            if at is None:
                continue
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
                        "escalation_level": str(esc.level) if name != "level2" else "2",
                        "actor": actor or "",
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
            values[name_key] = _inert(known(user))
    return values


def _inert(text: str) -> str:
    """A name as a spreadsheet shows it, never as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def iter_rows(*, session: Session, desk: Desk, start: date, end: date) -> Iterator[list[str]]:
    """Every row of the export, header first, each ending with its chain hash."""
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
        cells = [str(seq) if c == "seq" else desk.name if c == "desk" else values.get(c, "") for c in COLUMNS]
        prev = chain_hash(prev, cells)
        yield [*cells, prev]
    end_values = {"event": "end", "desk": desk.name, "detail": f"rows={seq} from={start} to={end}"}
    cells = [str(seq + 1) if c == "seq" else end_values.get(c, "") for c in COLUMNS]
    yield [*cells, chain_hash(prev, cells)]


@dataclass(frozen=True)
class ExportResult:
    rows: int  # event rows (the end row not counted)
    head: str  # the last hash: record it elsewhere to pin the whole file


def write_csv(*, session: Session, desk: Desk, start: date, end: date, out: TextIO) -> ExportResult:
    writer = csv.writer(out, lineterminator="\n")
    rows = 0
    last: list[str] = []
    for row in iter_rows(session=session, desk=desk, start=start, end=end):
        writer.writerow(row)
        rows += 1
        last = row
    return ExportResult(rows=rows - 2, head=last[-1])


# --- verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str
    bad_row: int | None = None  # 1-based data row number (the header is row 0)
    rows: int = 0


def verify(lines: Iterable[str]) -> Verdict:
    """Check the chain of an export; the first bad row is named."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or tuple(header) != HEADER:
        return Verdict(False, "row 0 (the header) is not an IB Preflight export header", 0)
    prev = genesis()
    number = 0
    ended = False
    for row in reader:
        number += 1
        if ended:
            return Verdict(False, f"row {number} comes after the end row: rows were added", number, number - 1)
        if len(row) != len(HEADER):
            return Verdict(False, f"row {number} has {len(row)} cells, not {len(HEADER)}", number, number - 1)
        cells, claimed = row[:-1], row[-1]
        expected = chain_hash(prev, cells)
        if claimed != expected or cells[0] != str(number):
            return Verdict(
                False,
                f"row {number} (seq {cells[0]}) breaks the hash chain: it was edited, "
                "or a row before it was removed, added or moved",
                number,
                number - 1,
            )
        prev = expected
        if cells[COLUMNS.index("event")] == "end":
            ended = True
            if cells[COLUMNS.index("detail")].split(" ")[0] != f"rows={number - 1}":
                return Verdict(False, f"row {number}: the end row's count does not match", number, number - 1)
    if not ended:
        return Verdict(
            False, f"the file ends at row {number} without its end row: rows were removed from the end", number + 1
        )
    return Verdict(True, f"intact: {number - 1} event rows, chain head {prev}", None, number - 1)
