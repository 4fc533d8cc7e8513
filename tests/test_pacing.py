"""The Slack pacer's budget lives in the database: every pacer of a service, in any process,
draws on one budget (bot.delivery.pacing.SharedPacer), on SQLite and PostgreSQL.

Two SharedPacer objects with nothing in common but the database stand in for two processes
here; tests/test_processes.py runs two real processes against a rate-limited fake Slack.
Spacings are a minute or more, so what is asserted never depends on how fast this runs."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from bot.delivery.pacing import SharedPacer

MINUTE = 60.0
SLOW = 1 / MINUTE  # one call a minute
FAST = 1000.0  # a call every millisecond


def test_two_pacers_share_one_budget(engine: Engine) -> None:
    one, two = SharedPacer(engine, "slack", SLOW), SharedPacer(engine, "slack", SLOW)
    assert one.reserve() == pytest.approx(0.0, abs=5.0)  # the first call goes at once
    assert two.reserve() is None  # while it is in flight no one else sends
    assert one.budget()[2] is True
    one.done()
    second = two.reserve()
    assert second is not None and MINUTE - 5 <= second <= MINUTE  # a spacing after the answer
    assert one.reserve() is None
    two.done()
    third = one.reserve()
    assert third is not None and MINUTE - 5 <= third <= 2 * MINUTE
    assert one.budget()[1] == pytest.approx(MINUTE)


def test_services_have_budgets_of_their_own(engine: Engine) -> None:
    slack, pager = SharedPacer(engine, "slack", SLOW), SharedPacer(engine, "pager", SLOW)
    assert slack.reserve() is not None
    assert pager.reserve() == pytest.approx(0.0, abs=5.0)


def test_a_sender_that_never_says_done_holds_the_service_only_for_a_while(engine: Engine) -> None:
    crashed = SharedPacer(engine, "slack", FAST, hold=-1.0)  # its hold is over at once
    assert crashed.reserve() is not None
    assert SharedPacer(engine, "slack", FAST).reserve() is not None  # not stuck behind it
    stuck_for_a_minute = SharedPacer(engine, "slack", FAST, hold=MINUTE)
    other = SharedPacer(engine, "slack", FAST)
    other.done()
    assert stuck_for_a_minute.reserve() is not None
    assert other.reserve() is None


def test_a_429_pauses_every_pacer_and_slows_down(engine: Engine) -> None:
    limited, other = SharedPacer(engine, "slack", FAST), SharedPacer(engine, "slack", FAST)
    assert limited.reserve() is not None
    limited.rate_limited(retry_after=2 * MINUTE)
    limited.done()
    assert limited.budget()[1] == pytest.approx(1.25 / FAST)
    delay = other.reserve()
    assert delay is not None and delay >= 2 * MINUTE - 5  # the other process waits for Retry-After too


def test_the_spacing_recovers_after_a_quiet_spell(engine: Engine) -> None:
    SharedPacer(engine, "slack", FAST).rate_limited(retry_after=0.0)
    still_slow = SharedPacer(engine, "slack", FAST, recover_after=3600.0)
    assert still_slow.reserve() is not None
    still_slow.done()
    assert still_slow.budget()[1] == pytest.approx(1.25 / FAST)  # within the hour it stays slower
    recovered = SharedPacer(engine, "slack", FAST, recover_after=-1.0)  # "quiet" long enough
    assert recovered.reserve() is not None
    assert recovered.budget()[1] == pytest.approx(1 / FAST)


def test_wait_polls_while_busy_then_sleeps_until_its_slot(engine: Engine) -> None:
    sender = SharedPacer(engine, "slack", SLOW)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            sender.done()  # the other process's answer arrives while this one polls

    waiter = SharedPacer(engine, "slack", SLOW, sleep=sleep)
    assert sender.reserve() is not None
    waiter.wait()
    assert slept[:3] == [waiter.poll] * 3
    assert len(slept) == 4 and MINUTE - 5 <= slept[3] <= MINUTE
