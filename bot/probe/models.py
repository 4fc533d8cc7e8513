"""Probe endpoints (where a trader's or automation's IBKR session can be asked) and their results.

A result keeps the state, a short detail, the server version or session expiry and the time:
never a response body.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.dbtypes import UTCDateTime, utcnow


class ProbeKind(StrEnum):
    GATEWAY = "gateway"  # a Client Portal Gateway or IBeam (HTTPS)
    TWS = "tws"  # a TWS / IB Gateway API socket


class TlsMode(StrEnum):
    SYSTEM = "system"  # the system's certificate store
    CA_BUNDLE = "ca_bundle"  # a CA bundle file given at registration
    SELF_SIGNED = "self_signed"  # not verified: only on loopback / private hosts, shown as such


class ProbeState(StrEnum):
    """What a probe found. A gateway session is healthy only when AUTHENTICATED (authenticated,
    connected, not competing); a TWS / IB Gateway socket when ACCEPTING."""

    NOT_RUNNING = "not_running"  # refused, or no answer to connect / to the request in time
    NO_SESSION = "no_session"  # gateway: 401, or "no session"
    NOT_CONNECTED = "not_connected"  # gateway: the session isn't connected to IBKR
    COMPETING = "competing"  # gateway: another session with the username took over
    NOT_AUTHENTICATED = "not_authenticated"  # gateway: connected, not competing, not authenticated
    AUTHENTICATED = "authenticated"  # gateway: healthy
    ACCEPTING = "accepting"  # TWS socket: the API handshake answered (healthy)
    NOT_ANSWERING = "not_answering"  # TWS socket: accepted, then silent past the timeout
    UNEXPECTED = "unexpected"  # HTML, bad JSON, a redirect, garbage bytes, an untrusted certificate
    BLOCKED = "blocked"  # the host now resolves to an address the guard refuses: not called


HEALTHY = frozenset({ProbeState.AUTHENTICATED, ProbeState.ACCEPTING})


class ProbeEndpoint(SQLModel, table=True):
    """A place to ask whether a trader's (or an automation's) session is alive."""

    __tablename__ = "probe_endpoint"
    __table_args__ = (UniqueConstraint("desk_id", "label"),)

    id: int | None = Field(default=None, primary_key=True)
    desk_id: int = Field(foreign_key="desk.id", index=True, ondelete="CASCADE")
    trader_id: str = Field(max_length=32, index=True)
    automation_id: int | None = Field(default=None, foreign_key="automation.id", ondelete="CASCADE")
    label: str = Field(max_length=64)
    kind: str = Field(max_length=16, description="gateway | tws")
    host: str = Field(max_length=253, description="a name or an IP literal (no brackets)")
    port: int
    path: str = Field(default="", max_length=200, description="gateway: the base URL's path prefix")
    tls: str | None = Field(default=None, max_length=16, description="gateway: system | ca_bundle | self_signed")
    ca_bundle: str | None = Field(default=None, max_length=1000, description="absolute path of a PEM CA bundle")
    created_by: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ProbeResult(SQLModel, table=True):
    """One probe's outcome (kept 30 days; the latest per endpoint is what the desk sees)."""

    __tablename__ = "probe_result"
    __table_args__ = (Index("ix_probe_result_endpoint_checked", "endpoint_id", "checked_at"),)

    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: int = Field(foreign_key="probe_endpoint.id", ondelete="CASCADE")
    checked_at: datetime = Field(sa_type=UTCDateTime)
    state: str = Field(max_length=24)
    healthy: bool = False
    detail: str = Field(default="", max_length=300)
    address: str | None = Field(default=None, max_length=64, description="the checked IP the probe connected to")
    server_version: str | None = Field(default=None, max_length=64)
    session_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
