"""Block Kit for the readiness profile: App Home's profile section, the modals, the drill and
enrolment messages, the pre-morning notice. Pure functions: data in, blocks out.

Every drill and enrolment text says what the drill is — the bot's own secret proving the backup
device produces codes — and that the bot never asks for IBKR's passwords or one-time codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.desks.contact import guidance as contact_guidance
from bot.desks.models import Desk
from bot.profile.drill import LOCK_AFTER, CodeOutcome, CodeResult
from bot.profile.fences import describe as describe_fences
from bot.profile.fences import tiers_text
from bot.profile.home import DeskOverview, ProfileCard, TraderLine, interfaces_text
from bot.profile.labels import (
    FACTOR_LABEL,
    TIER_LABEL,
    interface_label,
    product_list,
)
from bot.profile.models import (
    AccountKind,
    GapKind,
    PlatformPermission,
    ReadinessGap,
    RiskTier,
    SecondFactor,
    SecondFactorHolder,
    VerifiedBy,
)
from bot.profile.policy import FLAG_TEXT, PROBLEM_ICON
from bot.slack.blocks import (
    HEADER_TEXT,
    SECTION_BUDGET,
    Blocks,
    button,
    context_block,
    cut,
    escape,
    plain,
    section,
)
from bot.slack.ids import ProfileAction

HOME_BLOCK_BUDGET = 60  # of the 100 a Home view may hold; the rest is the checklist's
AUTOMATION_BUTTONS = 20

DRILL_PROMISE = (
    "The drill uses IB Preflight's *own* secret, kept in your backup authenticator, to prove you can produce codes "
    "from your backup device (it doesn't check IBKR's own entry). IB Preflight never asks for your IBKR password or "
    "an IBKR one-time code — never type either here."
)
DRILL_PROMISE_PLAIN = DRILL_PROMISE.replace("*", "")


def _chunks(lines: Sequence[str], head: str = "") -> list[str]:
    """Lines joined into texts that each fit one section."""
    chunks: list[str] = []
    current = head
    for line in lines:
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > SECTION_BUDGET and current:
            chunks.append(current)
            candidate = line
        current = cut(candidate, SECTION_BUDGET)
    if current:
        chunks.append(current)
    return chunks


def _day(at: datetime | None, tz: ZoneInfo) -> str:
    return f"{at.astimezone(tz):%a %d %b %Y}" if at else "never"


def _clock(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%H:%M %Z")


# --- App Home -----------------------------------------------------------------------------------


def _verified_text(card: ProfileCard, method: SecondFactor) -> str:
    record = card.factors[method]
    if record.last_verified_at is None:
        why = f" ({record.unverified_reason})" if record.unverified_reason else ""
        return f"not verified{why}"
    how = {VerifiedBy.DRILL: "drill", VerifiedBy.CHECKLIST: "morning checklist", VerifiedBy.DECLARED: "your date"}.get(
        VerifiedBy(record.verified_by) if record.verified_by in {v.value for v in VerifiedBy} else VerifiedBy.DECLARED,
        "your date",
    )
    return f"verified {record.last_verified_at.astimezone(card.tz):%a %d %b} ({how})"


def factors_text(card: ProfileCard) -> str:
    if not card.factors:
        return "*Second factors registered with IBKR* — none recorded yet."
    primary = card.profile.primary_factor if card.profile else SecondFactor.IB_KEY
    lines = ["*Second factors registered with IBKR*"]
    for method in SecondFactor:
        if method in card.factors:
            role = "primary" if method == primary else "backup"
            lines.append(f"• {FACTOR_LABEL[method]} · {role} · {_verified_text(card, method)}")
    return "\n".join(lines)


def recovery_text(card: ProfileCard) -> str:
    if card.profile is None:
        return "*Recovery path* — fill in your second factors so the desk knows you have one."
    if not card.recovery:
        return "*Recovery path* — you're not a trader on any desk, so no tier applies."
    lines = []
    for item in card.recovery:
        status = item.status
        head = f"*Recovery path* · {item.desk.name} ({status.policy.describe()})"
        if status.ok:
            until = f"; verify again by {status.lapses_at.astimezone(card.tz):%a %d %b}" if status.lapses_at else ""
            lines.append(f"{head}\n✅ {status.describe()}{until}")
        else:
            assert status.problem is not None
            lines.append(f"{head}\n{PROBLEM_ICON[status.problem]} {status.describe()}")
    return "\n".join(lines)


def drill_text(card: ProfileCard) -> str:
    enr = card.enrollment
    if enr is None or enr.enrolled_at is None:
        state = "not enrolled yet" + (
            " (an enrolment is waiting for its first code)" if enr and enr.pending_secret else ""
        )
    else:
        state = f"enrolled {_day(enr.enrolled_at, card.tz)} · last passed {_day(enr.last_success_at, card.tz)}"
    lock = (
        f"\n🔒 Locked until {_clock(card.locked_until, card.tz)} after {LOCK_AFTER} wrong codes."
        if card.locked_until
        else ""
    )
    return f"*Backup drill* — {state}{lock}"


def automation_lines(card: ProfileCard) -> list[str]:
    lines = []
    for item in card.automations:
        a = item.automation
        fences = ", ".join(
            name
            for name, on in (
                ("read-only API", a.read_only_api),
                ("trusted IPs", a.trusted_ips),
                ("order-size limit", a.order_size_limit),
            )
            if on
        )
        flags = "; ".join(FLAG_TEXT[f] for f in item.flags)
        account = "paper" if a.account_kind == AccountKind.PAPER else "live"
        holder = (
            "2FA held by the bot" if a.second_factor_holder == SecondFactorHolder.BOT else "2FA on a person's device"
        )
        kill = f"kill switch: {escape(a.kill_switch_how)}" if a.kill_switch_how else "kill switch: not recorded"
        missing = f"\n   🚧 {describe_fences(item.missing)}" if item.missing else ""
        lines.append(
            f"• *{escape(a.name)}* · {escape(item.desk_name)} · {interface_label(a.interface)} · {account} · "
            f"user `{a.broker_username}` · {fences or 'no fences'} · {holder} · {kill}"
            + (f"\n   ⚠️ {flags}" if flags else " · ✅ no flags")
            + missing
        )
    return lines


def broker_text(card: ProfileCard) -> str:
    """The trader's IBKR usernames and broker-side fences (App Home, a manager's view)."""
    setup, profile = card.broker, card.profile
    names = ", ".join(f"`{n}`" for n in setup.usernames) or "none recorded"
    have = [
        label
        for label, on in (
            ("order precautions", profile is not None and profile.order_precautions),
            ("IP restriction", profile is not None and profile.ip_restricted),
        )
        if on
    ]
    state = f"\n🚧 {describe_fences(setup.missing)}" if setup.missing else ""
    state += "".join(
        f"\n⚠️ `{u}` is also the username of the automation *{escape(n)}* ({escape(d)}): your logins and its "
        "sessions compete (one brokerage session per username)"
        for u, n, d in setup.shared[:5]
    )
    return (
        f"*Broker setup* — IBKR usernames: {names} · fences: {', '.join(have) or 'none recorded'}{state}\n"
        f"_{tiers_text(setup.desk_ip_restrictions)}_"
    )


def security_guidance(card: ProfileCard) -> str:
    """Who to ask for a security change (names escaped)."""
    return escape(contact_guidance(card.broker.contacts))


def permission_line(p: PlatformPermission) -> str:
    trades, data = product_list(p.trading), product_list(p.market_data)
    return f"• {interface_label(p.interface)}: trades {trades} · market data {data}"


def profile_home_blocks(
    card: ProfileCard | None, overviews: Sequence[DeskOverview], *, keys_configured: bool
) -> Blocks:
    """The profile part of App Home: the user's own profile (traders, or anyone with one), then
    each desk they manage. Stays within ``HOME_BLOCK_BUDGET`` blocks."""
    blocks: Blocks = []
    if card is not None:
        blocks += _own_profile(card, keys_configured=keys_configured)
    for overview in overviews:
        blocks += desk_overview_blocks(overview)
    if len(blocks) > HOME_BLOCK_BUDGET:
        blocks = blocks[: HOME_BLOCK_BUDGET - 1] + [context_block("…more in `/ibstatus` and the weekly summary.")]
    return blocks


def _with_button(text: str, label: str, action_id: str) -> dict[str, Any]:
    block = section(cut(text, SECTION_BUDGET))
    block["accessory"] = button(label, action_id)
    return block


def _own_profile(card: ProfileCard, *, keys_configured: bool) -> Blocks:
    perms = [permission_line(p) + (f" · _{escape(p.note)}_" if p.note else "") for p in card.permissions]
    tier = TIER_LABEL.get(RiskTier(card.profile.risk_tier), card.profile.risk_tier) if card.profile else "standard"
    blocks: Blocks = [
        {"type": "divider"},
        {"type": "header", "text": plain("Your readiness profile")},
        context_block(f"Risk tier: *{tier}* (set by your desk's managers)."),
        _with_button(
            f"*Interfaces* — {interfaces_text(card.profile)}", "Edit interfaces", ProfileAction.EDIT_INTERFACES
        ),
        _with_button(
            "*Permissions per platform* (what you trade · market data apart)\n"
            + ("\n".join(perms) if perms else "none recorded yet"),
            "Edit permissions",
            ProfileAction.EDIT_PERMISSIONS,
        ),
        _with_button(factors_text(card), "Edit second factors", ProfileAction.EDIT_FACTORS),
        context_block(cut(security_guidance(card), SECTION_BUDGET)),
        section(cut(recovery_text(card), SECTION_BUDGET)),
        _with_button(broker_text(card), "Edit broker setup", ProfileAction.EDIT_BROKER),
        section(drill_text(card)),
    ]
    enrolled = card.enrollment is not None and card.enrollment.enrolled_at is not None
    buttons = []
    if enrolled:
        buttons.append(button("Run drill", ProfileAction.RUN_DRILL, style="primary"))
    if keys_configured:
        buttons.append(button("Re-enrol" if enrolled else "Enrol backup authenticator", ProfileAction.ENROLL))
    if buttons:
        blocks.append({"type": "actions", "block_id": "profile_drill_actions", "elements": buttons})
    if not keys_configured:
        blocks.append(context_block("Enrolment is unavailable: the bot's secret key isn't set up yet."))
    blocks.append(context_block(DRILL_PROMISE))
    lines = automation_lines(card)
    for chunk in _chunks(lines, "*Automations you own*") if lines else ["*Automations you own* — none registered."]:
        blocks.append(section(chunk))
    elements = [button("Add automation", ProfileAction.ADD_AUTOMATION)]
    elements += [
        button(f"Edit {item.automation.name}", ProfileAction.EDIT_AUTOMATION, str(item.automation.id))
        for item in card.automations[:AUTOMATION_BUTTONS]
    ]
    blocks.append({"type": "actions", "block_id": "profile_automation_actions", "elements": elements})
    return blocks


def trader_line(line: TraderLine) -> str:
    tier = "🔺 elevated" if line.tier is RiskTier.ELEVATED else "standard"
    if line.status is None:
        state = "📝 no profile yet"
    elif line.status.problem is None:
        state = "✅ recovery path ok"
    else:
        state = f"{PROBLEM_ICON[line.status.problem]} {line.status.describe()}"
    autos = f" · 🤖 {line.automation_flags} flagged automation(s)" if line.automation_flags else ""
    fenced = f" · 🚧 {line.fence_gaps} broker-side fence gap(s)" if line.fence_gaps else ""
    return f"• <@{line.user_id}> · {tier} · {state}{autos}{fenced}"


def desk_overview_blocks(overview: DeskOverview) -> Blocks:
    gaps = sum(1 for t in overview.traders if t.status is not None and not t.status.ok)
    missing = sum(1 for t in overview.traders if t.status is None)
    blocks: Blocks = [
        {"type": "divider"},
        {"type": "header", "text": plain(cut(f"Desk readiness · {overview.desk.name}", HEADER_TEXT))},
        context_block(
            f"{gaps} trader(s) without a recovery path, {missing} without a profile. Policy: "
            f"{overview.standard.describe()}; {overview.elevated.describe()}."
        ),
    ]
    for chunk in _chunks([trader_line(t) for t in overview.traders]):
        blocks.append(section(chunk))
    blocks.append(
        {
            "type": "actions",
            "block_id": f"profile_manager_actions_{overview.desk.id}",
            "elements": [
                button("View a trader's profile", ProfileAction.VIEW_TRADER, str(overview.desk.id)),
                button("Set risk tier", ProfileAction.SET_TIER, str(overview.desk.id)),
            ],
        }
    )
    return blocks


# --- modals ----------------------------------------------------------------------------------------


REUSED_CODE = "That code was already used. Wait for the next one."


def code_error(result: CodeResult, tz: ZoneInfo) -> str:
    """The field error for a rejected code (never echoing it)."""
    left = f" {result.tries_left} more wrong code(s) lock the drill for 15 minutes." if result.tries_left else ""
    if result.locked_until is not None:
        return f"Too many wrong codes: locked until {_clock(result.locked_until, tz)}. Try again after that."
    return {
        CodeOutcome.MALFORMED: "Enter the 6 digits your backup authenticator shows for IB Preflight.",
        CodeOutcome.WRONG: "That code isn't right. Check you're reading the IB Preflight entry." + left,
        CodeOutcome.EXPIRED: "That code has expired: enter the one showing now." + left,
        CodeOutcome.REPLAYED: REUSED_CODE,
        CodeOutcome.NOT_ENROLLED: "There's no enrolment to check this against: press Enrol in App Home first.",
        CodeOutcome.LOCKED: "Too many wrong codes: the drill is locked for now.",
    }.get(result.outcome, "That code isn't right.")


def profile_view(card: ProfileCard) -> dict[str, Any]:
    """A read-only modal of one trader's profile (for the desk's managers)."""
    tier = TIER_LABEL.get(RiskTier(card.profile.risk_tier), "standard") if card.profile else "standard"
    perms = [permission_line(p) for p in card.permissions]
    blocks: Blocks = [
        section(f"*<@{card.user_id}>* · risk tier *{tier}*"),
        section(f"*Interfaces* — {interfaces_text(card.profile)}"),
        section(cut("*Permissions per platform*\n" + ("\n".join(perms) if perms else "none recorded"), SECTION_BUDGET)),
        section(cut(factors_text(card), SECTION_BUDGET)),
        section(cut(recovery_text(card), SECTION_BUDGET)),
        section(cut(broker_text(card), SECTION_BUDGET)),
        section(drill_text(card)),
    ]
    lines = automation_lines(card)
    blocks += [section(c) for c in (_chunks(lines, "*Automations*") if lines else ["*Automations* — none."])][:20]
    return {"type": "modal", "title": plain("Trader profile"), "close": plain("Close"), "blocks": blocks}


# --- messages ----------------------------------------------------------------------------------------


def enrollment_message(uri: str) -> tuple[str, Blocks]:
    """Sent in the trader's DM, right after the QR code. Holds the secret: never in a channel."""
    text = "Add IB Preflight to your backup authenticator, then enter the code it shows."
    return text, [
        section(
            "*Enrol your backup authenticator*\n"
            "1. On your *backup* device (not your primary phone), open your authenticator app and scan the QR "
            "code above — or add this link by hand:\n"
            f"`{uri}`\n"
            "2. Press *Enter code* and type the 6 digits it shows for *IB Preflight*."
        ),
        {
            "type": "actions",
            "block_id": "profile_enroll_actions",
            "elements": [button("Enter code", ProfileAction.ENTER_ENROLL_CODE, style="primary")],
        },
        context_block(DRILL_PROMISE),
    ]


