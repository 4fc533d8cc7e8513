"""Block Kit for desk settings and away days: pure builders, data in, views out.

Every input's ``block_id`` is the name of the setting it edits, which is also the ``field`` a
``ServiceError`` from ``bot.desks.service`` / ``bot.desks.away`` carries: a refused value
comes back as that input's error (``response_action: errors``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from bot.calendar import SUNDAY_PROBE_AT
from bot.desks.contact import CONTACT_LIMIT
from bot.desks.models import MINUTE_RANGES, Away, Desk
from bot.people.service import Names
from bot.slack.blocks import (
    SECTION_BUDGET,
    Blocks,
    checkboxes,
    context_block,
    cut,
    escape,
    input_block,
    modal,
    option,
    plain,
    section,
)
from bot.slack.ids import Callback
from bot.text import clean

# https://api.slack.com/reference/block-kit/block-elements#multi_users_select has no documented
# cap on initial_users; past this many members the modal edits by additions and removals.
MEMBER_SELECT_LIMIT = 100
SUNDAY_EVENING = "sunday_evening"  # the Sunday-evening checkbox: its block id and value
IP_RESTRICTIONS = "ip_restrictions"  # the IP-restrictions checkbox: its block id and value

# Searchable (type-ahead) static select of the zones trading desks use, in groups
# (https://api.slack.com/reference/block-kit/block-elements#static_select : at most 100
# options or 100 option groups of at most 100 options; option text at most 75 characters).
ZONE_GROUPS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Americas",
        (
            ("New York", "America/New_York"),
            ("Chicago", "America/Chicago"),
            ("Denver", "America/Denver"),
            ("Phoenix", "America/Phoenix"),
            ("Los Angeles", "America/Los_Angeles"),
            ("Anchorage", "America/Anchorage"),
            ("Honolulu", "Pacific/Honolulu"),
            ("Toronto", "America/Toronto"),
            ("Vancouver", "America/Vancouver"),
            ("Mexico City", "America/Mexico_City"),
            ("Bogotá", "America/Bogota"),
            ("Lima", "America/Lima"),
            ("Santiago", "America/Santiago"),
            ("Buenos Aires", "America/Argentina/Buenos_Aires"),
            ("São Paulo", "America/Sao_Paulo"),
        ),
    ),
    (
        "Europe, Middle East, Africa",
        (
            ("London", "Europe/London"),
            ("Dublin", "Europe/Dublin"),
            ("Lisbon", "Europe/Lisbon"),
            ("Paris", "Europe/Paris"),
            ("Amsterdam", "Europe/Amsterdam"),
            ("Brussels", "Europe/Brussels"),
            ("Frankfurt / Berlin", "Europe/Berlin"),
            ("Zurich", "Europe/Zurich"),
            ("Milan / Rome", "Europe/Rome"),
            ("Madrid", "Europe/Madrid"),
            ("Stockholm", "Europe/Stockholm"),
            ("Oslo", "Europe/Oslo"),
            ("Copenhagen", "Europe/Copenhagen"),
            ("Helsinki", "Europe/Helsinki"),
            ("Warsaw", "Europe/Warsaw"),
            ("Athens", "Europe/Athens"),
            ("Istanbul", "Europe/Istanbul"),
            ("Moscow", "Europe/Moscow"),
            ("Tel Aviv", "Asia/Jerusalem"),
            ("Dubai", "Asia/Dubai"),
            ("Riyadh", "Asia/Riyadh"),
            ("Johannesburg", "Africa/Johannesburg"),
            ("Lagos", "Africa/Lagos"),
            ("Cairo", "Africa/Cairo"),
            ("Nairobi", "Africa/Nairobi"),
        ),
    ),
    (
        "Asia, Pacific",
        (
            ("Mumbai / Kolkata", "Asia/Kolkata"),
            ("Karachi", "Asia/Karachi"),
            ("Bangkok", "Asia/Bangkok"),
            ("Jakarta", "Asia/Jakarta"),
            ("Singapore", "Asia/Singapore"),
            ("Kuala Lumpur", "Asia/Kuala_Lumpur"),
            ("Hong Kong", "Asia/Hong_Kong"),
            ("Shanghai", "Asia/Shanghai"),
            ("Taipei", "Asia/Taipei"),
            ("Manila", "Asia/Manila"),
            ("Seoul", "Asia/Seoul"),
            ("Tokyo", "Asia/Tokyo"),
            ("Perth", "Australia/Perth"),
            ("Adelaide", "Australia/Adelaide"),
            ("Brisbane", "Australia/Brisbane"),
            ("Sydney", "Australia/Sydney"),
            ("Melbourne", "Australia/Melbourne"),
            ("Auckland", "Pacific/Auckland"),
        ),
    ),
    ("Other", (("UTC", "UTC"),)),
)


def zone_groups(current: str | None) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for label, zones in ZONE_GROUPS:
        options = [option(f"{city} ({tz})", tz) for city, tz in zones]
        groups.append({"label": plain(label), "options": options})
    known = {tz for _, zones in ZONE_GROUPS for _, tz in zones}
    if current and current not in known:
        groups[-1]["options"].insert(0, option(current, current))
    return groups


def _zone_label(tz: str) -> str:
    for _, zones in ZONE_GROUPS:
        for city, value in zones:
            if value == tz:
                return f"{city} ({tz})"
    return tz


# The settings counted in minutes, as the modal asks for them: label and hint (the range each
# takes: MINUTE_RANGES).
MINUTE_INPUTS: dict[str, tuple[str, str]] = {
    "reminder_minutes": ("Reminder (minutes before the deadline)", "0: no reminder."),
    "grace_minutes": ("Grace (minutes after the deadline)", "Silent traders are escalated after the grace period."),
    "ack_timeout_minutes": ("Level 2 after (minutes unacknowledged)", ""),
    "summary_delay_minutes": ("Weekly summary (minutes after the week's close)", ""),
}


def _minutes(setting: str, initial: int) -> dict[str, Any]:
    """The input of a setting counted in minutes: a whole number in its range, under the
    setting's name as block id."""
    label, hint = MINUTE_INPUTS[setting]
    low, high = MINUTE_RANGES[setting]
    number = {
        "type": "number_input",
        "is_decimal_allowed": False,
        "min_value": str(low),
        "max_value": str(high),
        "initial_value": str(initial),
    }
    return input_block(setting, label, number, hint=hint)


