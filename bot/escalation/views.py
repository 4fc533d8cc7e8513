"""Block Kit and text for escalations: pure functions, domain objects in, blocks out.

Names come from the cache (``bot.people``) and are escaped like any user text; managers are
mentioned (``<@U…>``) only where a ping is wanted: the level-2 post to the escalation channel.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.checklist.models import ChecklistRun
from bot.checklist.roster_views import answer_buttons
from bot.desks.models import Desk
from bot.escalation.labels import KIND_WHY, NOTE_LIMIT, kind_title
from bot.escalation.models import Escalation, EscalationKind, EscalationState
from bot.people.service import Names
from bot.slack.blocks import (
    MESSAGE_BLOCKS,
    MESSAGE_CHARS,
    Blocks,
    Group,
    button,
    context_block,
    cut,
    escape,
    input_block,
    local_datetime,
    local_time,
    modal,
    pack,
    plain,
    section,
)
from bot.slack.ids import Action, Block, Callback

DETAIL_CUT = 300  # a trader's report quoted in an escalation line


def about(esc: Escalation, names: Names) -> str:
    """Who the escalation is about: the trader (by name, escaped), or the desk's checklist."""
    return "the desk's checklist" if esc.desk_wide else escape(names(esc.trader_id))


def state_line(esc: Escalation, desk: Desk, names: Names) -> str:
    level = f" · level {esc.level}" if esc.level > 1 else ""
    if esc.resolved_automatically and esc.resolved_at is not None and esc.run_id is not None:
        # The checklist's own conditions (bot.escalation.rules): "Resolved — Alice confirmed at 09:12".
        who = "" if esc.desk_wide else f"{escape(names(esc.trader_id))} "
        return f"✅ *Resolved* — {who}{escape(esc.resolution_note)} at {local_datetime(esc.resolved_at, desk)}{level}"
    if esc.state == EscalationState.RESOLVED and esc.resolved_at is not None:
        by = f"by {escape(names(esc.resolved_by))}" if esc.resolved_by else "automatically"
        line = f"✅ *Resolved* {by} at {local_datetime(esc.resolved_at, desk)}{level}"
        if esc.resolution_note:
            line += f"\n> {escape(esc.resolution_note)}"
        return line
    if esc.state == EscalationState.ACKNOWLEDGED and esc.acknowledged_at is not None:
        by = escape(names(esc.acknowledged_by))
        return f"👀 *Acknowledged* by {by} at {local_datetime(esc.acknowledged_at, desk)}{level}"
    return f"⏳ *Open*{level} — waiting for a manager to acknowledge"


def already_text(esc: Escalation, desk: Desk, names: Names) -> str:
    """The reply to a click that comes after someone (or the bot) got there first."""
    if esc.resolved_automatically and esc.resolved_at is not None and esc.run_id is not None:
        who = "" if esc.desk_wide else f"{escape(names(esc.trader_id))} "
        return f"Already resolved: {who}{escape(esc.resolution_note)} at {local_time(esc.resolved_at, desk)}."
    if esc.state == EscalationState.RESOLVED:
        return (
            f"Already resolved by {escape(names(esc.resolved_by))}."
            if esc.resolved_by
            else "Already resolved automatically."
        )
    return f"Already acknowledged by {escape(names(esc.acknowledged_by))}."


def escalation_text(esc: Escalation, desk: Desk, names: Names) -> str:
    """The notification text (plain: no markup, so a name can't ping anyone)."""
    who = "" if esc.desk_wide else f"{escape(names(esc.trader_id))} on "
    return f"{kind_title(esc.kind)}: {who}{desk.name} — {esc.state}"


def _buttons(esc: Escalation) -> list[dict[str, Any]]:
    buttons: list[dict[str, Any]] = []
    if esc.state == EscalationState.OPEN:
        buttons.append(button("Acknowledge", Action.ESCALATION_ACK, str(esc.id), style="primary"))
    if esc.state in (EscalationState.OPEN, EscalationState.ACKNOWLEDGED):
        buttons.append(button("Resolve", Action.ESCALATION_RESOLVE, str(esc.id)))
    return buttons


def escalation_message(esc: Escalation, desk: Desk, names: Names) -> tuple[str, Blocks]:
    """The manager DM: who, what, since when, the trader's own report, state and buttons."""
    since = local_datetime(esc.opened_at, desk)
    who = "" if esc.desk_wide else f" · {escape(names(esc.trader_id))}"
    lines = [
        f"*{kind_title(esc.kind)}*{who} · desk *{desk.name}*",
        KIND_WHY.get(EscalationKind(esc.kind), ""),
        f"Since {since}.",
    ]
    if esc.detail and esc.desk_wide:
        lines.append(escape(cut(esc.detail, 1500)))
    elif esc.detail:
        source = "Their report" if esc.run_id is not None else "From the readiness profile"
        lines.append(f"{source}: {escape(cut(esc.detail, 1500))}")
    blocks: Blocks = [
        section("\n".join(lines), block_id=Block.ESCALATION_SUMMARY),
        context_block(state_line(esc, desk, names)),
    ]
    buttons = _buttons(esc)
    if buttons:
        blocks.append({"type": "actions", "block_id": Block.ESCALATION_ACTIONS, "elements": buttons})
    return escalation_text(esc, desk, names), blocks


