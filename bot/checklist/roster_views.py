"""Block Kit builders: domain objects in, blocks out. Pure functions, no I/O."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, overload

from bot.checklist.facts import TraderFacts
from bot.checklist.labels import (
    CHECK_LABEL,
    GAP_CHOICES,
    GAP_HINT,
    LAYER_LABEL,
    PERMISSION_GAP_LABEL,
    PLATFORM_CHOICES,
    problem_summary,
)
from bot.checklist.models import (
    Answer,
    AnswerStatus,
    AuthLayer,
    Check,
    ChecklistRun,
    ContingencyGap,
    PermissionGap,
)
from bot.checklist.service import Roster, RosterEntry, TraderState
from bot.checklist.status import DeskStatus, TraderStatus
from bot.desks.models import Desk
from bot.people.service import Names
from bot.slack.blocks import (
    HEADER_TEXT,
    MESSAGE_BLOCKS,
    MESSAGE_CHARS,
    Blocks,
    Group,
    Packed,
    context_block,
    cut,
    escape,
    local_datetime,
    local_time,
    pack,
    plain,
    section,
    text_size,
)
from bot.slack.ids import FIELD, Action, Block, Callback

STATE_ICON = {
    TraderState.READY: "✅",
    TraderState.RESTRICTED: "🚫",
    TraderState.PENDING: "⏳",
    TraderState.AWAY: "🌴",
}
CHECK_QUESTION = {
    Check.AUTHENTICATION: "Can you complete login *and* the second factor from your primary device?",
    Check.PERMISSIONS: "Are the trading permissions and market-data subscriptions for everything you'll trade "
    "today in place, on the platform you'll use?",
    Check.CONTINGENCY: "Do you have a recovery path — a second active second-factor method besides your primary "
    "one (an authenticator app, a Digital Security Card+, or IB Key if your primary is something else) — *and* a "
    "secondary interface?",
}
PROBLEM_CUT = 160  # a problem summary in a roster line (the full one is in the export)


def _problem(answer: Answer) -> str:
    return escape(cut(problem_summary(answer), PROBLEM_CUT))


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


def _roster_line(entry: RosterEntry, names: Names, desk: Desk, facts: TraderFacts | None = None) -> str:
    """One trader's line: the name is plain text (escaped), never a mention: the roster pings nobody."""
    line = f"{STATE_ICON[entry.state]} {escape(names(entry.user_id))}"
    answer = entry.answer
    if entry.state is TraderState.AWAY:
        return line + " — away"
    extra = _facts_suffix(answer, facts)
    if answer is None:
        return line + " — pending" + extra
    when = local_time(answer.created_at, desk)
    if entry.state is TraderState.READY:
        return line + f" — ready ({when})" + extra
    return line + f" — restricted today · ⚠️ {_problem(answer)} ({when})" + extra


class RosterMemo:
    """Rendered pieces of one roster *generation* — the same desk, trader list, names, away days
    and facts — kept between renders so that a re-render is mostly dictionary look-ups and
    joins. A piece that depends on an answer is keyed by the answer's id (answers are
    immutable versions), so a new answer redraws only its trader's pieces. Whoever owns the
    memo makes a new one when the generation changes (``bot.checklist.live``); builders given
    no memo render everything, with the same result."""

    def __init__(self) -> None:
        self._pieces: dict[tuple[str, str], tuple[object, str]] = {}
        self.order: list[int] | None = None  # entry positions sorted by name (``roster_groups``)

    def piece(self, kind: str, entry: RosterEntry, make: Callable[[], str]) -> str:
        answer = entry.answer
        if answer is not None and answer.id is None:  # not a stored version: nothing to key it by
            return make()
        key = (kind, entry.user_id)
        sig = (entry.state, answer.id if answer is not None else None)
        hit = self._pieces.get(key)
        if hit is not None and hit[0] == sig:
            return hit[1]
        text = make()
        self._pieces[key] = (sig, text)
        return text


def _piece(memo: RosterMemo | None, kind: str, entry: RosterEntry, make: Callable[[], str]) -> str:
    return make() if memo is None else memo.piece(kind, entry, make)


