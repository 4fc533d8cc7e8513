"""``/ibstatus`` text: a trader's own status, a desk's roster, a manager's desks, one trader,
the usage and what the bot is. Pure functions: statuses in, mrkdwn out."""

from __future__ import annotations

from bot.checklist.models import Answer
from bot.checklist.roster_views import STATE_ICON, roster_groups, roster_sections, roster_summary, short_problem
from bot.checklist.rosters import Roster, TraderState
from bot.checklist.status import DeskStatus, TraderStatus
from bot.people.service import Names
from bot.slack.blocks import MESSAGE_CHARS, Group, escape, local_datetime, pack

USAGE = (
    "*`/ibstatus`* — your status today (traders) or your desks' state (managers)\n"
    "*`/ibstatus desk [NAME]`* — today's roster of a desk you belong to\n"
    "*`/ibstatus @user`* — one trader's status (managers of that trader's desk)\n"
    "*`/ibstatus escalations`* — open escalations on the desks you manage\n"
    "*`/ibstatus week [2026-W48] [DESK]`* — the weekly readiness summary (managers; default: this week)\n"
    "*`/ibstatus away 2026-12-01 2026-12-05 [note]`* — you're away (managers: `/ibstatus away @user …`)\n"
    "*`/ibstatus back`* — you're back (ends today's away period)\n"
    "*`/ibstatus setup [DESK]`* — desk settings (the desk's managers, workspace admins)\n"
    "*`/ibstatus probe`* — ask your broker sessions now (managers: every probe of their desks)\n"
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
    return f"{STATE_ICON[state]} restricted today — ⚠️ {short_problem(answer)}"


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
