"""Block Kit builders: domain objects in, blocks out. Pure functions, no I/O."""

from __future__ import annotations

import json
from typing import Any

from bot.checklist.facts import TraderFacts
from bot.checklist.labels import CHECK_LABEL, GAP_LABEL, LAYER_LABEL, PLATFORM_LABEL, problem_summary
from bot.checklist.models import Answer, AnswerStatus, AuthLayer, Check, ChecklistRun, ContingencyGap
from bot.checklist.service import Roster, TraderState
from bot.checklist.status import DeskStatus, TraderStatus
from bot.desks.models import Desk
from bot.slack.blocks import Blocks, context_block, escape, local_datetime, local_time, plain, section
from bot.slack.ids import FIELD, Action, Block, Callback

STATE_ICON = {TraderState.READY: "✅", TraderState.RESTRICTED: "🚫", TraderState.PENDING: "⏳"}
CHECK_QUESTION = {
    Check.AUTHENTICATION: "Can you complete login *and* MFA from your primary device?",
    Check.PERMISSIONS: "Is everything you'll trade today approved and enabled on the platform you'll use?",
    Check.CONTINGENCY: "Do you have a recovery path (second MFA device or recovery code) *and* a secondary interface?",
}


def weekly_login_done(answer: Answer | None) -> bool:
    """On the week's first trading day, a stored answer whose authentication check passed
    confirms the weekly full login (see ``weekly_login_text``)."""
    return answer is not None and Check.AUTHENTICATION not in answer.checks


def _facts_suffix(answer: Answer | None, facts: TraderFacts | None) -> str:
    if facts is None:
        return ""
    bits = []
    if facts.weekly_login:
        bits.append("🔁 weekly login done" if weekly_login_done(answer) else "🔁 weekly login due")
    if facts.recovery_gap:
        bits.append(facts.recovery_gap)
    return "".join(f" · {b}" for b in bits)


def _roster_line(
    user_id: str, state: TraderState, answer: Answer | None, desk: Desk, facts: TraderFacts | None = None
) -> str:
    line = f"{STATE_ICON[state]} <@{user_id}>"
    extra = _facts_suffix(answer, facts)
    if answer is None:
        return line + " — pending" + extra
    when = local_time(answer.created_at, desk)
    if state is TraderState.READY:
        return line + f" — ready ({when})" + extra
    return line + f" — restricted today · ⚠️ {escape(problem_summary(answer))} ({when})" + extra


def roster_summary(roster: Roster) -> str:
    deadline = local_time(roster.run.deadline_at, roster.desk)
    return (
        f"*Roster* — ✅ {roster.count(TraderState.READY)} ready · 🚫 {roster.count(TraderState.RESTRICTED)} "
        f"restricted · ⏳ {roster.count(TraderState.PENDING)} pending · deadline {deadline}"
    )


def roster_lines(roster: Roster) -> list[str]:
    return [
        _roster_line(e.user_id, e.state, e.answer, roster.desk, roster.facts.get(e.user_id)) for e in roster.entries
    ]


WEEKLY_LOGIN_NAMES = 30


def weekly_login_text(roster: Roster) -> str | None:
    """The Monday re-login guard (the week's first trading day: Tuesday after a Monday holiday).
    IBKR invalidates the auto-restart tokens "each Sunday at 1:00 am ET", after which TWS and IBKR
    Desktop "require manual authentication" (https://ibkrguides.com/traderworkstation/
    auto-restart-considerations.htm; docs/broker-facts.md §3)."""
    due = [e.user_id for e in roster.entries if (f := roster.facts.get(e.user_id)) is not None and f.weekly_login]
    if not due:
        return None
    names = ", ".join(f"<@{u}>" for u in due[:WEEKLY_LOGIN_NAMES])
    if len(due) > WEEKLY_LOGIN_NAMES:
        names += f" and {len(due) - WEEKLY_LOGIN_NAMES} more (see the roster)"
    return (
        "🔁 *Weekly login* — first trading day of the week: IBKR invalidated the auto-restart tokens of TWS, "
        "IB Gateway and IBKR Desktop on Sunday at 01:00 ET, so a full manual login with your second factor is "
        f"due. {names}: confirming *Authentication* today means you have done it."
    )


