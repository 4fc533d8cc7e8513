"""Block Kit text for the broker probes in App Home: pure functions, data in, mrkdwn out.

Labels, targets and the gateway's own words are user (or gateway) text: escaped for mrkdwn,
targets inside a code span (never a live link). Times are in the desk's zone.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.checklist.labels import LAYER_LABEL
from bot.desks.models import Desk
from bot.probe.home import ProbeCard, ProbeCount
from bot.probe.labels import state_text
from bot.probe.service import EndpointStatus
from bot.probe.wiring import layer_of
from bot.slack.blocks import Group, cut, escape, local_datetime, local_time, pack

DETAIL_CUT = 200  # the gateway's words in one endpoint's line
PROBE_SECTIONS = 2  # App Home sections for a trader's endpoints, whatever their number


def endpoint_line(status: EndpointStatus, desk: Desk, *, desk_name: bool = False) -> str:
    """One endpoint: icon, label (and desk), target, state (and layer when failing), when, detail."""
    where = f" ({escape(desk.name)})" if desk_name else ""
    head = f"*{escape(status.label)}*{where} · `{escape(status.target)}`"
    if status.state is None or status.checked_at is None:
        return f"• ⏳ {head} · not probed yet"
    state = state_text(status.kind, status.state)
    when = f"checked {local_datetime(status.checked_at, desk)}"
    if status.healthy:
        expires = (
            f" · session expires {local_time(status.session_expires_at, desk)}"
            if status.session_expires_at is not None
            else ""
        )
        return f"• ✅ {head} · {state} · {when}{expires}"
    layer = LAYER_LABEL[layer_of(status.state)]
    detail = f" — {escape(cut(status.detail, DETAIL_CUT))}" if status.detail else ""
    return f"• ⚠️ {head} · {state} ({layer}) · {when}{detail}"


def fact_line(card: ProbeCard) -> str:
    """The authentication line under the trader's status on that desk ('' when nothing was
    probed today): the roster's words."""
    return escape(card.fact) if card.fact else ""


def probe_texts(cards: Sequence[ProbeCard], *, chars: int = 5000) -> list[str]:
    """A trader's endpoints (desk by desk, each line naming its desk when there are several)
    in at most ``PROBE_SECTIONS`` sections, the rest summarised as "…and N more"."""
    several = len(cards) > 1
    lines = [endpoint_line(s, card.desk, desk_name=several) for card in cards for s in card.statuses]
    if not lines:
        return []
    group = Group("*Your broker probes*", lines, "{n} more endpoints: `/ibstatus probe` asks them all")
    return list(pack([group], chars=chars, sections=PROBE_SECTIONS))


def count_line(count: ProbeCount) -> str:
    """A managed desk's probes in one line."""
    failing = (
        f"⚠️ {count.failing} failing ({count.traders_failing} trader{'s' if count.traders_failing != 1 else ''})"
        if count.failing
        else "0 failing"
    )
    last = f" · last {local_datetime(count.last_checked, count.desk)}" if count.last_checked is not None else ""
    return (
        f"🔌 Broker probes: {count.endpoints} endpoint{'s' if count.endpoints != 1 else ''} · "
        f"{count.healthy} healthy · {failing} · {count.not_probed} not probed yet{last}"
    )
