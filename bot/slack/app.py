"""create_app(settings, client) -> App: middleware, the global error handler, listeners."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_bolt import App, BoltContext, BoltResponse
from slack_sdk import WebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.db import read_scope, session_scope
from bot.roster import RosterRefresher

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass
class Deps:
    """What listeners need besides Slack: the database, the clock, the roster refresher and
    the background pool for work done after the acknowledgement."""

    engine: Engine
    clock: Clock
    refresher: RosterRefresher
    executor: Executor

    def later(self, fn: Callable[..., None], /, **kwargs: Any) -> None:
        """Run ``fn(**kwargs)`` on the background pool, after the HTTP response has gone."""
        self.executor.submit(_logged, fn, kwargs)

    def db(self) -> AbstractContextManager[Session]:
        return session_scope(self.engine)

    def read(self) -> AbstractContextManager[Session]:
        """A read-only session: no write lock on SQLite (see bot.db.read_scope)."""
        return read_scope(self.engine)


def _logged(fn: Callable[..., None], kwargs: dict[str, Any]) -> None:
    try:
        fn(**kwargs)
    except Exception:
        log.exception("background work %s failed", getattr(fn, "__name__", fn))


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
    )

    @app.middleware
    def inject(context: BoltContext, next: Callable[[], BoltResponse]) -> BoltResponse:
        # Listeners receive these by name: deps (database sessions, refresher, background
        # pool) and now (read once per request, so a request sees one instant).
        context["deps"] = deps
        context["now"] = deps.clock()
        return next()

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("listener failed for %s: %r", body.get("type") or body.get("command"), error, exc_info=error)

    from bot.slack.listeners import actions, commands, escalations, events, summary, views

    for module in (actions, commands, events, views, summary, escalations):
        module.register(app)
    return app