def checklist_message(roster: Roster) -> tuple[str, Blocks]:
    """The channel message: the three checks, the two buttons and the live roster."""
    desk, run = roster.desk, roster.run
    day = f"{run.trading_date:%a %d %b %Y}"
    close = local_time(run.market_close_at, desk)
    early = f" · ⏰ *early close* {close}" if run.early_close else ""
    ready, restricted, pending = (
        roster.count(TraderState.READY),
        roster.count(TraderState.RESTRICTED),
        roster.count(TraderState.PENDING),
    )
    text = f"Pre-market checklist for {desk.name}, {day}: {ready} ready, {restricted} restricted, {pending} pending"
    checks = "\n".join(f"*{i}. {CHECK_LABEL[c]}* — {CHECK_QUESTION[c]}" for i, c in enumerate(Check, start=1))
    deadline = local_time(run.deadline_at, desk)
    weekly = weekly_login_text(roster)
    backed = any(f.verified_backup for f in roster.facts.values())
    blocks: Blocks = [
        {"type": "header", "text": plain(f"Pre-market checklist · {desk.name} · {day}")},
        section(checks),
        *([section(weekly)] if weekly else []),
        *(
            [context_block("Traders whose readiness profile shows a verified backup aren't asked about it again.")]
            if backed
            else []
        ),
        context_block(f"Answer by *{deadline}*{early}. Never type IBKR passwords or one-time codes in Slack."),
        {
            "type": "actions",
            "block_id": Block.ACTIONS,
            "elements": [
                {
                    "type": "button",
                    "action_id": Action.CONFIRM_ALL,
                    "text": plain("✅ All three confirmed"),
                    "style": "primary",
                    "value": str(run.id),
                },
                {
                    "type": "button",
                    "action_id": Action.REPORT_PROBLEM,
                    "text": plain("⚠️ Report a problem"),
                    "value": str(run.id),
                },
            ],
        },
        {"type": "divider"},
        section(roster_summary(roster), block_id=Block.ROSTER),
    ]
    # A section's text is limited to 3,000 characters: split long rosters into chunks.
    chunk: list[str] = []
    for line in roster_lines(roster):
        if sum(len(x) + 1 for x in chunk) + len(line) > 2900:
            blocks.append(section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(section("\n".join(chunk)))
    return text, blocks


# --- report modal ----------------------------------------------------------------------


def _options(labels: dict[Any, str]) -> list[dict[str, Any]]:
    return [{"text": plain(label), "value": key.value} for key, label in labels.items()]


def _input(block_id: str, label: str, element: dict[str, Any], *, optional: bool, hint: str = "") -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": plain(label),
        "optional": optional,
        "element": {**element, "action_id": FIELD},
    }
    if hint:
        block["hint"] = plain(hint)
    return block


RECOVERY_GAPS = frozenset({ContingencyGap.SECOND_MFA_DEVICE, ContingencyGap.RECOVERY_CODE})


def report_modal(
    run: ChecklistRun, desk: Desk, *, channel_id: str | None, facts: TraderFacts | None = None
) -> dict[str, Any]:
    """The problem report. A trader whose readiness profile shows a verified backup is not asked
    to re-declare their recovery path: only the other contingency choices are offered."""
    backup = facts.verified_backup if facts is not None else None
    gaps = {g: label for g, label in GAP_LABEL.items() if not (backup and g in RECOVERY_GAPS)}
    intro = f"*{desk.name}* · {run.trading_date:%a %d %b}. Never enter IBKR passwords or one-time codes here."
    if backup:
        intro += f"\nYour readiness profile shows a verified backup ({backup}): you're not asked about it again."
    return {
        "type": "modal",
        "callback_id": Callback.REPORT_MODAL,
        "private_metadata": json.dumps({"run_id": run.id, "channel_id": channel_id}),
        "title": plain("Report a problem"),
        "submit": plain("Submit"),
        "close": plain("Cancel"),
        "blocks": [
            context_block(intro),
            _input(
                Block.FAILED,
                "Which checks failed?",
                {"type": "checkboxes", "options": _options(CHECK_LABEL)},
                optional=False,
            ),
            _input(
                Block.AUTH_LAYER,
                "Authentication: which layer?",
                {"type": "radio_buttons", "options": _options(LAYER_LABEL)},
                optional=True,
                hint="Only when authentication failed.",
            ),
            _input(
                Block.PLATFORM,
                "Platform",
                {
                    "type": "static_select",
                    "placeholder": plain("Pick one"),
                    "options": _options(PLATFORM_LABEL),
                },
                optional=True,
                hint="The platform you'll trade on (needed for authentication and permissions).",
            ),
            _input(
                Block.MISSING_PERMISSIONS,
                "Permissions: instruments or markets missing",
                {
                    "type": "plain_text_input",
                    "max_length": 500,
                    "placeholder": plain("e.g. ES futures, LSE"),
                },
                optional=True,
            ),
            _input(
                Block.GAPS,
                "Contingency: what is missing?",
                {"type": "checkboxes", "options": _options(gaps)},
                optional=True,
            ),
            _input(
                Block.NOTE,
                "Note",
                {"type": "plain_text_input", "multiline": True, "max_length": 500},
                optional=True,
                hint="At most 500 characters.",
            ),
        ],
    }


# --- guidance after an answer -------------------------------------------------------

