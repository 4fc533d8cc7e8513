"""Run a desk's probes: read the endpoints, ask each one (no transaction open), store the results.

A plain function shared by the CLI now and the scheduler later. The guard runs again right
before each call (a name may resolve elsewhere since it was saved); a refused target is
recorded as *blocked* and not called.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

from bot import netguard as ng
from bot.db import read_scope, session_scope
from bot.desks import service as desks
from bot.errors import ServiceError
from bot.probe import service
from bot.probe.gateway import GatewayTarget, Timeouts, probe_gateway
from bot.probe.models import ProbeEndpoint, ProbeKind, ProbeState, TlsMode
from bot.probe.outcome import Outcome
from bot.probe.tws import TwsTimeouts, probe_tws

PARALLEL = 8


@dataclass(frozen=True)
class Probed:
    endpoint: ProbeEndpoint  # detached copy, read before the calls
    outcome: Outcome
    checked_at: datetime
    expires_at: datetime | None


def probe_one(
    endpoint: ProbeEndpoint,
    *,
    resolve: ng.Resolver = ng.system_resolver,
    gateway_timeouts: Timeouts = Timeouts(),
    tws_timeouts: TwsTimeouts = TwsTimeouts(),
) -> Outcome:
    """Guard, then ask: never raises for what the network or the target does."""
    try:
        checked = service.guard(endpoint, resolve=resolve)
    except ServiceError as exc:
        return Outcome(ProbeState.BLOCKED, f"not called: {exc}")
    if endpoint.kind == ProbeKind.GATEWAY:
        target = GatewayTarget(
            host=endpoint.host,
            port=endpoint.port,
            path=endpoint.path,
            tls=TlsMode(endpoint.tls or TlsMode.SYSTEM),
            ca_bundle=endpoint.ca_bundle,
        )
        return probe_gateway(target, checked, timeouts=gateway_timeouts)
    return probe_tws(checked, timeouts=tws_timeouts)


def run_probes(
    engine: Engine,
    *,
    desk_name: str,
    clock: Callable[[], datetime],
    trader_id: str | None = None,
    resolve: ng.Resolver = ng.system_resolver,
    gateway_timeouts: Timeouts = Timeouts(),
    tws_timeouts: TwsTimeouts = TwsTimeouts(),
) -> list[Probed]:
    """Probe every endpoint of ``desk_name`` (or one trader's), in parallel, and store the results."""
    with read_scope(engine) as session:
        desk = desks.get_desk(session=session, name=desk_name)
        assert desk.id is not None
        endpoints = service.list_endpoints(session=session, desk_id=desk.id, trader_id=trader_id)
        for row in endpoints:
            session.expunge(row)

    def one(endpoint: ProbeEndpoint) -> Probed:
        outcome = probe_one(endpoint, resolve=resolve, gateway_timeouts=gateway_timeouts, tws_timeouts=tws_timeouts)
        at = clock()
        expires = at + outcome.expires_in if outcome.expires_in is not None else None
        return Probed(endpoint=endpoint, outcome=outcome, checked_at=at, expires_at=expires)

    if not endpoints:
        return []
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(endpoints)), thread_name_prefix="probe") as pool:
        probed = list(pool.map(one, endpoints))
    with session_scope(engine) as session:
        for item in probed:
            assert item.endpoint.id is not None
            service.record_result(
                session=session, endpoint_id=item.endpoint.id, outcome=item.outcome, now=item.checked_at
            )
    return probed
