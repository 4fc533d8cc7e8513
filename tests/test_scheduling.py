"""The schedule end to end: APScheduler's real CronTrigger, the post job, catch-up, the database
lease — against the fake Slack over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from slack_sdk import WebClient
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.checklist import posting
from bot.checklist import service as checklist
from bot.checklist.models import ChecklistRun
from bot.checklist.roster_refresher import RosterRefresher
from bot.checklist.service import PostOutcome
from bot.config import Settings
from bot.db import session_scope
from bot.desks import service as desks
from bot.desks.models import Desk
from bot.runtime import make_client
from bot.scheduler import EVERY_SECONDS, Scheduler, desk_trigger
from tests.support.factories import make_desk
from tests.support.fakes.slack import FakeSlack, Fault
from tests.support.harness import BOT_TOKEN, FakeClock, utc

NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")


def fire_times(trigger: CronTrigger, start: datetime, end: datetime) -> list[datetime]:
    """Every time ``trigger`` fires in [start, end), asking it the way APScheduler does."""
    out: list[datetime] = []
    previous: datetime | None = None
    now = start
    while True:
        nxt = trigger.get_next_fire_time(previous, now)
        if nxt is None or nxt >= end:
            return out
        out.append(nxt)
        previous, now = nxt, nxt


def posts(fake: FakeSlack) -> int:
    return len(fake.of("chat.postMessage"))


def runs(engine: Engine) -> list[ChecklistRun]:
    with session_scope(engine) as session:
        return list(session.exec(select(ChecklistRun).order_by(col(ChecklistRun.trading_date))).all())


@pytest.fixture
def client(fake_slack: FakeSlack) -> WebClient:
    # A plain WebClient: its only retry handler is slack_sdk's default ConnectionErrorRetryHandler,
    # so an ok:false or 5xx answer reaches the job as SlackApiError.
    return WebClient(token=BOT_TOKEN, base_url=fake_slack.base_url, timeout=5)


@pytest.fixture
def scheduler(engine: Engine, client: WebClient, clock: FakeClock) -> Iterator[Scheduler]:
    sched = Scheduler(engine, client, RosterRefresher(engine, client, interval=0.05), clock)
    yield sched  # never started: tests call sync() and post_due() themselves


# --- the trigger alone -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "offsets"),
    [
        # Spring forward on Sun 8 Mar 2026: EST (-5) Mon 2-Fri 6, EDT (-4) Mon 9-Fri 13.
        (datetime(2026, 3, 2, tzinfo=NY), [-5] * 5 + [-4] * 5),
        # Fall back on Sun 1 Nov 2026: EDT Mon 26-Fri 30 Oct, EST Mon 2-Fri 6 Nov.
        (datetime(2026, 10, 26, tzinfo=NY), [-4] * 5 + [-5] * 5),
    ],
)
def test_desk_trigger_fires_once_per_weekday_at_08_00_local_across_dst(start: datetime, offsets: list[int]) -> None:
    desk = Desk(name="equities", channel_id="C0123", timezone="America/New_York", post_at="08:00", deadline="09:00")
    trigger = desk_trigger(desk)
    fires = fire_times(trigger, start, start + timedelta(days=14))
    assert len(fires) == 10
    local_days = [f.astimezone(NY).date() for f in fires]
    assert len(set(local_days)) == 10, "one fire per local day"
    assert all(d.weekday() < 5 for d in local_days)
    assert all(f.astimezone(NY).time() == time(8, 0) for f in fires)
    assert [int(f.utcoffset().total_seconds() // 3600) for f in fires] == offsets  # type: ignore[union-attr]
    assert [f.astimezone(ZoneInfo("UTC")).hour for f in fires] == [8 - o for o in offsets]


def test_desk_trigger_for_a_london_desk_follows_london_dst() -> None:
    desk = Desk(name="gilts", channel_id="C0999", timezone="Europe/London", post_at="07:30", deadline="08:15")
    trigger = desk_trigger(desk)
    start = datetime(2026, 3, 23, tzinfo=LONDON)  # London springs forward on Sun 29 Mar 2026
    fires = fire_times(trigger, start, start + timedelta(days=14))
    assert len(fires) == 10
    assert all(f.astimezone(LONDON).time() == time(7, 30) for f in fires)
    assert [f.astimezone(ZoneInfo("UTC")).time() for f in fires] == [time(7, 30)] * 5 + [time(6, 30)] * 5


def test_desk_trigger_uses_the_desk_zone_and_post_time() -> None:
    desk = Desk(name="x", channel_id="C0123", timezone="Asia/Tokyo", post_at="06:45", deadline="07:00")
    trigger = desk_trigger(desk)
    assert str(trigger.timezone) == "Asia/Tokyo"
    first = trigger.get_next_fire_time(None, utc(2026, 11, 27, 22, 0))  # Sat 07:00 in Tokyo
    assert first == datetime(2026, 11, 30, 6, 45, tzinfo=ZoneInfo("Asia/Tokyo"))


# --- the trigger driving the job -------------------------------------------------------


def drive(scheduler: Scheduler, clock: FakeClock, desk: Desk, start: datetime, end: datetime) -> list[datetime]:
    """Run the scheduler's job at every fire time of the desk's trigger, plus a catch-up sweep
    every 30 minutes in between, as the serving process would."""
    fires = fire_times(desk_trigger(desk), start, end)
    moments = sorted(
        {*fires, *(start + timedelta(minutes=30 * i) for i in range(int((end - start).total_seconds() // 1800)))}
    )
    for moment in moments:
        clock.set(moment)
        if moment in fires:
            scheduler.post_due(desk.name)
        posting.catch_up(scheduler.engine, scheduler.client, now=moment)
    return fires


@pytest.mark.parametrize(
    "start",
    [datetime(2026, 3, 2, tzinfo=NY), datetime(2026, 10, 26, tzinfo=NY)],
    ids=["march-dst", "november-dst"],
)
def test_each_trading_day_of_a_dst_fortnight_posts_once_at_08_00_local(
    engine: Engine, scheduler: Scheduler, clock: FakeClock, fake_slack: FakeSlack, start: datetime
) -> None:
    desk = make_desk(engine)
    drive(scheduler, clock, desk, start, start + timedelta(days=14))
    stored = runs(engine)
    assert len(stored) == 10 == posts(fake_slack)
    assert [r.trading_date.weekday() for r in stored] == [0, 1, 2, 3, 4] * 2
    for run in stored:
        assert run.message_ts is not None
        assert run.posted_at is not None
        assert run.posted_at.astimezone(NY).time() == time(8, 0)
        assert run.posted_at.astimezone(NY).date() == run.trading_date
    assert all(c.params["channel"] == "C0123" for c in fake_slack.of("chat.postMessage"))


def test_thanksgiving_week_skips_the_holiday_and_posts_on_the_early_close_day(
    engine: Engine, scheduler: Scheduler, clock: FakeClock, fake_slack: FakeSlack
) -> None:
    desk = make_desk(engine)
    start = datetime(2026, 11, 23, tzinfo=NY)
    fires = drive(scheduler, clock, desk, start, start + timedelta(days=7))
    assert len(fires) == 5  # the trigger fires Mon-Fri; the job filters the holiday
    stored = runs(engine)
    assert [r.trading_date for r in stored] == [date(2026, 11, d) for d in (23, 24, 25, 27)]
    assert posts(fake_slack) == 4
    friday = stored[-1]
    assert friday.early_close
    assert friday.market_close_at == utc(2026, 11, 27, 18, 0)


def test_thanksgiving_and_weekend_post_nothing(engine: Engine, client: WebClient, fake_slack: FakeSlack) -> None:
    make_desk(engine)
    for day in (date(2026, 11, 26), date(2026, 11, 28), date(2026, 11, 29)):
        now = datetime.combine(day, time(8), tzinfo=NY)
        result = posting.post_checklist(engine, client, desk_name="equities", day=day, now=now)
        assert result.outcome is PostOutcome.NOT_TRADING_DAY
        assert "not an NYSE trading day" in result.message
        assert posting.catch_up(engine, client, now=now + timedelta(minutes=5)) == []
    assert (
        "Thanksgiving"
        in posting.post_checklist(
            engine, client, desk_name="equities", day=date(2026, 11, 26), now=utc(2026, 11, 26, 13)
        ).message
    )
    assert posts(fake_slack) == 0
    assert runs(engine) == []


def test_early_close_day_posts(engine: Engine, client: WebClient, fake_slack: FakeSlack) -> None:
    make_desk(engine)
    result = posting.post_checklist(
        engine, client, desk_name="equities", day=date(2026, 11, 27), now=utc(2026, 11, 27, 13, 0)
    )
    assert result.outcome is PostOutcome.CLAIMED
    assert posts(fake_slack) == 1
    (run,) = runs(engine)
    assert run.message_ts == result.ts
    assert run.early_close


# --- exactly once ----------------------------------------------------------------------


def test_repeated_runs_post_once(engine: Engine, client: WebClient, fake_slack: FakeSlack) -> None:
    make_desk(engine)
    day, now = date(2026, 11, 25), utc(2026, 11, 25, 13, 0)
    first = posting.post_checklist(engine, client, desk_name="equities", day=day, now=now)
    assert first.outcome is PostOutcome.CLAIMED
    for minutes in (0, 1, 5, 30):
        again = posting.post_checklist(
            engine, client, desk_name="equities", day=day, now=now + timedelta(minutes=minutes)
        )
        assert again.outcome is PostOutcome.ALREADY_POSTED
        assert "already posted" in again.message
        assert posting.catch_up(engine, client, now=now + timedelta(minutes=minutes)) == []
    assert posts(fake_slack) == 1
    assert len(runs(engine)) == 1


def test_concurrent_runs_post_once(engine: Engine, client: WebClient, fake_slack: FakeSlack) -> None:
    make_desk(engine)
    day, now = date(2026, 11, 25), utc(2026, 11, 25, 13, 0)
    n = 8
    barrier = threading.Barrier(n)
    results: list[posting.PostResult] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        try:
            barrier.wait()
            if i % 2:
                result = posting.post_checklist(engine, client, desk_name="equities", day=day, now=now)
                out = [result]
            else:
                out = posting.catch_up(engine, client, now=now)
            with lock:
                results.extend(out)
        except BaseException as exc:  # surfaced below
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert posts(fake_slack) == 1
    outcomes = Counter(r.outcome for r in results)
    assert outcomes[PostOutcome.CLAIMED] == 1
    assert set(outcomes) <= {PostOutcome.CLAIMED, PostOutcome.ALREADY_POSTED, PostOutcome.IN_PROGRESS}
    (run,) = runs(engine)
    assert run.message_ts == next(r.ts for r in results if r.outcome is PostOutcome.CLAIMED)


# --- catch-up after downtime -----------------------------------------------------------


def test_bot_back_before_the_deadline_posts_then(engine: Engine, client: WebClient, fake_slack: FakeSlack) -> None:
    make_desk(engine)  # posts 08:00, deadline 09:00 New York
    down_until = utc(2026, 11, 25, 13, 40)  # 08:40 local: the 08:00 fire was missed
    assert posting.catch_up(engine, client, now=utc(2026, 11, 25, 12, 59)) == []  # before post time: nothing
    results = posting.catch_up(engine, client, now=down_until)
    assert [r.outcome for r in results] == [PostOutcome.CLAIMED]
    assert posts(fake_slack) == 1
    (run,) = runs(engine)
    assert run.posted_at == down_until
    assert posting.catch_up(engine, client, now=down_until + timedelta(minutes=1)) == []
    assert posts(fake_slack) == 1


def test_bot_back_after_the_deadline_does_not_post(
    engine: Engine, client: WebClient, scheduler: Scheduler, clock: FakeClock, fake_slack: FakeSlack
) -> None:
    make_desk(engine)
    for moment in (utc(2026, 11, 25, 14, 0), utc(2026, 11, 25, 14, 1), utc(2026, 11, 25, 20, 0)):
        assert posting.catch_up(engine, client, now=moment) == []
        late = posting.post_checklist(
            engine, client, desk_name="equities", day=date(2026, 11, 25), now=moment, before_deadline_only=True
        )
        assert late.outcome is PostOutcome.TOO_LATE
        clock.set(moment)
        scheduler.post_due("equities")  # a misfired cron job run late does not post either
    assert posts(fake_slack) == 0
    assert runs(engine) == []


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=200, body={"ok": False, "error": "channel_not_found"}),
        Fault(status=500, body={"ok": False, "error": "internal_error"}),
    ],
    ids=["ok-false", "http-500"],
)
def test_failed_post_releases_the_lease_and_a_later_catch_up_posts_once(
    engine: Engine, client: WebClient, fake_slack: FakeSlack, fault: Fault
) -> None:
    assert [type(h).__name__ for h in client.retry_handlers] == ["ConnectionErrorRetryHandler"]
    make_desk(engine)
    fake_slack.script("chat.postMessage", fault)
    now = utc(2026, 11, 25, 13, 0)
    failed = posting.post_checklist(engine, client, desk_name="equities", day=date(2026, 11, 25), now=now)
    assert failed.outcome == "failed"
    assert len(fake_slack.rejected) == 1 and posts(fake_slack) == 0
    (run,) = runs(engine)
    assert run.message_ts is None
    assert run.post_claimed_at is None  # the lease is released at once
    assert run.post_error
    results = posting.catch_up(engine, client, now=now + timedelta(minutes=1))
    assert [r.outcome for r in results] == [PostOutcome.CLAIMED]
    assert posting.catch_up(engine, client, now=now + timedelta(minutes=2)) == []
    assert posts(fake_slack) == 1
    (run,) = runs(engine)
    assert run.message_ts is not None and run.post_error is None and run.post_attempts == 2


@pytest.mark.slow
def test_production_client_retries_5xx_before_giving_up(engine: Engine, fake_slack: FakeSlack) -> None:
    client = make_client(
        Settings(slack_bot_token=BOT_TOKEN, slack_signing_secret="s", slack_api_url=fake_slack.base_url)
    )
    make_desk(engine)
    # 429 honours Retry-After; every 5xx is retried (slack_sdk's own handler: only 500/503).
    fake_slack.script(
        "chat.postMessage",
        Fault(status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": "1"}),
        Fault(status=502),
        Fault(status=504),
    )
    result = posting.post_checklist(
        engine, client, desk_name="equities", day=date(2026, 11, 25), now=utc(2026, 11, 25, 13, 0)
    )
    assert result.outcome is PostOutcome.CLAIMED
    assert len(fake_slack.rejected) == 3
    assert fake_slack.of("chat.postMessage")[0].at - fake_slack.rejected[0].at >= 1.0
    assert posts(fake_slack) == 1


def test_a_crashed_poster_holds_the_lease_briefly_then_catch_up_posts(
    engine: Engine, client: WebClient, fake_slack: FakeSlack
) -> None:
    make_desk(engine)
    now = utc(2026, 11, 25, 13, 0)
    with session_scope(engine) as session:  # a process claims the post, then dies before posting
        desk = desks.get_desk(session=session, name="equities")
        claim = checklist.claim_post(session=session, desk=desk, day=date(2026, 11, 25), now=now)
        assert claim.outcome is PostOutcome.CLAIMED
    held = posting.catch_up(engine, client, now=now + timedelta(minutes=1))
    assert [r.outcome for r in held] == [PostOutcome.IN_PROGRESS]
    assert posts(fake_slack) == 0
    after = posting.catch_up(engine, client, now=now + checklist.POST_LEASE + timedelta(minutes=1))
    assert [r.outcome for r in after] == [PostOutcome.CLAIMED]
    assert posts(fake_slack) == 1


# --- Scheduler.sync --------------------------------------------------------------------


def cron_jobs(scheduler: Scheduler) -> dict[str, CronTrigger]:
    found: dict[str, CronTrigger] = {}
    for job in scheduler.aps.get_jobs():
        assert isinstance(job.trigger, CronTrigger)
        found[job.id] = job.trigger  # pending jobs are listed in the order they were added
    return found


def trigger_at(trigger: CronTrigger) -> tuple[str, str, str]:
    fields = {f.name: str(f) for f in trigger.fields}
    return str(trigger.timezone), fields["hour"], fields["minute"]


def test_sync_registers_one_cron_job_per_desk_in_its_zone(
    engine: Engine, scheduler: Scheduler, clock: FakeClock, fake_slack: FakeSlack
) -> None:
    ny = make_desk(engine)
    ldn = make_desk(engine, "gilts", channel="C0999", timezone="Europe/London", post_at="07:30", deadline="08:15")
    clock.set(utc(2026, 11, 25, 3, 0))  # before either desk's post time: nothing to catch up
    scheduler.sync()
    registered = cron_jobs(scheduler)
    assert set(registered) == {f"checklist:{ny.id}", f"checklist:{ldn.id}"}
    assert trigger_at(registered[f"checklist:{ny.id}"]) == ("America/New_York", "8", "0")
    assert trigger_at(registered[f"checklist:{ldn.id}"]) == ("Europe/London", "7", "30")
    assert posts(fake_slack) == 0
    scheduler.sync()  # nothing changed: nothing re-added
    assert len(scheduler.aps.get_jobs()) == 2


def test_sync_reschedules_when_a_desk_post_time_changes_and_drops_removed_desks(
    engine: Engine, scheduler: Scheduler, clock: FakeClock
) -> None:
    desk = make_desk(engine)
    other = make_desk(engine, "rates", channel="C0777")
    clock.set(utc(2026, 11, 25, 3, 0))
    scheduler.sync()
    with session_scope(engine) as session:
        row = session.get(Desk, desk.id)
        assert row is not None
        row.post_at, row.deadline = "07:15", "08:30"
        session.add(row)
    scheduler.aps.start(paused=True)  # a real job store, so replace_existing applies; nothing runs
    try:
        scheduler.sync()
        registered = cron_jobs(scheduler)
        assert len(scheduler.aps.get_jobs()) == 2
        assert trigger_at(registered[f"checklist:{desk.id}"]) == ("America/New_York", "7", "15")
        assert trigger_at(registered[f"checklist:{other.id}"]) == ("America/New_York", "8", "0")
        job = scheduler.aps.get_job(f"checklist:{desk.id}")
        assert job is not None
        # The job's own next_run_time follows the real clock; ask its trigger at the test's time.
        assert job.trigger.get_next_fire_time(None, datetime(2026, 11, 25, 3, 0, tzinfo=UTC)) == datetime(
            2026, 11, 25, 7, 15, tzinfo=NY
        )
        with session_scope(engine) as session:
            gone = session.get(Desk, other.id)
            session.delete(gone)
        scheduler.sync()
        assert [j.id for j in scheduler.aps.get_jobs()] == [f"checklist:{desk.id}"]
    finally:
        scheduler.aps.shutdown(wait=False)


def test_sync_catches_up_a_desk_added_after_its_post_time(
    engine: Engine, scheduler: Scheduler, clock: FakeClock, fake_slack: FakeSlack
) -> None:
    clock.set(utc(2026, 11, 25, 13, 20))  # 08:20 in New York
    make_desk(engine)  # added by the CLI while the bot runs
    scheduler.sync()
    scheduler.sync()
    assert posts(fake_slack) == 1
    (run,) = runs(engine)
    assert run.posted_at == clock()


def test_start_runs_every_pass_on_its_interval(scheduler: Scheduler) -> None:
    before = datetime.now(UTC)
    scheduler.start()
    try:
        jobs = {job.id: job for job in scheduler.aps.get_jobs() if isinstance(job.trigger, IntervalTrigger)}
        assert {j: int(job.trigger.interval.total_seconds()) for j, job in jobs.items()} == EVERY_SECONDS
        assert EVERY_SECONDS["escalations"] == 30  # a silent trader is escalated within half a minute
        assert jobs["escalations"].next_run_time > before + timedelta(seconds=25)  # not at start-up
    finally:
        scheduler.shutdown()