DIGEST_ROWS = 40  # escalations shown with their own button (blocks: 50 per message)


def _by_state(items: Sequence[Escalation]) -> tuple[list[Escalation], list[Escalation], list[Escalation]]:
    """A digest's escalations: open, acknowledged, resolved."""

    def of(state: EscalationState) -> list[Escalation]:
        return [e for e in items if e.state == state]

    return of(EscalationState.OPEN), of(EscalationState.ACKNOWLEDGED), of(EscalationState.RESOLVED)


def _ranked(items: Sequence[Escalation], names: Names) -> list[Escalation]:
    """A digest's rows: open first, then acknowledged, then resolved; by name within each."""
    order = {EscalationState.OPEN: 0, EscalationState.ACKNOWLEDGED: 1, EscalationState.RESOLVED: 2}
    return sorted(items, key=lambda e: (order.get(EscalationState(e.state), 3), names.sort_key(e.trader_id)))


def _digest_rows(
    items: Sequence[Escalation], head: str, desk: Desk, names: Names, *, buttons: bool, more: str
) -> Blocks:
    """A digest's head, then one line per escalation in ``_ranked`` order (its kind, who, the
    report's start and its state now; with its action button when ``buttons``) while they fit
    in ``DIGEST_ROWS`` and the message's characters, then "…and N more: ``more``"."""
    blocks: Blocks = [section(head, block_id=Block.ESCALATION_SUMMARY)]
    budget = MESSAGE_CHARS - len(head) - 600
    for esc in _ranked(items, names)[:DIGEST_ROWS]:
        line = f"{kind_title(esc.kind)} · *{about(esc, names)}*"
        if esc.detail:
            line += f" — {escape(cut(esc.detail, 120))}"
        line = cut(line + "\n" + state_line(esc, desk, names).split("\n")[0], 400)
        if budget - len(line) < 0:
            break
        budget -= len(line) + 20
        block = section(line)
        actions = _buttons(esc) if buttons else []
        if actions:
            block["accessory"] = actions[0]
        blocks.append(block)
    rest = len(items) - (len(blocks) - 1)
    if rest > 0:
        blocks.append(context_block(f"…and {rest} more: {more}"))
    return blocks


def digest_message(items: Sequence[Escalation], desk: Desk, names: Names, key: str) -> tuple[str, Blocks]:
    """One message to a manager for several escalations opened by one pass (no DM storm):
    counts first, then one line per trader with its action, updated in place as each is
    acknowledged or resolved; beyond ``DIGEST_ROWS`` the rest are counted and App Home or
    ``/ibstatus escalations`` lists them."""
    open_, acked, done = _by_state(items)
    when = local_time(min(e.opened_at for e in items), desk) if items else ""
    head = (
        f"*{len(items)} escalations* on desk *{desk.name}* at {when} — "
        f"⏳ {len(open_)} open · 👀 {len(acked)} acknowledged · ✅ {len(done)} resolved"
    )
    blocks = _digest_rows(
        items,
        head,
        desk,
        names,
        buttons=True,
        more="see App Home or `/ibstatus escalations` for every trader and action.",
    )
    if open_:
        blocks.append(
            {
                "type": "actions",
                "block_id": Block.ESCALATION_ACTIONS,
                "elements": [
                    {
                        **button(f"Acknowledge all {len(open_)} open", Action.ESCALATION_ACK_ALL, key),
                        "confirm": {
                            "title": plain("Acknowledge all?"),
                            "text": plain(f"Acknowledge the {len(open_)} open escalations of this message."),
                            "confirm": plain("Acknowledge all"),
                            "deny": plain("Cancel"),
                        },
                    }
                ],
            }
        )
    assert len(blocks) <= MESSAGE_BLOCKS
    counts = f"{len(open_)} open, {len(acked)} acknowledged, {len(done)} resolved"
    return f"{len(items)} escalations on {desk.name}: {counts}", blocks


def level2_message(
    esc: Escalation, desk: Desk, managers: Sequence[str], timeout_minutes: int, names: Names
) -> tuple[str, Blocks]:
    """The post to the desk's escalation channel when nobody acknowledged in time. The managers
    are mentioned: this is where a ping is wanted."""
    who = " ".join(f"<@{m}>" for m in managers[:20])
    trader = "" if esc.desk_wide else f" · {escape(names(esc.trader_id))}"
    head = (
        f"🚨 *Level 2* · {kind_title(esc.kind)}{trader} · desk *{desk.name}* — "
        f"not acknowledged within {timeout_minutes} min. Managers: {who}"
    )
    source = "" if esc.desk_wide else "Their report: "
    detail = f"\n{source}{escape(cut(esc.detail, 1500))}" if esc.detail else ""
    blocks: Blocks = [
        section(head + detail),
        context_block(state_line(esc, desk, names)),
    ]
    return f"Level 2: {escalation_text(esc, desk, names)}", blocks


