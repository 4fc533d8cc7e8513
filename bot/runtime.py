"""Assemble the running bot from Settings: engine, Slack client, Bolt app, web app, scheduler."""

from __future__ import annotations

from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry import HttpRequest, HttpResponse, RetryState
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from sqlalchemy.engine import Engine

from bot.checklist.roster_refresher import RosterRefresher
from bot.config import Settings, clock_of, utc_now
from bot.crypto import Keyring
from bot.db import make_engine
from bot.delivery import worker
from bot.delivery.slack import delivery_client
from bot.delivery.worker import OutboxWorker
from bot.desks import service as desks
from bot.escalation import opening as _escalation_opening  # noqa: F401  (its answer hook: see build)
from bot.profile import hooks as profile_hooks  # noqa: F401  (registers the profile's checklist facts and answer hook)
from bot.slack import home, notifications
from bot.slack.app import create_app
from bot.slack.deps import Clock, Deps
from bot.web import WebApp


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


ROSTER_RATE = 20.0  # roster chat.update calls a minute, all desks: chat.update is Tier 3 (~50/min)


def bare_client(client: WebClient) -> WebClient:
    """The same workspace and timeout, without slack_sdk's retry handlers: the caller decides
    what a 429 means (a modal trigger expires; the roster waits for its budget)."""
    return delivery_client(client)


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
    clock: Clock | None = None,
    executor: Executor | None = None,
    urgent_executor: Executor | None = None,
    roster_interval: float = 1.0,
    roster_rate: float = ROSTER_RATE,
) -> Runtime:
    signing_secret = settings.require_slack()[1] or "socket-mode"
    engine = engine or make_engine(settings.database_url)
    client = client or make_client(settings)
    # The roster is cosmetic: its chat.update calls share a budget below Slack's Tier 3
    # allowance, leaving the rest to escalations (bot.checklist.roster_refresher).
    refresher = RosterRefresher(engine, bare_client(client), interval=roster_interval, rate_per_minute=roster_rate)
    # Escalations follow every answer the app stores: importing bot.escalation.opening (above)
    # subscribes its hook to bot.checklist.events.answer_stored and declares its ConfirmRule.
    deps = Deps(
        engine=engine,
        clock=clock or clock_of(settings),
        # An injected clock (tests) is the real time too; else the real time, without the offset.
        wall=clock or utc_now,
        refresher=refresher,
        # Work after the acknowledgement (answers, Slack replies) runs on this pool.
        executor=executor or ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="after-ack"),
        # Modal opens run on a pool of their own, with a client that never retries (bot.slack.deps).
        urgent_executor=urgent_executor or ThreadPoolExecutor(max_workers=4, thread_name_prefix="modal"),
        modal_client=bare_client(client),
        names_client=bare_client(client),  # users.info fails fast: a stranger is looked up again later
        keys=Keyring(settings.secret_keys),
        home_publisher=home.publish,
    )
    bolt = create_app(signing_secret=signing_secret, client=client, deps=deps)
    web = WebApp(bolt, signing_secret=signing_secret, engine=engine, clock_offset=settings.clock_offset)
    return Runtime(settings=settings, engine=engine, client=client, deps=deps, refresher=refresher, bolt=bolt, web=web)


# --- the outbox, wired to the Slack renderers and the desks' pager settings -------------

# ``bot.delivery.worker.deliver_due`` and ``OutboxWorker`` with this app's renderer and pager lookup.
deliver_due = partial(worker.deliver_due, render=notifications.render, pager_target=desks.pager_target)
outbox_worker = partial(OutboxWorker, render=notifications.render, pager_target=desks.pager_target)
