"""What the bot counts, and ``GET /metrics`` (Prometheus text format, prometheus_client).

Counted as it happens, in each process:

- ``preflight_slack_requests_total{kind,outcome}`` and ``preflight_slack_request_duration_seconds``
  -- Slack's requests into ``/slack/events`` (``bot.web``): kind ``slash_command``, ``action``,
  ``view_submission``, ``event`` or ``other``; outcome ``ok``, ``unhandled`` (no listener),
  ``error``, ``malformed`` or ``unauthorized``. The duration is what Slack waits for: the
  HTTP response is the acknowledgement (Bolt runs with ``process_before_response``).
- ``preflight_slack_ack_seconds{kind}`` -- from the request's arrival to the listener's ``ack()``.
- ``preflight_slack_api_calls_total{method,result}`` (result ``ok``, ``429`` or ``error``) and
  ``preflight_slack_api_call_duration_seconds{method}`` -- every Web API call of the clients
  the runtime builds (``MeteredWebClient``). A client that retries inside the call (the
  listeners') counts what the caller finally got.
- ``preflight_scheduler_job_runs_total{job,outcome}`` (``ok``, ``error``, ``missed``,
  ``skipped``), ``preflight_scheduler_job_last_success_timestamp_seconds{job}`` and
  ``preflight_scheduler_job_duration_seconds{job}`` -- APScheduler's job events (``bot.scheduler``).
- ``preflight_probe_results_total{state}`` -- ``probe_result(state)``, the hook for the broker
  session probe.

Read from the database at each scrape (``DatabaseCollector``), so every process and replica
reports the same truth: ``preflight_outbox_waiting{service,desk}`` and
``preflight_outbox_oldest_waiting_age_seconds{service,desk}`` (undelivered and not given up,
per lane: one service for one desk; age by the app's clock), ``preflight_escalations_open{kind,
level,state}`` (open or acknowledged) and ``preflight_database_up`` (0 when the read failed).

Several processes (``preflight serve --workers N``): prometheus_client's multiprocess mode.
It is chosen when prometheus_client is first imported, from ``PROMETHEUS_MULTIPROC_DIR``, so
this module imports it on first use and ``process_model`` (called by serve before anything
counts) sets the variable to a fresh directory, removed when serve returns.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import col

from bot.db import read_scope
from bot.delivery.models import OutboxMessage
from bot.delivery.outbox import service_of
from bot.desks.models import Desk
from bot.escalation.models import Escalation, EscalationState

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Slack wants the acknowledgement within 3 s: the buckets say how close requests come.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
CALL_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 30.0)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0)

REQUEST_KINDS = ("slash_command", "action", "view_submission", "event", "other")


@dataclass(frozen=True)
class Instruments:
    requests: Counter
    request_seconds: Histogram
    ack_seconds: Histogram
    api_calls: Counter
    api_call_seconds: Histogram
    job_runs: Counter
    job_last_success: Gauge
    job_seconds: Histogram
    probe_results: Counter

    def all(self) -> tuple[Counter | Gauge | Histogram, ...]:
        return (
            self.requests,
            self.request_seconds,
            self.ack_seconds,
            self.api_calls,
            self.api_call_seconds,
            self.job_runs,
            self.job_last_success,
            self.job_seconds,
            self.probe_results,
        )


_instruments: Instruments | None = None
_lock = threading.Lock()
_multiproc_dir: str | None = None


def instruments() -> Instruments:
    """The process's instruments, made on first use (importing prometheus_client then: see
    the module doc). They belong to no registry: each ``Exposition`` registers them."""
    global _instruments
    if _instruments is not None:
        return _instruments
    with _lock:
        if _instruments is None:
            from prometheus_client import Counter, Gauge, Histogram

            _instruments = Instruments(
                requests=Counter(
                    "preflight_slack_requests",
                    "Slack's requests into /slack/events, by kind and outcome",
                    ["kind", "outcome"],
                    registry=None,
                ),
                request_seconds=Histogram(
                    "preflight_slack_request_duration_seconds",
                    "Time from a Slack request's arrival to the HTTP response (Slack's acknowledgement)",
                    ["kind", "outcome"],
                    buckets=REQUEST_BUCKETS,
                    registry=None,
                ),
                ack_seconds=Histogram(
                    "preflight_slack_ack_seconds",
                    "Time from a Slack request's arrival to the listener's ack()",
                    ["kind"],
                    buckets=REQUEST_BUCKETS,
                    registry=None,
                ),
                api_calls=Counter(
                    "preflight_slack_api_calls",
                    "Slack Web API calls, by method and result (ok, 429, error)",
                    ["method", "result"],
                    registry=None,
                ),
                api_call_seconds=Histogram(
                    "preflight_slack_api_call_duration_seconds",
                    "Duration of Slack Web API calls (retries inside a call included)",
                    ["method"],
                    buckets=CALL_BUCKETS,
                    registry=None,
                ),
                job_runs=Counter(
                    "preflight_scheduler_job_runs",
                    "Scheduler job runs, by job and outcome (ok, error, missed, skipped)",
                    ["job", "outcome"],
                    registry=None,
                ),
                job_last_success=Gauge(
                    "preflight_scheduler_job_last_success_timestamp_seconds",
                    "When each scheduler job last finished without an error (Unix time)",
                    ["job"],
                    multiprocess_mode="max",
                    registry=None,
                ),
                job_seconds=Histogram(
                    "preflight_scheduler_job_duration_seconds",
                    "Duration of scheduler job runs",
                    ["job"],
                    buckets=JOB_BUCKETS,
                    registry=None,
                ),
                probe_results=Counter(
                    "preflight_probe_results",
                    "Broker session probe results, by state",
                    ["state"],
                    registry=None,
                ),
            )
    return _instruments


# --- recording ----------------------------------------------------------------------------


def request_handled(kind: str, outcome: str, seconds: float) -> None:
    i = instruments()
    i.requests.labels(kind, outcome).inc()
    i.request_seconds.labels(kind, outcome).observe(seconds)


def acknowledged(kind: str, seconds: float) -> None:
    instruments().ack_seconds.labels(kind).observe(seconds)


def api_call(method: str, result: str, seconds: float) -> None:
    i = instruments()
    i.api_calls.labels(method, result).inc()
    i.api_call_seconds.labels(method).observe(seconds)


def job_ran(job: str, outcome: str, *, at: float | None = None) -> None:
    """A scheduler job's run ended (``ok``, ``error``) or did not happen (``missed``, ``skipped``)."""
    i = instruments()
    i.job_runs.labels(job, outcome).inc()
    if outcome == "ok":
        i.job_last_success.labels(job).set(time.time() if at is None else at)


