"""The checklist's declared interface for capabilities above it: "an answer was stored".

Escalations (and later the readiness profile) must react to a trader's answer in the same
transaction that stores it, yet the checklist must not import them (they import the
checklist). They subscribe here; ``bot.checklist.service`` calls ``answer_stored`` after
every new answer version. Subscribers run inside the caller's transaction and must not
call Slack (they enqueue notifications instead).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlmodel import Session

from bot.checklist.models import Answer, ChecklistRun

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
