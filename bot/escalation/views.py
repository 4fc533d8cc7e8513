"""Block Kit and text for escalations: pure functions, domain objects in, blocks out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.checklist.models import ChecklistRun
from bot.desks.models import Desk
from bot.escalation.labels import KIND_WHY, NOTE_LIMIT, kind_title
from bot.escalation.models import Escalation, EscalationKind, EscalationState
from bot.slack.blocks import escape, local_datetime, local_time, md, plain
from bot.slack.ids import FIELD, Action, Block, Callback

Blocks = list[dict[str, Any]]


def state_line(esc: Escalation, desk: Desk) -> str:
    level = f" · level {esc.level}" if esc.level > 1 else ""
    if esc.state == EscalationState.RESOLVED and esc.resolved_at is not None:
        by = f"by <@{esc.resolved_by}>" if esc.resolved_by else "automatically"
        line = f"✅ *Resolved* {by} at {local_datetime(esc.resolved_at, desk)}{level}"
        if esc.resolution_note:
            line += f"\n> {escape(esc.resolution_note)}"
        return line
    if esc.state == EscalationState.ACKNOWLEDGED and esc.acknowledged_at is not None:
        return f"👀 *Acknowledged* by <@{esc.acknowledged_by}> at {local_datetime(esc.acknowledged_at, desk)}{level}"
    return f"⏳ *Open*{level} — waiting for a manager to acknowledge"


def escalation_text(esc: Escalation, desk: Desk) -> str:
    return f"{kind_title(esc.kind)}: <@{esc.trader_id}> on {desk.name} — {esc.state}"


def escalation_message(esc: Escalation, desk: Desk) -> tuple[str, Blocks]:
    """The manager DM: who, what, since when, the trader's own report, state and buttons."""
    since = local_datetime(esc.opened_at, desk)
    lines = [
        f"*{kind_title(esc.kind)}* · <@{esc.trader_id}> · desk *{desk.name}*",
        KIND_WHY.get(EscalationKind(esc.kind), ""),
        f"Since {since}.",
    ]
    if esc.detail:
        lines.append(
            f"{'Their report' if esc.run_id is not None else 'From the readiness profile'}: {escape(esc.detail)}"
        )
    blocks: Blocks = [
        {"type": "section", "block_id": Block.ESCALATION_SUMMARY, "text": md("\n".join(lines))},
        {"type": "context", "elements": [md(state_line(esc, desk))]},
    ]
    buttons: list[dict[str, Any]] = []
    if esc.state == EscalationState.OPEN:
        buttons.append(
            {
                "type": "button",
                "action_id": Action.ESCALATION_ACK,
                "text": plain("Acknowledge"),
                "style": "primary",
                "value": str(esc.id),
            }
        )
    if esc.state in (EscalationState.OPEN, EscalationState.ACKNOWLEDGED):
        buttons.append(
            {"type": "button", "action_id": Action.ESCALATION_RESOLVE, "text": plain("Resolve"), "value": str(esc.id)}
        )
    if buttons:
        blocks.append({"type": "actions", "block_id": Block.ESCALATION_ACTIONS, "elements": buttons})
    return escalation_text(esc, desk), blocks


def level2_message(esc: Escalation, desk: Desk, managers: Sequence[str], timeout_minutes: int) -> tuple[str, Blocks]:
    """The post to the desk's escalation channel when nobody acknowledged in time."""
    who = " ".join(f"<@{m}>" for m in managers)
    head = (
        f"🚨 *Level 2* · {kind_title(esc.kind)} · <@{esc.trader_id}> · desk *{desk.name}* — "
        f"not acknowledged within {timeout_minutes} min. Managers: {who}"
    )
    detail = f"\nTheir report: {escape(esc.detail)}" if esc.detail else ""
    blocks: Blocks = [
        {"type": "section", "text": md(head + detail)},
        {"type": "context", "elements": [md(state_line(esc, desk))]},
    ]
    return f"Level 2: {escalation_text(esc, desk)}", blocks


def reminder_message(desk: Desk, run: ChecklistRun, trader_id: str) -> tuple[str, Blocks]:
    closes = local_time(run.deadline_at, desk)
    text = f"⏰ The {desk.name} checklist closes at {closes}. Please answer it in <#{run.channel_id}>."
    return text, [{"type": "section", "text": md(text)}]


def resolve_modal(esc: Escalation, desk: Desk) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": Callback.RESOLVE_MODAL,
        "private_metadata": json.dumps({"escalation_id": esc.id}),
        "title": plain("Resolve escalation"),
        "submit": plain("Resolve"),
        "close": plain("Cancel"),
        "blocks": [
            {
                "type": "context",
                "elements": [md(f"{kind_title(esc.kind)} · <@{esc.trader_id}> · desk *{desk.name}*")],
            },
            {
                "type": "input",
                "block_id": Block.RESOLUTION_NOTE,
                "label": plain("What was done?"),
                "optional": False,
                "element": {
                    "type": "plain_text_input",
                    "action_id": FIELD,
                    "multiline": True,
                    "max_length": NOTE_LIMIT,
                    "placeholder": plain("e.g. registered an authenticator app as second device"),
                },
                "hint": plain(f"A short note, at most {NOTE_LIMIT} characters."),
            },
        ],
    }


def _item(esc: Escalation, desk: Desk, *, with_trader: bool) -> str:
    since = local_datetime(esc.opened_at, desk)
    who = f"<@{esc.trader_id}> · " if with_trader else ""
    state = esc.state if esc.state != EscalationState.ACKNOWLEDGED else f"acknowledged by <@{esc.acknowledged_by}>"
    return f"• {who}{kind_title(esc.kind)} · {desk.name} · since {since} · {state} · level {esc.level}"


def manager_escalations_text(items: Sequence[tuple[Escalation, Desk]], managed: int) -> str:
    if managed == 0:
        return "You don't manage any desk, so there are no escalations for you."
    if not items:
        return "✅ No open escalations on your desks."
    return "\n".join([f"*Open escalations* ({len(items)})", *(_item(e, d, with_trader=True) for e, d in items)])


def own_escalations_text(items: Sequence[tuple[Escalation, Desk]]) -> str:
    """Appended to a trader's own /ibstatus; empty when none is open."""
    if not items:
        return ""
    return "\n".join(["*Open escalations about you*", *(_item(e, d, with_trader=False) for e, d in items)])


def when_utc(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%SZ") if at else "-"