def job_took(job: str, seconds: float) -> None:
    instruments().job_seconds.labels(job).observe(seconds)


def probe_result(state: str) -> None:
    """The hook for the broker session probe: call it once per probe with the state found
    (e.g. ``healthy``, ``competing``, ``unauthenticated``, ``unreachable``); it is counted as
    ``preflight_probe_results_total{state}``. Keep ``state`` to a small fixed set (it is a label)."""
    instruments().probe_results.labels(state).inc()


class MeteredWebClient(WebClient):
    """A WebClient that counts each Web API call by method and result, and times it."""

    def api_call(self, api_method: str, **options: Any) -> SlackResponse:
        """WebClient's ``api_call`` (its keyword options passed on as given), counted and timed."""
        started = time.perf_counter()
        result = "error"
        try:
            response = super().api_call(api_method, **options)
            result = "ok"
            return response
        except SlackApiError as exc:
            result = "429" if exc.response.status_code == 429 else "error"
            raise
        finally:
            api_call(api_method, result, time.perf_counter() - started)


def metered(client: WebClient) -> MeteredWebClient:
    """``client`` itself when it counts its calls, else a counting copy (same token,
    workspace, timeout, retries and logger)."""
    if isinstance(client, MeteredWebClient):
        return client
    return MeteredWebClient(
        token=client.token,
        base_url=client.base_url,
        timeout=client.timeout,
        ssl=client.ssl,
        proxy=client.proxy,
        headers=dict(client.headers),
        team_id=client.default_params.get("team_id"),
        logger=client.logger,
        retry_handlers=list(client.retry_handlers),
    )


# --- read from the database at each scrape ------------------------------------------------


@dataclass(frozen=True)
class Lane:
    service: str
    desk: str
    waiting: int
    oldest: datetime


