"""Fill and refresh the names cache from Slack (``users.info``): a scheduled job and the
``user_change`` event, never a request's hot path.

``users.info`` is a Tier 4 method (100+ calls a minute,
https://api.slack.com/methods/users.info); a refresh makes at most ``limit`` calls and stops
at the first rate limit, so the next scheduler tick continues where it left off.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import Engine

from bot.db import read_scope, session_scope
from bot.people import service as people

log = logging.getLogger(__name__)

REFRESH_LIMIT = 80  # calls per run: below users.info's Tier 4 allowance per minute
GONE = {"user_not_found", "user_not_visible", "account_inactive"}


def fetch(engine: Engine, client: WebClient, user_id: str, *, now: datetime) -> bool:
    """Ask Slack for one user and cache the answer. False when Slack could not answer (rate
    limit, outage): the caller stops and tries later."""
    try:
        response = client.users_info(user=user_id)
    except SlackApiError as exc:
        error = str(exc.response.get("error") or "")
        if error in GONE:
            with session_scope(engine) as session:
                people.remember_failure(session=session, user_id=user_id, error=error, now=now)
            return True
        log.info("users.info %s failed: %s", user_id, error or exc.response.status_code)
        return False
    except Exception as exc:  # Slack unreachable
        log.info("users.info %s failed: %r", user_id, exc)
        return False
    user = response.get("user")
    profile = people.profile_from_slack(user) if isinstance(user, dict) else None
    if profile is None:
        return True
    with session_scope(engine) as session:
        people.remember(session=session, profile=profile, now=now)
    return True


def refresh(
    engine: Engine, client: WebClient, user_ids: Iterable[str], *, now: datetime, limit: int = REFRESH_LIMIT
) -> int:
    """Fetch the unknown and stale among ``user_ids`` (unknown first), at most ``limit``; how
    many were fetched. No transaction is open during a Slack call."""
    with read_scope(engine) as session:
        due = people.stale(session=session, user_ids=user_ids, now=now)[:limit]
    done = 0
    for user_id in due:
        if not fetch(engine, client, user_id, now=now):
            break
        done += 1
    return done


def ensure(engine: Engine, client: WebClient, user_id: str, *, now: datetime) -> None:
    """Make sure one user's profile is cached (used before an authorisation decision about a
    user the bot may never have seen, e.g. a workspace admin opening *New desk*)."""
    refresh(engine, client, [user_id], now=now, limit=1)


def remember_event_user(engine: Engine, user: Mapping[str, Any], *, now: datetime) -> bool:
    """A ``user_change`` event carries the whole user object: cache it without a Slack call."""
    profile = people.profile_from_slack(user)
    if profile is None:
        return False
    with session_scope(engine) as session:
        people.remember(session=session, profile=profile, now=now)
    return True
