"""Block Kit for the readiness profile: App Home's profile section, the modals, the drill and
enrolment messages, the pre-morning notice. Pure functions: data in, blocks out.

Every drill and enrolment text says what the drill is — the bot's own secret proving the backup
device is in hand — and that the bot never asks for IBKR's passwords or one-time codes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.desks.models import Desk
from bot.profile.automation import AUTOMATION_INTERFACES, NAME_LIMIT
from bot.profile.drill import LOCK_AFTER, CodeOutcome, CodeResult
from bot.profile.home import DeskOverview, ProfileCard, TraderLine, interfaces_text
from bot.profile.ids import ProfileAction, ProfileBlock, ProfileCallback, verified_block
from bot.profile.labels import (
    FACTOR_HINT,
    FACTOR_LABEL,
    INTERFACE_LABEL,
    PRODUCT_LABEL,
    TIER_LABEL,
    interface_label,
    product_list,
    products,
)
from bot.profile.models import (
    Automation,
    GapKind,
    Interface,
    PlatformPermission,
    ReadinessGap,
    RiskTier,
    SecondFactor,
    VerifiedBy,
)
from bot.profile.policy import FLAG_TEXT, PROBLEM_ICON
from bot.profile.saves import NOTE_LIMIT
from bot.slack.blocks import Blocks, context_block, plain, section
from bot.slack.ids import FIELD

SECTION_LIMIT = 2900
HOME_BLOCK_BUDGET = 60  # of the 100 a Home view may hold; the rest is the checklist's
AUTOMATION_BUTTONS = 20

DRILL_PROMISE = (
    "The drill uses IB Preflight's *own* secret, kept in your backup authenticator, to prove that device is in "
    "your hands and working. IB Preflight never asks for your IBKR password or an IBKR one-time code — "
    "never type either here."
)
DRILL_PROMISE_PLAIN = DRILL_PROMISE.replace("*", "")


def _button(text: str, action_id: str, value: str = "", *, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "text": plain(text[:75]), "action_id": action_id}
    if value:
        button["value"] = value
    if style:
        button["style"] = style
    return button


def _chunks(lines: Sequence[str], head: str = "") -> list[str]:
    """Lines joined into texts that each fit one section."""
    chunks: list[str] = []
    current = head
    for line in lines:
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > SECTION_LIMIT and current:
            chunks.append(current)
            candidate = line
        current = candidate[:SECTION_LIMIT]
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
        lines.append(
            f"• *{a.name}* · {item.desk_name} · {interface_label(a.interface)} · user `{a.broker_username}` · "
            f"{fences or 'no fences'}" + (f"\n   ⚠️ {flags}" if flags else " · ✅ no flags")
        )
    return lines


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
    block = section(text[:SECTION_LIMIT])
    block["accessory"] = _button(label, action_id)
    return block


def _own_profile(card: ProfileCard, *, keys_configured: bool) -> Blocks:
    perms = [permission_line(p) + (f" · _{p.note}_" if p.note else "") for p in card.permissions]
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
        section(recovery_text(card)[:SECTION_LIMIT]),
        section(drill_text(card)),
    ]
    enrolled = card.enrollment is not None and card.enrollment.enrolled_at is not None
    buttons = []
    if enrolled:
        buttons.append(_button("Run drill", ProfileAction.RUN_DRILL, style="primary"))
    if keys_configured:
        buttons.append(_button("Re-enrol" if enrolled else "Enrol backup authenticator", ProfileAction.ENROLL))
    if buttons:
        blocks.append({"type": "actions", "block_id": "profile_drill_actions", "elements": buttons})
    if not keys_configured:
        blocks.append(context_block("Enrolment is unavailable: the bot's secret key isn't set up yet."))
    blocks.append(context_block(DRILL_PROMISE))
    lines = automation_lines(card)
    for chunk in _chunks(lines, "*Automations you own*") if lines else ["*Automations you own* — none registered."]:
        blocks.append(section(chunk))
    elements = [_button("Add automation", ProfileAction.ADD_AUTOMATION)]
    elements += [
        _button(f"Edit {item.automation.name}", ProfileAction.EDIT_AUTOMATION, str(item.automation.id))
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
    return f"• <@{line.user_id}> · {tier} · {state}{autos}"


def desk_overview_blocks(overview: DeskOverview) -> Blocks:
    gaps = sum(1 for t in overview.traders if t.status is not None and not t.status.ok)
    missing = sum(1 for t in overview.traders if t.status is None)
    blocks: Blocks = [
        {"type": "divider"},
        {"type": "header", "text": plain(f"Desk readiness · {overview.desk.name}"[:150])},
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
                _button("View a trader's profile", ProfileAction.VIEW_TRADER, str(overview.desk.id)),
                _button("Set risk tier", ProfileAction.SET_TIER, str(overview.desk.id)),
            ],
        }
    )
    return blocks


# --- modals ----------------------------------------------------------------------------------------


def _option(value: str, label: str) -> dict[str, Any]:
    return {"text": plain(label[:75]), "value": value}


def _input(block_id: str, label: str, element: dict[str, Any], *, optional: bool, hint: str = "") -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": plain(label[:2000]),
        "optional": optional,
        "element": {**element, "action_id": FIELD},
    }
    if hint:
        block["hint"] = plain(hint[:2000])
    return block


def _select(options: list[dict[str, Any]], initial: str | None, placeholder: str = "Pick one") -> dict[str, Any]:
    element: dict[str, Any] = {"type": "static_select", "placeholder": plain(placeholder), "options": options}
    chosen = next((o for o in options if o["value"] == initial), None)
    if chosen is not None:
        element["initial_option"] = chosen
    return element


def _checkboxes(options: list[dict[str, Any]], initial: Sequence[str]) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "checkboxes", "options": options}
    chosen = [o for o in options if o["value"] in set(initial)]
    if chosen:
        element["initial_options"] = chosen
    return element


def _datepicker(initial: str | None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "datepicker", "placeholder": plain("Pick a date")}
    if initial:
        element["initial_date"] = initial
    return element


def _modal(callback: str, title: str, blocks: Blocks, *, submit: str = "Save", metadata: str = "") -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": callback,
        "title": plain(title[:24]),
        "submit": plain(submit[:24]),
        "close": plain("Cancel"),
        "blocks": blocks,
    }
    if metadata:
        view["private_metadata"] = metadata
    return view


INTERFACE_OPTIONS = [_option(i.value, label) for i, label in INTERFACE_LABEL.items()]
PRODUCT_OPTIONS = [_option(p.value, label) for p, label in PRODUCT_LABEL.items()]
FACTOR_OPTIONS = [_option(m.value, label) for m, label in FACTOR_LABEL.items()]


def interfaces_modal(card: ProfileCard) -> dict[str, Any]:
    profile = card.profile
    return _modal(
        ProfileCallback.INTERFACES,
        "Your interfaces",
        [
            context_block("The platforms you trade on. If the primary one fails you switch to the secondary."),
            _input(
                ProfileBlock.PRIMARY_INTERFACE,
                "Primary interface",
                _select(INTERFACE_OPTIONS, profile.primary_interface if profile else None),
                optional=False,
            ),
            _input(
                ProfileBlock.SECONDARY_INTERFACE,
                "Secondary interface",
                _select(INTERFACE_OPTIONS, profile.secondary_interface if profile else None),
                optional=True,
                hint="e.g. Client Portal in a browser if you trade on TWS.",
            ),
        ],
    )


def permissions_modal(card: ProfileCard, interface: str | None = None) -> dict[str, Any]:
    chosen = interface or (card.profile.primary_interface if card.profile else None)
    current = next((p for p in card.permissions if p.interface == chosen), None)
    return _modal(
        ProfileCallback.PERMISSIONS,
        "Permissions",
        [
            context_block(
                "One platform per save. Trading permissions and market-data subscriptions are separate at IBKR: "
                "subscriptions take effect at once, new trading permissions can take up to about 48 hours."
            ),
            _input(ProfileBlock.INTERFACE, "Platform", _select(INTERFACE_OPTIONS, chosen), optional=False),
            _input(
                ProfileBlock.TRADING,
                "What you expect to trade there",
                _checkboxes(PRODUCT_OPTIONS, products(current.trading) if current else []),
                optional=True,
            ),
            _input(
                ProfileBlock.MARKET_DATA,
                "Market-data subscriptions",
                _checkboxes(PRODUCT_OPTIONS, products(current.market_data) if current else []),
                optional=True,
            ),
            _input(
                ProfileBlock.NOTE,
                "Note",
                {
                    "type": "plain_text_input",
                    "multiline": True,
                    "max_length": NOTE_LIMIT,
                    **({"initial_value": current.note} if current and current.note else {}),
                },
                optional=True,
                hint=f"At most {NOTE_LIMIT} characters, e.g. which exchanges.",
            ),
        ],
    )


def factors_modal(card: ProfileCard) -> dict[str, Any]:
    primary = card.profile.primary_factor if card.profile else SecondFactor.IB_KEY.value
    blocks: Blocks = [
        context_block(
            "Which second-factor methods are active for your IBKR username, and the last day each one worked for "
            "a login. IBKR lets several be active at once; IB Key is active on one phone only. "
            "Never enter a code or a password here."
        ),
        _input(
            ProfileBlock.PRIMARY_FACTOR,
            "Primary method (what you use first)",
            _select(FACTOR_OPTIONS, primary),
            optional=False,
        ),
        _input(
            ProfileBlock.REGISTERED,
            "Registered with IBKR",
            _checkboxes(FACTOR_OPTIONS, [m.value for m in card.factors]),
            optional=True,
        ),
    ]
    for method in SecondFactor:
        record = card.factors.get(method)
        initial = None
        if record is not None and record.last_verified_at is not None:
            initial = record.last_verified_at.astimezone(card.tz).strftime("%Y-%m-%d")
        blocks.append(
            _input(
                verified_block(method.value),
                f"{FACTOR_LABEL[method]}: last worked on",
                _datepicker(initial),
                optional=True,
                hint=FACTOR_HINT[method],
            )
        )
    return _modal(ProfileCallback.FACTORS, "Second factors", blocks)


FENCE_OPTIONS = [
    _option("read_only_api", "Read-Only API is on"),
    _option("trusted_ips", "Trusted-IP restriction in place"),
    _option("order_size_limit", "Programmatic order-size limit in place"),
]


def automation_modal(
    automation: Automation | None, desks: Sequence[Desk], *, owner: str, can_assign: bool
) -> dict[str, Any]:
    a = automation
    desk_options = [_option(str(d.id), d.name) for d in desks]
    fences = [] if a is None else [k for k in ("read_only_api", "trusted_ips", "order_size_limit") if getattr(a, k)]
    blocks: Blocks = [
        context_block(
            "One IBKR username per automation, so sessions don't compete (IBKR allows one brokerage session per "
            "username). Record the username only — never a password."
        ),
        _input(
            ProfileBlock.NAME,
            "Name",
            {"type": "plain_text_input", "max_length": NAME_LIMIT, **({"initial_value": a.name} if a else {})},
            optional=False,
        ),
        _input(
            ProfileBlock.DESK,
            "Desk",
            _select(
                desk_options, str(a.desk_id) if a else (desk_options[0]["value"] if len(desk_options) == 1 else None)
            ),
            optional=False,
        ),
    ]
    if can_assign:
        owner_element: dict[str, Any] = {"type": "users_select", "initial_user": a.owner_id if a else owner}
        blocks.append(_input(ProfileBlock.OWNER, "Owner", owner_element, optional=False))
    blocks += [
        _input(
            ProfileBlock.INTERFACE,
            "Interface",
            _select(
                [
                    _option(
                        i.value, INTERFACE_LABEL[i] + (" (through TWS or IB Gateway)" if i is Interface.TWS_API else "")
                    )
                    for i in AUTOMATION_INTERFACES
                ],
                a.interface if a else None,
            ),
            optional=False,
        ),
        _input(
            ProfileBlock.BROKER_USERNAME,
            "Its own IBKR username",
            {"type": "plain_text_input", "max_length": 64, **({"initial_value": a.broker_username} if a else {})},
            optional=False,
            hint="The username only, never the password.",
        ),
        _input(ProfileBlock.FENCES, "Fences", _checkboxes(FENCE_OPTIONS, fences), optional=True),
        _input(
            ProfileBlock.KILL_SWITCH,
            "Kill switch last tested on",
            _datepicker(a.kill_switch_tested_on.isoformat() if a and a.kill_switch_tested_on else None),
            optional=True,
            hint="Leave empty if it was never tested.",
        ),
        _input(
            ProfileBlock.CREDENTIALS,
            "Credentials last rotated on",
            _datepicker(a.credentials_rotated_on.isoformat() if a and a.credentials_rotated_on else None),
            optional=True,
        ),
    ]
    if a is not None:
        blocks.append(
            _input(
                ProfileBlock.REMOVE,
                "Remove",
                {"type": "checkboxes", "options": [_option("remove", "Remove this automation from the register")]},
                optional=True,
            )
        )
    metadata = json.dumps({"automation_id": a.id if a else None})
    return _modal(ProfileCallback.AUTOMATION, "Automation", blocks, metadata=metadata)


def _code_input(label: str) -> dict[str, Any]:
    return _input(
        ProfileBlock.CODE,
        label,
        {"type": "plain_text_input", "min_length": 6, "max_length": 7, "placeholder": plain("123456")},
        optional=False,
        hint="The 6 digits shown under “IB Preflight” in your backup authenticator — not an IBKR code.",
    )


def drill_modal() -> dict[str, Any]:
    return _modal(
        ProfileCallback.DRILL,
        "Backup drill",
        [
            section("Open the authenticator on your *backup* device and enter the code it shows for *IB Preflight*."),
            _code_input("Current code from your backup device"),
            context_block(DRILL_PROMISE),
        ],
        submit="Check code",
    )


def enroll_modal() -> dict[str, Any]:
    return _modal(
        ProfileCallback.ENROLL,
        "Finish enrolment",
        [
            section("Enter the code your backup authenticator now shows for *IB Preflight* to finish enrolling."),
            _code_input("Current code"),
            context_block(DRILL_PROMISE),
        ],
        submit="Finish",
    )


def code_error(result: CodeResult, tz: ZoneInfo) -> str:
    """The field error for a rejected code (never echoing it)."""
    left = f" {result.tries_left} more wrong code(s) lock the drill for 15 minutes." if result.tries_left else ""
    if result.locked_until is not None:
        return f"Too many wrong codes: locked until {_clock(result.locked_until, tz)}. Try again after that."
    return {
        CodeOutcome.MALFORMED: "Enter the 6 digits your backup authenticator shows for IB Preflight.",
        CodeOutcome.WRONG: "That code isn't right. Check you're reading the IB Preflight entry." + left,
        CodeOutcome.EXPIRED: "That code has expired: enter the one showing now." + left,
        CodeOutcome.REPLAYED: "That code was already used: wait for the next one (each code works once)." + left,
        CodeOutcome.NOT_ENROLLED: "There's no enrolment to check this against: press Enrol in App Home first.",
        CodeOutcome.LOCKED: "Too many wrong codes: the drill is locked for now.",
    }.get(result.outcome, "That code isn't right.")


def tier_modal(desk_id: int | None) -> dict[str, Any]:
    return _modal(
        ProfileCallback.TIER,
        "Risk tier",
        [
            context_block(
                "Match the security posture to the potential loss: *elevated* for traders who run algorithms or "
                "carry significant intraday margin — two independent backups and a drill every 14 days by default; "
                "*standard*: one backup and a drill every 30 days."
            ),
            _input(ProfileBlock.TRADER, "Trader", {"type": "users_select"}, optional=False),
            _input(
                ProfileBlock.TIER,
                "Tier",
                {"type": "radio_buttons", "options": [_option(t.value, TIER_LABEL[t]) for t in RiskTier]},
                optional=False,
            ),
        ],
        metadata=json.dumps({"desk_id": desk_id}),
    )


def view_trader_modal() -> dict[str, Any]:
    return _modal(
        ProfileCallback.VIEW,
        "Trader profile",
        [_input(ProfileBlock.TRADER, "Trader", {"type": "users_select"}, optional=False)],
        submit="Show",
    )


def profile_view(card: ProfileCard) -> dict[str, Any]:
    """A read-only modal of one trader's profile (for the desk's managers)."""
    tier = TIER_LABEL.get(RiskTier(card.profile.risk_tier), "standard") if card.profile else "standard"
    perms = [permission_line(p) for p in card.permissions]
    blocks: Blocks = [
        section(f"*<@{card.user_id}>* · risk tier *{tier}*"),
        section(f"*Interfaces* — {interfaces_text(card.profile)}"),
        section(("*Permissions per platform*\n" + ("\n".join(perms) if perms else "none recorded"))[:SECTION_LIMIT]),
        section(factors_text(card)[:SECTION_LIMIT]),
        section(recovery_text(card)[:SECTION_LIMIT]),
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
            "elements": [_button("Enter code", ProfileAction.ENTER_ENROLL_CODE, style="primary")],
        },
        context_block(DRILL_PROMISE),
    ]


NEVER_IBKR = "That was IB Preflight's own code: the bot never needs your IBKR password or IBKR's one-time codes."


def enrolled_text() -> str:
    return (
        "✅ Enrolled: your backup authenticator holds IB Preflight's drill secret. Backup verified just now. "
        + NEVER_IBKR
    )


def drill_passed_text(result: CodeResult, *, recorded: bool, tz: ZoneInfo) -> str:
    when = f"{result.at.astimezone(tz):%a %d %b} {_clock(result.at, tz)}"
    if recorded:
        return f"✅ Backup verified at {when}: your backup device is in hand and working. {NEVER_IBKR}"
    return (
        f"✅ Drill passed at {when}. Your profile has no Mobile Authenticator app registered with IBKR yet: tick it "
        "under *Second factors* in App Home once you've added IBKR's entry to that app, so it counts as your backup. "
        + NEVER_IBKR
    )


def gap_notice(gap: ReadinessGap, desk: Desk, *, enrolled: bool) -> tuple[str, Blocks]:
    """The trader's pre-morning notice of a readiness gap (their managers are told too)."""
    if gap.closed_at is not None:
        text = f"✅ Your readiness gap on {desk.name} is fixed — nothing to do."
        return text, [section(text)]
    if gap.kind == GapKind.AUTOMATION:
        text = f"🤖 Before the next checklist on {desk.name}: an automation you own needs attention — {gap.detail}."
        return text, [
            section(text + "\nUpdate it in App Home once it's fenced; your desk's managers have been told."),
        ]
    icon = "⚠️" if gap.kind == GapKind.SMS_ONLY else "🆘"
    text = f"{icon} Before the next checklist on {desk.name}: your readiness profile shows {gap.detail}."
    advice = (
        "Add a backup second factor at IBKR (a Mobile Authenticator app or a Digital Security Card+; IBKR lets "
        "several be active at once), record it in App Home, then run the drill. Your desk's managers have been told."
    )
    elements = [_button("Run drill", ProfileAction.RUN_DRILL, style="primary")] if enrolled else []
    elements.append(_button("Enrol backup authenticator" if not enrolled else "Re-enrol", ProfileAction.ENROLL))
    return text, [
        section(f"{text}\n{advice}"),
        {"type": "actions", "block_id": "profile_notice_actions", "elements": elements},
        context_block(DRILL_PROMISE),
    ]
