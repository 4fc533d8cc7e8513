"""One way to answer a modal submission (``view_submission``), for any capability's modals.

A listener is a declaration: ``handler(declare)``, where ``declare(submission)`` reads the
submitted values (``Submission.one`` / ``many`` / ``text`` / ``chosen_user`` / ``date``) into
typed values and returns a ``Plan``. The pipeline then runs the same steps for every modal:

1. field errors found before any transaction (``Plan.errors``, and the values that couldn't
   be read, e.g. a malformed date: those win) -> ``response_action: errors``; nothing runs;
2. ``Plan.work(session)`` in one transaction (``deps.db()``, or a read-only ``deps.read()``);
   a ``ServiceError`` becomes a field error on its ``field`` (else ``Plan.field``) and
   nothing is stored;
3. ``Plan.refuse(result)``, after the commit: field errors for what was stored yet refused
   (a wrong drill code is recorded as an attempt and still refused);
4. the acknowledgement: the modal closes (or ``Plan.reply(result)``, e.g. ``response_action:
   update``) — the answer is in the ack, so steps 1-3 are short database work;
5. ``Plan.after(result)``, after the acknowledgement, in the request thread: in-memory marks
   (the roster refresher's ``notify``) and Slack calls handed to ``deps.later``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from slack_bolt import Ack
from slack_sdk import WebClient
from sqlmodel import Session

from bot.errors import ServiceError
from bot.slack.deps import Deps, user_id
from bot.slack.ids import FIELD

R = TypeVar("R")

NOT_A_DATE = "That isn't a date."
NO_ERRORS: Mapping[str, str] = MappingProxyType({})


class Submission:
    """One modal submission: who sent it, the clock and deps, and typed readers of its values
    (each input block holds one element whose action_id is ``FIELD``). Values that can't be
    read are collected in ``errors`` (block id -> sentence) and shown as field errors."""

    def __init__(self, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
        self.body, self.client, self.deps, self.now = body, client, deps, now
        self.user = user_id(body)
        self.errors: dict[str, str] = {}

    @cached_property
    def values(self) -> dict[str, Any]:
        values = ((self.body.get("view") or {}).get("state") or {}).get("values") or {}
        return values if isinstance(values, dict) else {}

    @cached_property
    def metadata(self) -> dict[str, Any]:
        """The view's ``private_metadata`` as a JSON object ({} when absent or malformed)."""
        try:
            data = json.loads((self.body.get("view") or {}).get("private_metadata") or "{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _field(self, block: str) -> dict[str, Any]:
        value = (self.values.get(block) or {}).get(FIELD) or {}
        return value if isinstance(value, dict) else {}

    def one(self, block: str) -> str | None:
        """A static select's or radio group's chosen value."""
        option = self._field(block).get("selected_option")
        value = option.get("value") if isinstance(option, dict) else None
        return value if isinstance(value, str) else None

    def many(self, block: str) -> list[str]:
        """A multi-select's or checkbox group's chosen values."""
        options = self._field(block).get("selected_options") or []
        return [str(o.get("value")) for o in options if isinstance(o, dict)]

    def text(self, block: str) -> str | None:
        """A text input's value; None when empty or blank."""
        value = self._field(block).get("value")
        return value if isinstance(value, str) and value.strip() else None

    def chosen_user(self, block: str) -> str | None:
        """A users select's chosen user id."""
        value = self._field(block).get("selected_user")
        return value if isinstance(value, str) and value else None

    def date(self, block: str) -> date | None:
        """A date picker's day; a malformed one is a field error (``errors``) and None."""
        value = self._field(block).get("selected_date")
        if not value:
            return None
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            self.errors[block] = NOT_A_DATE
            return None


@dataclass(frozen=True)
class Plan(Generic[R]):
    """What a modal's declaration asks of the pipeline (see the module's steps)."""

    work: Callable[[Session], R]  # in one transaction; a ServiceError is a field error
    field: str  # the block a ServiceError without a field of its own is shown on
    errors: Mapping[str, str] = dataclasses.field(default_factory=dict)  # before any transaction
    read_only: bool = False  # work reads only: deps.read() instead of deps.db()
    refuse: Callable[[R], Mapping[str, str] | None] | None = None  # after the commit
    reply: Callable[[R], dict[str, Any]] | None = None  # the ack's arguments (default: close)
    after: Callable[[R], None] | None = None  # after the ack


def refused(field: str, message: str) -> Plan[None]:
    """A plan that only shows ``message`` on ``field`` (a value the declaration can't go on without)."""
    return Plan(work=lambda session: None, field=field, errors={field: message})


def show_errors(ack: Ack, errors: Mapping[str, str]) -> None:
    """Keep the modal open with a sentence under each named block."""
    ack(response_action="errors", errors=dict(errors))


def submit(plan: Plan[R], submission: Submission, ack: Ack) -> None:
    """Run ``plan`` for ``submission`` (the pipeline's steps, in order)."""
    errors = {**plan.errors, **submission.errors}
    if errors:
        show_errors(ack, errors)
        return
    deps = submission.deps
    try:
        with deps.read() if plan.read_only else deps.db() as session:
            result = plan.work(session)
    except ServiceError as exc:
        show_errors(ack, {exc.field or plan.field: str(exc)})
        return
    refused = plan.refuse(result) if plan.refuse is not None else None
    if refused:
        show_errors(ack, refused)
        return
    ack(**(plan.reply(result) if plan.reply is not None else {}))
    if plan.after is not None:
        plan.after(result)


def handler(declare: Callable[[Submission], Plan[Any]]) -> Callable[..., None]:
    """A Bolt ``view_submission`` listener that answers through ``declare``'s plan."""

    def listener(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
        submission = Submission(body, client, deps, now)
        submit(declare(submission), submission, ack)

    listener.__name__ = getattr(declare, "__name__", "listener")
    return listener
