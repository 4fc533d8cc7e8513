"""``status.overview`` (``/ibstatus`` alone and App Home: three queries) against the per-desk
reference it replaced (``_trader_status`` for each desk, ``away.upcoming``, ``desks_of_user``),
for a user on desks in different time zones, at moments when their local dates differ."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import Session, select

from bot.checklist import posting, status
from bot.checklist import service as checklist
from bot.checklist.models import Check, ChecklistRun, PermissionGap, Platform
from bot.db import session_scope
from bot.desks import away
from bot.desks import service as desks
from bot.desks.models import Away, Role
from bot.escalation import queries as escalation
from tests.support.escalation_fixtures import post_checklist, run_pass
from tests.support.factories import make_desk
from tests.support.harness import Bot, utc

USER = "UTRD1"


def reference(session: Session, user: str, now: datetime) -> tuple[Any, ...]:
    trading = [
        status._trader_status(session, d, user, now)
        for d in desks.desks_of_user(session=session, user_id=user, role=Role.TRADER)
    ]
    managing = desks.desks_of_user(session=session, user_id=user, role=Role.MANAGER)
    upcoming = away.upcoming(session=session, user_id=user, now=now) if trading else []
    return _shape(trading), [d.id for d in managing], [(a.id, a.start, a.end) for a in upcoming]


def _shape(items: list[status.TraderStatus]) -> list[tuple[Any, ...]]:
    return [
        (
            i.desk.id,
            i.entry.state if i.entry else None,
            (i.entry.answer.id if i.entry and i.entry.answer else None),
            i.run.id if i.run else None,
            i.next_post,
            i.names(USER),
        )
        for i in items
    ]


def shaped(session: Session, user: str, now: datetime) -> tuple[Any, ...]:
    found = status.overview(session=session, user_id=user, now=now)
    return _shape(found.trading), [d.id for d in found.managing], [(a.id, a.start, a.end) for a in found.upcoming]


@pytest.mark.parametrize(
    "now",
    [
        utc(2026, 11, 25, 13, 5),  # Wed: 08:05 New York, 22:05 Tokyo
        utc(2026, 11, 25, 16, 0),  # Wed 11:00 New York, Thu 01:00 Tokyo
        utc(2026, 11, 24, 23, 30),  # Tue 18:30 New York, Wed 08:30 Tokyo
        utc(2026, 11, 27, 14, 0),  # Fri (early close) in New York
    ],
)
def test_overview_matches_the_per_desk_reference(bot: Bot, now: datetime) -> None:
    engine = bot.runtime.engine
    make_desk(engine, "equities")
    make_desk(engine, "asia", channel="C0456", timezone="Asia/Tokyo", post_at="08:00", deadline="09:00")
    make_desk(engine, "rates", channel="C0789", managers=[USER], traders=["UTRD3"])
    for name, day, at in (
        ("equities", date(2026, 11, 25), utc(2026, 11, 25, 13, 0)),
        ("asia", date(2026, 11, 25), utc(2026, 11, 24, 23, 0)),
        ("equities", date(2026, 11, 24), utc(2026, 11, 24, 13, 0)),
        ("equities", date(2026, 11, 27), utc(2026, 11, 27, 13, 0)),
    ):
        posting.post_checklist(engine, bot.client, desk_name=name, day=day, now=at)
    with session_scope(engine) as session:
        for run in session.exec(select(ChecklistRun)).all():
            answered_at = run.posted_at or now
            checklist.confirm(session=session, run=run, user_id=USER, now=answered_at + timedelta(minutes=1))
            if run.trading_date == date(2026, 11, 25):  # a second version on Wednesday's runs
                report = checklist.ProblemReport(
                    failed=frozenset({Check.PERMISSIONS}),
                    platform=Platform.TWS,
                    permission_gaps=frozenset({PermissionGap.TRADING}),
                    missing_permissions="options",
                )
                checklist.report_problem(
                    session=session, run=run, user_id=USER, report=report, now=answered_at + timedelta(minutes=2)
                )
        for start, end in ((date(2026, 11, 20), date(2026, 11, 24)), (date(2026, 11, 26), date(2026, 11, 30))):
            session.add(Away(user_id=USER, start=start, end=end, set_by=USER))
    with Session(engine) as session:
        expected = reference(session, USER, now)
        assert shaped(session, USER, now) == expected
        assert len(expected[0]) == 2 and expected[1]  # the user trades on two desks and manages one
        assert any(answer_id for _, _, answer_id, *_ in expected[0])  # and has answered today's run somewhere
        for other in ("UTRD2", "UTRD3", "UMGR1", "UNOBODY"):
            assert shaped(session, other, now) == reference(session, other, now)


def test_the_escalated_flag_is_what_open_for_trader_finds(bot: Bot) -> None:
    """``/ibstatus`` and App Home ask "has the user an open escalation" in the overview's own
    query and read the escalations only then: the flag must agree with the rows."""
    engine = bot.runtime.engine
    make_desk(engine)
    run = post_checklist(bot)
    assert run.run_id is not None
    later = bot.clock() + timedelta(hours=1)
    run_pass(engine, later)  # every trader is silent past the deadline: escalated
    with session_scope(engine) as session:
        found = session.get(ChecklistRun, run.run_id)
        assert found is not None
        checklist.confirm(session=session, run=found, user_id="UTRD1", now=later)  # resolves theirs
    with Session(engine) as session:
        flags = {
            user: status.overview(session=session, user_id=user, now=later, flags=escalation.OVERVIEW_FLAGS).flags
            for user in ("UTRD1", "UTRD2", "UMGR1", "UNOBODY")
        }
        rows = {user: escalation.open_for_trader(session=session, user_id=user) for user in flags}
    assert flags == {user: {escalation.ESCALATED: bool(rows[user])} for user in flags}
    assert flags["UTRD2"][escalation.ESCALATED] and not flags["UTRD1"][escalation.ESCALATED]


def test_a_traders_own_ibstatus_reads_escalations_only_when_escalated(bot: Bot) -> None:
    engine = bot.runtime.engine
    make_desk(engine)
    run = post_checklist(bot)
    assert run.run_id is not None
    reads: list[str] = []  # open_for_trader's query (the app answers in another thread)

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if re.search(r"escalation\.trader_id = \S+ ORDER BY escalation\.opened_at, escalation\.id$", statement):
            reads.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        response = bot.command("UTRD1")
        assert response.status_code == 200 and "pending" in response.json()["text"]
        assert reads == []
        run_pass(engine, bot.clock() + timedelta(hours=1))
        bot.clock.set(bot.clock() + timedelta(hours=1))
        response = bot.command("UTRD1")
        assert "Open escalations about you" in response.json()["text"]
        assert len(reads) == 1  # then they are read
    finally:
        event.remove(engine, "before_cursor_execute", record)
