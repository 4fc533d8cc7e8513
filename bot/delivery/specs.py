"""Render specs: what a queued Slack message shows, as typed plain data (a view and ids).

A service that needs someone told queues one of these (``outbox.SlackQueue``: a DM, post or
update showing it); the Slack side draws it when the worker delivers the message
(``bot.slack.notifications``), from the state at that moment. Domain code can import this
module: it knows no Slack and no capability, only ids.

Stored in the outbox row's payload as ``"render": {"view": VIEW, ...fields}`` — the JSON
shape is a contract with rows already queued (``to_payload`` writes it, ``from_payload``
reads it back, and a view nobody knows is a ``SpecError``, a permanent delivery failure).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

Payload = dict[str, Any]


class SpecError(ValueError):
    """A stored render spec names no known view, or lacks what its view needs."""


@dataclass(frozen=True)
class _OneEscalation:
    escalation_id: int

    VIEW: ClassVar[str]

    def to_payload(self) -> Payload:
        return {"view": self.VIEW, "escalation_id": self.escalation_id}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Self:
        return cls(escalation_id=int(data["escalation_id"]))


@dataclass(frozen=True)
class EscalationDM(_OneEscalation):
    """A manager's DM about one escalation (updated in place at each transition)."""

    VIEW: ClassVar[str] = "escalation.dm"


@dataclass(frozen=True)
class EscalationLevel2(_OneEscalation):
    """The escalation channel's post when an escalation is raised to level 2."""

    VIEW: ClassVar[str] = "escalation.level2"


@dataclass(frozen=True)
class EscalationDigest:
    """One manager's grouped message listing the escalations a pass opened; ``key`` is its own
    dedup key (its *Acknowledge all* button names it)."""

    ids: tuple[int, ...]
    key: str

    VIEW: ClassVar[str] = "escalation.digest"

    def to_payload(self) -> Payload:
        return {"view": self.VIEW, "ids": list(self.ids), "key": self.key}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Self:
        return cls(ids=tuple(int(i) for i in data.get("ids") or []), key=str(data.get("key") or ""))


@dataclass(frozen=True)
class EscalationChannelDigest(EscalationDigest):
    """The escalation channel's one post for the escalations a pass raised to level 2 (several),
    updated in place as they are acknowledged or resolved; ``key`` is its own dedup key."""

    VIEW: ClassVar[str] = "escalation.level2_digest"


@dataclass(frozen=True)
class ChecklistReminder:
    """A trader's reminder DM before the deadline."""

    run_id: int
    trader: str

    VIEW: ClassVar[str] = "checklist.reminder"

    def to_payload(self) -> Payload:
        return {"view": self.VIEW, "run_id": self.run_id, "trader": self.trader}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Self:
        return cls(run_id=int(data["run_id"]), trader=str(data["trader"]))


@dataclass(frozen=True)
class ProfileNotice:
    """A trader's pre-morning notice of a readiness gap."""

    gap_id: int

    VIEW: ClassVar[str] = "profile.notice"

    def to_payload(self) -> Payload:
        return {"view": self.VIEW, "gap_id": self.gap_id}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Self:
        return cls(gap_id=int(data["gap_id"]))


RenderSpec = (
    EscalationDM | EscalationLevel2 | EscalationDigest | EscalationChannelDigest | ChecklistReminder | ProfileNotice
)

_BY_VIEW: dict[str, type[RenderSpec]] = {
    cls.VIEW: cls
    for cls in (
        EscalationDM,
        EscalationLevel2,
        EscalationDigest,
        EscalationChannelDigest,
        ChecklistReminder,
        ProfileNotice,
    )
}


def from_payload(data: Mapping[str, Any]) -> RenderSpec:
    """The spec a stored ``render`` object describes; SpecError when it names no known view or
    lacks a field its view needs."""
    cls = _BY_VIEW.get(str(data.get("view")))
    if cls is None:
        raise SpecError(f"no view for notification {data.get('view')!r}")
    try:
        return cls.from_payload(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"notification {cls.VIEW!r} is malformed: {exc!r}") from exc


def stored(body: Mapping[str, Any]) -> RenderSpec | None:
    """The render spec of an outbox row's decoded payload; None when it has none or an
    unreadable one (a reader listing messages, not a sender: it skips what it can't read)."""
    data = body.get("render")
    if not isinstance(data, Mapping):
        return None
    try:
        return from_payload(data)
    except SpecError:
        return None
