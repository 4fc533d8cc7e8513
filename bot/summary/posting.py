"""Weekly summary jobs: post a desk's summary (once), post every summary that is due, and send
a manager the week's CSV. Plain functions run by the scheduler, the CLI and listeners alike."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import datetime

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.engine import Engine

from bot.crypto import Keyring
from bot.db import read_scope, session_scope
from bot.desks import service as desks
from bot.desks.models import Desk, Role
from bot.summary import chart, export, service
from bot.summary import views as summary_views
from bot.summary.report import WeeklyReport, build_summary
from bot.summary.service import SummaryOutcome
from bot.summary.weeks import parse_iso_week, week_weekdays

log = logging.getLogger(__name__)

UNREACHABLE = "unreachable"  # SummaryResult.outcome when Slack could not be reached (the claim is released)


@dataclass(frozen=True)
class SummaryResult:
    outcome: str  # claimed (posted) | already_posted | in_progress | failed
    message: str
    ts: str | None = None


def _recipients(client: WebClient, desk: Desk, managers: list[str]) -> list[str]:
    """The managers' channel when the desk has one, else a DM channel per manager."""
    if desk.managers_channel_id:
        return [desk.managers_channel_id]
    channels = []
    for manager in managers:
        opened = client.conversations_open(users=manager)
        channels.append(str(opened["channel"]["id"]))
    return channels


def upload_chart(client: WebClient, *, channel: str, report: WeeklyReport, png: bytes) -> None:
    client.files_upload_v2(
        channel=channel,
        file=png,
        filename=f"readiness-{report.desk_name}-{report.iso_week}.png",
        title=f"Readiness heatmap — {report.desk_name}, {report.iso_week}",
        alt_txt=chart.alt_text(report),
        request_file_info=False,
    )


CHART_FAILED = "_The readiness chart couldn't be drawn this week: the figures above are complete._"


def _chart(report: WeeklyReport, *, desk_name: str, iso_week: str) -> bytes | None:
    """The heatmap PNG, or None when drawing it fails for any reason: the summary is posted
    without it (saying so) rather than not at all."""
    try:
        return chart.render_heatmap(report)
    except Exception:
        log.exception("drawing the %s chart for %s failed: posting the summary without it", desk_name, iso_week)
        return None


def _release(engine: Engine, summary_id: int) -> None:
    try:
        with session_scope(engine) as session:
            service.release_post(session=session, summary_id=summary_id)
    except Exception:  # the lease expires on its own (SUMMARY_LEASE)
        log.exception("releasing the claim on summary %s failed: it expires with its lease", summary_id)


