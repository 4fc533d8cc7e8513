"""Slack's rate limits as shared budgets (``bot.delivery.pacing``): per method, per channel.

Slack limits calls "per API method per app per workspace" in tiers
(https://api.slack.com/docs/rate-limits): Tier 3 "50+ per minute", Tier 4 "100+ per minute";
``chat.postMessage`` is special: "generally allows posting one message per second per channel,
while also maintaining a workspace-wide limit". So a Slack call takes its method's workspace
budget (``slack:chat.update``) and, for a post, its channel's (``slack#C0123``: one a second;
a DM's channel is the user's), both held in the database: every sender -- the outbox worker
of any replica, the CLI's ``escalations run``, the roster refresher -- draws on the same ones.
Methods take each other's budgets never: a queue of ``chat.update`` calls (Tier 3, 1.2 s
apart) does not hold up posts.

- ``chat.postMessage``: special (https://api.slack.com/methods/chat.postMessage): ``POST_RATE``
  across channels, and one a second in each channel.
- ``chat.update``: Tier 3, 50+ a minute (https://api.slack.com/methods/chat.update): 50 a minute.
- ``conversations.history``: Tier 3 (https://api.slack.com/methods/conversations.history): 50 a
  minute (looking for a post whose answer was lost, ``bot.delivery.ledger``).

``Pace``: how the outbox worker holds one message's budgets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.delivery.pacing import INFINITE, Budget, SharedBudgets, Taken

POST = "chat.postMessage"
UPDATE = "chat.update"
HISTORY = "conversations.history"
TIER3 = 50 / 60.0
POST_RATE = 10.0  # chat.postMessage across channels (DMs): "a workspace-wide limit"; 10/s, as before
CHANNEL_RATE = 1.0  # chat.postMessage: "one message per second per channel"
RATES: Mapping[str, float | None] = {POST: POST_RATE, UPDATE: TIER3, HISTORY: TIER3}
PER_CHANNEL = frozenset({POST})


class SlackBudgets:
    """The budgets of Slack calls, by method and channel, under ``namespace`` (``slack``; a test
    gives a process a namespace of its own to show what separate budgets would do)."""

    def __init__(
        self,
        engine: Engine,
        *,
        rates: Mapping[str, float | None] | None = None,
        channel_rate: float | None = CHANNEL_RATE,
        namespace: str = "slack",
        shared: SharedBudgets | None = None,
    ) -> None:
        self.rates = {**RATES, **(rates or {})}
        self.channel_rate = channel_rate
        self.namespace = namespace
        self.shared = shared or SharedBudgets(engine)
        self._spent: dict[str, float] = {}  # method -> until when (monotonic) its budget is known spent

    def of(self, method: str, channel: str | None = None) -> list[Budget]:
        """The budgets a call of ``method`` (to ``channel``) takes."""
        budgets = [Budget(f"{self.namespace}:{method}"[:32], self.rates.get(method))]
        if channel and method in PER_CHANNEL and self.channel_rate:
            budgets.append(Budget(f"{self.namespace}#{channel}"[:32], self.channel_rate))
        return budgets

    def take(self, budgets: list[Budget], *, within: float = INFINITE) -> Taken:
        taken = self.shared.take(budgets, within=within)
        method = taken.key.partition(":")[2] if taken.key.startswith(f"{self.namespace}:") else ""
        if not taken.ok and method and taken.free_in > 0.05:
            self._spent[method] = time.monotonic() + taken.free_in
        return taken

    def spent(self, method: str) -> float:
        """Seconds until ``method``'s workspace budget may have a slot, as this process last
        saw it (0: unknown or free) -- a hint that saves asking the database, never a promise."""
        return max(0.0, self._spent.get(method, 0.0) - time.monotonic())

    def done(self, budgets: list[Budget], *, session: Session | None = None) -> None:
        self.shared.done(budgets, session=session)

    def rate_limited(self, budgets: list[Budget], retry_after: float) -> None:
        self.shared.rate_limited(budgets, retry_after)


@dataclass
class Pace:
    """How the outbox worker holds one message's Slack budgets (``bot.delivery.worker``): taken
    after the message is rendered, right before the call, so that the slot's spacing is not
    spent reading and rendering; freed with its outcome, in the transaction that records it."""

    budgets: SlackBudgets | None
    within: float
    sleep: Callable[[float], None]
    free_in: float = 0.0  # when the budgets were not taken: when they could be
    held: list[Budget] = field(default_factory=list)

    def take(self, budgets: list[Budget]) -> bool:
        """Take ``budgets`` if a slot comes within ``within`` (sleeping until it starts)."""
        if self.budgets is None or not budgets:
            return True
        taken = self.budgets.take(budgets, within=self.within)
        if taken.delay is None:
            self.free_in = taken.free_in
            return False
        self.held = budgets
        if taken.delay > 0:
            self.sleep(taken.delay)
        return True

    def rate_limited(self, retry_after: float) -> None:
        if self.budgets is not None and self.held:
            self.budgets.rate_limited(self.held, retry_after)

    def free(self, session: Session | None = None) -> None:
        """Free what is held in ``session``'s transaction (the caller then clears ``held``
        once it has committed), or else in one of its own."""
        if self.budgets is not None and self.held:
            self.budgets.done(self.held, session=session)
            if session is None:
                self.held = []
