"""The roster refresher: a click costs it an in-memory mark; the per-run cache reads answers
incrementally and reloads when anything else changed, so the message still tells the truth."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import event, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.checklist import posting, rosters
from bot.checklist import service as checklist
from bot.checklist.models import ChecklistRun
from bot.checklist.roster_cache import RosterCache
from bot.db import session_scope
from bot.desks import service as desks
from bot.slack.ids import Action
from tests.support.factories import make_desk, name_people
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot


def post(bot: Bot) -> int:
    result = posting.post_checklist(
        bot.runtime.engine, bot.client, desk_name="equities", day=date(2026, 11, 25), now=bot.clock()
    )
    assert result.run_id is not None and result.ts is not None
    return result.run_id


def last_roster(fake: FakeSlack) -> str:
    updates = fake.of("chat.update")
    assert updates, "the roster was never updated"
    return json.dumps(updates[-1].params["blocks"], ensure_ascii=False)


def warm(bot: Bot, fake: FakeSlack) -> int:
    """A desk, its checklist, and one click rendered: the refresher's cache holds the run."""
    make_desk(bot.runtime.engine)
    run_id = post(bot)
    bot.click("UTRD1", Action.CONFIRM_ALL, str(run_id))
    bot.settle()
    assert "✅ 1 ready" in last_roster(fake)
    return run_id


def confirm(engine: Engine, run_id: int, user: str, now: datetime) -> None:
    with session_scope(engine) as session:
        run = session.get(ChecklistRun, run_id)
        assert run is not None
        checklist.confirm(session=session, run=run, user_id=user, now=now)


class Statements:
    """Every SQL statement the engine runs, with the thread that ran it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seen: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        with self._lock:
            self.seen.append((threading.current_thread().name, statement))

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def claims(self) -> list[str]:
        """The refresher's lease claims: the conditional UPDATE on ``roster_claimed_at``."""
        return [s for _, s in self.seen if s.lstrip().upper().startswith("UPDATE") and "roster_claimed_at IS NULL" in s]


def test_a_click_after_the_cache_is_warm_is_read_incrementally(bot: Bot, fake_slack: FakeSlack) -> None:
    run_id = warm(bot, fake_slack)
    cache = bot.runtime.refresher.cache
    full = cache.full_loads
    bot.click("UTRD2", Action.CONFIRM_ALL, str(run_id))
    bot.settle()
    assert cache.full_loads == full and cache.last_load == "incremental"
    roster = last_roster(fake_slack)
    assert "✅ 2 ready · 🚫 0 restricted · ⏳ 1 pending" in roster
    assert "✅ Bob — ready" in roster and "⏳ Carol — pending" in roster


def test_an_away_day_is_shown_at_once(bot: Bot, fake_slack: FakeSlack) -> None:
    """Away days bump the version without an answer row: the delta isn't explained, full load."""
    warm(bot, fake_slack)
    cache = bot.runtime.refresher.cache
    full = cache.full_loads
    assert bot.command("UTRD3", "away 2026-11-25 2026-11-25").status_code == 200
    bot.settle()
    assert cache.full_loads == full + 1
    assert "🌴 Carol — away" in last_roster(fake_slack) and "🌴 1 away" in last_roster(fake_slack)


def test_a_trader_added_to_the_desk_shows_at_the_next_render(bot: Bot, fake_slack: FakeSlack) -> None:
    run_id = warm(bot, fake_slack)
    with session_scope(bot.runtime.engine) as session:
        desk = desks.get_desk(session=session, name="equities")
        assert desk.id is not None
        desks.update_desk(session=session, desk_id=desk.id, now=bot.clock(), add_traders=["UTRD4"])
    bot.click("UTRD2", Action.CONFIRM_ALL, str(run_id))
    bot.settle()
    roster = last_roster(fake_slack)
    assert "✅ 2 ready · 🚫 0 restricted · ⏳ 2 pending" in roster and "⏳ UTRD4 — pending" in roster
    bot.click("UTRD4", Action.CONFIRM_ALL, str(run_id))
    bot.settle()
    assert "✅ 3 ready" in last_roster(fake_slack) and "✅ UTRD4 — ready" in last_roster(fake_slack)


def test_a_name_change_shows_once_the_cache_is_older_than_its_bound(bot: Bot, fake_slack: FakeSlack) -> None:
    """Names change without a bump: the cache reloads everything at least every ``max_age``."""
    now = [0.0]
    refresher = bot.runtime.refresher
    refresher.cache = RosterCache(max_age=60.0, monotonic=lambda: now[0])
    run_id = warm(bot, fake_slack)
    name_people(bot.runtime.engine, {"UTRD2": "Robert"})
    now[0] = 30.0
    bot.click("UTRD3", Action.CONFIRM_ALL, str(run_id))
    bot.settle()
    assert refresher.cache.last_load == "incremental"  # within the bound: answers only
    now[0] = 61.0
    bot.click("UTRD2", Action.CONFIRM_ALL, str(run_id))
    bot.settle()
    assert refresher.cache.last_load == "full"
    assert "✅ Robert — ready" in last_roster(fake_slack) and "Bob" not in last_roster(fake_slack)


def test_an_answer_committed_out_of_id_order_is_still_read(bot: Bot, fake_slack: FakeSlack) -> None:
    """On PostgreSQL a click with a smaller id can commit after a larger id was read: the rows
    above the last id then don't explain the version delta, and the ids never seen are fetched.
    Simulated: the cache believes it has read further than it has."""
    run_id = warm(bot, fake_slack)
    cache = bot.runtime.refresher.cache
    live = cache.get(run_id)
    assert live is not None
    live.last_answer_id += 1000
    full = cache.full_loads
    bot.click("UTRD2", Action.CONFIRM_ALL, str(run_id))
    bot.settle()
    assert cache.full_loads == full and cache.last_load == "incremental"
    assert "✅ 2 ready" in last_roster(fake_slack) and "✅ Bob — ready" in last_roster(fake_slack)


