"""The problem-report modal: redrawn as checks are ticked, and its submission."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.checklist import service as checklist
from bot.checklist.facts import facts_for
from bot.checklist.guidance import guidance_text
from bot.checklist.models import AuthLayer, Check, ChecklistRun, ContingencyGap, PermissionGap, Platform
from bot.checklist.problem_views import problem_modal, report_recorded
from bot.checklist.service import ProblemReport
from bot.desks.models import Desk
from bot.errors import ServiceError
from bot.interactions import REPLAYED_SUBMISSION, first_time
from bot.slack.deps import Deps, ack_then, user_id
from bot.slack.ids import FIELD, Block, Callback

log = logging.getLogger(__name__)

E = TypeVar("E", bound=StrEnum)


def register(app: App) -> None:
    app.view(Callback.REPORT_MODAL)(on_problem_submitted)
    app.action({"block_id": Block.FAILED, "action_id": FIELD})(ack_then(redraw_problem_modal))


class FieldErrors(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.errors = errors


def _field(values: dict[str, Any], block: str) -> dict[str, Any]:
    field = (values.get(block) or {}).get(FIELD) or {}
    return field if isinstance(field, dict) else {}


def _many(values: dict[str, Any], block: Block, enum: type[E], errors: dict[str, str]) -> frozenset[E]:
    chosen: set[E] = set()
    for option in _field(values, block).get("selected_options") or []:
        try:
            chosen.add(enum(option.get("value")))
        except ValueError:
            errors[block] = "That choice isn't one of the options; pick again."
    return frozenset(chosen)


def _one(values: dict[str, Any], block: Block, enum: type[E], errors: dict[str, str]) -> E | None:
    option = _field(values, block).get("selected_option")
    if not option:
        return None
    try:
        return enum(option.get("value"))
    except ValueError:
        errors[block] = "That choice isn't one of the options; pick again."
        return None


def _text(values: dict[str, Any], block: Block) -> str | None:
    value = _field(values, block).get("value")
    return value if isinstance(value, str) and value.strip() else None


def parse_problem(view: dict[str, Any]) -> ProblemReport:
    """The modal's state as a ProblemReport, or FieldErrors keyed by block_id. Only the fields
    of the checks that failed are read: a field that does not apply is ignored, not refused."""
    values = (view.get("state") or {}).get("values") or {}
    errors: dict[str, str] = {}
    failed = _many(values, Block.FAILED, Check, errors)
    auth, perms = Check.AUTHENTICATION in failed, Check.PERMISSIONS in failed
    report = ProblemReport(
        failed=failed,
        auth_layer=_one(values, Block.AUTH_LAYER, AuthLayer, errors) if auth else None,
        platform=_one(values, Block.PLATFORM, Platform, errors) if auth or perms else None,
        missing_permissions=_text(values, Block.MISSING_PERMISSIONS) if perms else None,
        permission_gaps=_many(values, Block.PERMISSION_GAPS, PermissionGap, errors) if perms else frozenset(),
        gaps=_many(values, Block.GAPS, ContingencyGap, errors) if Check.CONTINGENCY in failed else frozenset(),
        note=_text(values, Block.NOTE),
    )
    errors = {**checklist.validate_report(checklist.applicable(report)), **errors}
    if errors:
        raise FieldErrors(errors)
    return report


def redraw_problem_modal(body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    """A check was ticked or unticked: redraw the modal with the fields that now apply."""
    view = body.get("view") or {}
    user = user_id(body)
    run_id, channel = _metadata(view)
    errors: dict[str, str] = {}
    failed = _many((view.get("state") or {}).get("values") or {}, Block.FAILED, Check, errors)
    with deps.read() as session:  # no Slack call inside a transaction
        run = session.get(ChecklistRun, run_id) if run_id is not None else None
        desk = session.get(Desk, run.desk_id) if run is not None else None
        if run is None or desk is None:
            return
        known = facts_for(session, run, [user]).get(user)
        new = problem_modal(run, desk, channel_id=channel, failed=failed, facts=known)
    try:
        client.views_update(view_id=view.get("id"), hash=view.get("hash"), view=new)
    except SlackApiError as exc:  # hash_conflict: a later click's redraw is on its way
        log.info("redrawing the problem-report modal failed: %s", exc.response.get("error"))


def _metadata(view: dict[str, Any]) -> tuple[int | None, str | None]:
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
        run_id = meta.get("run_id")
        channel = meta.get("channel_id")
        return (run_id if isinstance(run_id, int) else None), (channel if isinstance(channel, str) else None)
    except (ValueError, AttributeError):
        return None, None


def on_problem_submitted(ack: Ack, body: dict[str, Any], client: WebClient, deps: Deps, now: datetime) -> None:
    view = body.get("view") or {}
    user = user_id(body)
    run_id, channel = _metadata(view)
    try:
        report = parse_problem(view)
    except FieldErrors as exc:
        ack(response_action="errors", errors=exc.errors)
        return
    with deps.db() as session:
        if not first_time(session=session, body=body, now=now):
            ack(response_action="errors", errors={Block.FAILED: REPLAYED_SUBMISSION})
            return
        run = session.get(ChecklistRun, run_id) if run_id is not None else None
        if run is None:
            ack(response_action="errors", errors={Block.FAILED: "This checklist is no longer available."})
            return
        try:
            result = checklist.report_problem(session=session, run=run, user_id=user, report=report, now=now)
        except ServiceError as exc:
            ack(response_action="errors", errors={Block.FAILED: str(exc)})
            return
        text = guidance_text(result.answer)
    # The guidance is the acknowledgement itself (the modal turns into it): no chat.postEphemeral,
    # which is rate-tiered and was refused on an outage morning.
    ack(response_action="update", view=report_recorded(text))
    if result.outcome is checklist.AnswerOutcome.STORED and run_id is not None:
        deps.refresher.notify(run_id)
    if channel is None and deps.home_publisher is not None:  # reported from App Home: draw it again
        deps.later(deps.home_publisher, client=client, deps=deps, user=user, now=now)
