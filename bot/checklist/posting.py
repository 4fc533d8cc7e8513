"""Scheduled jobs: plain functions, run by the scheduler and by the CLI alike."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.engine import Engine

from bot.checklist import rosters
from bot.checklist import service as checklist
from bot.checklist.models import ChecklistRun
from bot.checklist.roster_views import checklist_message
from bot.checklist.service import PostOutcome
from bot.db import session_scope
from bot.delivery import ledger
from bot.delivery.slack import find_posted
from bot.desks import service as desks
from bot.desks.models import Desk

log = logging.getLogger(__name__)


CHECKLIST_EVENT = "preflight_checklist"  # the message metadata's event_type of a checklist post
UNREACHABLE = "unreachable"  # PostResult.outcome when Slack could not be reached (or did not answer in time)


@dataclass(frozen=True)
class PostResult:
    outcome: PostOutcome | str
    message: str
    run_id: int | None = None
    ts: str | None = None


def post_checklist(
    engine: Engine,
    client: WebClient,
    *,
    desk_name: str,
    day: date,
    now: datetime,
    before_deadline_only: bool = False,
) -> PostResult:
    """Post ``day``'s checklist for a desk unless the database says it is already posted.

    The same path serves the scheduler (``before_deadline_only=True``: a bot that was down
    at post time catches up until the deadline) and ``preflight checklist post``.

    The post carries message metadata (``preflight_checklist``, the run id). An attempt whose
    outcome is unknown (timed out, a 5xx, its process died before recording the ``ts``) stays
    in ``bot.delivery.ledger``; the next attempt looks for its message in the channel first
    and adopts it rather than posting the checklist twice.
    """
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name=desk_name)
        claim = checklist.claim_post(
            session=session, desk=desk, day=day, now=now, before_deadline_only=before_deadline_only
        )
        if claim.outcome is not PostOutcome.CLAIMED:
            return _not_posted(desk, day, claim)
        run = claim.run
        assert run is not None and run.id is not None
        text, blocks = checklist_message(rosters.roster(session=session, run=run))
        run_id, channel, version = run.id, run.channel_id, run.answers_version
        key = ledger_key(run_id)
        # An earlier attempt whose outcome is unknown (timed out, or its process died)? Look
        # for its message before posting; otherwise this attempt is in the ledger, committed
        # with the claim, until its outcome is known.
        pending = ledger.pending_since(session=session, key=key)
        if pending is None:
            ledger.begin(session=session, key=key, channel=channel, now=now)
    metadata = {"event_type": CHECKLIST_EVENT, "event_payload": {"run_id": run_id}}
    posting = False
    try:
        found = None
        if pending is not None:
            oldest = ledger.oldest(pending, now)
            found = find_posted(client, channel=channel, metadata=metadata, oldest=oldest)
        if found is not None:
            with session_scope(engine) as session:
                checklist.adopt_post(session=session, run_id=run_id, ts=found, now=now)
                ledger.settle(session=session, key=key)
            log.info("checklist %s %s: adopted the post of an earlier attempt (ts %s)", desk_name, day, found)
            message = f"Posted {desk_name}'s checklist for {day} to {channel} (an earlier attempt had posted it)."
            return PostResult(PostOutcome.CLAIMED, message, run_id, found)
        posting = True
        response = client.chat_postMessage(
            channel=channel, text=text, blocks=blocks, unfurl_links=False, metadata=metadata
        )
    except (SlackClientError, OSError) as exc:  # Slack said no, or could not be reached (refused, DNS, timeout)
        error = _reason(exc)
        with session_scope(engine) as session:  # release the lease: the next try (tick or CLI) posts
            checklist.mark_post_failed(session=session, run_id=run_id, error=error)
            if posting and _refused(exc):  # certainly not posted: nothing to look for next time
                ledger.settle(session=session, key=key)
        log.warning("posting %s %s failed: %s", desk_name, day, error)
        if isinstance(exc, SlackApiError):
            return PostResult("failed", f"Slack refused the post to {channel}: {error}", run_id)
        return PostResult(UNREACHABLE, f"Slack could not be reached to post to {channel}: {error}", run_id)
    ts = str(response["ts"])
    with session_scope(engine) as session:
        checklist.mark_posted(session=session, run_id=run_id, ts=ts, now=now)
        ledger.settle(session=session, key=key)
        run_after = session.get(ChecklistRun, run_id)
        assert run_after is not None
        # Keep the roster's bookkeeping true: what we posted is the rendered version.
        run_after.rendered_version = version
    log.info("posted checklist %s %s to %s (ts %s)", desk_name, day, channel, ts)
    return PostResult(PostOutcome.CLAIMED, f"Posted {desk_name}'s checklist for {day} to {channel}.", run_id, ts)


def ledger_key(run_id: int) -> str:
    """The checklist post's key in ``bot.delivery.ledger``."""
    return f"checklist:{run_id}"


def _refused(exc: BaseException) -> bool:
    """Slack answered and refused (``ok: false``, a 4xx, a 429): nothing was posted. A 5xx or
    no answer (a timeout) leaves the outcome unknown."""
    return isinstance(exc, SlackApiError) and exc.response.status_code < 500


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or exc)
    reason = getattr(exc, "reason", None) or exc  # urllib's URLError wraps the socket error
    return str(getattr(reason, "strerror", None) or reason or type(reason).__name__).splitlines()[0]


def _not_posted(desk: Desk, day: date, claim: checklist.PostClaim) -> PostResult:
    run_id = claim.run.id if claim.run else None
    if claim.outcome is PostOutcome.ALREADY_POSTED:
        msg = f"{desk.name}'s checklist for {day} is already posted; nothing posted again."
    elif claim.outcome is PostOutcome.IN_PROGRESS:
        msg = f"{desk.name}'s checklist for {day} is being posted by another process; nothing posted."
    else:
        msg = f"{claim.reason[:1].upper()}{claim.reason[1:]}; nothing posted."  # keep "NYSE", "Nov"
    return PostResult(claim.outcome, msg, run_id)


def catch_up(engine: Engine, client: WebClient, *, now: datetime) -> list[PostResult]:
    """Post every desk's checklist that is due now and not yet posted (after a restart, a new
    desk added by the CLI, or a failed post): between post time and the deadline, and — for a
    post that was attempted in its window and failed (Slack down) — until the market close,
    with a fresh answer window (``checklist.effective_deadline``)."""
    results: list[PostResult] = []
    with session_scope(engine) as session:
        due = []
        for desk in desks.list_desks(session=session):
            day = checklist.desk_today(desk, now)
            plan = checklist.schedule(desk, day)
            if plan is None or not plan.post_at <= now < plan.market_close:
                continue
            run = checklist.get_run(session=session, desk_id=desk.id or 0, day=day)
            if run is not None and run.message_ts is not None:
                continue
            if now < plan.deadline or (run is not None and run.post_attempts > 0):
                due.append((desk.name, day))
    for name, day in due:
        results.append(post_checklist(engine, client, desk_name=name, day=day, now=now, before_deadline_only=True))
    return results
