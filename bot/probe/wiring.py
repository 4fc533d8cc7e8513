"""The probe wired into the product (issue 19, part 2).

- **When**: at the desk's checklist time (``probe_pass``: from the post time until the close,
  every endpoint whose latest result is older than today's post is probed once; the database
  decides, so a minute-by-minute job and several replicas probe once each morning); for a desk
  that trades Sunday evening, on Sunday after IBKR's weekly re-authentication and reset, before
  its FX week opens (``round_start``; failures escalate, successes are silent); and on
  demand (``probe_for``: ``/ibstatus probe``, the caller's own endpoints or a managed desk's).
- **What it changes**: the roster's authentication fact (``bot.checklist.facts``: "verified by
  probe" or the failing layer), and a ``PROBE_FAILED`` escalation opened by a failing probe
  and resolved by itself when a later probe of the trader is healthy (``follow_up``).

A failing probe is an authentication problem of a *layer*: a competing session or a gateway
that isn't running is the platform or session, a session nobody has logged in to is a login
with the second factor (device trust) — never identity, which a probe cannot see. A probe
never logs in and never stores a response body (``bot.probe.gateway`` / ``bot.probe.tws``).

Domain only: no Slack.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot import calendar
from bot import netguard as ng
from bot.checklist import facts as checklist_facts
from bot.checklist import service as checklist
from bot.checklist.labels import LAYER_LABEL
from bot.checklist.models import AuthLayer, ChecklistRun
from bot.db import read_scope
from bot.desks import service as desks
from bot.desks.jobs import each_desk
from bot.desks.models import Desk, Role
from bot.errors import ServiceError
from bot.escalation import notices, opening, resolving
from bot.escalation.labels import AUTO_REASON
from bot.escalation.models import Escalation, EscalationKind
from bot.escalation.rules import probe_failed_holds
from bot.people import service as people
from bot.people.service import Names
from bot.probe import service
from bot.probe.gateway import Timeouts
from bot.probe.jobs import run_probes
from bot.probe.labels import state_text
from bot.probe.models import ProbeState
from bot.probe.service import EndpointStatus
from bot.probe.tws import TwsTimeouts

# Which authentication layer a failing state points at (never identity: a probe can't see it).
LAYER = {
    ProbeState.COMPETING: AuthLayer.PLATFORM,  # another session with the username took over
    ProbeState.NOT_CONNECTED: AuthLayer.PLATFORM,
    ProbeState.NOT_RUNNING: AuthLayer.PLATFORM,
    ProbeState.NOT_ANSWERING: AuthLayer.PLATFORM,
    ProbeState.UNEXPECTED: AuthLayer.PLATFORM,
    ProbeState.BLOCKED: AuthLayer.PLATFORM,
    ProbeState.NO_SESSION: AuthLayer.DEVICE_TRUST,  # nobody logged in: a login with the second factor
    ProbeState.NOT_AUTHENTICATED: AuthLayer.DEVICE_TRUST,
}


def layer_of(state: ProbeState) -> AuthLayer:
    return LAYER.get(state, AuthLayer.PLATFORM)


def problem_text(status: EndpointStatus) -> str:
    """One failing endpoint in plain text (views escape it): label, state, layer, detail."""
    assert status.state is not None
    text = f"{status.label}: {state_text(status.kind, status.state)} — {LAYER_LABEL[layer_of(status.state)]}"
    return text + (f" ({status.detail})" if status.detail else "")


def _probed(statuses: Sequence[EndpointStatus]) -> list[EndpointStatus]:
    return [s for s in statuses if s.state is not None]


def fact_text(statuses: Sequence[EndpointStatus], desk: Desk) -> str | None:
    """The roster's and App Home's plain-text fact: None when nothing was probed."""
    probed = _probed(statuses)
    if not probed:
        return None
    failing = [s for s in probed if not s.healthy]
    if failing:
        return "🔌 probe: " + "; ".join(problem_text(s) for s in failing)
    last = min(s.checked_at for s in probed if s.checked_at is not None)
    return f"🔌 authentication verified by probe {last.astimezone(calendar.zone(desk.timezone)):%H:%M}"


def fresh(statuses: Sequence[EndpointStatus], desk: Desk, day: date) -> list[EndpointStatus]:
    """Results of the run's own trading day only: yesterday's probe proves nothing today."""
    tz = calendar.zone(desk.timezone)
    return [s for s in statuses if s.checked_at is not None and calendar.local_date(s.checked_at, tz) == day]


def _probe_facts(
    session: Session, run: ChecklistRun, traders: Sequence[str]
) -> Mapping[str, checklist_facts.TraderFacts]:
    desk = session.get(Desk, run.desk_id)
    if desk is None:
        return {}
    out: dict[str, checklist_facts.TraderFacts] = {}
    for user, statuses in service.latest(session=session, desk_id=run.desk_id, trader_ids=list(traders)).items():
        text = fact_text(fresh(statuses, desk, run.trading_date), desk)
        if text is not None:
            out[user] = checklist_facts.TraderFacts(probe=text)
    return out


checklist_facts.provide(_probe_facts)


def round_start(desk: Desk, now: datetime) -> datetime | None:
    """When the current round of probes began: today's post time (until the close), or, for a
    desk that trades Sunday evening, the Sunday probe time (``calendar.sunday_window_at``: after
    IBKR's weekly re-authentication and reset, before its FX week opens; until Monday's daily
    reset). None outside both: nothing is due."""
    plan = checklist.schedule(desk, checklist.desk_today(desk, now))
    if plan is not None and plan.post_at <= now < plan.market_close:
        return plan.post_at
    window = calendar.sunday_window_at(now) if desk.sunday_evening else None
    return window.probe_at if window is not None else None


def due(session: Session, desk: Desk, now: datetime) -> bool:
    """An endpoint not yet probed since the current round began (``round_start``)."""
    assert desk.id is not None
    since = round_start(desk, now)
    if since is None:
        return False
    return any(
        s.checked_at is None or s.checked_at < since
        for statuses in service.latest(session=session, desk_id=desk.id).values()
        for s in statuses
    )


def follow_up(session: Session, desk: Desk, now: datetime, trader_ids: Sequence[str] | None = None) -> str:
    """Escalations follow the latest results: a trader with a failing endpoint has one open
    ``PROBE_FAILED`` escalation (managers told once: what one round opens, in one grouped message
    per manager when several); one whose probed endpoints are all healthy has none (resolved
    by the system)."""
    assert desk.id is not None
    opened: list[Escalation] = []
    resolved = 0
    for trader, statuses in service.latest(session=session, desk_id=desk.id, trader_ids=trader_ids).items():
        probed = _probed(statuses)
        if probe_failed_holds(s.healthy if s.state is not None else None for s in statuses):
            detail = "; ".join(problem_text(s) for s in probed if not s.healthy)
            esc = opening.open_escalation(
                session=session,
                desk=desk,
                run=None,
                trader_id=trader,
                kind=EscalationKind.PROBE_FAILED,
                detail=detail,
                now=now,
                notify=False,
            )
            if esc is not None:
                opened.append(esc)
        elif probed:
            resolved += len(
                resolving.resolve_standing(
                    session=session,
                    desk=desk,
                    trader_id=trader,
                    kind=EscalationKind.PROBE_FAILED,
                    note=AUTO_REASON[EscalationKind.PROBE_FAILED],
                    now=now,
                )
            )
    if opened:
        notices.notify_standing(session, desk, opened, now)
    return f"{desk.name}: {len(opened)} probe escalation(s) opened, {resolved} resolved."


@dataclass(frozen=True)
class Probes:
    """What to call the probes with (tests pass a resolver and short timeouts)."""

    resolve: ng.Resolver = ng.system_resolver
    gateway_timeouts: Timeouts = Timeouts()
    tws_timeouts: TwsTimeouts = TwsTimeouts()


def _run(engine: Engine, desk_name: str, clock: Callable[[], datetime], trader_id: str | None, how: Probes) -> None:
    run_probes(
        engine,
        desk_name=desk_name,
        clock=clock,
        trader_id=trader_id,
        resolve=how.resolve,
        gateway_timeouts=how.gateway_timeouts,
        tws_timeouts=how.tws_timeouts,
    )


def _follower(clock: Callable[[], datetime], only: list[str] | None) -> Callable[[Session, Desk], str]:
    return lambda session, desk: follow_up(session, desk, clock(), only)


def probe_pass(
    engine: Engine, *, clock: Callable[[], datetime], desk_name: str | None = None, how: Probes = Probes()
) -> list[str]:
    """The scheduler's job: every desk whose probes are due (``due``) is probed, then its
    escalations follow the results. No transaction is open while probes call out."""
    lines: list[str] = []
    with read_scope(engine) as session:
        names = [desk_name] if desk_name else [d.name for d in desks.list_desks(session=session)]
        wanted = [n for n in names if due(session, desks.get_desk(session=session, name=n), clock())]
    for name in wanted:
        _run(engine, name, clock, None, how)
        lines += each_desk(engine, _follower(clock, None), what="probe follow-up", desk_name=name)
    return lines


@dataclass(frozen=True)
class DeskProbes:
    desk: Desk
    statuses: dict[str, list[EndpointStatus]]  # by trader
    names: Names = field(default_factory=Names)  # the traders' names (people's names, not ids)


def probe_for(
    engine: Engine, *, user_id: str, clock: Callable[[], datetime], how: Probes = Probes()
) -> list[DeskProbes]:
    """``/ibstatus probe``: the caller's own endpoints on the desks they trade on, and every
    endpoint of the desks they manage, probed now; escalations follow. Raises ``ServiceError``
    when the caller has none."""
    with read_scope(engine) as session:
        mine: dict[str, str | None] = {}
        for desk in desks.desks_of_user(session=session, user_id=user_id, role=Role.TRADER):
            mine[desk.name] = user_id
        for desk in desks.desks_of_user(session=session, user_id=user_id, role=Role.MANAGER):
            mine[desk.name] = None  # a manager: the whole desk
        targets = {
            name: who
            for name, who in mine.items()
            if service.list_endpoints(
                session=session, desk_id=desks.get_desk(session=session, name=name).id or 0, trader_id=who
            )
        }
    if not targets:
        raise ServiceError("No probe is registered for you or a desk you manage (`preflight probe add`).")
    out: list[DeskProbes] = []
    for name, who in sorted(targets.items()):
        _run(engine, name, clock, who, how)
        each_desk(engine, _follower(clock, [who] if who else None), what="probe follow-up", desk_name=name)
    with read_scope(engine) as session:
        for name, who in sorted(targets.items()):
            desk = desks.get_desk(session=session, name=name)
            assert desk.id is not None
            statuses = service.latest(session=session, desk_id=desk.id, trader_ids=[who] if who else None)
            out.append(DeskProbes(desk, statuses, people.names_for(session=session, user_ids=list(statuses))))
    return out


def status_lines(found: Sequence[DeskProbes]) -> list[str]:
    """Plain text, one line per endpoint (views escape it)."""
    lines: list[str] = []
    for item in found:
        lines.append(f"{item.desk.name}:")
        for trader, statuses in item.statuses.items():
            for s in statuses:
                state = "not probed" if s.state is None else state_text(s.kind, s.state)
                where = "" if s.state is None or s.healthy else f" — {LAYER_LABEL[layer_of(s.state)]}"
                detail = f" ({s.detail})" if s.detail else ""
                lines.append(f"  {item.names(trader)} · {s.label} ({s.target}): {state}{where}{detail}")
    return lines
