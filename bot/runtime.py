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
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import col

from bot import logs, metrics
from bot.checklist.roster_refresher import RosterRefresher
from bot.config import Settings, clock_of, utc_now
from bot.crypto import Keyring
from bot.db import make_engine, read_scope
from bot.delivery import worker
from bot.delivery.slack import delivery_client
from bot.delivery.worker import OutboxWorker
from bot.desks import service as desks
from bot.desks.models import Desk
from bot.escalation import opening as _escalation_opening  # noqa: F401  (its answer hook: see build)
from bot.probe import wiring as _probe_wiring  # noqa: F401  (registers the probe's checklist facts)
from bot.profile import hooks as profile_hooks  # noqa: F401  (registers the profile's checklist facts and answer hook)
from bot.slack import home, notifications
from bot.slack.app import create_app
from bot.slack.deps import Clock, Deps
from bot.web import DeskChannels, Observer, WebApp


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
    """A WebClient that retries connection errors, 429 (honouring Retry-After) and 5xx, and
    counts its calls (``bot.metrics.MeteredWebClient``; the clients made from it do too)."""
    token, _ = settings.require_slack()
    return metrics.MeteredWebClient(
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


def request_client(client: WebClient) -> WebClient:
    """``client`` for the request and interaction pools (the Bolt app's listeners,
    ``Deps.later``, ``Deps.urgent``): the same retries, except on a rate limit. slack_sdk's
    RateLimitErrorRetryHandler sleeps for Retry-After (Slack asks for up to a minute) inside the
    call; on these pools that sleep blocked every click queued behind it (modal triggers
    expired, replies came late). A 429 there is the caller's to report or drop; the scheduler
    and the outbox worker, on threads of their own, keep ``client``'s pacing."""
    handlers = [h for h in client.retry_handlers if not isinstance(h, RateLimitErrorRetryHandler)]
    if len(handlers) == len(client.retry_handlers):
        return client
    return type(client)(  # a counting client stays one (bot.metrics)
        token=client.token,
        base_url=client.base_url,
        timeout=client.timeout,
        retry_handlers=handlers,
        logger=client.logger,
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
    clock: Clock | None = None,
    executor: Executor | None = None,
    urgent_executor: Executor | None = None,
    roster_interval: float = 1.0,
    roster_rate: float = ROSTER_RATE,
) -> Runtime:
    signing_secret = settings.require_slack()[1] or "socket-mode"
    engine = engine or make_engine(settings.database_url)
    client = metrics.metered(client) if client is not None else make_client(settings)
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
        # Both pools run each task with the submitting request's log fields (bot.logs).
        executor=logs.ContextExecutor(
            executor or ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="after-ack")
        ),
        # Modal opens run on a pool of their own, with a client that never retries (bot.slack.deps).
        urgent_executor=logs.ContextExecutor(
            urgent_executor or ThreadPoolExecutor(max_workers=4, thread_name_prefix="modal")
        ),
        modal_client=bare_client(client),
        names_client=bare_client(client),  # users.info fails fast: a stranger is looked up again later
        keys=Keyring(settings.secret_keys),
        allow_private_pager=settings.allow_private_pager,
        home_publisher=home.publish,
    )
    # Listeners get a client that never sleeps on a 429 (request_client): no pool thread waits.
    bolt = create_app(signing_secret=signing_secret, client=request_client(client), deps=deps)
    # Each request's log fields, ack() timing and counting client (after the deps middleware).
    bolt.use(Observer(DeskChannels(partial(desk_channels, engine))).middleware)
    web = WebApp(
        bolt,
        signing_secret=signing_secret,
        engine=engine,
        clock_offset=settings.clock_offset,
        exposition=metrics.Exposition(engine, deps.clock),
    )
    return Runtime(settings=settings, engine=engine, client=client, deps=deps, refresher=refresher, bolt=bolt, web=web)


def desk_channels(engine: Engine) -> dict[str, str]:
    """Each desk's channel and name, for the logs (a channel two desks share names neither)."""
    with read_scope(engine, per_statement=True) as session:
        rows = session.execute(sa_select(col(Desk.channel_id), col(Desk.name))).all()
    found: dict[str, str] = {}
    shared: set[str] = set()
    for channel, name in rows:
        if channel in found:
            shared.add(channel)
        found[channel] = name
    return {channel: name for channel, name in found.items() if channel not in shared}


# --- the outbox, wired to the Slack renderers and the desks' pager settings -------------

# ``bot.delivery.worker.deliver_due`` and ``OutboxWorker`` with this app's renderer and pager lookup.
deliver_due = partial(worker.deliver_due, render=notifications.render, pager_target=desks.pager_target)
outbox_worker = partial(OutboxWorker, render=notifications.render, pager_target=desks.pager_target)
