"""Who a desk's traders ask for security changes, and whether the desk uses IP restrictions.

Adding a second factor may need the account's primary user (docs/broker-facts.md §7): the desk
records who to ask — a Slack user (shown by name, never by raw id) or a line of text — and the
readiness guidance names them. Domain only: no Slack.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from sqlmodel import Session

from bot.desks import service as desks
from bot.desks.models import Desk
from bot.errors import ServiceError
from bot.people import service as people
from bot.people.names import Names
from bot.text import user_text

CONTACT_LIMIT = 120
# "@U0123ABCD" or Slack's own "<@U0123ABCD>" / "<@U0123ABCD|name>": a Slack user (the "@" is
# required, so a text such as "UBS desk" stays text).
_USER = re.compile(r"^(?:<@|@)([UW][A-Z0-9]{2,31})(?:\|[^>]*)?>?$")


def parse_contact(value: str) -> tuple[str | None, str | None]:
    """(Slack user id, text) from what the CLI was given: '' clears both. ServiceError
    (field ``security_contact``) for text that is too long or looks like a secret."""
    value = value.strip()
    if not value:
        return None, None
    found = _USER.match(value)
    if found:
        return found.group(1), None
    text = user_text(value, field="security_contact", limit=CONTACT_LIMIT, what="security contact")
    return None, text


def set_broker_settings(
    *,
    session: Session,
    desk: Desk,
    contact_user: str | None,
    contact_text: str | None,
    ip_restrictions: bool | None,
    change_contact: bool,
    actor: str,
    now: datetime,
) -> Desk:
    """Record the desk's security contact (when ``change_contact``) and whether it uses IP
    restrictions (unless None); an audit event when something changed."""
    text = user_text(contact_text, field="security_contact", limit=CONTACT_LIMIT, what="security contact")
    if change_contact and contact_user and text:  # both: one would be silently dropped
        raise ServiceError("Pick a person or write who to ask, not both.", field="security_contact")
    before = (desk.security_contact_user, desk.security_contact_text, desk.ip_restrictions)
    if change_contact:
        desk.security_contact_user = contact_user or None
        desk.security_contact_text = None if contact_user else text
    if ip_restrictions is not None:
        desk.ip_restrictions = ip_restrictions
    after = (desk.security_contact_user, desk.security_contact_text, desk.ip_restrictions)
    if after != before:
        session.add(desk)
        session.flush()
        assert desk.id is not None
        desks.record(session, desk.id, actor, "broker_settings_changed", now, before=list(before), after=list(after))
    return desk


def contact_name(desk: Desk, names: Names) -> str | None:
    """Plain text naming who to ask (escape it in mrkdwn), or None when the desk records nobody."""
    if desk.security_contact_user:
        if desk.security_contact_user not in names:  # not in the names cache yet: never show a raw id
            return "the security contact in your desk's settings"
        return names(desk.security_contact_user)
    return desk.security_contact_text or None


def contacts(session: Session, desks: Iterable[Desk]) -> list[tuple[str, str]]:
    """(desk name, who to ask) for each of ``desks`` that records a security contact."""
    chosen = list(desks)
    users = [d.security_contact_user for d in chosen if d.security_contact_user]
    names = people.names_for(session=session, user_ids=users) if users else Names()
    out = []
    for desk in chosen:
        who = contact_name(desk, names)
        if who:
            out.append((desk.name, who))
    return out


def guidance(found: list[tuple[str, str]]) -> str:
    """One plain-text sentence (escape it in mrkdwn): who may need to approve a security change."""
    base = "Adding a second factor may need your account's primary user"
    if not found:
        return base + "; your desk hasn't recorded who to ask."
    if len(found) == 1:
        return f"{base}: ask {found[0][1]}."
    return f"{base}: ask " + "; ".join(f"{who} ({desk})" for desk, who in found) + "."
