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
- a final ``end`` row holding the number of event rows, so a file cut short is evident, and
  the signature of the chain (below).

Cells are neutralised against spreadsheet formula injection (OWASP "CSV injection"; ASVS
1.2.10): a cell that begins with ``=``, ``+``, ``-``, ``@``, a tab, a carriage return, a line
feed, NUL, their full-width forms, or a single quote gets one single quote (``'``) in front,
so no spreadsheet runs it as a formula. The quote is part of the cell as written and hashed,
so ``verify`` recomputes the chain from the file alone; the original text is the cell with
that one leading quote removed (the rule also quotes a leading quote, so it is reversible).

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

A chain alone proves nothing about who wrote it: anyone can edit a row and recompute every
hash after it. So the ``end`` row is signed: its ``detail`` is
``rows=N from=A to=B signed=hmac-sha256:KEYID:HEX`` where HEX is HMAC-SHA256, under a subkey
derived from the instance's current secret key (``bot.crypto.Keyring.sign``), of
``SIGNED_PREFIX + prev_hash + "\n" + canonical(end row cells with detail "rows=N from=A to=B")``
(``prev_hash``: the hash of the last event row, i.e. the chain head before the end row). The
end row's own hash then covers the signature as usual. ``verify`` with the keys answers one of:
*intact and signed by this instance*; *consistent but unsigned* / *consistent but signed by
another key* (the chain holds, its origin can't be proven); *tampered at row N*.

The export streams: answers are read with ``yield_per`` (a server-side cursor on PostgreSQL)
and written row by row, so memory stays flat as rows grow.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TextIO

from sqlalchemy import and_, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from bot import calendar
from bot.audit import AuditEvent
from bot.checklist.models import Answer, ChecklistRun
from bot.crypto import Keyring, SignatureCheck
from bot.desks.models import Desk
from bot.errors import ServiceError
from bot.escalation.models import Escalation

HASH_HEADER = 'hash=sha256(prev_hash+"\\n"+json(cells before hash)); first prev_hash=sha256(json(header))'
COLUMNS: tuple[str, ...] = (
    "seq",
    "at_utc",
    "event",
    "desk",
    "trading_date",
    "trader",
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
    "detail",
)
HEADER: tuple[str, ...] = (*COLUMNS, HASH_HEADER)
EVENT = COLUMNS.index("event")
DETAIL = COLUMNS.index("detail")
YIELD_PER = 1000
SIGNED_PREFIX = b"ib-preflight export v1\n"
SIGNATURE_SCHEME = "hmac-sha256"
# A leading character a spreadsheet may read as the start of a formula (OWASP, ASVS 1.2.10),
# their full-width forms, and the quote itself (so that removing one leading quote restores the text).
FORMULA_STARTS = frozenset("=+-@\t\r\n\0'＝＋－＠")
TRANSITIONS = ("opened", "re_escalated", "acknowledged", "resolved")

Event = tuple[tuple[datetime, int, int, int], dict[str, str]]


def canonical(cells: Iterable[str]) -> bytes:
    return json.dumps(list(cells), ensure_ascii=False, separators=(",", ":")).encode()


def genesis() -> str:
    return hashlib.sha256(canonical(HEADER)).hexdigest()


def chain_hash(prev: str, cells: Iterable[str]) -> str:
    return hashlib.sha256(prev.encode() + b"\n" + canonical(cells)).hexdigest()


def neutralize(cell: str) -> str:
    """The cell as written to the file: one leading ``'`` when a spreadsheet could take it as a formula."""
    return "'" + cell if cell[:1] in FORMULA_STARTS else cell


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
        steps.append(
            ("resolved", esc.resolved_at, level_at(esc.resolved_at), esc.resolved_by or "", esc.resolution_note or "")
        )
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


def _signed_message(prev: str, unsigned_end: Iterable[str]) -> bytes:
    return SIGNED_PREFIX + prev.encode() + b"\n" + canonical(unsigned_end)


def iter_rows(
    *, session: Session, desk: Desk, start: date, end: date, keys: Keyring | None = None
) -> Iterator[list[str]]:
    """Every row of the export, header first, each ending with its chain hash; the end row is
    signed when ``keys`` holds a key."""
    check_range(start, end)
    yield list(HEADER)
    prev = genesis()
    seq = 0
    events = heapq.merge(
        _answers(session, desk, start, end), _escalations(session, desk, start, end), key=lambda e: e[0]
    )
    for _, values in events:
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
        key_id, signature = keys.sign(_signed_message(prev, cells))
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
    signature = _signature_of(last[DETAIL])
    return ExportResult(rows=rows - 2, head=last[-1], signed_by=signature[1] if signature else None)


# --- verification ------------------------------------------------------------------------


def _signature_of(detail: str) -> tuple[str, str, str] | None:
    """(scheme, key id, signature) from an end row's detail, or None when it carries none."""
    for part in detail.split(" "):
        if part.startswith("signed="):
            scheme, _, rest = part[len("signed=") :].partition(":")
            key_id, _, signature = rest.partition(":")
            return scheme, key_id, signature
    return None


@dataclass(frozen=True)
class Verdict:
    """What ``verify`` found. ``ok``: the chain holds (nothing edited, removed, added or moved
    since it was computed); ``proven``: and the end row is signed by one of this instance's keys,
    so the file is as this instance wrote it."""

    ok: bool
    message: str
    bad_row: int | None = None  # 1-based data row number (the header is row 0)
    rows: int = 0
    signature: SignatureCheck | None = None  # None: unsigned (or the chain is broken)

    @property
    def proven(self) -> bool:
        return self.ok and self.signature is SignatureCheck.VALID


NOT_PROVEN = "consistent but unsigned or signed by another key — cannot prove origin"


def _tampered(number: int, why: str) -> Verdict:
    return Verdict(False, f"tampered at row {number}: {why}", number, number - 1)


def verify(lines: Iterable[str], keys: Keyring | None = None) -> Verdict:
    """Check the chain of an export (the first bad row is named), then its signature with ``keys``."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or tuple(header) != HEADER:
        return Verdict(False, "tampered at row 0: the header is not an IB Preflight export header", 0)
    prev = genesis()
    before_end = prev
    end_cells: list[str] | None = None
    number = 0
    for row in reader:
        number += 1
        if end_cells is not None:
            return _tampered(number, "it comes after the end row: rows were added")
        if len(row) != len(HEADER):
            return _tampered(number, f"it has {len(row)} cells, not {len(HEADER)}")
        cells, claimed = row[:-1], row[-1]
        expected = chain_hash(prev, cells)
        if claimed != expected or cells[0] != str(number):
            return _tampered(
                number,
                f"(seq {cells[0]}) breaks the hash chain: it was edited, "
                "or a row before it was removed, added or moved",
            )
        before_end, prev = prev, expected
        if cells[EVENT] == "end":
            end_cells = cells
            if cells[DETAIL].split(" ")[0] != f"rows={number - 1}":
                return _tampered(number, "the end row's count does not match")
    if end_cells is None:
        return Verdict(
            False,
            f"tampered at row {number + 1}: the file ends without its end row (rows were removed from the end)",
            number + 1,
        )
    rows = number - 1
    facts = f"{rows} event rows, chain head {prev}"
    signature = _signature_of(end_cells[DETAIL])
    if signature is None:
        return Verdict(True, f"{NOT_PROVEN} (it carries no signature): {facts}", None, rows)
    scheme, key_id, mac = signature
    shown = key_id if re.fullmatch(r"[0-9a-f]{16}", key_id) else "(not a key id)"  # never echo file text raw
    unsigned = list(end_cells)
    unsigned[DETAIL] = end_cells[DETAIL].split(" signed=")[0]
    check = (
        (keys or Keyring(None)).check(_signed_message(before_end, unsigned), key_id, mac)
        if scheme == SIGNATURE_SCHEME
        else SignatureCheck.UNKNOWN_KEY
    )
    if check is SignatureCheck.VALID:
        return Verdict(True, f"intact and signed by this instance (key {shown}): {facts}", None, rows, check)
    why = {
        SignatureCheck.MISMATCH: f"it names this instance's key {shown} but the signature does not match: "
        "the file was changed and its chain recomputed after it was signed",
        SignatureCheck.UNKNOWN_KEY: f"signed by key {shown}, which is not among this instance's keys",
        SignatureCheck.NO_KEYS: "PREFLIGHT_SECRET_KEYS is not set here, so its signature can't be checked",
    }[check]
    return Verdict(True, f"{NOT_PROVEN} ({why}): {facts}", None, rows, check)
