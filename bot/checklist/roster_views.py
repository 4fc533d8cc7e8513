"""The checklist message: the three checks, the answer buttons and the live roster, within
Slack's limits at any desk size. Pure builders (a Roster in, blocks out); ``RosterMemo`` keeps
rendered pieces between renders of one roster (the refresher's cache owns it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, overload

from bot.checklist.facts import TraderFacts
from bot.checklist.labels import CHECK_LABEL, problem_summary
from bot.checklist.models import Answer, Check, ChecklistRun
from bot.checklist.problem_views import QUICK_ACTION
from bot.checklist.quick import QUICK_LABEL
from bot.checklist.rosters import Roster, RosterEntry, TraderState
from bot.desks.models import Desk
from bot.people.service import Names
from bot.slack.blocks import (
    HEADER_TEXT,
    MESSAGE_BLOCKS,
    MESSAGE_CHARS,
    Blocks,
    Group,
    Packed,
    button,
    context_block,
    cut,
    escape,
    local_time,
    pack,
    plain,
    section,
    text_size,
)
from bot.slack.ids import Action, Block

STATE_ICON = {TraderState.READY: "✅", TraderState.RESTRICTED: "🚫", TraderState.PENDING: "⏳", TraderState.AWAY: "🌴"}
CHECK_QUESTION = {
    Check.AUTHENTICATION: "Can you complete login *and* the second factor from your primary device?",
    Check.PERMISSIONS: "Are the trading permissions and market-data subscriptions for everything you'll trade "
    "today in place, on the platform you'll use?",
    Check.CONTINGENCY: "Do you have a recovery path — a second active second-factor method besides your primary "
    "one (a Mobile Authenticator app, a Digital Security Card+ if your account qualifies, or IB Key if your primary "
    "is something else) — *and* a secondary interface?",
}
PROBLEM_CUT = 160  # a problem summary in a roster line (the full one is in the export)


def short_problem(answer: Answer) -> str:
    """A restricted trader's problem in one line: escaped, cut to ``PROBLEM_CUT``."""
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
    if facts.probe:
        bits.append(escape(facts.probe))
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
    return line + f" — restricted today · ⚠️ {short_problem(answer)} ({when})" + extra


class RosterMemo:
    """Rendered pieces of one roster *generation* — the same desk, trader list, names, away days
    and facts — kept between renders so that a re-render is mostly dictionary look-ups and
    joins. A piece that depends on an answer is keyed by the answer's id (answers are
    immutable versions), so a new answer redraws only its trader's pieces. Whoever owns the
    memo makes a new one when the generation changes (``bot.checklist.roster_cache``); builders given
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
    auto-restart-considerations.htm; docs/broker-facts.md §3). IB Gateway is our inference, and
    the text says so."""
    due = [e.user_id for e in roster.entries if (f := roster.facts.get(e.user_id)) is not None and f.weekly_login]
    if not due:
        return None
    names = ", ".join(escape(roster.names(u)) for u in due[:WEEKLY_LOGIN_NAMES])
    if len(due) > WEEKLY_LOGIN_NAMES:
        names += f" and {len(due) - WEEKLY_LOGIN_NAMES} more (see the roster)"
    return (
        "🔁 *Weekly login* — first trading day of the week: IBKR invalidates the auto-restart tokens of TWS and "
        "IBKR Desktop each Sunday at 01:00 ET (IB Gateway most likely too), so a full manual login with your second "
        f"factor is due. {names}: confirming *Authentication* today means you have done it."
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
        return _piece(memo, "problem", e, lambda: f"🚫 {escape(names(e.user_id))} — ⚠️ {short_problem(answer)}")

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
    """The answer buttons (the checklist message, the reminder DM and App Home): all three
    confirmed, the problem-report modal, and a one-click report per common failure, which
    needs no modal (bot.checklist.quick)."""
    return {
        "type": "actions",
        "block_id": block_id,
        "elements": [
            button("✅ All three confirmed", Action.CONFIRM_ALL, str(run.id), style="primary"),
            button("⚠️ Report a problem", Action.REPORT_PROBLEM, str(run.id)),
            *quick_buttons(run),
        ],
    }


def quick_buttons(run: ChecklistRun) -> list[dict[str, Any]]:
    """One button per one-click report (its value: the run id)."""
    return [button(QUICK_LABEL[kind], action, str(run.id)) for kind, action in QUICK_ACTION.items()]
