"""Plain-text words for probe states (no Slack: views escape and format them)."""

from __future__ import annotations

from bot.dbtypes import lookup
from bot.probe.models import ProbeKind, ProbeState

STATE_TEXT = {
    ProbeState.NOT_RUNNING: "not running",
    ProbeState.NO_SESSION: "no session",
    ProbeState.NOT_CONNECTED: "not connected",
    ProbeState.COMPETING: "competing",
    ProbeState.NOT_AUTHENTICATED: "not authenticated",
    ProbeState.AUTHENTICATED: "authenticated",
    ProbeState.ACCEPTING: "accepting API connections",
    ProbeState.NOT_ANSWERING: "not answering",
    ProbeState.UNEXPECTED: "unexpected answer",
    ProbeState.BLOCKED: "blocked",
}


def state_text(kind: str, state: str) -> str:
    """``state`` in words; a refused API socket means TWS / IB Gateway isn't running or isn't logged in."""
    if kind == ProbeKind.TWS and state == ProbeState.NOT_RUNNING:
        return "not running or not logged in"
    return lookup(STATE_TEXT, ProbeState, state, unknown=state)


def kind_text(kind: str) -> str:
    return "Client Portal Gateway" if kind == ProbeKind.GATEWAY else "TWS / IB Gateway API"