def post_summary(engine: Engine, client: WebClient, *, desk_name: str, iso_week: str, now: datetime) -> SummaryResult:
    """Post the week's summary unless the WeeklySummary row says it is posted (or being posted).
    ServiceError (``service.check_due``) for a week whose summary isn't due at ``now``."""
    iso_week = parse_iso_week(iso_week)
    with session_scope(engine) as session:
        desk = desks.get_desk(session=session, name=desk_name)
        service.check_due(desk=desk, iso_week=iso_week, now=now)
        claim = service.claim_post(session=session, desk=desk, iso_week=iso_week, now=now)
        if claim.outcome is SummaryOutcome.ALREADY_POSTED:
            return SummaryResult(claim.outcome, f"{desk_name}'s summary for {iso_week} is already posted.")
        if claim.outcome is SummaryOutcome.IN_PROGRESS:
            return SummaryResult(claim.outcome, f"{desk_name}'s summary for {iso_week} is being posted elsewhere.")
        summary_id = claim.summary.id
        assert summary_id is not None
        report = build_summary(session=session, desk=desk, iso_week=iso_week, now=now)
        managers = desks.members(session=session, desk_id=desk.id or 0, role=Role.MANAGER)
    posted = False
    try:
        text, blocks = summary_views.summary_text(report), summary_views.summary_blocks(report)
        png = _chart(report, desk_name=desk_name, iso_week=iso_week)
        if png is None:
            text = f"{text}\n{CHART_FAILED}"
            blocks = [*blocks, {"type": "context", "elements": [{"type": "mrkdwn", "text": CHART_FAILED}]}]
        first_ts: str | None = None
        try:
            for channel in _recipients(client, desk, managers):
                response = client.chat_postMessage(channel=channel, text=text, blocks=blocks, unfurl_links=False)
                first_ts = first_ts or str(response["ts"])
                if png is not None:
                    upload_chart(client, channel=channel, report=report, png=png)
        except (SlackClientError, OSError) as exc:  # refused, or Slack could not be reached
            refused = isinstance(exc, SlackApiError)
            error = (
                str(exc.response.get("error") or exc)
                if isinstance(exc, SlackApiError)
                else f"{type(exc).__name__}: {exc}"
            )
            log.warning("posting the %s summary for %s failed: %s", desk_name, iso_week, error)
            if refused:
                return SummaryResult("failed", f"Slack refused the {desk_name} summary for {iso_week}: {error}")
            return SummaryResult(
                UNREACHABLE, f"Slack could not be reached to post the {desk_name} summary for {iso_week}: {error}"
            )
        with session_scope(engine) as session:
            service.mark_posted(session=session, summary_id=summary_id, ts=first_ts, now=now)
        posted = True
    finally:
        if not posted:  # any failure (Slack, a view, the database): the next tick or the CLI tries again
            _release(engine, summary_id)
    where = desk.managers_channel_id or f"{len(managers)} manager(s) by DM"
    return SummaryResult(SummaryOutcome.CLAIMED, f"Posted {desk_name}'s summary for {iso_week} to {where}.", first_ts)


def preview_summary(engine: Engine, *, desk_name: str, iso_week: str, now: datetime) -> tuple[WeeklyReport, bytes]:
    """The week's summary and chart as they stand at ``now``, for any week (the unfinished
    one included): nothing is posted, claimed or marked."""
    iso_week = parse_iso_week(iso_week)
    with read_scope(engine) as session:
        desk = desks.get_desk(session=session, name=desk_name)
        report = build_summary(session=session, desk=desk, iso_week=iso_week, now=now)
    return report, chart.render_heatmap(report)


def post_due_summaries(engine: Engine, client: WebClient, *, now: datetime) -> list[SummaryResult]:
    """The scheduler's job: every summary that is due and not yet posted."""
    with session_scope(engine) as session:
        due = service.due_posts(session=session, desks=desks.list_desks(session=session), now=now)
    return [post_summary(engine, client, desk_name=name, iso_week=week, now=now) for name, week in due]


def send_week_csv(
    engine: Engine, client: WebClient, *, desk_id: int, iso_week: str, user_id: str, keys: Keyring | None = None
) -> str:
    """Upload the week's hash-chained CSV to a manager's DM. ServiceError for non-managers."""
    iso_week = parse_iso_week(iso_week)
    with session_scope(engine) as session:
        desk = service.managed_desk(session=session, desk_id=desk_id, user_id=user_id)
    weekdays = week_weekdays(iso_week)
    buffer = io.StringIO()
    with read_scope(engine) as session:  # a long read: don't hold SQLite's write lock for it
        result = export.write_csv(
            session=session, desk=desk, start=weekdays[0], end=weekdays[-1], out=buffer, keys=keys
        )
    channel = str(client.conversations_open(users=user_id)["channel"]["id"])
    client.files_upload_v2(
        channel=channel,
        content=buffer.getvalue().encode(),
        filename=f"attestations-{desk.name}-{iso_week}.csv",
        title=f"Attestation record — {desk.name}, {iso_week}",
        initial_comment=(
            f"{desk.name}, {iso_week}: {result.rows} events, hash-chained "
            f"(check with `preflight export verify FILE`; chain head `{result.head[:16]}…`)."
        ),
        request_file_info=False,
    )
    return channel
