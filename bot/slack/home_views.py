"""App Home, per role: a pure builder (``HomeData`` in, a Home view out), within Slack's 100
blocks per view (https://api.slack.com/reference/block-kit/blocks) at any desk size.

- a trader: today's status on each desk with the answer buttons, the next checklist, the
  authentication line of their broker probes ("verified by probe", as the roster says) and
  each endpoint's latest result, open escalations about them, their away days;
- a manager (of one desk or several): per desk, today's counts and who is restricted or
  pending, open escalations with Acknowledge / Resolve, this week's figures and a line of
  broker-probe counts, *Desk settings*;
- a workspace admin: *New desk*;
- anyone else: what the bot is and who can add them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.checklist import roster_views, status_views
from bot.checklist.rosters import TraderState
from bot.checklist.status import DeskStatus, TraderStatus
from bot.desks import views as desk_views
from bot.desks.models import Away, Desk
from bot.escalation import views as escalation_views
from bot.escalation.models import Escalation, EscalationState
from bot.people.service import Names
from bot.probe import views as probe_views
from bot.probe.home import ProbeCard, ProbeCount
from bot.slack.blocks import (
    SECTION_BUDGET,
    VIEW_BLOCKS,
    Blocks,
    Group,
    button,
    context_block,
    cut,
    pack,
    plain,
    section,
)
from bot.slack.ids import Action
from bot.summary.report import WeeklyReport
from bot.summary.views import percent

ESCALATIONS_SHOWN = 5  # per desk, each with its own button
DESK_CHARS = 2500  # per desk: who is restricted or pending


@dataclass
class ManagedDesk:
    status: DeskStatus
    escalations: list[Escalation]
    week: WeeklyReport | None
    traders: int


@dataclass
class HomeData:
    user: str
    trading: list[TraderStatus] = field(default_factory=list)
    about_me: list[tuple[Escalation, Desk]] = field(default_factory=list)
    away: list[Away] = field(default_factory=list)
    managed: list[ManagedDesk] = field(default_factory=list)
    admin: bool = False
    contacts: list[str] = field(default_factory=list)  # desk managers / admins an outsider can ask
    names: Names = field(default_factory=Names)
    probes: list[ProbeCard] = field(default_factory=list)  # the trader's endpoints, per desk (bot.probe.home)
    probe_counts: dict[int, ProbeCount] = field(default_factory=dict)  # managed desks' probes, by desk id


def _trader_blocks(data: HomeData) -> Blocks:
    blocks: Blocks = [{"type": "header", "text": plain("Your checklist today")}]
    facts = {card.desk.id: probe_views.fact_line(card) for card in data.probes}
    for item in data.trading:
        line = status_views.own_status_text([item])
        fact = facts.get(item.desk.id)
        blocks.append(section(cut(f"{line}\n{fact}" if fact else line, SECTION_BUDGET)))
        entry = item.entry
        if item.run is not None and (entry is None or entry.state is not TraderState.READY):
            buttons = roster_views.answer_buttons(item.run, block_id=f"home_answer_{item.desk.id}")
            blocks.append(buttons)
    blocks += [section(text) for text in probe_views.probe_texts(data.probes)]
    mine = escalation_views.own_escalations_text(data.about_me, data.names)
    if mine:
        blocks.append(section(cut(mine, SECTION_BUDGET)))
    away = desk_views.away_text(data.away)
    if away:
        for period in data.away[:5]:
            blocks.append(
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": desk_views.away_line(period)},
                    "accessory": button("Cancel", Action.HOME_AWAY_CANCEL, str(period.id)),
                }
            )
    blocks.append({"type": "actions", "elements": [button("🌴 Set away days", Action.HOME_AWAY, "self")]})
    return blocks


def _week_line(desk: ManagedDesk) -> str:
    week = desk.week
    if week is None:
        return ""
    esc = week.escalations
    return (
        f"This week ({week.iso_week}): completion {percent(week.completion_rate)} · ready on time "
        f"{percent(week.on_time_rate)} · escalations {esc.opened} opened, {esc.still_open} still open"
    )


def _escalation_block(esc: Escalation, desk: Desk, names: Names) -> dict[str, Any]:
    line = escalation_views.item_line(esc, desk, names, with_trader=True)
    block: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": cut(line, SECTION_BUDGET)}}
    if esc.state == EscalationState.OPEN:
        block["accessory"] = button("Acknowledge", Action.ESCALATION_ACK, str(esc.id), style="primary")
    else:
        block["accessory"] = button("Resolve", Action.ESCALATION_RESOLVE, str(esc.id))
    return block


def _desk_blocks(item: ManagedDesk, names: Names, *, room: int, probes: ProbeCount | None = None) -> Blocks:
    """One managed desk in at most ``room`` blocks."""
    status, desk = item.status, item.status.desk
    head = status_views.desk_counts_line(status) + f" · {item.traders} traders"
    blocks: Blocks = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": cut(head, SECTION_BUDGET)},
            "accessory": button("Desk settings", Action.HOME_DESK_SETTINGS, str(desk.id)),
        }
    ]
    if status.roster is not None:
        restricted, pending = roster_views.roster_groups(status.roster)[:2]
        texts = pack([restricted, pending], chars=DESK_CHARS, sections=2)
        blocks += [section(t) for t in texts]
    lines = [_week_line(item), probe_views.count_line(probes) if probes is not None else ""]
    context = "\n".join(line for line in lines if line)
    if context:
        blocks.append(context_block(cut(context, SECTION_BUDGET)))
    shown = item.escalations[: max(0, min(ESCALATIONS_SHOWN, room - len(blocks) - 1))]
    blocks += [_escalation_block(e, desk, names) for e in shown]
    if len(item.escalations) > len(shown):
        more = len(item.escalations) - len(shown)
        blocks.append(context_block(f"…and {more} more open escalations: `/ibstatus escalations`."))
    return blocks[:room]


def _manager_blocks(data: HomeData, room: int) -> Blocks:
    blocks: Blocks = [{"type": "header", "text": plain("Your desks")}]
    rest: list[ManagedDesk] = []
    for item in data.managed:
        per_desk = min(4 + ESCALATIONS_SHOWN + 1, room - len(blocks) - 3)
        if per_desk < 3:
            rest.append(item)
            continue
        probes = data.probe_counts.get(item.status.desk.id or 0)
        blocks += _desk_blocks(item, data.names, room=per_desk, probes=probes)
        blocks.append({"type": "divider"})
    if rest:
        lines = [status_views.desk_counts_line(i.status) for i in rest]
        blocks += [section(t) for t in pack([Group("*More desks*", lines, "{n} more desks")], chars=2800, sections=1)]
    blocks.append({"type": "actions", "elements": [button("🌴 Set a trader away", Action.HOME_AWAY, "manager")]})
    return blocks


def home_view(data: HomeData, extra: Blocks | None = None) -> dict[str, Any]:
    """The user's App Home; ``extra`` (the readiness profile's section) goes before the usage
    and the manager's desks give way to it, so the view stays within Slack's 100 blocks."""
    extra = extra or []
    blocks: Blocks = [
        {"type": "header", "text": plain("IB Preflight")},
    ]
    if data.trading:
        blocks += _trader_blocks(data)
    if data.managed:
        blocks += _manager_blocks(data, VIEW_BLOCKS - len(blocks) - 4 - len(extra))
    if not data.trading and not data.managed:
        blocks.append(section(status_views.not_on_a_desk_text(data.contacts, [], data.names)))
    if data.admin:
        blocks.append(
            {
                "type": "actions",
                "elements": [button("➕ New desk", Action.HOME_NEW_DESK, style="primary")],
            }
        )
        blocks.append(context_block("You're a workspace admin: you can create desks and change any desk's settings."))
    room = VIEW_BLOCKS - len(blocks) - 2
    blocks += extra[:room]
    blocks += [{"type": "divider"}, section(status_views.USAGE)]
    return {"type": "home", "blocks": blocks[:VIEW_BLOCKS]}