def state_counts(roster: Roster) -> Counter[TraderState]:
    """How many traders are in each state (one pass over the roster)."""
    return Counter(e.state for e in roster.entries)


def roster_summary(roster: Roster, counts: Mapping[TraderState, int] | None = None) -> str:
    counts = state_counts(roster) if counts is None else counts
    deadline = local_time(roster.run.deadline_at, roster.desk)
    away = counts.get(TraderState.AWAY, 0)
    return (
        f"*Roster* — ✅ {counts.get(TraderState.READY, 0)} ready · 🚫 {counts.get(TraderState.RESTRICTED, 0)} "
        f"restricted · ⏳ {counts.get(TraderState.PENDING, 0)} pending"
        + (f" · 🌴 {away} away" if away else "")
        + f" · deadline {deadline}"
    )


def roster_lines(roster: Roster, memo: RosterMemo | None = None) -> list[str]:
    return list(_Lines(roster.entries, _line_maker(roster, memo)))


def _line_maker(roster: Roster, memo: RosterMemo | None) -> Callable[[RosterEntry], str]:
    names, desk, facts = roster.names, roster.desk, roster.facts

    def line(e: RosterEntry) -> str:
        return _piece(memo, "line", e, lambda: _roster_line(e, names, desk, facts.get(e.user_id)))

    return line


class _Lines(Sequence[str]):
    """Entries drawn as text only when read: ``pack`` reads those that fit, then counts."""

    def __init__(self, entries: Sequence[RosterEntry], draw: Callable[[RosterEntry], str]) -> None:
        self._entries = entries
        self._draw = draw

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self._draw(e) for e in self._entries[i]]
        return self._draw(self._entries[i])

    def __iter__(self) -> Iterator[str]:
        return map(self._draw, self._entries)


WEEKLY_LOGIN_NAMES = 30


def weekly_login_text(roster: Roster) -> str | None:
    """The Monday re-login guard (the week's first trading day: Tuesday after a Monday holiday).
    IBKR invalidates the auto-restart tokens "each Sunday at 1:00 am ET", after which TWS and IBKR
    Desktop "require manual authentication" (https://ibkrguides.com/traderworkstation/
    auto-restart-considerations.htm; docs/broker-facts.md §3)."""
    due = [e.user_id for e in roster.entries if (f := roster.facts.get(e.user_id)) is not None and f.weekly_login]
    if not due:
        return None
    names = ", ".join(escape(roster.names(u)) for u in due[:WEEKLY_LOGIN_NAMES])
    if len(due) > WEEKLY_LOGIN_NAMES:
        names += f" and {len(due) - WEEKLY_LOGIN_NAMES} more (see the roster)"
    return (
        "🔁 *Weekly login* — first trading day of the week: IBKR invalidated the auto-restart tokens of TWS, "
        "IB Gateway and IBKR Desktop on Sunday at 01:00 ET, so a full manual login with your second factor is "
        f"due. {names}: confirming *Authentication* today means you have done it."
    )


_NO_ANSWER = frozenset({TraderState.PENDING, TraderState.AWAY})  # listed without an answer


