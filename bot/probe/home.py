"""What App Home shows of the broker probes (issue 19, part 2).

- a trader: per desk they trade on, each of their endpoints with its latest result, and the
  authentication line the roster shows ("🔌 authentication verified by probe 08:05" when every
  endpoint probed today is healthy, the failing endpoint and its layer when one is not);
- a manager: one count per desk they manage (endpoints healthy, failing, not probed yet).

One query per desk (``service.latest``), whatever the desk's size. Domain only: no Slack
(``bot.probe.views`` draws these).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from bot.checklist import service as checklist
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.probe import service
from bot.probe.service import EndpointStatus
from bot.probe.wiring import fact_text, fresh


@dataclass(frozen=True)
class ProbeCard:
    """A trader's endpoints on one desk, with the authentication line of today (None: nothing
    probed today, so the probe says nothing about today's session)."""

    desk: Desk
    statuses: list[EndpointStatus]
    fact: str | None


@dataclass(frozen=True)
class ProbeCount:
    """A managed desk's endpoints by their latest result."""

    desk: Desk
    endpoints: int
    healthy: int
    failing: int
    not_probed: int
    traders_failing: int
    last_checked: datetime | None


def own_cards(
    *, session: Session, user_id: str, now: datetime, trading: Sequence[Desk] | None = None
) -> list[ProbeCard]:
    """The user's endpoints on every desk they trade on (``trading``: those desks, when the
    caller has them); desks without one are left out."""
    cards: list[ProbeCard] = []
    if trading is None:
        trading = desks.desks_of_user(session=session, user_id=user_id, role=Role.TRADER)
    for desk in trading:
        assert desk.id is not None
        statuses = service.latest(session=session, desk_id=desk.id, trader_ids=[user_id]).get(user_id, [])
        if statuses:
            today = fresh(statuses, desk, checklist.desk_today(desk, now))
            cards.append(ProbeCard(desk=desk, statuses=statuses, fact=fact_text(today, desk)))
    return cards


def desk_counts(*, session: Session, managing: Sequence[Desk]) -> dict[int, ProbeCount]:
    """Per managed desk that has endpoints: the counts, by desk id."""
    out: dict[int, ProbeCount] = {}
    for desk in managing:
        assert desk.id is not None
        by_trader = service.latest(session=session, desk_id=desk.id)
        every = [s for statuses in by_trader.values() for s in statuses]
        if not every:
            continue
        probed = [s for s in every if s.state is not None]
        checked = [s.checked_at for s in probed if s.checked_at is not None]
        out[desk.id] = ProbeCount(
            desk=desk,
            endpoints=len(every),
            healthy=sum(1 for s in probed if s.healthy),
            failing=sum(1 for s in probed if not s.healthy),
            not_probed=len(every) - len(probed),
            traders_failing=sum(
                1 for statuses in by_trader.values() if any(s.state is not None and not s.healthy for s in statuses)
            ),
            last_checked=max(checked) if checked else None,
        )
    return out
