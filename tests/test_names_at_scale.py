"""Names at scale: a new 1,000-trader desk is named through ``users.list`` pages (Tier 2,
paced) in a handful of calls, not 1,000 ``users.info`` calls at Tier-4 pace (bot.people.slack_names)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from slack_sdk import WebClient
from sqlalchemy.engine import Engine

from bot.db import read_scope, session_scope
from bot.desks import service as desks
from bot.people import service as people
from bot.people import slack_names
from bot.people.slack_names import Spacing, Walk
from tests.support.factories import make_desk
from tests.support.fakes.slack import FakeSlack, Fault
from tests.support.harness import BOT_TOKEN, utc

NOW = utc(2026, 11, 25, 12, 0)
TRADERS = [f"UT{n:05d}" for n in range(1000)]
NO_WAIT = Spacing(0.0)


@pytest.fixture
def workspace(fake_slack: FakeSlack) -> FakeSlack:
    """1,000 traders among 1,150 people."""
    for user in TRADERS:
        fake_slack.add_user(user, f"Trader {user[2:]}", f"Trader {user[2:]} Real")
    for n in range(150):
        fake_slack.add_user(f"UX{n:05d}", f"Someone {n}")
    return fake_slack


def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=BOT_TOKEN, base_url=fake.base_url, retry_handlers=[])


def names(engine: Engine, users: list[str]) -> dict[str, str]:
    with read_scope(engine) as session:
        known = people.names_for(session=session, user_ids=users)
    return {u: known(u) for u in users}


def test_a_new_1000_trader_desk_is_named_in_a_handful_of_calls(engine: Engine, workspace: FakeSlack) -> None:
    make_desk(engine, managers=("UX00000",), traders=TRADERS, named=False)
    with session_scope(engine) as session:
        members = desks.all_member_ids(session=session)
    stored = slack_names.refresh(engine, client(workspace), members, now=NOW, walk=Walk(NO_WAIT))
    assert stored == 1001
    pages = workspace.of("users.list")
    assert len(pages) == 6  # 1,150 people, 200 a page
    assert all(p.params["limit"] == "200" for p in pages)
    assert pages[0].params.get("cursor") in (None, "") and all(p.params["cursor"] for p in pages[1:])
    assert workspace.of("users.info") == []
    shown = names(engine, TRADERS)
    assert shown["UT00000"] == "Trader 00000" and shown["UT00999"] == "Trader 00999"
    assert all(name != user for user, name in shown.items())
    with read_scope(engine) as session:
        assert people.stale(session=session, user_ids=members, now=NOW) == []


def test_the_walk_stops_when_everyone_wanted_is_named(engine: Engine, workspace: FakeSlack) -> None:
    wanted = TRADERS[:300]  # the first 300 listed
    slack_names.refresh(engine, client(workspace), wanted, now=NOW, walk=Walk(NO_WAIT))
    assert len(workspace.of("users.list")) == 2


def test_few_unknown_names_go_through_users_info(engine: Engine, workspace: FakeSlack) -> None:
    few = TRADERS[: slack_names.BULK_THRESHOLD]
    assert slack_names.refresh(engine, client(workspace), few, now=NOW, walk=Walk(NO_WAIT)) == len(few)
    assert workspace.of("users.list") == [] and len(workspace.of("users.info")) == len(few)


def test_users_the_list_does_not_show_are_left_to_users_info_and_not_walked_for_again(
    engine: Engine, workspace: FakeSlack
) -> None:
    guests = [f"UG{n:05d}" for n in range(60)]  # more than the threshold, none of them listed
    for user in guests:
        workspace.add_user(user, f"Guest {user[2:]}", listed=False)
    walk = Walk(NO_WAIT)
    wanted = TRADERS[:100] + guests
    first = slack_names.refresh(engine, client(workspace), wanted, now=NOW, walk=walk, limit=20)
    assert first == 100 + 20  # listed ones by the walk, then users.info up to the limit
    assert len(workspace.of("users.list")) == 6  # the whole workspace: the guests are not in it
    assert walk.not_listed == frozenset(guests)
    slack_names.refresh(engine, client(workspace), wanted, now=NOW + timedelta(minutes=1), walk=walk)
    assert len(workspace.of("users.list")) == 6  # no second walk for them
    assert all(name.startswith("Guest") for name in names(engine, guests).values())


def test_a_rate_limit_stops_the_walk_and_the_next_run_resumes(engine: Engine, workspace: FakeSlack) -> None:
    walk = Walk(NO_WAIT)
    web = client(workspace)
    # A run of two pages: 400 people listed, the cursor kept.
    assert walk.list_users(engine, web, TRADERS, now=NOW, pages=2) == 400
    saved = walk.cursor
    assert saved
    limited = Fault(status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": "30"})
    workspace.script("users.list", limited)
    assert walk.list_users(engine, web, TRADERS, now=NOW) == 0
    assert walk.cursor == saved
    resumed = walk.list_users(engine, web, TRADERS, now=NOW + timedelta(minutes=1))
    assert resumed == 600
    calls = workspace.of("users.list")
    assert calls[2].params["cursor"] == saved  # resumed, not restarted
    assert len(calls) == 5  # it stops once all 1,000 are named (the rest of the workspace unread)
    assert all(name != user for user, name in names(engine, TRADERS).items())


def test_pages_are_paced_for_tier_2() -> None:
    slept: list[float] = []
    now = [100.0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pace = Spacing(3.0, clock=lambda: now[0], sleep=sleep)
    pace.wait()  # the first call goes at once
    now[0] += 1.0
    pace.wait()  # one second later: waits two more
    now[0] += 5.0
    pace.wait()  # long after: at once
    assert slept == [2.0]
    assert slack_names.PAGE_SPACING * 20 >= 60  # at most 20 users.list calls a minute