NEVER_IBKR = "That was IB Preflight's own code: the bot never needs your IBKR password or IBKR's one-time codes."


def enrolled_text() -> str:
    return (
        "✅ Enrolled: you can produce IB Preflight's codes from your backup device. That doesn't check IBKR's Mobile "
        "Authenticator entry: record the day it last worked for an IBKR login under *Second factors*. " + NEVER_IBKR
    )


def drill_passed_text(result: CodeResult, *, recorded: bool, tz: ZoneInfo) -> str:
    when = f"{result.at.astimezone(tz):%a %d %b} {_clock(result.at, tz)}"
    if recorded:
        return (
            f"✅ Drill passed at {when}: you can produce codes from your backup device. That checks IB Preflight's "
            "own entry, not IBKR's: record the day IBKR's Mobile Authenticator entry last worked for a login under "
            f"*Second factors*. {NEVER_IBKR}"
        )
    return (
        f"✅ Drill passed at {when}. Your profile has no Mobile Authenticator app registered with IBKR yet: tick it "
        "under *Second factors* in App Home once you've added IBKR's entry to that app, so it counts as your backup. "
        + NEVER_IBKR
    )


def gap_notice(gap: ReadinessGap, desk: Desk, *, enrolled: bool, contact: str | None = None) -> tuple[str, Blocks]:
    """The trader's pre-morning notice of a readiness gap (their managers are told too);
    ``contact``: who the desk names for security changes (plain text)."""
    if gap.closed_at is not None:
        text = f"✅ Your readiness gap on {desk.name} is fixed — nothing to do."
        return text, [section(text)]
    if gap.kind == GapKind.FENCES:
        detail = escape(gap.detail)
        text = f"🚧 Before the next checklist on {desk.name}: a broker-side fence your risk tier asks for is missing — "
        text += f"{detail}."
        return text, [
            section(text + "\nSet it at IBKR, then record it in App Home; your desk's managers have been told."),
        ]
    if gap.kind == GapKind.AUTOMATION:
        detail = escape(gap.detail)
        text = f"🤖 Before the next checklist on {desk.name}: an automation you own needs attention — {detail}."
        return text, [
            section(text + "\nUpdate it in App Home once it's fenced; your desk's managers have been told."),
        ]
    icon = "⚠️" if gap.kind == GapKind.SMS_ONLY else "🆘"
    text = f"{icon} Before the next checklist on {desk.name}: your readiness profile shows {escape(gap.detail)}."
    advice = (
        "Add a backup second factor at IBKR — a Mobile Authenticator app, or a Digital Security Card+ if your "
        "account's equity is at least USD 1 million (IBKR's Multiple Two-Factor keeps several active) — record it in "
        "App Home, then run the drill. Your desk's managers have been told.\n"
        + escape(contact_guidance([(desk.name, contact)] if contact else []))
    )
    elements = [button("Run drill", ProfileAction.RUN_DRILL, style="primary")] if enrolled else []
    elements.append(button("Enrol backup authenticator" if not enrolled else "Re-enrol", ProfileAction.ENROLL))
    return text, [
        section(f"{text}\n{advice}"),
        {"type": "actions", "block_id": "profile_notice_actions", "elements": elements},
        context_block(DRILL_PROMISE),
    ]
