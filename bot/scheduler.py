"""APScheduler wiring only: which job runs when. The jobs are plain functions in the capabilities (checklist.posting…).

One cron job per desk fires at the desk's post time in the desk's own time zone
(so DST is the time-zone database's business). A ``sync`` job every minute
reconciles those cron jobs with the desks table (desks are added by the CLI in
another process) and catches up on anything due but not yet posted. The database
decides what is posted; the scheduler's memory decides nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.executors.pool import BasePoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from slack_sdk import WebClient
from sqlalchemy.engine import Engine

from bot import calendar, logs, metrics
from bot.checklist import posting
from bot.checklist import service as checklist
from bot.checklist.roster_refresher import RosterRefresher
from bot.db import session_scope
from bot.delivery.slack import delivery_client
from bot.desks import service as desks
from bot.desks.models import Desk
from bot.escalation.jobs import escalation_pass
from bot.people import slack_names
from bot.probe import wiring as probe_wiring
from bot.profile import jobs as profile_jobs
from bot.summary import posting as weekly

log = logging.getLogger(__name__)

# The passes over every desk: job id -> how often it runs, in seconds. Each pass is idempotent,
# so a late or coalesced run changes nothing but timing.
EVERY_SECONDS = {"sync": 60, "escalations": 30, "weekly_summaries": 300, "readiness_gaps": 60, "probes": 60}


def desk_trigger(desk: Desk) -> CronTrigger:
    """Weekdays at the desk's post time, desk-local. Holidays are filtered by the job."""
    at = calendar.parse_hhmm(desk.post_at)
    return CronTrigger(day_of_week="mon-fri", hour=at.hour, minute=at.minute, timezone=calendar.zone(desk.timezone))


def job_name(job_id: str) -> str:
    """The job's name for metrics: ``checklist:12`` (one desk's post) counts as ``checklist``."""
    return job_id.split(":", 1)[0]


JOB_EVENTS = EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
_OUTCOMES = {EVENT_JOB_EXECUTED: "ok", EVENT_JOB_ERROR: "error", EVENT_JOB_MISSED: "missed"}


def job_event(event: JobEvent) -> None:
    """APScheduler's job events, counted: a run ended (ok, error), was missed (the scheduler
    was busy or down past the grace time) or skipped (the previous run still going)."""
    metrics.job_ran(job_name(event.job_id), _OUTCOMES.get(event.code, "skipped"))


class _JobPool(ThreadPoolExecutor):
    """APScheduler's pool: each job runs with its name (and, for a desk's post, the desk) bound
    for the logs, and is timed."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        job = args[0] if args else None  # APScheduler submits run_job(job, jobstore, run_times, logger)
        job_id = str(getattr(job, "id", "") or "")
        desk = None
        if job_id.startswith("checklist:") and getattr(job, "args", None):
            desk = str(job.args[0])  # type: ignore[union-attr]

        def run() -> Any:
            started = time.perf_counter()
            try:
                with logs.bound(job=job_name(job_id) or None, desk=desk):
                    return fn(*args, **kwargs)
            finally:
                if job_id:
                    metrics.job_took(job_name(job_id), time.perf_counter() - started)

        return super().submit(run)


class JobPoolExecutor(BasePoolExecutor):  # type: ignore[misc]
    """APScheduler's thread pool executor (10 threads, as its default) on ``_JobPool``."""

    def __init__(self, max_workers: int = 10) -> None:
        super().__init__(_JobPool(max_workers, thread_name_prefix="scheduler"))


