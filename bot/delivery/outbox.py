"""Persisted outbound notifications, delivered by a worker with retries.

A state change and the notifications it causes are committed together: ``enqueue``
writes an ``OutboxMessage`` in the caller's transaction. ``dedup_key`` is unique, so
enqueuing the same notification twice (a repeated pass, a concurrent replica, a
double click) is a no-op decided by the database.

A notification names *what* to say, not how it looks: a Slack message is queued with a
render spec (``bot.delivery.specs``: a view and plain data — which escalation, which trader),
addressed as its kind wants (``SlackQueue``: a DM to a user, a post to a channel, an update of
a queued message), and the Slack side renders it when the worker delivers it
(``bot.slack.notifications``), from the state at that moment. Domain code therefore never
builds Slack blocks. Delivery itself is in ``bot.delivery.worker``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.delivery.models import OutboxMessage
from bot.delivery.specs import RenderSpec


class Kind(StrEnum):
    SLACK_DM = "slack.dm"  # payload: user (and a render spec)
    SLACK_POST = "slack.post"  # payload: channel (and a render spec)
    SLACK_UPDATE = "slack.update"  # payload: ref (dedup_key of the original; and a render spec)
    PAGER = "pager.event"  # payload: action, escalation_id, summary, details


def service_of(kind: str) -> str:
    return kind.split(".", 1)[0]


def enqueue(
    *,
    session: Session,
    dedup_key: str,
    kind: Kind | str,
    payload: dict[str, Any],
    desk_id: int | None,
    now: datetime,
    render: RenderSpec | None = None,
    audit: dict[str, str] | None = None,
) -> OutboxMessage | None:
    """Queue a notification in the caller's transaction; None if ``dedup_key`` exists.

    ``payload`` addresses a Slack message (``user``, ``channel`` or ``ref``) and ``render``
    says what it shows, drawn at delivery; a pager event's payload is the event itself.
    (A ``"render"`` object written into ``payload`` by hand is still accepted — rows queued
    that way render alike — but only ``render=`` is type-checked.)

    ``audit`` (optional): {"subject": ..., "ok": action, "fail": action} — the worker
    records an audit event when the message is delivered or fails.
    """
    if session.exec(select(OutboxMessage.id).where(OutboxMessage.dedup_key == dedup_key)).first() is not None:
        return None
    body = dict(payload)
    if render is not None:
        body["render"] = render.to_payload()
    if audit:
        body["_audit"] = audit
    message = OutboxMessage(
        dedup_key=dedup_key,
        kind=str(kind),
        desk_id=desk_id,
        payload=json.dumps(body, separators=(",", ":")),
        created_at=now,
        next_attempt_at=now,
    )
    try:
        with session.begin_nested():  # a concurrent writer may insert the same key first
            session.add(message)
    except IntegrityError:
        return None
    return message


@dataclass(frozen=True)
class SlackQueue:
    """Slack messages queued (``enqueue``) in ``session``'s transaction at ``now``, for
    ``desk_id`` (the delivery lane they share): each shows a render spec, drawn at delivery;
    None when ``dedup_key`` is queued already."""

    session: Session
    desk_id: int | None
    now: datetime

    def dm(
        self, user: str, render: RenderSpec, *, dedup_key: str, audit: dict[str, str] | None = None
    ) -> OutboxMessage | None:
        """A DM to ``user`` (``audit``: as ``enqueue``'s)."""
        return self._queue(Kind.SLACK_DM, {"user": user}, render, dedup_key, audit)

    def post(self, channel: str, render: RenderSpec, *, dedup_key: str) -> OutboxMessage | None:
        return self._queue(Kind.SLACK_POST, {"channel": channel}, render, dedup_key, None)

    def update(self, ref: str, render: RenderSpec, *, dedup_key: str) -> OutboxMessage | None:
        """Redraw the message queued under the dedup key ``ref``."""
        return self._queue(Kind.SLACK_UPDATE, {"ref": ref}, render, dedup_key, None)

    def _queue(
        self, kind: Kind, address: dict[str, Any], render: RenderSpec, dedup_key: str, audit: dict[str, str] | None
    ) -> OutboxMessage | None:
        return enqueue(
            session=self.session,
            dedup_key=dedup_key,
            kind=kind,
            payload=address,
            desk_id=self.desk_id,
            now=self.now,
            render=render,
            audit=audit,
        )


def withdraw(*, session: Session, dedup_key: str) -> bool:
    """Take back a notification that has not gone out: deleted, in the caller's transaction,
    when no worker has tried it yet (an attempt that timed out may have reached the other
    side). False when it was never queued or it is too late: then it goes its way."""
    gone = session.execute(
        delete(OutboxMessage).where(
            col(OutboxMessage.dedup_key) == dedup_key,
            col(OutboxMessage.delivered_at).is_(None),
            col(OutboxMessage.failed_at).is_(None),
            col(OutboxMessage.claimed_at).is_(None),
            col(OutboxMessage.attempts) == 0,
        )
    )
    return bool(gone.rowcount)  # type: ignore[attr-defined]


def superseded(*, session: Session, message: OutboxMessage, ref: str) -> list[int]:
    """The other updates of the message ``ref`` waiting now (unclaimed), which a render of
    ``message`` drawn after this read shows too: every update is rendered from the state at
    delivery. Update keys are ``{ref}:update:{why}`` (``bot.escalation.notices``)."""
    rows = session.exec(
        select(OutboxMessage.id).where(
            col(OutboxMessage.dedup_key).startswith(f"{ref}:update:"),
            OutboxMessage.kind == Kind.SLACK_UPDATE,
            OutboxMessage.id != message.id,
            col(OutboxMessage.delivered_at).is_(None),
            col(OutboxMessage.failed_at).is_(None),
            col(OutboxMessage.claimed_at).is_(None),
        )
    ).all()
    return [i for i in rows if i is not None]


def coalesce(*, session: Session, ids: list[int], into: int, now: datetime) -> int:
    """Mark the updates ``ids`` delivered with ``into`` (which showed what they would have);
    one claimed meanwhile by another worker goes its own way. How many were marked."""
    if not ids:
        return 0
    done = session.execute(
        update(OutboxMessage)
        .where(
            col(OutboxMessage.id).in_(ids),
            col(OutboxMessage.delivered_at).is_(None),
            col(OutboxMessage.claimed_at).is_(None),
        )
        .values(delivered_at=now, result=json.dumps({"coalesced_into": into}))
    )
    return int(done.rowcount)  # type: ignore[attr-defined]