GUIDANCE = {
    AuthLayer.IDENTITY: "*Identity* (password rejected, username locked): reset your password through IBKR's "
    "password reset or call IBKR. Don't trade until it is solved.",
    AuthLayer.DEVICE_TRUST: "*Device trust* (MFA prompt fails, phone lost, IB Key moved): use your backup device "
    "or recovery code. Without one, call IBKR support by phone — identity checks, expect delays; a temporary "
    "passcode gives 2 days of full access, then 10 days of Client Portal only.",
    AuthLayer.PLATFORM: "*Platform or session*: try your secondary interface, close competing sessions (one "
    "brokerage session per username), and remember TWS / IBKR Desktop need a manual login once a week "
    "(tokens are invalidated Sunday 01:00 ET).",
}
PERMISSIONS_GUIDANCE = (
    "*Authorization* (product or exchange not permitted, market data missing): request the permission in "
    "Client Portal; approvals can take up to ~48h. Avoid those trades today."
)
GAP_GUIDANCE = {
    ContingencyGap.SECOND_MFA_DEVICE: "register a second MFA device (an authenticator app or Digital Security "
    "Card+; IB Key lives on one phone only)",
    ContingencyGap.RECOVERY_CODE: "get a recovery code and keep it somewhere you can reach without your phone",
    ContingencyGap.SECONDARY_INTERFACE: "set up a second interface (e.g. Client Portal in a browser if you "
    "trade on TWS)",
}


def guidance(answer: Answer) -> str:
    if answer.status == AnswerStatus.CONFIRMED:
        if answer.version > 1:
            return "✅ Thanks — your restriction is cleared: you're marked *ready* for today."
        return "✅ Thanks — you're marked *ready* for today."
    lines = ["🚫 You're marked *restricted today*: trade with lower ambition until it's fixed."]
    if Check.AUTHENTICATION in answer.checks and answer.auth_layer:
        lines.append("• " + GUIDANCE[AuthLayer(answer.auth_layer)])
    if Check.PERMISSIONS in answer.checks:
        lines.append("• " + PERMISSIONS_GUIDANCE)
    if answer.gaps:
        lines.append("• *Contingency*: " + "; ".join(GAP_GUIDANCE[g] for g in answer.gaps) + ".")
    if answer.missing_recovery_path:
        lines.append("Losing your only MFA device can lock you out for days: your managers are being told.")
    lines.append("Fixed it? Press *All three confirmed* on the checklist to clear the restriction.")
    return "\n".join(lines)


# --- /ibstatus --------------------------------------------------------------------------

USAGE = (
    "*`/ibstatus`* — your status today and the next checklist time\n"
    "*`/ibstatus desk [NAME]`* — today's roster of a desk you belong to\n"
    "*`/ibstatus @user`* — one trader's status (managers of that trader's desk)\n"
    "*`/ibstatus escalations`* — open escalations on the desks you manage\n"
    "*`/ibstatus week [2026-W48] [DESK]`* — the weekly readiness summary (managers; default: this week)\n"
    "*`/ibstatus help`* — this help"
)


def status_word(state: TraderState, answer: Answer | None) -> str:
    if answer is None:
        return f"{STATE_ICON[state]} pending"
    if state is TraderState.READY:
        return f"{STATE_ICON[state]} ready"
    return f"{STATE_ICON[state]} restricted today — ⚠️ {escape(problem_summary(answer))}"


def roster_text(roster: Roster) -> str:
    head = f"*{roster.desk.name}* · {roster.run.trading_date:%a %d %b %Y}"
    return "\n".join([head, roster_summary(roster), *roster_lines(roster)])


def _status_line(item: TraderStatus) -> str:
    desk = item.desk
    nxt = local_datetime(item.next_post, desk)
    if item.entry is None:
        return f"*{desk.name}*: today's checklist isn't posted yet · next checklist {nxt}"
    return f"*{desk.name}*: {status_word(item.entry.state, item.entry.answer)} · next checklist {nxt}"


def own_status_text(items: list[TraderStatus]) -> str:
    if not items:
        return "You're not a trader on any desk, so there's no checklist for you.\n\n" + USAGE
    return "\n".join(_status_line(item) for item in items)


def desk_status_text(item: DeskStatus) -> str:
    if item.roster is None:
        nxt = local_datetime(item.next_post, item.desk)
        return f"*{item.desk.name}*: today's checklist isn't posted yet. Next checklist {nxt}."
    return roster_text(item.roster)


def trader_status_text(items: list[TraderStatus], trader_id: str) -> str:
    return "\n".join(f"<@{trader_id}> — " + _status_line(item) for item in items)


def home_view(items: list[TraderStatus]) -> dict[str, Any]:
    """App Home: the user's desks and today's status, and how to use /ibstatus."""
    blocks: Blocks = [{"type": "header", "text": plain("IB Preflight")}]
    if items:
        blocks.append(section("\n".join(_status_line(item) for item in items)))
    else:
        blocks.append(section("You're not a trader on any desk. Ask your desk head to add you."))
    blocks += [{"type": "divider"}, section(USAGE)]
    return {"type": "home", "blocks": blocks}
