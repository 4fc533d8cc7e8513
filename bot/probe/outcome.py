"""What one probe found, before it is stored (plain data, no database, no network)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.probe.models import ProbeState
from bot.text import clean

DETAIL_LIMIT = 300
QUOTE_LIMIT = 120  # the most of a gateway's own words (message / fail) a detail keeps


@dataclass(frozen=True)
class Outcome:
    state: ProbeState
    detail: str
    address: str | None = None  # the checked IP the probe connected to
    server_version: str | None = None
    expires_in: timedelta | None = None  # the gateway's ssoExpires, when it gave one


def tidy(text: str, limit: int = QUOTE_LIMIT) -> str:
    """Someone else's text made one harmless line: bidirectional and zero-width characters
    dropped, line breaks and tabs turned to spaces, other control characters (ESC, NUL...)
    written as ``\\xNN`` (PostgreSQL refuses NUL in text; a terminal obeys ESC), cut to
    ``limit`` characters with an ellipsis. Slack views escape it again for mrkdwn."""
    out: list[str] = []
    for ch in clean(text):
        if ch in "\r\n\t\v\f":
            out.append(" ")
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    line = " ".join("".join(out).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def quoted(label: str, text: object) -> str:
    """``label "text"`` for a gateway's own words, or "" when it said nothing."""
    if not isinstance(text, str) or not text.strip():
        return ""
    return f'{label} "{tidy(text)}"'