def _channel(initial: str | None) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "conversations_select",
        "placeholder": plain("Pick a channel"),
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
    }
    if initial:
        element["initial_conversation"] = initial
    return element


def _users(initial: Sequence[str]) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "multi_users_select", "placeholder": plain("Pick people")}
    if initial:
        element["initial_users"] = list(initial)
    return element


def _tick_box(block: str, label: str, text: str, ticked: bool, *, hint: str) -> dict[str, Any]:
    """A yes/no setting: one optional checkbox whose value is the block's id
    (``bot.slack.desk_settings`` reads it back)."""
    return input_block(
        block, label, checkboxes([option(text, block)], [block] if ticked else []), optional=True, hint=hint
    )


@dataclass(frozen=True)
class SettingsForm:
    """What the settings modal shows: a desk (None for a new one), its members, and whether
    its pager has a secret (never shown)."""

    desk: Desk | None
    managers: list[str]
    traders: list[str]
    names: Names
    grace_minutes: int = 15


def settings_metadata(desk_id: int | None, *, large: bool, home: bool = True) -> str:
    return json.dumps({"desk_id": desk_id, "large": large, "home": home}, separators=(",", ":"))


def settings_modal(form: SettingsForm) -> dict[str, Any]:
    """The *Desk settings* modal (or *New desk* when ``form.desk`` is None)."""
    desk = form.desk
    large = len(form.traders) > MEMBER_SELECT_LIMIT
    blocks: Blocks = []
    if desk is not None:
        blocks.append(
            context_block(
                f"*{escape(desk.name)}* · {len(form.traders)} traders · {len(form.managers)} managers. "
                "Changes apply from the next checklist; every change is recorded."
            )
        )
    blocks += [
        input_block(
            "desk_name",
            "Desk name",
            {
                "type": "plain_text_input",
                "max_length": 64,
                "placeholder": plain("e.g. equities"),
                **({"initial_value": desk.name} if desk else {}),
            },
            hint="Lowercase letters, digits, '-' or '_'.",
        ),
        input_block(
            "channel", "Checklist channel", _channel(desk.channel_id if desk else None), hint="Invite the bot."
        ),
        input_block("managers", "Managers", _users(form.managers), hint="They get escalations and the weekly summary."),
    ]
    if large:
        blocks += [
            context_block(
                f"*{len(form.traders)} traders* — too many to list here: add or remove people below "
                "(`preflight desk list` shows everyone)."
            ),
            input_block("add_traders", "Add traders", _users([]), optional=True),
            input_block("remove_traders", "Remove traders", _users([]), optional=True),
        ]
    else:
        blocks.append(input_block("traders", "Traders", _users(form.traders)))
    zone = desk.timezone if desk else "America/New_York"
    blocks += [
        input_block(
            "timezone",
            "Time zone",
            {
                "type": "static_select",
                "placeholder": plain("Type a city"),
                "option_groups": zone_groups(zone),
                "initial_option": option(_zone_label(zone), zone),
            },
        ),
        input_block(
            "post_at",
            "Post the checklist at",
            {"type": "timepicker", "initial_time": desk.post_at if desk else "08:00"},
        ),
        input_block("deadline", "Deadline", {"type": "timepicker", "initial_time": desk.deadline if desk else "09:00"}),
        _minutes("reminder_minutes", desk.reminder_minutes if desk else 30),
        _minutes("grace_minutes", form.grace_minutes),
        _minutes("ack_timeout_minutes", desk.ack_timeout_minutes if desk else 15),
        input_block(
            "escalation_channel",
            "Escalation channel (level 2)",
            _channel(desk.escalation_channel_id if desk else None),
            optional=True,
        ),
        input_block(
            "pager_kind",
            "Pager",
            {
                "type": "static_select",
                "options": [
                    option("None", "none"),
                    option("PagerDuty (Events API v2)", "pagerduty"),
                    option("Signed webhook", "webhook"),
                ],
                "initial_option": option(
                    {"none": "None", "pagerduty": "PagerDuty (Events API v2)", "webhook": "Signed webhook"}.get(
                        desk.pager_kind if desk else "none", "None"
                    ),
                    desk.pager_kind if desk else "none",
                ),
            },
        ),
        input_block(
            "pager_url",
            "Pager URL",
            {"type": "url_text_input", **({"initial_value": desk.pager_url} if desk and desk.pager_url else {})},
            optional=True,
            hint="A webhook's https:// URL (PagerDuty: leave empty for events.pagerduty.com).",
        ),
        input_block(
            "pager_secret",
            "Pager key",
            {"type": "plain_text_input", "max_length": 200, "placeholder": plain("Routing key or webhook secret")},
            optional=True,
            hint=(
                "A key is set: leave empty to keep it. It is stored encrypted and never shown."
                if desk and desk.pager_secret
                else "PagerDuty routing key or webhook HMAC secret; stored encrypted, never shown."
            ),
        ),
        input_block(
            "managers_channel",
            "Weekly summary to (channel)",
            _channel(desk.managers_channel_id if desk else None),
            optional=True,
            hint="Empty: each manager gets it by DM.",
        ),
        _minutes("summary_delay_minutes", desk.summary_delay_minutes if desk else 30),
        _tick_box(
            SUNDAY_EVENING,
            "Sunday evening",
            "The desk trades Sunday evening (futures, FX)",
            desk is not None and desk.sunday_evening,
            hint="Broker probes then also run on Sunday, after IBKR's weekly re-authentication and before its FX "
            f"week opens (Sunday {SUNDAY_PROBE_AT:%H:%M} New York time), so a dead session is found before the open.",
        ),
        *broker_blocks(desk),
    ]
    if desk is not None and (desk.escalation_channel_id or desk.managers_channel_id):
        clear = []
        if desk.escalation_channel_id:
            clear.append(option("No escalation channel", "escalation_channel"))
        if desk.managers_channel_id:
            clear.append(option("Weekly summary by DM, not to a channel", "managers_channel"))
        blocks.append(input_block("clear", "Clear", {"type": "checkboxes", "options": clear}, optional=True))
    return modal(
        Callback.DESK_SETTINGS_MODAL,
        "Desk settings" if desk else "New desk",
        blocks,
        submit="Save" if desk else "Create desk",
        metadata=settings_metadata(desk.id if desk else None, large=large),
    )


