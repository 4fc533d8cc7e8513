"""create_app(settings, client) -> App: middleware, the global error handler, listeners."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from slack_bolt import App, BoltContext, BoltRequest, BoltResponse
from slack_sdk import WebClient

from bot import events_once, outage
from bot.checklist import listeners as checklist_listeners
from bot.checklist import problem_listeners
from bot.escalation import listeners as escalation_listeners
from bot.profile import listeners as profile_listeners
from bot.slack import commands, desk_settings, home
from bot.slack.deps import Deps
from bot.summary import listeners as summary_listeners

log = logging.getLogger(__name__)

LISTENERS = (
    checklist_listeners,
    commands,
    home,
    problem_listeners,
    summary_listeners,
    escalation_listeners,
    desk_settings,
    profile_listeners,
)


def create_app(*, signing_secret: str, client: WebClient, deps: Deps) -> App:
    app = App(
        signing_secret=signing_secret,
        client=client,
        token_verification_enabled=False,
        # bot.web.WebApp verifies signatures before Bolt sees a request (401 on failure).
        request_verification_enabled=False,
        # Listeners run in the request thread and the HTTP response goes when they return:
        # each one acknowledges, answers what must be in the acknowledgement (slash command
        # text, modal field errors), and hands Slack calls and slow work to deps.later().
        # (Bolt's default runs the whole listener on a small pool and makes the response wait
        # for a free thread, so a burst of clicks queued behind each other's Slack calls.)
        process_before_response=True,
        logger=logging.getLogger("bot.slack.bolt"),
        # Bolt's default name is the caller's file name, found with inspect.stack(), which reads
        # every frame's source and resolves the path of every loaded module: ~0.05-0.1 s at start.
        # The same name, given.
        name="app.py",
    )

    @app.middleware
    def inject(context: BoltContext, next: Callable[[], BoltResponse]) -> BoltResponse:
        # Listeners receive these by name: deps (database sessions, refresher, background
        # pool) and now (read once per request, so a request sees one instant).
        context["deps"] = deps
        context["now"] = deps.clock()
        return next()

    @app.middleware
    def once(
        req: BoltRequest, body: dict[str, Any], context: BoltContext, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        # An Events API delivery is handled by the one replica whose insert of its event_id wins
        # (bot.events_once); Slack's retries of it, wherever they land, are acknowledged only.
        event_id = events_once.event_id_of(body)
        if event_id is not None and not events_once.first_delivery(deps.engine, event_id=event_id, now=context["now"]):
            retry = req.headers.get("x-slack-retry-num") or ["-"]
            reason = req.headers.get("x-slack-retry-reason") or ["-"]
            log.info("event %s already handled: acknowledged, skipped (retry %s, %s)", event_id, retry[0], reason[0])
            return BoltResponse(status=200, body="")
        return next()

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> BoltResponse | None:
        # The one responder for a request the bot can't complete (database down, locked or
        # read-only; Slack refusing): the user is told nothing was recorded (bot.outage).
        if outage.is_outage(error):
            log.error("could not complete %s: %r", body.get("type") or body.get("command"), error)
            answer = outage.answer(body)
            if answer.response_url:
                outage.tell(answer.response_url)
            headers: dict[str, str | Sequence[str]] = dict(answer.headers)
            return BoltResponse(status=answer.status, body=answer.body, headers=headers)
        log.error("listener failed for %s: %r", body.get("type") or body.get("command"), error, exc_info=error)
        return None

    for module in LISTENERS:
        module.register(app)
    return app