def roster_groups(roster: Roster, memo: RosterMemo | None = None) -> list[Group]:
    """The roster for a large desk: problems first (one line each), then who is pending, ready
    and away as lists of names; what doesn't fit is counted."""
    names, desk, entries = roster.names, roster.desk, roster.entries
    if memo is None or memo.order is None or len(memo.order) != len(entries):
        order = sorted(range(len(entries)), key=lambda i: names.sort_key(entries[i].user_id))
        if memo is not None:
            memo.order = order
    else:
        order = memo.order
    by_name = [entries[i] for i in order]

    def of(state: TraderState) -> list[RosterEntry]:
        return [e for e in by_name if e.state is state and (e.answer is not None or state in _NO_ANSWER)]

    def name(e: RosterEntry) -> str:
        return _piece(memo, "name", e, lambda: escape(names(e.user_id)))

    def problem(e: RosterEntry) -> str:
        assert e.answer is not None
        answer = e.answer
        return _piece(memo, "problem", e, lambda: f"🚫 {escape(names(e.user_id))} — ⚠️ {_problem(answer)}")

    def ready_at(e: RosterEntry) -> str:
        assert e.answer is not None
        answer = e.answer
        return _piece(
            memo,
            "ready",
            e,
            lambda: f"{escape(names(e.user_id))} ({local_time(answer.created_at, desk).split()[0]})",
        )

    restricted = _Lines(of(TraderState.RESTRICTED), problem)
    pending = _Lines(of(TraderState.PENDING), name)
    ready = _Lines(of(TraderState.READY), ready_at)
    away = _Lines(of(TraderState.AWAY), name)
    return [
        Group(f"🚫 *Restricted today* ({len(restricted)})", restricted, "{n} more restricted"),
        Group(f"⏳ *Pending* ({len(pending)})", pending, "{n} more pending", inline=True),
        Group(f"✅ *Ready* ({len(ready)})", ready, "{n} more ready", inline=True),
        Group(f"🌴 *Away* ({len(away)})", away, "{n} more away", inline=True),
    ]


def roster_sections(roster: Roster, *, chars: int, sections: int, memo: RosterMemo | None = None) -> Packed:
    """The roster as section texts within ``chars`` characters and ``sections`` sections: a
    line per trader when the whole desk fits, else grouped (problems first, then counted)."""
    lines = _Lines(roster.entries, _line_maker(roster, memo))
    full = pack([Group("", lines, "{n} more")], chars=chars, sections=sections)
    if not full.hidden:
        return full
    return pack(roster_groups(roster, memo), chars=chars, sections=sections)


def checklist_message(roster: Roster, *, compact: bool = False, memo: RosterMemo | None = None) -> tuple[str, Blocks]:
    """The channel message: the three checks, the two buttons and the live roster, within
    Slack's limits at any desk size (``compact``: counts and the first problems only, for
    when Slack refused the full one). ``memo`` (the roster refresher's) keeps rendered lines
    between renders of one roster; the output is the same with or without it."""
    desk, run = roster.desk, roster.run
    day = f"{run.trading_date:%a %d %b %Y}"
    close = local_time(run.market_close_at, desk)
    early = f" · ⏰ *early close* {close}" if run.early_close else ""
    counts = state_counts(roster)
    ready, restricted, pending = (
        counts.get(TraderState.READY, 0),
        counts.get(TraderState.RESTRICTED, 0),
        counts.get(TraderState.PENDING, 0),
    )
    text = f"Pre-market checklist for {desk.name}, {day}: {ready} ready, {restricted} restricted, {pending} pending"
    checks = "\n".join(f"*{i}. {CHECK_LABEL[c]}* — {CHECK_QUESTION[c]}" for i, c in enumerate(Check, start=1))
    deadline = f"*{local_time(run.deadline_at, desk)}*"
    if run.scheduled_deadline_at is not None and run.deadline_at > run.scheduled_deadline_at:
        deadline += f" (posted late: the usual deadline is {local_time(run.scheduled_deadline_at, desk)})"
    weekly = weekly_login_text(roster)
    backed = any(f.verified_backup for f in roster.facts.values())
    blocks: Blocks = [
        {"type": "header", "text": plain(cut(f"Pre-market checklist · {desk.name} · {day}", HEADER_TEXT))},
        section(checks),
        *([section(weekly)] if weekly else []),
        *(
            [context_block("Traders whose readiness profile shows a verified backup aren't asked about it again.")]
            if backed
            else []
        ),
        context_block(f"Answer by {deadline}{early}. Never type IBKR passwords or one-time codes in Slack."),
        answer_buttons(run),
        {"type": "divider"},
        section(roster_summary(roster, counts), block_id=Block.ROSTER),
    ]
    if compact:
        budget, room = 2500, 2
    else:
        budget, room = MESSAGE_CHARS - text_size(blocks) - 200, MESSAGE_BLOCKS - len(blocks) - 1
    texts = roster_sections(roster, chars=budget, sections=room, memo=memo)
    blocks += [section(t) for t in texts]
    if texts.hidden:
        blocks.append(context_block(f"The whole roster: `/ibstatus desk {desk.name}` or the desk's App Home."))
    return text, blocks


