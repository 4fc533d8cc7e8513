"""Block Kit for the readiness profile's modals: interfaces, permissions, second factors, an
automation, the drill and enrolment codes, a trader's risk tier, a trader to view. Pure
functions: data in, views out (``bot.profile.views`` draws App Home's section and the messages)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bot.desks.models import Desk
from bot.profile.automation import AUTOMATION_INTERFACES, KILL_SWITCH_LIMIT, NAME_LIMIT
from bot.profile.broker import USERNAMES_LIMIT
from bot.profile.fences import tiers_text
from bot.profile.home import ProfileCard
from bot.profile.labels import (
    FACTOR_HINT,
    FACTOR_LABEL,
    INTERFACE_LABEL,
    PRODUCT_LABEL,
    TIER_LABEL,
    products,
)
from bot.profile.models import (
    AccountKind,
    Automation,
    Interface,
    SecondFactor,
    SecondFactorHolder,
)
from bot.profile.saves import NOTE_LIMIT
from bot.profile.views import DRILL_PROMISE, security_guidance
from bot.slack.blocks import (
    Blocks,
    checkboxes,
    context_block,
    input_block,
    modal,
    option,
    options,
    plain,
    section,
    select,
)
from bot.slack.ids import ProfileBlock, ProfileCallback, verified_block
from bot.text import clean


def _datepicker(initial: str | None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "datepicker", "placeholder": plain("Pick a date")}
    if initial:
        element["initial_date"] = initial
    return element


INTERFACE_OPTIONS = options(INTERFACE_LABEL)
PRODUCT_OPTIONS = options(PRODUCT_LABEL)
FACTOR_OPTIONS = options(FACTOR_LABEL)


def interfaces_modal(card: ProfileCard) -> dict[str, Any]:
    profile = card.profile
    return modal(
        ProfileCallback.INTERFACES,
        "Your interfaces",
        [
            context_block("The platforms you trade on. If the primary one fails you switch to the secondary."),
            input_block(
                ProfileBlock.PRIMARY_INTERFACE,
                "Primary interface",
                select(INTERFACE_OPTIONS, profile.primary_interface if profile else None),
                optional=False,
            ),
            input_block(
                ProfileBlock.SECONDARY_INTERFACE,
                "Secondary interface",
                select(INTERFACE_OPTIONS, profile.secondary_interface if profile else None),
                optional=True,
                hint="e.g. Client Portal in a browser if you trade on TWS.",
            ),
        ],
    )


def permissions_modal(card: ProfileCard, interface: str | None = None) -> dict[str, Any]:
    chosen = interface or (card.profile.primary_interface if card.profile else None)
    current = next((p for p in card.permissions if p.interface == chosen), None)
    return modal(
        ProfileCallback.PERMISSIONS,
        "Permissions",
        [
            context_block(
                "One platform per save. Trading permissions and market-data subscriptions are separate at IBKR: "
                'subscriptions take effect at once; IBKR says trading permission requests are "generally applied '
                'within 48 hours".'
            ),
            input_block(ProfileBlock.INTERFACE, "Platform", select(INTERFACE_OPTIONS, chosen), optional=False),
            input_block(
                ProfileBlock.TRADING,
                "What you expect to trade there",
                checkboxes(PRODUCT_OPTIONS, products(current.trading) if current else []),
                optional=True,
            ),
            input_block(
                ProfileBlock.MARKET_DATA,
                "Market-data subscriptions",
                checkboxes(PRODUCT_OPTIONS, products(current.market_data) if current else []),
                optional=True,
            ),
            input_block(
                ProfileBlock.NOTE,
                "Note",
                {
                    "type": "plain_text_input",
                    "multiline": True,
                    "max_length": NOTE_LIMIT,
                    **({"initial_value": clean(current.note)} if current and current.note else {}),
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
            "an IBKR login. IBKR's Multiple Two-Factor lets several be active at once (Portal's Secure Login System "
            "page lists yours); IB Key is active on one phone only. Never enter a code or a password here."
        ),
        context_block(security_guidance(card)),
        input_block(
            ProfileBlock.PRIMARY_FACTOR,
            "Primary method (what you use first)",
            select(FACTOR_OPTIONS, primary),
            optional=False,
        ),
        input_block(
            ProfileBlock.REGISTERED,
            "Registered with IBKR",
            checkboxes(FACTOR_OPTIONS, [m.value for m in card.factors]),
            optional=True,
        ),
    ]
    for method in SecondFactor:
        record = card.factors.get(method)
        initial = None
        if record is not None and record.last_verified_at is not None:
            initial = record.last_verified_at.astimezone(card.tz).strftime("%Y-%m-%d")
        blocks.append(
            input_block(
                verified_block(method.value),
                f"{FACTOR_LABEL[method]}: last worked on",
                _datepicker(initial),
                optional=True,
                hint=FACTOR_HINT[method],
            )
        )
    return modal(ProfileCallback.FACTORS, "Second factors", blocks)


FENCE_OPTIONS = [
    option("Read-Only API is on", "read_only_api"),
    option("Trusted IPs: only listed hosts reach the API", "trusted_ips"),
    option("Programmatic order-size limit in place", "order_size_limit"),
    option("The account's IP restriction covers its username", "ip_restricted"),
]
FENCE_KEYS = ("read_only_api", "trusted_ips", "order_size_limit", "ip_restricted")
HOLDER_OPTIONS = [
    option("A person's device (IB Key, authenticator app, card)", SecondFactorHolder.PERSON),
    option("The bot or its gateway keeper (e.g. IBeam's 2FA handler)", SecondFactorHolder.BOT),
]
ACCOUNT_OPTIONS = [
    option("Live account", AccountKind.LIVE),
    option("Paper trading account (its own username)", AccountKind.PAPER),
]


PERSON_OPTIONS = [option("A person also logs in with this username (TWS, Portal, IBKR Mobile)", "person_logs_in")]


def automation_modal(
    automation: Automation | None, desks: Sequence[Desk], *, owner: str, can_assign: bool
) -> dict[str, Any]:
    a = automation
    desk_options = [option(d.name, str(d.id)) for d in desks]
    fences = [] if a is None else [k for k in FENCE_KEYS if getattr(a, k)]
    blocks: Blocks = [
        context_block(
            "IBKR allows one brokerage session per username: a person and an automation, or automations on "
            "different gateways, can't share one; API clients of one TWS / IB Gateway session (different client "
            "ids) can. Record the username only — never a password."
        ),
        input_block(
            ProfileBlock.NAME,
            "Name",
            {"type": "plain_text_input", "max_length": NAME_LIMIT, **({"initial_value": clean(a.name)} if a else {})},
            optional=False,
        ),
        input_block(
            ProfileBlock.DESK,
            "Desk",
            select(
                desk_options, str(a.desk_id) if a else (desk_options[0]["value"] if len(desk_options) == 1 else None)
            ),
            optional=False,
        ),
    ]
    if can_assign:
        owner_element: dict[str, Any] = {"type": "users_select", "initial_user": a.owner_id if a else owner}
        blocks.append(input_block(ProfileBlock.OWNER, "Owner", owner_element, optional=False))
    blocks += [
        input_block(
            ProfileBlock.INTERFACE,
            "Interface",
            select(
                [
                    option(
                        INTERFACE_LABEL[i] + (" (through TWS or IB Gateway)" if i is Interface.TWS_API else ""), i.value
                    )
                    for i in AUTOMATION_INTERFACES
                ],
                a.interface if a else None,
            ),
            optional=False,
        ),
        input_block(
            ProfileBlock.BROKER_USERNAME,
            "Its own IBKR username",
            {"type": "plain_text_input", "max_length": 64, **({"initial_value": a.broker_username} if a else {})},
            optional=False,
            hint="The username only, never the password.",
        ),
        input_block(
            ProfileBlock.SESSION_HOST,
            "Gateway it connects through",
            {
                "type": "plain_text_input",
                "max_length": 64,
                **({"initial_value": a.session_host} if a and a.session_host else {}),
            },
            optional=True,
            hint="The TWS / IB Gateway (or Client Portal Gateway) as a name or host:port, e.g. gw-prod-1:4001.",
        ),
        input_block(
            ProfileBlock.PERSON_LOGS_IN,
            "Who else logs in",
            checkboxes(PERSON_OPTIONS, ["person_logs_in"] if a and a.person_logs_in else []),
            optional=True,
        ),
        input_block(
            ProfileBlock.ACCOUNT_KIND,
            "Account",
            _radio(ACCOUNT_OPTIONS, a.account_kind if a else AccountKind.LIVE),
            hint="A paper account trades no money: no order-size limit, kill switch or IP restriction is asked of it.",
        ),
        input_block(
            ProfileBlock.SECOND_FACTOR_HOLDER,
            "Who holds its IBKR second factor",
            _radio(HOLDER_OPTIONS, a.second_factor_holder if a else SecondFactorHolder.PERSON),
            hint="If the bot holds the secret, whoever runs it logs in without a person: that defeats the second "
            "factor and the backup alike, and is flagged.",
        ),
        input_block(ProfileBlock.FENCES, "Fences", checkboxes(FENCE_OPTIONS, fences), optional=True),
        input_block(
            ProfileBlock.KILL_SWITCH_HOW,
            "Kill switch: who can stop it, and how",
            {
                "type": "plain_text_input",
                "multiline": True,
                "max_length": KILL_SWITCH_LIMIT,
                **({"initial_value": clean(a.kill_switch_how)} if a and a.kill_switch_how else {}),
            },
            optional=True,
            hint="e.g. the owner or any desk manager: stop the gw-prod-1 container, then cancel open orders in TWS. "
            "Never a password.",
        ),
        input_block(
            ProfileBlock.KILL_SWITCH,
            "Kill switch last tested on",
            _datepicker(a.kill_switch_tested_on.isoformat() if a and a.kill_switch_tested_on else None),
            optional=True,
            hint="Leave empty if it was never tested.",
        ),
        input_block(
            ProfileBlock.CREDENTIALS,
            "Credentials last rotated on",
            _datepicker(a.credentials_rotated_on.isoformat() if a and a.credentials_rotated_on else None),
            optional=True,
        ),
    ]
    if a is not None:
        blocks.append(
            input_block(
                ProfileBlock.REMOVE,
                "Remove",
                {"type": "checkboxes", "options": [option("Remove this automation from the register", "remove")]},
                optional=True,
            )
        )
    metadata = json.dumps({"automation_id": a.id if a else None})
    return modal(ProfileCallback.AUTOMATION, "Automation", blocks, metadata=metadata)


def _radio(choices: list[dict[str, Any]], initial: str) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "radio_buttons", "options": choices}
    chosen = next((o for o in choices if o["value"] == initial), None)
    if chosen is not None:
        element["initial_option"] = chosen
    return element


BROKER_FENCE_OPTIONS = [
    option("Order precautions set on every platform I trade", "order_precautions"),
    option("The account's IP restriction covers my username", "ip_restricted"),
]


def broker_modal(card: ProfileCard) -> dict[str, Any]:
    """A trader's IBKR usernames and broker-side fences."""
    profile = card.profile
    ticked = [k for k in ("order_precautions", "ip_restricted") if profile is not None and getattr(profile, k)]
    return modal(
        ProfileCallback.BROKER,
        "Broker setup",
        [
            context_block(
                "The IBKR usernames you log in with — usernames only, never a password. IBKR allows one brokerage "
                "session per username: if an automation logs in with one of yours, your logins and its sessions "
                "knock each other out, and the register flags it. A paper trading account has its own username."
            ),
            input_block(
                ProfileBlock.USERNAMES,
                "Your IBKR usernames",
                {
                    "type": "plain_text_input",
                    "max_length": 400,
                    **({"initial_value": ", ".join(card.broker.usernames)} if card.broker.usernames else {}),
                },
                optional=True,
                hint=f"Comma-separated, at most {USERNAMES_LIMIT}. Leave empty to record none.",
            ),
            input_block(
                ProfileBlock.BROKER_FENCES,
                "Broker-side fences",
                checkboxes(BROKER_FENCE_OPTIONS, ticked),
                optional=True,
                hint="Order precautions: IBKR's precautionary settings (size / total value limits) in TWS, and "
                "whatever limits you use on IBKR Mobile and the Client Portal.",
            ),
            context_block(tiers_text(card.broker.desk_ip_restrictions)),
        ],
    )


