"""The checklist's declared interface for capabilities above it: "an answer was stored".

Escalations (and later the readiness profile) must react to a trader's answer in the same
transaction that stores it, yet the checklist must not import them (they import the
checklist). They subscribe here; ``bot.checklist.service`` calls ``answer_stored`` after
every new answer version. Subscribers run inside the caller's transaction and must not
call Slack (they enqueue notifications instead).

The plain confirmation click (``bot.checklist.click``) stores its answer in a few prebuilt
Core statements instead of the ORM, so a subscriber also declares, in SQL, what it does for a
*first confirmation* (``ConfirmRule``): when it needs its full hook (then the click takes the
ORM path and ``answer_stored`` runs as for any answer), and otherwise which statement, if any,
a confirmation runs for it in the click's transaction. ``tests/test_click_path.py`` checks that
both paths leave the database the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BindParameter, ColumnElement, Executable, bindparam
from sqlmodel import Session

from bot.checklist.models import Answer, ChecklistRun
from bot.dbtypes import UTCDateTime

AnswerHook = Callable[[Session, ChecklistRun, Answer, datetime], None]

_hooks: list[AnswerHook] = []


def subscribe(hook: AnswerHook) -> AnswerHook:
    """Register ``hook`` once (re-imports don't register it twice). Usable as a decorator."""
    if hook not in _hooks:
        _hooks.append(hook)
    return hook


def answer_stored(session: Session, run: ChecklistRun, answer: Answer, now: datetime) -> None:
    for hook in list(_hooks):
        hook(session, run, answer, now)


@dataclass(frozen=True)
class ConfirmRule:
    """A subscriber's part in a first confirmation, as SQL over the bind parameters
    ``RUN_ID``, ``USER_ID`` (and ``NOW`` in ``statement``), defined below.

    ``full_path``: true when this confirmation needs the subscriber's ORM hook (the click then
    takes the ORM path). ``applies``: true when ``statement`` must run (None: always).
    ``statement``: what the hook would do, run in the click's transaction after the insert.
    """

    name: str
    hook: AnswerHook  # the ORM hook this rule stands for (a hook without a rule: no fast path)
    full_path: ColumnElement[bool] | None = None
    applies: ColumnElement[bool] | None = None
    statement: Executable | None = None


# The bind parameters a ``ConfirmRule``'s SQL may use.
RUN_ID: BindParameter[int] = bindparam("click_run")
USER_ID: BindParameter[str] = bindparam("click_user")
NOW: BindParameter[datetime] = bindparam("click_now", type_=UTCDateTime())

_rules: dict[str, ConfirmRule] = {}


def declare_confirm(rule: ConfirmRule) -> ConfirmRule:
    """Declare (or replace, by name) a subscriber's confirmation rule."""
    _rules[rule.name] = rule
    return rule


def confirm_rules() -> tuple[ConfirmRule, ...]:
    return tuple(_rules[name] for name in sorted(_rules))


def all_hooks_have_rules() -> bool:
    """True when every subscribed hook has a declared rule: only then may a confirmation skip
    the ORM hooks (a subscriber that declared none is never bypassed)."""
    covered = {rule.hook for rule in _rules.values()}
    return all(hook in covered for hook in _hooks)
