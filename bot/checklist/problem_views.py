"""The problem-report modal: a trader's report of what failed this morning, redrawn with the
fields that apply as checks are ticked. A pure builder."""

from __future__ import annotations

import json
from typing import Any

from bot.checklist.facts import TraderFacts
from bot.checklist.labels import (
    CHECK_LABEL,
    GAP_CHOICES,
    GAP_HINT,
    LAYER_LABEL,
    PERMISSION_GAP_LABEL,
    PLATFORM_CHOICES,
)
from bot.checklist.models import Check, ChecklistRun, ContingencyGap
from bot.checklist.quick import QUICK_LABEL, QuickProblem
from bot.desks.models import Desk
from bot.slack.blocks import (
    SECTION_TEXT,
    Blocks,
    button,
    checkboxes,
    context_block,
    cut,
    input_block,
    modal,
    notice_modal,
    options,
    plain,
    section,
    select,
)
from bot.slack.ids import Action, Block, Callback

# The one-click reports' buttons (the checklist message, the reminder DM, App Home, replies).
QUICK_ACTION = {
    QuickProblem.CANT_LOG_IN: Action.QUICK_CANT_LOG_IN,
    QuickProblem.PERMISSION_MISSING: Action.QUICK_PERMISSION_MISSING,
    QuickProblem.NO_BACKUP: Action.QUICK_NO_BACKUP,
}

# The backup-second-factor choices: not asked of a trader whose readiness profile shows a
# verified backup (bot.checklist.facts).
BACKUP_GAPS = frozenset({ContingencyGap.NO_BACKUP_FACTOR, ContingencyGap.SMS_ONLY})


def problem_modal(
    run: ChecklistRun,
    desk: Desk,
    *,
    channel_id: str | None,
    failed: frozenset[Check] = frozenset(),
    facts: TraderFacts | None = None,
) -> dict[str, Any]:
    """The problem report. Only what applies is shown: ticking a check dispatches an action
    and the modal is redrawn (``views.update``) with that check's fields, which are then
    required; Slack keeps what was typed in blocks whose block_id and action_id stay. A
    trader whose readiness profile shows a verified backup is not asked to re-declare their
    recovery path: only the other contingency choices are offered."""
    backup = facts.verified_backup if facts is not None else None
    gaps = {g: label for g, label in GAP_CHOICES.items() if not (backup and g in BACKUP_GAPS)}
    intro = f"*{desk.name}* · {run.trading_date:%a %d %b}. Never enter IBKR passwords or one-time codes here."
    if backup:
        intro += f"\nYour readiness profile shows a verified backup ({backup}): you're not asked about it again."
    ticked = checkboxes(options(CHECK_LABEL), (c.value for c in failed))
    blocks: Blocks = [
        context_block(intro),
        {**input_block(Block.FAILED, "Which checks failed?", ticked), "dispatch_action": True},
    ]
    if Check.AUTHENTICATION in failed:
        layers = {"type": "radio_buttons", "options": options(LAYER_LABEL)}
        blocks.append(input_block(Block.AUTH_LAYER, "Authentication: which layer?", layers))
    if failed & {Check.AUTHENTICATION, Check.PERMISSIONS}:
        blocks.append(
            input_block(
                Block.PLATFORM,
                "Platform",
                select(options(PLATFORM_CHOICES)),
                hint="The platform you'll trade on. One login does not mean the same access everywhere.",
            )
        )
    if Check.PERMISSIONS in failed:
        missing = {"type": "plain_text_input", "max_length": 500, "placeholder": plain("e.g. ES futures, LSE")}
        blocks += [
            input_block(
                Block.PERMISSION_GAPS, "Permissions: what is missing?", checkboxes(options(PERMISSION_GAP_LABEL))
            ),
            input_block(Block.MISSING_PERMISSIONS, "Permissions: instruments or markets", missing),
        ]
    if Check.CONTINGENCY in failed:
        blocks.append(
            input_block(Block.GAPS, "Contingency: what is missing?", checkboxes(options(gaps)), hint=GAP_HINT)
        )
    blocks.append(
        input_block(
            Block.NOTE,
            "Note",
            {"type": "plain_text_input", "multiline": True, "max_length": 500},
            optional=True,
            hint="At most 500 characters. No passwords or one-time codes: the bot never needs them.",
        )
    )
    metadata = json.dumps({"run_id": run.id, "channel_id": channel_id})
    return modal(Callback.REPORT_MODAL, "Report a problem", blocks, submit="Submit", metadata=metadata)


# --- replies without a modal: after a one-click report, and when the modal can't open ----------

MODAL_FALLBACK = (
    "⚠️ Slack couldn't open the report form just now (it is very busy). You don't need it: report in one "
    "click below — you're recorded at once — and add the details later."
)


def report_recorded(guidance: str) -> dict[str, Any]:
    """What the report modal turns into once the report is stored: the guidance."""
    return notice_modal("Report recorded", guidance)


def details_reply(run: ChecklistRun, text: str) -> Blocks:
    """The guidance after a one-click report, with *Add details* (the full modal: its report
    replaces the one-click one as a new version)."""
    return [
        section(cut(text, SECTION_TEXT)),
        {
            "type": "actions",
            "block_id": Block.QUICK_REPLY,
            "elements": [button("📝 Add details", Action.REPORT_PROBLEM, str(run.id))],
        },
    ]


def modal_fallback(run_id: int) -> Blocks:
    """What a trader whose report form couldn't open gets instead: the one-click reports, and
    the form again."""
    return [
        section(MODAL_FALLBACK),
        {
            "type": "actions",
            "block_id": Block.QUICK_REPLY,
            "elements": [
                *(button(QUICK_LABEL[kind], action, str(run_id)) for kind, action in QUICK_ACTION.items()),
                button("⚠️ Try the form again", Action.REPORT_PROBLEM, str(run_id)),
            ],
        },
    ]