def broker_blocks(desk: Desk | None) -> Blocks:
    """Who to ask for security changes, and whether the desk uses IP restrictions."""
    person: dict[str, Any] = {"type": "users_select"}
    if desk is not None and desk.security_contact_user:
        person["initial_user"] = desk.security_contact_user
    text: dict[str, Any] = {"type": "plain_text_input", "max_length": CONTACT_LIMIT}
    if desk is not None and desk.security_contact_text:
        text["initial_value"] = clean(desk.security_contact_text)
    return [
        input_block(
            "security_contact_user",
            "Security contact",
            person,
            optional=True,
            hint="Who traders ask for security changes such as adding a second factor (it may need the account's "
            "primary user). Named in their readiness guidance.",
        ),
        input_block(
            "security_contact_text",
            "…or describe who to ask",
            text,
            optional=True,
            hint="When it isn't someone in Slack, e.g. 'the account holder, Jane Doe, ext. 42'. Never a password.",
        ),
        _tick_box(
            IP_RESTRICTIONS,
            "IP restrictions",
            "The desk restricts IBKR logins by IP address",
            desk is not None and desk.ip_restrictions,
            hint="Elevated traders and automations then record that the account's IP restriction covers them.",
        ),
    ]


# --- away days -------------------------------------------------------------------------------


