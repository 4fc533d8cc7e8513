"""Assemble the running bot from Settings: engine, Slack client, Bolt app, web app, scheduler."""

from __future__ import annotations

from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry import HttpRequest, HttpResponse, RetryState
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from sqlalchemy.engine import Engine

from bot.checklist.roster import RosterRefresher
from bot.config import Settings
from bot.crypto import Keyring
from bot.db import make_engine
from bot.delivery import worker
from bot.delivery.pager import Pager
from bot.delivery.worker import OutboxWorker, Pacer, PassResult
from bot.desks import service as desks
from bot.slack import notifications
from bot.slack.app import create_app
from bot.slack.deps import Clock, Deps
from bot.web import WebApp


def utc_now() -> datetime:
    return datetime.now(UTC)


class AnyServerErrorRetryHandler(ServerErrorRetryHandler):
    """Retry every 5xx (slack_sdk's own handler retries only 500 and 503)."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and 500 <= response.status_code < 600


def make_client(settings: Settings) -> WebClient:
    """A WebClient that retries connection errors, 429 (honouring Retry-After) and 5xx."""
    token, _ = settings.require_slack()
    return WebClient(
        token=token,
        base_url=settings.slack_api_url,
        timeout=15,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=3),
            AnyServerErrorRetryHandler(max_retry_count=3),
        ],
    )


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    client: WebClient
    deps: Deps
    refresher: RosterRefresher
    bolt: App
    web: WebApp


def build(
    settings: Settings,
    *,
    engine: Engine | None = None,
    client: WebClient | None = None,
    clock: Clock = utc_now,
    executor: Executor | None = None,
    roster_interval: float = 1.0,
) -> Runtime:
    _, signing_secret = settings.require_slack()
    engine = engine or make_engine(settings.database_url)
    client = client or make_client(settings)
    refresher = RosterRefresher(engine, client, interval=roster_interval)
    # Work after the acknowledgement (answers, Slack replies) runs on this pool.
    executor = executor or ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="after-ack")
    deps = Deps(engine=engine, clock=clock, refresher=refresher, executor=executor, keys=Keyring(settings.secret_keys))
    bolt = create_app(signing_secret=signing_secret or "socket-mode", client=client, deps=deps)
    web = WebApp(bolt, signing_secret=signing_secret or "socket-mode", engine=engine)
    return Runtime(settings=settings, engine=engine, client=client, deps=deps, refresher=refresher, bolt=bolt, web=web)


# --- the outbox, wired to the Slack renderers and the desks' pager settings -------------


def deliver_due(
    engine: Engine,
    client: WebClient,
    pager: Pager | None,
    *,
    now: datetime,
    limit: int = 100,
    pacers: dict[str, Pacer] | None = None,
) -> PassResult:
    """``bot.delivery.worker.deliver_due`` with this app's renderer and pager lookup."""
    return worker.deliver_due(
        engine,
        client,
        pager,
        now=now,
        limit=limit,
        pacers=pacers,
        render=notifications.render,
        pager_target=desks.pager_target,
    )


def outbox_worker(engine: Engine, client: WebClient, pager: Pager | None, **options: Any) -> OutboxWorker:
    return OutboxWorker(engine, client, pager, render=notifications.render, pager_target=desks.pager_target, **options)