def level2_digest_message(
    items: Sequence[Escalation], desk: Desk, managers: Sequence[str], timeout_minutes: int, names: Names
) -> tuple[str, Blocks]:
    """The escalation channel's one post for the escalations a pass raised to level 2 (instead
    of a post each: Slack takes about one message a second per channel), updated in place as
    they are acknowledged or resolved: counts, then one line per escalation with its state now;
    beyond ``DIGEST_ROWS`` the rest are counted. The managers are mentioned: a ping is wanted."""
    who = " ".join(f"<@{m}>" for m in managers[:20])
    open_, acked, done = _by_state(items)
    head = (
        f"🚨 *Level 2* · *{len(items)} escalations* on desk *{desk.name}* not acknowledged within "
        f"{timeout_minutes} min. Managers: {who}\n"
        f"⏳ {len(open_)} open · 👀 {len(acked)} acknowledged · ✅ {len(done)} resolved"
    )
    blocks = _digest_rows(items, head, desk, names, buttons=False, more="see `/ibstatus escalations` for every trader.")
    assert len(blocks) <= MESSAGE_BLOCKS
    counts = f"{len(open_)} open, {len(acked)} acknowledged, {len(done)} resolved"
    return f"Level 2: {len(items)} escalations on {desk.name}: {counts}", blocks


def message_link(channel: str, ts: str | None) -> str:
    """A link to a channel message built from its channel and ts (Slack's permalink format,
    https://api.slack.com/methods/chat.getPermalink), or to the channel when there is no ts."""
    if not ts:
        return f"https://slack.com/app_redirect?channel={channel}"
    return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"


def reminder_message(desk: Desk, run: ChecklistRun, trader_id: str) -> tuple[str, Blocks]:
    """The reminder DM: answer right here (the same buttons as the channel message, the same
    stored answer and roster), or open the checklist in the channel."""
    closes = local_time(run.deadline_at, desk)
    text = f"⏰ The {desk.name} checklist closes at {closes}. Answer it here or in <#{run.channel_id}>."
    link = message_link(run.channel_id, run.message_ts)
    blocks: Blocks = [
        section(f"⏰ The *{desk.name}* checklist closes at *{closes}*. Answer here, or <{link}|open the checklist>."),
        answer_buttons(run, block_id=Block.REMINDER_ACTIONS),
        context_block("Never type IBKR passwords or one-time codes in Slack."),
    ]
    return text, blocks


def resolve_modal(esc: Escalation, desk: Desk, names: Names) -> dict[str, Any]:
    note = {
        "type": "plain_text_input",
        "multiline": True,
        "max_length": NOTE_LIMIT,
        "placeholder": plain("e.g. registered an authenticator app as second device"),
    }
    blocks: Blocks = [
        context_block(f"{kind_title(esc.kind)} · {about(esc, names)} · desk *{desk.name}*"),
        input_block(
            Block.RESOLUTION_NOTE, "What was done?", note, hint=f"A short note, at most {NOTE_LIMIT} characters."
        ),
    ]
    metadata = json.dumps({"escalation_id": esc.id})
    return modal(Callback.RESOLVE_MODAL, "Resolve escalation", blocks, submit="Resolve", metadata=metadata)


def item_line(esc: Escalation, desk: Desk, names: Names, *, with_trader: bool) -> str:
    since = local_datetime(esc.opened_at, desk)
    who = f"{about(esc, names)} · " if with_trader or esc.desk_wide else ""
    state = (
        esc.state
        if esc.state != EscalationState.ACKNOWLEDGED
        else f"acknowledged by {escape(names(esc.acknowledged_by))}"
    )
    return f"• {who}{kind_title(esc.kind)} · {desk.name} · since {since} · {state} · level {esc.level}"


def manager_escalations_text(
    items: Sequence[tuple[Escalation, Desk]], managed: int, names: Names, *, chars: int = MESSAGE_CHARS
) -> str:
    if managed == 0:
        return "You don't manage any desk, so there are no escalations for you."
    if not items:
        return "✅ No open escalations on your desks."
    head = f"*Open escalations* ({len(items)})"
    lines = [item_line(e, d, names, with_trader=True) for e, d in items]
    return "\n".join(pack([Group(head, lines, "{n} more open escalations")], chars=chars, sections=100))


def own_escalations_text(items: Sequence[tuple[Escalation, Desk]], names: Names) -> str:
    """Appended to a trader's own /ibstatus; empty when none is open."""
    if not items:
        return ""
    return "\n".join(["*Open escalations about you*", *(item_line(e, d, names, with_trader=False) for e, d in items)])


def desk_escalations_text(items: Sequence[tuple[Escalation, Desk]]) -> str:
    """Appended to /ibstatus desk: open escalations about the desk itself (a morning that could
    not be posted); empty when none."""
    if not items:
        return ""
    names = Names({})  # about the desk itself: no person to name
    return "\n".join(
        ["*Open escalations about the desk*", *(item_line(e, d, names, with_trader=False) for e, d in items)]
    )


def when_utc(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%SZ") if at else "-"
