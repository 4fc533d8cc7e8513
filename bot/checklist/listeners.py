"""Button clicks on the checklist message."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.checklist import click, quick
from bot.checklist import service as checklist
from bot.checklist.facts import facts_for
from bot.checklist.guidance import guidance_text
from bot.checklist.models import ChecklistRun
from bot.checklist.problem_views import QUICK_ACTION, details_reply, modal_fallback, problem_modal
from bot.errors import ServiceError
from bot.interactions import REPLAYED_CLICK, first_time
from bot.slack.deps import Click, Deps, open_modal_now, open_view, respond
from bot.slack.ids import Action

ALREADY_READY = "✅ Already recorded — you're marked *ready* for today."
STALE = "This checklist is no longer available. Use today's checklist in the desk channel."


def register(app: App) -> None:
    app.action(Action.CONFIRM_ALL)(on_confirm_all)
    app.action(Action.REPORT_PROBLEM)(open_modal_now(open_problem_modal))
    for action in QUICK_ACTION.values():
        app.action(action)(on_quick_report)


QUICK_KIND = {action.value: kind for kind, action in QUICK_ACTION.items()}


def on_quick_report(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    """A one-click report (bot.checklist.quick): stored before the acknowledgement, exactly like
    a confirmation, so no modal has to open for the trader to be recorded; then the guidance
    and an *Add details* button through the interaction's response_url (never a rate-tiered
    Web API method)."""
    clicked = Click.of(body)
    kind = QUICK_KIND.get(clicked.action_id)
    run_id = clicked.id
    stored, text, blocks = False, STALE, None
    with deps.db() as session:
        run = session.get(ChecklistRun, run_id) if run_id is not None else None
        if not first_time(session=session, body=body, now=now):
            text = REPLAYED_CLICK
        elif run is not None and kind is not None:
            try:
                result = quick.report_quick(session=session, run=run, user_id=clicked.user, kind=kind, now=now)
            except ServiceError as exc:
                text = str(exc)
            else:
                stored = result.outcome is checklist.AnswerOutcome.STORED
                text = quick.quick_guidance(kind, result.answer, stored=stored)
                blocks = details_reply(run, text)
    ack()
    if stored and run_id is not None:
        deps.refresher.notify(run_id)
    deps.later(respond, client=client, body=body, text=text, blocks=blocks)
    if stored:
        deps.after_home_click(body, client, now)


def on_confirm_all(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    """Stored before the acknowledgement (an acknowledged click is a stored click, whatever
    happens to this process next); the reply and the roster follow after the response. A first
    confirmation takes the prebuilt statements of ``bot.checklist.click``; anything else (a
    report replaced, an open escalation to resolve) the ORM path with every hook."""
    clicked = Click.of(body)
    run_id = clicked.id
    fast = click.confirm(deps.engine, run_id=run_id, user_id=clicked.user, body=body, now=now)
    stored, reply = fast.outcome is click.Outcome.STORED, FAST_REPLY.get(fast.outcome, fast.message)
    if fast.outcome is click.Outcome.FULL:
        stored, reply = _confirm_full(body, deps, run_id, clicked.user, now)
    ack()
    if stored and run_id is not None:
        deps.refresher.notify(run_id)
    if reply:
        deps.later(clicked.reply, client=client, text=reply)
    if stored:
        deps.after_home_click(body, client, now)


FAST_REPLY = {
    click.Outcome.STORED: "",  # a first confirmation needs no reply: the roster shows ✅ within a second
    click.Outcome.ALREADY: ALREADY_READY,
    click.Outcome.REPLAYED: REPLAYED_CLICK,
    click.Outcome.STALE: STALE,
}


def _confirm_full(body: dict[str, Any], deps: Deps, run_id: int | None, user: str, now: datetime) -> tuple[bool, str]:
    """The ORM path: (stored, reply)."""
    stored, reply = False, ""
    with deps.db() as session:
        run = session.get(ChecklistRun, run_id) if run_id is not None else None
        if not first_time(session=session, body=body, now=now):
            reply = REPLAYED_CLICK
        elif run is None:
            reply = STALE
        else:
            try:
                result = checklist.confirm(session=session, run=run, user_id=user, now=now)
            except ServiceError as exc:
                reply = str(exc)
            else:
                stored = result.outcome is checklist.AnswerOutcome.STORED
                if not stored:
                    reply = ALREADY_READY
                elif result.answer.version > 1:  # it replaces a report: say the restriction is gone
                    reply = guidance_text(result.answer)
    return stored, reply


def open_problem_modal(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    clicked = Click.of(body)
    user = clicked.user
    view, refusal = None, STALE
    with deps.read() as session:  # only checks: no write lock, and no Slack call inside
        run = session.get(ChecklistRun, clicked.id) if clicked.id is not None else None
        if run is not None:
            try:
                desk = checklist.check_can_answer(session=session, run=run, user_id=user, now=now)
            except ServiceError as exc:
                refusal = str(exc)
            else:
                known = facts_for(session, run, [user]).get(user)
                view = problem_modal(run, desk, channel_id=clicked.channel, facts=known)
    if view is None:
        clicked.reply(client, refusal)
        return
    # Slack may refuse the modal (429) on the morning everyone reports at once: then the
    # one-click reports, which need no modal, come through the response_url instead.
    assert clicked.id is not None
    open_view(deps, body, view, client=client, fallback=modal_fallback(clicked.id))
