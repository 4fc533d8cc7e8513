"""Opening escalations: what a trader's answer makes due, standing ones, and the answer hook.

A missing recovery path opens as soon as the report is stored; every other trader kind from
the (effective) deadline. Each kind opens at most once per (run, trader): the unique key
decides, so a trader who fixes a problem and reports it again the same day is not escalated
twice. This module subscribes to the checklist's ``events.answer_stored`` (and declares its
``ConfirmRule``) when imported; ``bot.runtime`` imports it with the app it builds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.audit import record
from bot.checklist import events as checklist_events
from bot.checklist.models import Answer, ChecklistRun
from bot.db import insert_or_skip
from bot.desks import away
from bot.desks.models import Desk
from bot.escalation import notices
from bot.escalation.models import Escalation, EscalationKind, EscalationState
from bot.escalation.notices import tell_managers
from bot.escalation.resolving import resolve_gone
from bot.escalation.rules import AT_ONCE, OPEN_STATES, detail_for, kinds_called_for, past_deadline, subject


def _opened(session: Session, esc: Escalation, now: datetime, **detail: Any) -> None:
    record(session, subject=subject(esc), action="opened", at=now, desk_id=esc.desk_id, kind=str(esc.kind), **detail)


def _open(
    session: Session, desk: Desk, run: ChecklistRun, trader_id: str, kind: EscalationKind, detail: str, now: datetime
) -> Escalation | None:
    assert desk.id is not None and run.id is not None
    if away.away_on(session=session, user_ids=[trader_id], day=run.trading_date, desk_id=desk.id):
        return None
    existing = session.exec(
        select(Escalation.id).where(
            Escalation.run_id == run.id, Escalation.trader_id == trader_id, Escalation.kind == kind
        )
    ).first()
    if existing is not None:
        return None
    esc = Escalation(desk_id=desk.id, run_id=run.id, trader_id=trader_id, kind=kind, detail=detail, opened_at=now)
    try:
        with session.begin_nested():
            session.add(esc)
    except IntegrityError:  # a concurrent pass opened it first
        return None
    assert esc.id is not None
    _opened(session, esc, now, trader=trader_id or None, run=run.id)
    return esc


def open_due(
    session: Session,
    desk: Desk,
    run: ChecklistRun,
    trader: str,
    answer: Answer | None,
    now: datetime,
    *,
    notify: bool = True,
) -> list[Escalation]:
    """Open what the trader's current answer calls for and is due: a missing recovery path at
    once, the rest from the (effective) deadline. The escalations opened now; with
    ``notify=False`` the caller tells the managers (``notices.notify_opened``)."""
    wanted = kinds_called_for(answer)
    due = wanted if past_deadline(run, now) else wanted & AT_ONCE
    opened = [
        esc
        for kind in sorted(due)
        if (esc := _open(session, desk, run, trader, kind, detail_for(kind, answer), now)) is not None
    ]
    if notify:
        tell_managers(session, desk, opened, now)
    return opened


def open_escalation(
    *,
    session: Session,
    desk: Desk,
    run: ChecklistRun | None,
    trader_id: str,
    kind: EscalationKind,
    detail: str,
    now: datetime,
    notify: bool = True,
) -> Escalation | None:
    """Open one escalation and (``notify``) queue a DM to every manager; with ``notify=False``
    the caller tells them (``notices.notify_standing``: one grouped DM for several). None when
    it is not opened:

    - of a checklist ``run``: already opened (today's escalation of that kind for that trader
      is one, whatever its state), or the trader is away that day (never escalated);
    - with no run (``run_id`` NULL: the (run, trader, kind) key can't make it once), the
      readiness profile's gaps, found before the morning, are opened as asked (``bot.profile``
      claims its gap row first); conditions a pass re-checks (a failing probe,
      ``STANDING_ONCE``), which may run in several processes at once, are kept to one by the
      partial unique index ``uq_escalation_standing_open`` (``INSERT ... ON CONFLICT DO
      NOTHING``: a second insert waits for the first transaction and then inserts nothing on
      PostgreSQL, or finds the row its ``BEGIN IMMEDIATE`` waited for on SQLite), so only the
      opener tells the managers."""
    if run is not None:
        esc = _open(session, desk, run, trader_id, kind, detail, now)
    else:
        esc = _open_standing(session, desk, trader_id, kind, detail, now)
    if esc is not None and notify:
        tell_managers(session, desk, [esc], now)
    return esc


def _open_standing(
    session: Session, desk: Desk, trader_id: str, kind: EscalationKind, detail: str, now: datetime
) -> Escalation | None:
    assert desk.id is not None
    new_id = insert_or_skip(
        session,
        Escalation,
        {
            "desk_id": desk.id,
            "run_id": None,
            "trader_id": trader_id,
            "kind": str(kind),
            "level": 1,
            "state": str(EscalationState.OPEN),
            "detail": detail,
            "opened_at": now,
        },
    )
    if new_id is None:
        return None
    esc = session.get(Escalation, new_id)
    assert esc is not None
    _opened(session, esc, now, trader=trader_id)
    return esc


@checklist_events.subscribe
def _on_answer_stored(session: Session, run: ChecklistRun, answer: Answer, now: datetime) -> None:
    """In the transaction that stores the answer: escalations that no longer hold resolve
    (a silent trader answered, a restricted one confirmed, a backup second factor was
    reported), a missing recovery path opens at once, and after the deadline a problem
    opens its escalation now (a silent trader who answers with a problem is *restricted*)."""
    desk = session.get(Desk, run.desk_id)
    assert desk is not None
    resolve_gone(session, desk, run, answer.user_id, answer, now)
    opened = open_due(session, desk, run, answer.user_id, answer, now, notify=False)
    notices.notify_answered(session, desk, run, opened, now)


# A first confirmation calls for no escalation (``kinds_called_for``): it only resolves what is
# open for the trader on the run, which the ORM hook above does (messages, pager, audit).
_ESC = Escalation.__table__  # type: ignore[attr-defined]
checklist_events.declare_confirm(
    checklist_events.ConfirmRule(
        name="escalation",
        hook=_on_answer_stored,
        full_path=exists().where(
            _ESC.c.run_id == checklist_events.RUN_ID,
            _ESC.c.trader_id == checklist_events.USER_ID,
            _ESC.c.state.in_([s.value for s in OPEN_STATES]),
        ),
    )
)
