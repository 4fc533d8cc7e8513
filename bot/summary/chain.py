"""The attestation record's hash chain, its signature and ``verify`` (the export itself is
``bot.summary.export``).

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
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from bot.crypto import Keyring, SignatureCheck

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
    "permission_gaps",
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
# Exports written before answers said which kind of permission was missing.
HEADER_V1: tuple[str, ...] = tuple(c for c in HEADER if c != "permission_gaps")
EVENT = COLUMNS.index("event")
DETAIL = COLUMNS.index("detail")
SIGNED_PREFIX = b"ib-preflight export v1\n"
SIGNATURE_SCHEME = "hmac-sha256"
# A leading character a spreadsheet may read as the start of a formula (OWASP, ASVS 1.2.10),
# their full-width forms, and the quote itself (so that removing one leading quote restores the text).
FORMULA_STARTS = frozenset("=+-@\t\r\n\0'＝＋－＠")


def canonical(cells: Iterable[str]) -> bytes:
    return json.dumps(list(cells), ensure_ascii=False, separators=(",", ":")).encode()


def genesis(header: tuple[str, ...] = HEADER) -> str:
    return hashlib.sha256(canonical(header)).hexdigest()


def chain_hash(prev: str, cells: Iterable[str]) -> str:
    return hashlib.sha256(prev.encode() + b"\n" + canonical(cells)).hexdigest()


def neutralize(cell: str) -> str:
    """The cell as written to the file: one leading ``'`` when a spreadsheet could take it as a formula."""
    return "'" + cell if cell[:1] in FORMULA_STARTS else cell


def signed_message(prev: str, unsigned_end: Iterable[str]) -> bytes:
    return SIGNED_PREFIX + prev.encode() + b"\n" + canonical(unsigned_end)


def signature_of(detail: str) -> tuple[str, str, str] | None:
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
    if header is None or tuple(header) not in (HEADER, HEADER_V1):
        return Verdict(False, "tampered at row 0: the header is not an IB Preflight export header", 0)
    known = tuple(header)
    event_at, detail_at = known.index("event"), known.index("detail")
    prev = genesis(known)
    before_end = prev
    end_cells: list[str] | None = None
    number = 0
    for row in reader:
        number += 1
        if end_cells is not None:
            return _tampered(number, "it comes after the end row: rows were added")
        if len(row) != len(known):
            return _tampered(number, f"it has {len(row)} cells, not {len(known)}")
        cells, claimed = row[:-1], row[-1]
        expected = chain_hash(prev, cells)
        if claimed != expected or cells[0] != str(number):
            return _tampered(
                number,
                f"(seq {cells[0]}) breaks the hash chain: it was edited, "
                "or a row before it was removed, added or moved",
            )
        before_end, prev = prev, expected
        if cells[event_at] == "end":
            end_cells = cells
            if cells[detail_at].split(" ")[0] != f"rows={number - 1}":
                return _tampered(number, "the end row's count does not match")
    if end_cells is None:
        return Verdict(
            False,
            f"tampered at row {number + 1}: the file ends without its end row (rows were removed from the end)",
            number + 1,
        )
    rows = number - 1
    facts = f"{rows} event rows, chain head {prev}"
    signature = signature_of(end_cells[detail_at])
    if signature is None:
        return Verdict(True, f"{NOT_PROVEN} (it carries no signature): {facts}", None, rows)
    scheme, key_id, mac = signature
    shown = key_id if re.fullmatch(r"[0-9a-f]{16}", key_id) else "(not a key id)"  # never echo file text raw
    unsigned = list(end_cells)
    unsigned[detail_at] = end_cells[detail_at].split(" signed=")[0]
    check = (
        (keys or Keyring(None)).check(signed_message(before_end, unsigned), key_id, mac)
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