def answer_buttons(run: ChecklistRun, block_id: str = Block.ACTIONS) -> dict[str, Any]:
    """The two answer buttons (the checklist message, the reminder DM and App Home)."""
    return {
        "type": "actions",
        "block_id": block_id,
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
    }


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


def _checkboxes(labels: dict[Any, str], chosen: frozenset[Any] = frozenset()) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "checkboxes", "options": _options(labels)}
    initial = [o for o in element["options"] if o["value"] in {c.value for c in chosen}]
    if initial:
        element["initial_options"] = initial
    return element


# The backup-second-factor choices: not asked of a trader whose readiness profile shows a
# verified backup (bot.checklist.facts).
BACKUP_GAPS = frozenset({ContingencyGap.NO_BACKUP_FACTOR, ContingencyGap.SMS_ONLY})


def report_modal(
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
    blocks: Blocks = [
        context_block(intro),
        {
            **_input(Block.FAILED, "Which checks failed?", _checkboxes(CHECK_LABEL, failed), optional=False),
            "dispatch_action": True,
        },
    ]
    if Check.AUTHENTICATION in failed:
        blocks.append(
            _input(
                Block.AUTH_LAYER,
                "Authentication: which layer?",
                {"type": "radio_buttons", "options": _options(LAYER_LABEL)},
                optional=False,
            )
        )
    if failed & {Check.AUTHENTICATION, Check.PERMISSIONS}:
        blocks.append(
            _input(
                Block.PLATFORM,
                "Platform",
                {"type": "static_select", "placeholder": plain("Pick one"), "options": _options(PLATFORM_CHOICES)},
                optional=False,
                hint="The platform you'll trade on. One login does not mean the same access everywhere.",
            )
        )
    if Check.PERMISSIONS in failed:
        blocks.append(
            _input(
                Block.PERMISSION_GAPS,
                "Permissions: what is missing?",
                _checkboxes(PERMISSION_GAP_LABEL),
                optional=False,
            )
        )
        blocks.append(
            _input(
                Block.MISSING_PERMISSIONS,
                "Permissions: instruments or markets",
                {"type": "plain_text_input", "max_length": 500, "placeholder": plain("e.g. ES futures, LSE")},
                optional=False,
            )
        )
    if Check.CONTINGENCY in failed:
        blocks.append(
            _input(
                Block.GAPS,
                "Contingency: what is missing?",
                _checkboxes(gaps),
                optional=False,
                hint=GAP_HINT,
            )
        )
    blocks.append(
        _input(
            Block.NOTE,
            "Note",
            {"type": "plain_text_input", "multiline": True, "max_length": 500},
            optional=True,
            hint="At most 500 characters. No passwords or one-time codes: the bot never needs them.",
        )
    )
    return {
        "type": "modal",
        "callback_id": Callback.REPORT_MODAL,
        "private_metadata": json.dumps({"run_id": run.id, "channel_id": channel_id}),
        "title": plain("Report a problem"),
        "submit": plain("Submit"),
        "close": plain("Cancel"),
        "blocks": blocks,
    }


# --- guidance after an answer -------------------------------------------------------

# Worded after IBKR's own pages (docs/broker-facts.md): several second-factor methods can be
# active at once and chosen from a drop-down at login [S2]; IB Key moves to a new phone
# without a call if the SMS number is still yours [S6][S7]; otherwise replacement access is
# "via telephone and only after the identity ... has been verbally verified" [S14], and "The
# temporary passcode is intended to provide full access to both Client Portal and trading
# platforms for a period of 2 days ... may be used to access Client Portal for an additional
# period of 10 days" (KB69 [S13], https://ibkb.interactivebrokers.com/article/69); "IBKR will
# not issue consecutive temporary passcodes" [S13]. Permissions are "generally applied within
# 48 hours", market data subscriptions "in real time" [S26].
GUIDANCE = {
    AuthLayer.IDENTITY: "*Identity* (password rejected, username locked): reset your password through IBKR's "
    "password reset or call IBKR. Don't trade until it is solved.",
    AuthLayer.DEVICE_TRUST: "*Device trust* (second-factor prompt fails, phone lost, IB Key moved): log in with "
    "your backup second factor (pick it from the second-factor drop-down at login). New phone and still have your "
    "SMS number? Move IB Key to it in IBKR Mobile. Without a backup, call IBKR Client Services: after identity "
    "checks they give a temporary passcode — 2 days of full access, then 10 days of Client Portal only to print an "
    "online security card; IBKR won't issue two in a row.",
    AuthLayer.PLATFORM: "*Platform or session*: try your secondary interface, close competing sessions (one "
    "brokerage session per username), and remember TWS / IB Gateway / IBKR Desktop need a full login with the "
    "second factor once a week (tokens are invalidated Sunday 01:00 ET).",
}
PERMISSIONS_GUIDANCE = {
    PermissionGap.TRADING: "*Trading permission* (an order rejected for a product or market): request it in Client "
    "Portal; IBKR applies requests generally within 48 hours (allow up to ~2 business days). Avoid those trades "
    "today.",
    PermissionGap.MARKET_DATA: "*Market data* (quotes missing, trading works): subscribe in Client Portal; "
    "subscriptions take effect immediately under normal circumstances.",
}
PERMISSIONS_GUIDANCE_ANY = (
    "*Authorization* (product or exchange not permitted, market data missing): request the trading permission in "
    "Client Portal (generally within 48 hours) or subscribe to the market data (immediate). Avoid those trades today."
)
_NO_BACKUP = (
    "add a backup second factor today — an authenticator app (choose one with cloud backup) or a Digital Security "
    "Card+; IBKR keeps several different methods active at once (IB Key is active on one phone only: a second "
    "phone is a move, not a backup)"
)
GAP_GUIDANCE = {
    ContingencyGap.NO_BACKUP_FACTOR: _NO_BACKUP,
    ContingencyGap.SMS_ONLY: "SMS is temporary at IBKR and exposed to SIM swaps: activate IB Key or an "
    "authenticator app (IBKR then removes SMS) and a second method as your backup",
    ContingencyGap.SECONDARY_INTERFACE: "set up a second interface (e.g. Client Portal in a browser if you "
    "trade on TWS)",
    ContingencyGap.SECOND_MFA_DEVICE: _NO_BACKUP,
    ContingencyGap.RECOVERY_CODE: "IBKR has no recovery codes: your backup is a second active second-factor method",
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
        kinds = answer.permission_kinds
        lines += ["• " + PERMISSIONS_GUIDANCE[k] for k in kinds] or ["• " + PERMISSIONS_GUIDANCE_ANY]
    if answer.gaps:
        lines.append("• *Contingency*: " + "; ".join(GAP_GUIDANCE[g] for g in answer.gaps) + ".")
    if answer.missing_recovery_path:
        lines.append(
            "Without a backup, losing your phone means a call to IBKR and a temporary passcode before you trade "
            "again: your managers are being told."
        )
    lines.append("Fixed it? Press *All three confirmed* on the checklist to clear the restriction.")
    return "\n".join(lines)


# --- /ibstatus --------------------------------------------------------------------------

USAGE = (
    "*`/ibstatus`* — your status today (traders) or your desks' state (managers)\n"
    "*`/ibstatus desk [NAME]`* — today's roster of a desk you belong to\n"
    "*`/ibstatus @user`* — one trader's status (managers of that trader's desk)\n"
    "*`/ibstatus escalations`* — open escalations on the desks you manage\n"
    "*`/ibstatus week [2026-W48] [DESK]`* — the weekly readiness summary (managers; default: this week)\n"
    "*`/ibstatus away 2026-12-01 2026-12-05 [note]`* — you're away (managers: `/ibstatus away @user …`)\n"
    "*`/ibstatus back`* — you're back (ends today's away period)\n"
    "*`/ibstatus setup [DESK]`* — desk settings (the desk's managers, workspace admins)\n"
    "*`/ibstatus help`* — this help"
)
ABOUT = (
    "*IB Preflight* runs the Interactive Brokers pre-market checklist for trading desks: every "
    "trading morning it asks each trader to confirm login and second factor, permissions and a "
    "recovery path, shows the desk a live roster, and tells managers who isn't ready."
)
# An answer to a slash command is a message: keep it well inside what Slack shows.
STATUS_CHARS = MESSAGE_CHARS


def status_word(state: TraderState, answer: Answer | None) -> str:
    if state is TraderState.AWAY:
        return f"{STATE_ICON[state]} away today"
    if answer is None:
        return f"{STATE_ICON[state]} pending"
    if state is TraderState.READY:
        return f"{STATE_ICON[state]} ready"
    return f"{STATE_ICON[state]} restricted today — ⚠️ {_problem(answer)}"


def roster_text(roster: Roster, *, chars: int = STATUS_CHARS) -> str:
    head = f"*{escape(roster.desk.name)}* · {roster.run.trading_date:%a %d %b %Y}\n{roster_summary(roster)}"
    body = roster_sections(roster, chars=chars - len(head) - 10, sections=100)
    return "\n".join([head, *body])


def _status_line(item: TraderStatus) -> str:
    desk = item.desk
    nxt = local_datetime(item.next_post, desk)
    if item.entry is None:
        return f"*{desk.name}*: today's checklist isn't posted yet · next checklist {nxt}"
    return f"*{desk.name}*: {status_word(item.entry.state, item.entry.answer)} · next checklist {nxt}"


def own_status_text(items: list[TraderStatus]) -> str:
    """A trader's /ibstatus (empty for someone who trades on no desk: the caller says more)."""
    return "\n".join(_status_line(item) for item in items)


def desk_status_text(item: DeskStatus) -> str:
    if item.roster is None:
        nxt = local_datetime(item.next_post, item.desk)
        return f"*{item.desk.name}*: today's checklist isn't posted yet. Next checklist {nxt}."
    return roster_text(item.roster)


def desk_counts_line(item: DeskStatus) -> str:
    """One line per managed desk: today's counts (or when the next checklist is)."""
    if item.roster is None:
        nxt = local_datetime(item.next_post, item.desk)
        return f"*{item.desk.name}*: today's checklist isn't posted yet · next checklist {nxt}"
    summary = roster_summary(item.roster).replace("*Roster* — ", "")
    return f"*{item.desk.name}*: {summary}"


def managed_status_text(items: list[DeskStatus], *, chars: int = STATUS_CHARS) -> str:
    """A manager's /ibstatus: every desk's counts, then its restricted and pending traders."""
    lines = ["*Your desks today*", *(desk_counts_line(i) for i in items)]
    groups: list[Group] = []
    for item in items:
        if item.roster is None:
            continue
        restricted, pending = roster_groups(item.roster)[:2]
        restricted.heading = f"*{item.desk.name}* · " + restricted.heading
        pending.heading = f"*{item.desk.name}* · " + pending.heading
        groups += [restricted, pending]
    head = "\n".join(lines)
    return "\n".join([head, *pack(groups, chars=chars - len(head), sections=100)])


def trader_status_text(items: list[TraderStatus], trader_id: str) -> str:
    name = escape(items[0].names(trader_id)) if items else trader_id
    return "\n".join(f"{name} — " + _status_line(item) for item in items)


def not_on_a_desk_text(managers: list[str], admins: list[str], names: Names) -> str:
    """For someone on no desk: what the bot is and who can add them."""
    who = [escape(names(u)) for u in [*managers, *admins][:10]]
    ask = (
        f"Ask {', '.join(who)} (desk managers and workspace admins) to add you."
        if who
        else ("Ask your desk's manager or a workspace admin to add you.")
    )
    return f"{ABOUT}\n\nYou're not on any desk yet. {ask}"
