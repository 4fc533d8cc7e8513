"""Fill and refresh the names cache from Slack (``users.info``, ``users.list``): a scheduled
job and the ``user_change`` event, never a request's hot path.

``users.info`` is a Tier 4 method (100+ calls a minute,
https://api.slack.com/methods/users.info); a refresh makes at most ``limit`` calls and stops
at the first rate limit, so the next scheduler tick continues where it left off.

A new desk of 1,000 traders would wait a quarter of an hour for its names that way, showing
raw IDs meanwhile. So when more than ``BULK_THRESHOLD`` of the users wanted are unknown, a
refresh first pages through ``users.list`` (``PAGE_SIZE`` users a call, cursor pagination),
keeping the users it was asked about: 1,000 names in a handful of calls. ``users.list`` is
Tier 2 (about 20 calls a minute, https://api.slack.com/methods/users.list): pages are spaced
``PAGE_SPACING`` apart (``Spacing``, per process), a refresh reads at most ``PAGES_PER_RUN``
pages and the next one resumes from the cursor. Users a complete walk did not list (Slack
Connect guests, say) are left to ``users.info``, as are the few unknown at a time that
``user_change`` events and the daily refresh handle well.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import Engine

from bot.db import read_scope, session_scope
from bot.people import service as people

log = logging.getLogger(__name__)

REFRESH_LIMIT = 80  # calls per run: below users.info's Tier 4 allowance per minute
GONE = {"user_not_found", "user_not_visible", "account_inactive"}
BULK_THRESHOLD = 50  # more unknown users than this: page through users.list first
PAGE_SIZE = 200  # users.list's recommended page size
PAGE_SPACING = 3.0  # seconds between users.list calls: Tier 2, about 20 a minute
PAGES_PER_RUN = 10  # at most 2,000 users listed per refresh (about 30 s); the next resumes
CURSOR_LIFE = timedelta(minutes=30)  # a saved cursor older than this is not resumed


class Spacing:
    """At most one call per ``seconds``, across the threads of a process (a sleep before the
    call when the last one was too recent)."""

    def __init__(
        self,
        seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        with self._lock:
            delay = self._next - self._clock()
            if delay > 0:
                self._sleep(delay)
            self._next = self._clock() + self.seconds


USERS_LIST = Spacing(PAGE_SPACING)


class Walk:
    """A process's walk through ``users.list``: its pace, where the last walk stopped, and whom
    the last complete walk did not list (so they are left to ``users.info`` instead of walking
    the workspace again)."""

    def __init__(self, pace: Spacing = USERS_LIST) -> None:
        self.pace = pace
        self.lock = threading.Lock()  # one walk at a time per process
        self.cursor: str | None = None
        self.cursor_at: datetime | None = None
        self.not_listed: frozenset[str] = frozenset()

    def list_users(
        self, engine: Engine, client: WebClient, user_ids: Iterable[str], *, now: datetime, pages: int = PAGES_PER_RUN
    ) -> int:
        """Page through ``users.list`` (resuming where the last walk stopped) and store the
        unknown and stale among ``user_ids`` it lists; how many were stored. Stops at the first
        failure (a rate limit, an outage), when every one of them is stored, or after ``pages``."""
        if not self.lock.acquire(blocking=False):
            return 0  # another thread of this process is walking
        try:
            with read_scope(engine) as session:
                due = set(people.stale(session=session, user_ids=user_ids, now=now))
            fresh = self.cursor_at is not None and now - CURSOR_LIFE <= self.cursor_at <= now
            cursor = self.cursor if fresh else None
            stored = 0
            for _ in range(pages):
                if not due:
                    break
                self.pace.wait()
                try:
                    response = client.users_list(limit=PAGE_SIZE, cursor=cursor)
                except SlackApiError as exc:
                    error = str(exc.response.get("error") or exc.response.status_code)
                    log.info("users.list failed: %s", error)
                    # The next run resumes here (a cursor Slack no longer takes: from the start).
                    self.cursor, self.cursor_at = (None, None) if error == "invalid_cursor" else (cursor, now)
                    return stored
                except Exception as exc:  # Slack unreachable
                    log.info("users.list failed: %r", exc)
                    self.cursor, self.cursor_at = cursor, now
                    return stored
                members = response.get("members") or []
                profiles = [
                    p
                    for p in (people.profile_from_slack(m) for m in members if isinstance(m, dict))
                    if p is not None and p.user_id in due
                ]
                if profiles:
                    with session_scope(engine) as session:
                        people.remember_many(session=session, profiles=profiles, now=now)
                    stored += len(profiles)
                    due -= {p.user_id for p in profiles}
                meta = response.get("response_metadata")
                cursor = (meta.get("next_cursor") if isinstance(meta, dict) else None) or None
                if cursor is None:  # the end of the workspace: whoever is still due isn't listed
                    self.not_listed = frozenset(due)
                    self.cursor, self.cursor_at = None, None
                    return stored
            self.cursor, self.cursor_at = cursor, now
            return stored
        finally:
            self.lock.release()


WALK = Walk()  # this process's


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
    engine: Engine,
    client: WebClient,
    user_ids: Iterable[str],
    *,
    now: datetime,
    limit: int = REFRESH_LIMIT,
    walk: Walk = WALK,
) -> int:
    """Fetch the unknown and stale among ``user_ids`` (unknown first): through ``users.list``
    when more than ``BULK_THRESHOLD`` are unknown, then at most ``limit`` by ``users.info``;
    how many were stored. No transaction is open during a Slack call."""
    wanted = list(user_ids)
    with read_scope(engine) as session:
        unknown = people.unknown(session=session, user_ids=wanted)
    done = 0
    if len(set(unknown) - walk.not_listed) > BULK_THRESHOLD:
        done += walk.list_users(engine, client, wanted, now=now)
    with read_scope(engine) as session:
        due = people.stale(session=session, user_ids=wanted, now=now)[:limit]
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