def _code_modal(callback: str, title: str, intro: str, label: str, *, submit: str) -> dict[str, Any]:
    """A modal asking for the code the backup authenticator shows for IB Preflight (never IBKR's)."""
    code = {"type": "plain_text_input", "min_length": 6, "max_length": 7, "placeholder": plain("123456")}
    hint = "The 6 digits shown under “IB Preflight” in your backup authenticator — not an IBKR code."
    blocks = [section(intro), input_block(ProfileBlock.CODE, label, code, hint=hint), context_block(DRILL_PROMISE)]
    return modal(callback, title, blocks, submit=submit)


def drill_modal() -> dict[str, Any]:
    return _code_modal(
        ProfileCallback.DRILL,
        "Backup drill",
        "Open the authenticator on your *backup* device and enter the code it shows for *IB Preflight*.",
        "Current code from your backup device",
        submit="Check code",
    )


def enroll_modal() -> dict[str, Any]:
    return _code_modal(
        ProfileCallback.ENROLL,
        "Finish enrolment",
        "Enter the code your backup authenticator now shows for *IB Preflight* to finish enrolling.",
        "Current code",
        submit="Finish",
    )


def tier_modal(desk_id: int | None) -> dict[str, Any]:
    return modal(
        ProfileCallback.TIER,
        "Risk tier",
        [
            context_block(
                "Match the security posture to the potential loss: *elevated* for traders who run algorithms or "
                "carry significant intraday margin — two independent backups where the trader can hold them (a "
                "Digital Security Card+ needs account equity of at least USD 1 million; otherwise IB Key and a "
                "Mobile Authenticator app) and a verification every 14 days by default; *standard*: one backup and "
                "a verification every 30 days."
            ),
            input_block(ProfileBlock.TRADER, "Trader", {"type": "users_select"}, optional=False),
            input_block(
                ProfileBlock.TIER,
                "Tier",
                {"type": "radio_buttons", "options": options(TIER_LABEL)},
                optional=False,
            ),
            input_block(
                ProfileBlock.DSC_PLUS_ELIGIBLE,
                "Digital Security Card+",
                checkboxes([option("The account's equity is at least USD 1 million", "dsc_plus_eligible")]),
                optional=True,
                hint="IBKR offers a Digital Security Card+ only to such accounts.",
            ),
        ],
        metadata=json.dumps({"desk_id": desk_id}),
    )


def view_trader_modal() -> dict[str, Any]:
    return modal(
        ProfileCallback.VIEW,
        "Trader profile",
        [input_block(ProfileBlock.TRADER, "Trader", {"type": "users_select"}, optional=False)],
        submit="Show",
    )