def test_an_unexplained_bump_next_to_a_click_is_a_full_load(bot: Bot, fake_slack: FakeSlack) -> None:
    """A click and an away day between two renders: one row for a delta of two, full load."""
    run_id = warm(bot, fake_slack)
    cache = bot.runtime.refresher.cache
    full = cache.full_loads
    with session_scope(bot.runtime.engine) as session:
        from bot.desks import away

        away.set_away(
            session=session,
            actor="UTRD3",
            user_id="UTRD3",
            start=date(2026, 11, 25),
            end=date(2026, 11, 25),
            note=None,
            now=bot.clock(),
        )
        assert rosters.mark_changed(session=session, user_id="UTRD3", now=bot.clock()) == [run_id]
    bot.click("UTRD2", Action.CONFIRM_ALL, str(run_id))
    bot.settle()
    assert cache.full_loads == full + 1
    assert "✅ 2 ready · 🚫 0 restricted · ⏳ 0 pending · 🌴 1 away" in last_roster(fake_slack)


def version_of(engine: Engine, run_id: int) -> int:
    with Session(engine) as session:
        return int(session.exec(select(ChecklistRun.answers_version).where(ChecklistRun.id == run_id)).one())


def test_an_answer_bumps_its_run_at_commit_and_not_before(bot: Bot, fake_slack: FakeSlack) -> None:
    """Every answer of a desk bumps one counter on the run. It is bumped as the transaction's
    last statement (bot.db.add_at_commit): while the answer's hooks still run, the run row is
    not locked (PostgreSQL: another transaction takes it at once), and a transaction that rolls
    back bumps nothing, not even through the same session's next commit."""
    engine = bot.runtime.engine
    make_desk(engine)
    run_id = post(bot)
    before = version_of(engine, run_id)
    with Session(engine, expire_on_commit=False) as session:
        run = session.get(ChecklistRun, run_id)
        assert run is not None
        checklist.confirm(session=session, run=run, user_id="UTRD1", now=bot.clock())
        session.flush()
        assert session.exec(select(ChecklistRun.answers_version).where(ChecklistRun.id == run_id)).one() == before
        if engine.dialect.name == "postgresql":
            with engine.connect() as other:
                query = text("SELECT id FROM checklist_run WHERE id = :id FOR NO KEY UPDATE NOWAIT")
                assert other.execute(query, {"id": run_id}).scalar_one() == run_id  # what a bump takes
                other.rollback()
        session.commit()
        assert version_of(engine, run_id) == before + 1
        checklist.confirm(session=session, run=run, user_id="UTRD2", now=bot.clock())
        session.rollback()
        session.commit()  # an empty transaction: the rolled-back bump is gone with its answer
    assert version_of(engine, run_id) == before + 1
    with session_scope(engine) as session:  # two answers in one transaction: two bumps, one UPDATE
        run = session.get(ChecklistRun, run_id)
        assert run is not None
        for user in ("UTRD2", "UTRD3"):
            checklist.confirm(session=session, run=run, user_id=user, now=bot.clock())
    assert version_of(engine, run_id) == before + 3


@pytest.mark.slow
def test_many_notifies_claim_a_run_at_most_once_per_interval(engine: Engine, fake_slack: FakeSlack, clock: Any) -> None:
    make_desk(engine, traders=[f"UT{i:02d}" for i in range(20)])
    bot = Bot(engine, fake_slack.base_url, clock, roster_interval=1.0)
    statements = Statements(engine)
    try:
        run_id = post(bot)
        refresher = bot.runtime.refresher
        in_notify = 0
        started = time.monotonic()
        for i in range(20):
            confirm(engine, run_id, f"UT{i:02d}", clock())  # a stored click, then its notify
            for _ in range(10):
                before = len(statements.seen)
                refresher.notify(run_id)
                in_notify += len([t for t, _ in statements.seen[before:] if t == threading.current_thread().name])
                time.sleep(0.01)
        bot.settle(timeout=20)
        elapsed = time.monotonic() - started
    finally:
        statements.close()
        bot.close()
    assert in_notify == 0  # notify runs no statement
    claims = statements.claims()
    assert 1 <= len(claims) <= elapsed / 1.0 + 1, (len(claims), elapsed)
    assert "✅ 20 ready · 🚫 0 restricted · ⏳ 0 pending" in last_roster(fake_slack)


def test_a_run_leased_elsewhere_is_tried_again_when_the_lease_ends(
    engine: Engine, fake_slack: FakeSlack, clock: Any
) -> None:
    """Another replica holds the roster lease: no claim is attempted until it ends."""
    make_desk(engine)
    bot = Bot(engine, fake_slack.base_url, clock, roster_interval=1.0)
    statements = Statements(engine)
    try:
        run_id = post(bot)
        confirm(engine, run_id, "UTRD1", clock())
        with session_scope(engine) as session:
            session.execute(
                update(ChecklistRun)
                .where(col(ChecklistRun.id) == run_id)
                .values(roster_claimed_at=datetime.now(UTC))  # the other replica's claim (wall clock)
            )
        before = len(statements.claims())
        wait = bot.runtime.refresher.refresh(run_id)
        assert wait is not None and 0.5 < wait <= 1.0
        assert len(statements.claims()) == before and fake_slack.of("chat.update") == []
        time.sleep(wait)
        assert bot.runtime.refresher.refresh(run_id) is None
        assert len(statements.claims()) == before + 1
        assert "✅ 1 ready" in last_roster(fake_slack)
    finally:
        statements.close()
        bot.close()