class DatabaseCollector:
    """Outbox lanes and open escalations, read when Prometheus scrapes."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.clock = clock

    def describe(self) -> Iterator[Metric]:
        return iter(())  # nothing to check at registration (and no query)

    def read(self) -> tuple[list[Lane], list[tuple[str, int, str, int]]]:
        kind, desk_id, created = col(OutboxMessage.kind), col(OutboxMessage.desk_id), col(OutboxMessage.created_at)
        waiting = (
            sa_select(kind, desk_id, func.count(), func.min(created))
            .where(col(OutboxMessage.delivered_at).is_(None), col(OutboxMessage.failed_at).is_(None))
            .group_by(kind, desk_id)
        )
        esc_kind, level, state = col(Escalation.kind), col(Escalation.level), col(Escalation.state)
        open_escalations = (
            sa_select(esc_kind, level, state, func.count())
            .where(state != EscalationState.RESOLVED)
            .group_by(esc_kind, level, state)
        )
        with read_scope(self.engine, per_statement=True) as session:
            rows = session.execute(waiting).all()
            desks = session.execute(sa_select(col(Desk.id), col(Desk.name))).all() if rows else []
            names: dict[int | None, str] = {i: n for i, n in desks}
            escalations = [(str(k), int(lv), str(s), int(n)) for k, lv, s, n in session.execute(open_escalations)]
        lanes: dict[tuple[str, str], Lane] = {}
        for row_kind, row_desk, count, oldest in rows:
            key = (service_of(row_kind), names.get(row_desk, "") if row_desk is not None else "")
            seen = lanes.get(key)
            lanes[key] = Lane(
                key[0],
                key[1],
                int(count) + (seen.waiting if seen else 0),
                min(oldest, seen.oldest) if seen else oldest,
            )
        return sorted(lanes.values(), key=lambda lane: (lane.service, lane.desk)), escalations

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("preflight_database_up", "1 when this scrape could read the database, else 0")
        try:
            lanes, escalations = self.read()
        except Exception as exc:  # the database is down: say so rather than fail the scrape
            log.warning("metrics: cannot read the database: %s", str(exc).strip().splitlines()[0] if str(exc) else exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        now = self.clock()
        depth = GaugeMetricFamily(
            "preflight_outbox_waiting",
            "Outbox messages not yet delivered (nor given up), per lane",
            labels=["service", "desk"],
        )
        age = GaugeMetricFamily(
            "preflight_outbox_oldest_waiting_age_seconds",
            "Age of the oldest outbox message not yet delivered (nor given up), per lane",
            labels=["service", "desk"],
        )
        for lane in lanes:
            depth.add_metric([lane.service, lane.desk], lane.waiting)
            age.add_metric([lane.service, lane.desk], max(0.0, (now - lane.oldest).total_seconds()))
        yield depth
        yield age
        opened = GaugeMetricFamily(
            "preflight_escalations_open",
            "Escalations not resolved, by kind, level and state (open, acknowledged)",
            labels=["kind", "level", "state"],
        )
        for kind, level, state, count in escalations:
            opened.add_metric([kind, str(level), state], count)
        yield opened


# --- exposition ---------------------------------------------------------------------------


class Exposition:
    """``GET /metrics`` of one process: its own instruments (or, in multiprocess mode, every
    process's, from the shared directory) and the database's figures."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.database = DatabaseCollector(engine, clock)
        self.multiprocess_dir = _multiproc_dir
        self._registry: CollectorRegistry | None = None if self.multiprocess_dir else self._single()

    def _single(self) -> CollectorRegistry:
        from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

        registry = CollectorRegistry()
        for instrument in instruments().all():
            registry.register(instrument)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        registry.register(self.database)
        return registry

    def _multi(self, path: str) -> CollectorRegistry:
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
        registry.register(self.database)
        return registry

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition in the format ``accept`` asks for (Prometheus text by default)."""
        from prometheus_client.exposition import choose_encoder

        registry = self._registry
        if registry is None:
            assert self.multiprocess_dir is not None
            registry = self._multi(self.multiprocess_dir)
        encode, content_type = choose_encoder(accept)
        return encode(registry), content_type


# --- processes ----------------------------------------------------------------------------


@contextmanager
def process_model(workers: int) -> Iterator[str | None]:
    """For ``preflight serve``, before anything counts: with several workers, a fresh
    ``PROMETHEUS_MULTIPROC_DIR`` for this serve (removed on the way out); with one process,
    none (an inherited one would switch prometheus_client to files nobody reads)."""
    global _multiproc_dir
    owner = os.getpid()
    before = os.environ.get(MULTIPROC_ENV)
    path = tempfile.mkdtemp(prefix="preflight-metrics-") if workers > 1 else None
    if "prometheus_client.values" in sys.modules:
        log.warning("metrics: prometheus_client was imported before serve chose its process model")
    if path is None:
        os.environ.pop(MULTIPROC_ENV, None)
    else:
        os.environ[MULTIPROC_ENV] = path
    _multiproc_dir = path
    try:
        yield path
    finally:
        # A gunicorn worker leaves through serve's stack too (its SystemExit unwinds the
        # master's frames it was forked in): only the process that made the directory removes it.
        if os.getpid() == owner:
            _multiproc_dir = None
            if before is None:
                os.environ.pop(MULTIPROC_ENV, None)
            else:
                os.environ[MULTIPROC_ENV] = before
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)


def process_exited(pid: int) -> None:
    """A gunicorn worker is gone: drop its live gauges' files (gunicorn's ``child_exit``)."""
    if _multiproc_dir is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, _multiproc_dir)  # type: ignore[no-untyped-call]
