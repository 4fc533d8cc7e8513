"""Who is told what about an escalation: every outbox row the escalations queue.

Managers' DMs (one path: ``tell_managers``), the grouped message a pass sends instead when it
opens several, in-place updates of every message an escalation produced, and pager events.
Each is an outbox row with a unique dedup key (``escalation:{id}:dm:{manager}``,
``…:update:{transition}``, ``…:level2:channel``, ``…:page:{action}``,
``digest:{run}:{first id}:{manager}``, the escalation channel's ``l2digest:{desk}:{first id}``)
and a render spec drawn at delivery, never blocks.

A pass coalesces: the grouped messages it touches (each manager's, the channel's) are updated
once at its end, whatever it changed (``update_digests``), not once per escalation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlmodel import Session, col, func, select

from bot.audit import record
from bot.checklist.models import ChecklistRun
from bot.delivery import outbox
from bot.delivery.models import OutboxMessage
from bot.delivery.outbox import Kind
from bot.delivery.specs import (
    EscalationChannelDigest,
    EscalationDigest,
    EscalationDM,
    EscalationLevel2,
    RenderSpec,
    stored,
)
from bot.delivery.status import with_prefix
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.escalation.labels import kind_title
from bot.escalation.models import Escalation
from bot.escalation.rules import subject
from bot.people import service as people
from bot.text import clean

DIGEST_FROM = 3  # a pass opening this many (several) sends one grouped message per manager instead of DMs
# Answers open escalations one by one (a missing recovery path at once; a problem after the
# deadline). When this many of a run's were opened within ROLLING_WINDOW, the next ones join
# the run's rolling grouped message instead of a DM each: an outage morning is one message that
# grows, not hundreds of DMs per manager.
ROLLING_WINDOW = timedelta(minutes=10)


def _notified(audit_subject: str) -> dict[str, str]:
    """The audit events the worker records for a message telling managers of an escalation."""
    return {"subject": audit_subject, "ok": "notified", "fail": "notify_failed"}


def tell_managers(session: Session, desk: Desk, escalations: Sequence[Escalation], now: datetime) -> None:
    """Queue a DM about each escalation to every manager of ``desk`` (once each: the dedup key
    names the escalation and the manager)."""
    assert desk.id is not None
    managers = desks.members(session=session, desk_id=desk.id, role=Role.MANAGER)
    queue = outbox.SlackQueue(session, desk.id, now)
    for esc in escalations:
        assert esc.id is not None
        for manager in managers:
            queue.dm(
                manager, EscalationDM(esc.id), dedup_key=f"{subject(esc)}:dm:{manager}", audit=_notified(subject(esc))
            )


def notify_opened(session: Session, desk: Desk, run: ChecklistRun, opened: list[Escalation], now: datetime) -> None:
    """Tell every manager about the escalations one pass opened: one DM each when there are
    few, else one grouped message per manager listing them all (no DM storm)."""
    assert desk.id is not None and run.id is not None
    if not opened:
        return
    _tell_grouped(session, desk, opened, now, _digest_prefix(run.id), f"digest:{run.id}:")


def notify_standing(session: Session, desk: Desk, opened: list[Escalation], now: datetime) -> None:
    """Tell every manager about the standing escalations one pass opened (the readiness
    profile's gaps: a missing recovery path...): a DM each when few, else one grouped message
    per manager (``digest:s{desk}:{first id}:{manager}``)."""
    assert desk.id is not None
    _tell_grouped(session, desk, opened, now, _standing_prefix(desk.id), f"digest:s{desk.id}:")


def notify_answered(session: Session, desk: Desk, run: ChecklistRun, opened: list[Escalation], now: datetime) -> None:
    """Tell every manager about the escalations a stored answer opened: a DM each while answers
    open few; once ``DIGEST_FROM`` of the run's were opened within ``ROLLING_WINDOW``, the new
    ones join the run's rolling grouped message (one per manager, ``digest:{run}:r{first}:``),
    posted once and then updated in place as it grows. Its rows are locked while they grow
    (``FOR UPDATE``), so concurrent answers each add their escalation and none is lost."""
    assert desk.id is not None and run.id is not None
    if not opened:
        return
    new = [e.id for e in opened if e.id is not None]
    prefix = f"{_digest_prefix(run.id)}r"
    rolling = session.exec(
        select(OutboxMessage)
        .where(col(OutboxMessage.dedup_key).startswith(prefix), OutboxMessage.kind == Kind.SLACK_DM)
        .where(OutboxMessage.created_at > now - ROLLING_WINDOW)
        .order_by(col(OutboxMessage.id))
        .with_for_update()
    ).all()
    if rolling:
        for message in rolling:
            ids = [*_listed(message.payload), *new]
            body = json.loads(message.payload)
            body["render"] = EscalationDigest(tuple(ids), message.dedup_key).to_payload()
            message.payload = json.dumps(body)
            session.add(message)
            update_digest(session, message.dedup_key, ids, desk, f"grew:{new[0]}", now)
        return
    recent = session.exec(
        select(func.count())
        .select_from(Escalation)
        .where(Escalation.run_id == run.id, col(Escalation.id).not_in(new), Escalation.opened_at > now - ROLLING_WINDOW)
    ).one()
    if recent + len(new) < DIGEST_FROM:
        tell_managers(session, desk, opened, now)
        return
    _tell_grouped(session, desk, opened, now, prefix, f"digest:{run.id}:r", at_least=1)


def _tell_grouped(
    session: Session,
    desk: Desk,
    opened: list[Escalation],
    now: datetime,
    key_prefix: str,
    subject: str,
    *,
    at_least: int = DIGEST_FROM,
) -> None:
    """A DM per escalation per manager when fewer than ``at_least``, else one grouped message
    per manager (``{key_prefix}{first id}:{manager}``, audited as ``{subject}{first id}``)."""
    assert desk.id is not None
    if len(opened) < at_least:
        tell_managers(session, desk, opened, now)
        return
    ids = tuple(e.id for e in opened if e.id is not None)
    queue = outbox.SlackQueue(session, desk.id, now)
    for manager in desks.members(session=session, desk_id=desk.id, role=Role.MANAGER):
        key = f"{key_prefix}{ids[0]}:{manager}"
        queue.dm(manager, EscalationDigest(ids, key), dedup_key=key, audit=_notified(f"{subject}{ids[0]}"))


def update_everywhere(
    session: Session, esc: Escalation, desk: Desk, transition: str, now: datetime, *, digests: bool = True
) -> None:
    """Queue an in-place update of every message this escalation has produced so far; each is
    rendered from the escalation's state when it is delivered."""
    assert esc.id is not None
    prefix = f"{subject(esc)}:"
    originals = session.exec(
        select(OutboxMessage.dedup_key).where(
            col(OutboxMessage.dedup_key).startswith(prefix),
            col(OutboxMessage.kind).in_([Kind.SLACK_DM, Kind.SLACK_POST]),
        )
    ).all()
    queue = outbox.SlackQueue(session, desk.id, now)
    for ref in originals:
        if transition == "level2" and ref.endswith(":level2:channel"):
            continue  # queued by this very transition: it shows level 2 already
        spec: RenderSpec = EscalationLevel2(esc.id) if ref.endswith(":level2:channel") else EscalationDM(esc.id)
        queue.update(ref, spec, dedup_key=f"{ref}:update:{transition}")
    if digests:
        update_digests(session, desk, [esc], f"{esc.id}:{transition}", now)


def update_digests(session: Session, desk: Desk, escalations: Sequence[Escalation], why: str, now: datetime) -> int:
    """One in-place update of every grouped message (a manager's, the escalation channel's)
    listing any of ``escalations``, however many of them it lists: how many were queued."""
    refs = digests_listing(session, escalations)
    for ref, ids in refs:
        update_digest(session, ref, ids, desk, why, now)
    return len(refs)


# --- grouped messages: one per manager when a pass opens several escalations -------------


def _digest_prefix(run_id: int) -> str:
    return f"digest:{run_id}:"


def _listed(payload: str) -> list[int]:
    """The escalations a stored grouped message lists."""
    spec = stored(json.loads(payload))
    return list(spec.ids) if isinstance(spec, EscalationDigest) else []


def grouped(session: Session, prefix: str = "digest:") -> list[tuple[OutboxMessage, list[int]]]:
    """Every grouped message (under ``prefix``: the DMs and channel posts, not their updates)
    with the escalations it lists."""
    return [(m, _listed(m.payload)) for m in with_prefix(session, prefix) if m.kind in (Kind.SLACK_DM, Kind.SLACK_POST)]


def _standing_prefix(desk_id: int) -> str:
    return f"digest:s{desk_id}:"


def _channel_prefix(desk_id: int) -> str:
    return f"l2digest:{desk_id}:"


def digests_listing(session: Session, escalations: Sequence[Escalation]) -> list[tuple[str, list[int]]]:
    """(dedup key, escalation ids) of every grouped message listing any of ``escalations``:
    the managers' (of a run, or of the readiness profile's escalations, of none) and the
    escalation channel's."""
    wanted = {e.id for e in escalations}
    prefixes = {_digest_prefix(e.run_id) if e.run_id is not None else _standing_prefix(e.desk_id) for e in escalations}
    prefixes |= {_channel_prefix(e.desk_id) for e in escalations}
    return [
        (m.dedup_key, ids)
        for prefix in sorted(prefixes)
        for m, ids in grouped(session, prefix)
        if wanted.intersection(ids)
    ]


def digests_of(session: Session, esc: Escalation) -> list[tuple[str, list[int]]]:
    """(dedup key, escalation ids) of every grouped message that lists ``esc``."""
    return digests_listing(session, [esc])


def digest_ids(*, session: Session, key: str) -> list[int]:
    """The escalations a grouped message lists (empty when there is no such message)."""
    if not key.startswith("digest:"):
        return []
    payload = session.exec(select(OutboxMessage.payload).where(OutboxMessage.dedup_key == key)).first()
    return [] if payload is None else _listed(payload)


def update_digest(session: Session, ref: str, ids: list[int], desk: Desk, why: str, now: datetime) -> None:
    spec = (
        EscalationChannelDigest(tuple(ids), ref) if ref.startswith("l2digest:") else EscalationDigest(tuple(ids), ref)
    )
    outbox.SlackQueue(session, desk.id, now).update(ref, spec, dedup_key=f"{ref}:update:{why}"[:200])


def post_level2(session: Session, desk: Desk, raised: Sequence[Escalation], now: datetime) -> None:
    """Tell the escalation channel what a pass raised to level 2: a post each when few, else
    one post listing them all (Slack takes about one message a second per channel)."""
    channel = desk.escalation_channel_id
    if not channel or not raised:
        return
    queue = outbox.SlackQueue(session, desk.id, now)
    if len(raised) < DIGEST_FROM:
        for esc in raised:
            assert esc.id is not None
            queue.post(channel, EscalationLevel2(esc.id), dedup_key=f"{subject(esc)}:level2:channel")
        return
    assert desk.id is not None
    ids = tuple(e.id for e in raised if e.id is not None)
    key = f"{_channel_prefix(desk.id)}{ids[0]}"
    queue.post(channel, EscalationChannelDigest(ids, key), dedup_key=key)


# --- the pager ---------------------------------------------------------------------------


def page(session: Session, esc: Escalation, desk: Desk, action: str, now: datetime) -> None:
    if desk.pager_kind == "none":
        return
    name = people.names_for(session=session, user_ids=[esc.trader_id])(esc.trader_id) if not esc.desk_wide else ""
    trader = esc.trader_id if name == esc.trader_id else f"{name} ({esc.trader_id})"
    about = f"trader {trader} on desk {desk.name}" if not esc.desk_wide else f"desk {desk.name}"
    outbox.enqueue(
        session=session,
        dedup_key=f"{subject(esc)}:page:{action}",
        kind=Kind.PAGER,
        payload={
            "action": action,
            "escalation_id": esc.id,
            "escalation_kind": esc.kind,
            "summary": f"{kind_title(esc.kind)}: {about}",
            "details": {
                "trader": esc.trader_id,
                "trader_name": name,
                "detail": clean(esc.detail),
                "opened_at": esc.opened_at.isoformat(),
            },
        },
        desk_id=desk.id,
        now=now,
        audit={"subject": subject(esc), "ok": f"page_{action}_sent", "fail": f"page_{action}_failed"},
    )


def page_resolved(session: Session, esc: Escalation, desk: Desk, now: datetime) -> None:
    """Tell the pager an escalation is resolved. A trigger still waiting in the outbox (the
    pager was down, or the worker hasn't reached it) is withdrawn instead: the pager never
    hears of a trader who was fine by the time the page would have gone out."""
    if esc.level < 2:
        return
    prefix = f"{subject(esc)}:page:"
    if outbox.withdraw(session=session, dedup_key=prefix + "trigger"):
        outbox.withdraw(session=session, dedup_key=prefix + "acknowledge")
        why = "resolved before the page was sent"
        record(session, subject=subject(esc), action="page_trigger_withdrawn", at=now, desk_id=esc.desk_id, reason=why)
        return
    page(session, esc, desk, "resolve", now)
