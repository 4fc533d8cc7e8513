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
    """What listeners need besides Slack: the database, the clock, the roster refresher."""

    engine: Engine
    clock: Clock
    refresher: RosterRefresher

    def db(self) -> AbstractContextManager[Session]:
        return session_scope(self.engine)

    def read(self) -> AbstractContextManager[Session]:
        """A read-only session: no write lock on SQLite (see bot.db.read_scope)."""
        return read_scope(self.engine)


def create_app(
    *,
    signing_secret: str,
    client: WebClient,
    deps: Deps,
    executor: Executor | None = None,
) -> App:
    app = App(
        signing_secret=signing_secret,
        client=client,
        token_verification_enabled=False,
        # bot.web.WebApp verifies signatures before Bolt sees a request (401 on failure).
        request_verification_enabled=False,
        listener_executor=executor,
        logger=logging.getLogger("bot.slack.bolt"),
    )

    @app.middleware
    def inject(context: BoltContext, next: Callable[[], BoltResponse]) -> BoltResponse:
        # Listeners receive these by name: deps, db (a session factory) and now (read once
        # per request, so a request sees one instant).
        context["deps"] = deps
        context["db"] = deps.db
        context["now"] = deps.clock()
        return next()

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("listener failed for %s: %r", body.get("type") or body.get("command"), error, exc_info=error)

    from bot.slack.listeners import actions, commands, escalations, events, summary, views

    for module in (actions, commands, events, views, summary, escalations):
        module.register(app)
    return app