def away_modal(*, for_manager: bool, today: date, user_id: str | None = None) -> dict[str, Any]:
    """Set away days: your own, or (managers) a trader's."""
    blocks: Blocks = []
    if for_manager:
        element: dict[str, Any] = {"type": "users_select", "placeholder": plain("Pick a trader")}
        if user_id:
            element["initial_user"] = user_id
        blocks.append(input_block("user", "Trader", element))
    blocks += [
        input_block("start", "First day away", {"type": "datepicker", "initial_date": today.isoformat()}),
        input_block("end", "Last day away", {"type": "datepicker", "initial_date": today.isoformat()}),
        input_block(
            "note",
            "Note",
            {"type": "plain_text_input", "max_length": 200, "placeholder": plain("e.g. holiday")},
            optional=True,
        ),
        context_block("Away traders get no reminder, are never escalated and don't count in the weekly figures."),
    ]
    return modal(Callback.AWAY_MODAL, "Away days", blocks, metadata=json.dumps({"manager": for_manager}))


def away_line(away: Away) -> str:
    span = f"{away.start:%a %d %b}" if away.start == away.end else f"{away.start:%a %d %b} – {away.end:%a %d %b %Y}"
    return f"🌴 {span}" + (f" — {escape(away.note)}" if away.note else "")


def away_text(periods: Sequence[Away]) -> str:
    if not periods:
        return ""
    return "*Your away days*\n" + "\n".join(away_line(a) for a in periods[:10])


def away_confirmation(user_id: str, start: date, end: date, names: Names, *, own: bool, on: Sequence[str] = ()) -> str:
    """``on``: the desks a manager's away applies to (their own desks); empty: every desk."""
    who = "You're" if own else f"{escape(names(user_id))} is"
    where = f" on {', '.join(escape(n) for n in on)}" if on else ""
    return f"🌴 {who} away {start:%a %d %b} – {end:%a %d %b %Y}: no reminders, no escalations{where}."


def back_confirmation(user_id: str, names: Names, *, own: bool, changed: bool) -> str:
    """The answer to `/ibstatus back [@user]`."""
    who = "Welcome back" if own else f"{escape(names(user_id))} is back"
    return who + (": reminders and escalations are on again." if changed else " — no away days were set.")


def settings_saved(desk_name: str, created: bool) -> str:
    return f"✅ Desk *{escape(desk_name)}* {'created' if created else 'saved'}. Changes apply from the next checklist."


def refusal(desk_name: str | None) -> str:
    what = f"the {escape(desk_name)} desk's settings" if desk_name else "desk settings"
    return f"Only the desk's managers and workspace admins can change {what}."


def section_list(title: str, lines: list[str]) -> dict[str, Any]:
    return section(cut(title + "\n" + "\n".join(lines), SECTION_BUDGET))