class Scheduler:
    """Jobs fire on the real time; each one reads ``now`` from ``clock``. With a moved clock
    (PREFLIGHT_CLOCK_OFFSET) the per-desk cron jobs fire at the wrong moment and do nothing
    (``claim_post`` refuses an early post); the minute-by-minute ``sync`` posts instead."""

    def __init__(
        self,
        engine: Engine,
        client: WebClient,
        refresher: RosterRefresher,
        clock: Callable[[], datetime],
    ) -> None:
        self.engine = engine
        self.client = client
        self.refresher = refresher
        self.clock = clock
        # users.info without in-call retries: a rate limit ends this refresh, the next continues.
        self.names_client = delivery_client(client)
        self.aps = BackgroundScheduler(
            timezone="UTC",
            job_defaults={"coalesce": True, "max_instances": 1},
            executors={"default": JobPoolExecutor()},  # each run logs with its job (and desk) and is timed
        )
        self.aps.add_listener(
            job_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
        )
        self._signatures: dict[str, tuple[str, str]] = {}

    def start(self) -> None:
        # APScheduler runs on the real time (a moved clock would delay or skip the first sync).
        passes = {
            "sync": self.sync,
            "escalations": self.escalate,
            "weekly_summaries": self.weekly_summaries,
            "readiness_gaps": self.readiness_gaps,
            "probes": self.probes,
        }
        for job_id, run in passes.items():
            first = {"next_run_time": datetime.now(UTC)} if job_id == "sync" else {}  # desks' jobs at once
            self.aps.add_job(run, "interval", seconds=EVERY_SECONDS[job_id], id=job_id, **first)
        self.aps.start()

    def readiness_gaps(self) -> None:
        """Readiness-profile gaps for every desk: opened, escalated before the morning, closed
        when fixed (bot.profile.jobs; the outbox delivers)."""
        for line in profile_jobs.profile_pass(self.engine, now=self.clock()):
            log.debug("readiness gaps: %s", line)

    def probes(self) -> None:
        """Broker probes at each desk's checklist time (once per morning: the stored results
        decide), then PROBE_FAILED escalations follow the results (bot.probe.wiring)."""
        for line in probe_wiring.probe_pass(self.engine, clock=self.clock):
            log.info("probes: %s", line)

    def weekly_summaries(self) -> None:
        """Post every desk's weekly summary that is due and not yet posted (bot.summary.posting)."""
        for result in weekly.post_due_summaries(self.engine, self.client, now=self.clock()):
            log.info("weekly summary: %s", result.message)

    def escalate(self) -> None:
        """Reminders, deadline escalations and level 2 for every desk (the outbox delivers)."""
        for line in escalation_pass(self.engine, now=self.clock()):
            log.debug("escalations: %s", line)

    def shutdown(self) -> None:
        self.aps.shutdown(wait=False)

    def post_due(self, desk_name: str) -> None:
        now = self.clock()
        with session_scope(self.engine) as session:
            desk = desks.get_desk(session=session, name=desk_name)
            day = checklist.desk_today(desk, now)
        result = posting.post_checklist(
            self.engine, self.client, desk_name=desk_name, day=day, now=now, before_deadline_only=True
        )
        log.info("scheduled post %s: %s", desk_name, result.message)

    def sync(self) -> None:
        """Reconcile per-desk cron jobs with the database, then catch up and sweep."""
        with session_scope(self.engine) as session:
            current = {f"checklist:{d.id}": d for d in desks.list_desks(session=session)}
        for job_id, desk in current.items():
            signature = (desk.timezone, desk.post_at)
            if self._signatures.get(job_id) != signature:
                self.aps.add_job(
                    self.post_due,
                    desk_trigger(desk),
                    args=[desk.name],
                    id=job_id,
                    replace_existing=True,
                    misfire_grace_time=300,
                )
                self._signatures[job_id] = signature
        for job_id in set(self._signatures) - set(current):
            self.aps.remove_job(job_id)
            del self._signatures[job_id]
        for result in posting.catch_up(self.engine, self.client, now=self.clock()):
            log.info("catch-up: %s", result.message)
        self.refresher.sweep()
        self.refresh_names()

    def refresh_names(self) -> int:
        """Names of every desk member: unknown ones first, then those older than a day
        (bot.people.slack_names); a ``user_change`` event refreshes one at once."""
        with session_scope(self.engine) as session:
            members = desks.all_member_ids(session=session)
        return slack_names.refresh(self.engine, self.names_client, members, now=self.clock())
