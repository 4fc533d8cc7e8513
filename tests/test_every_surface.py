"""Every surface keeps the user-text promises by construction (issue 17).

(a) Every modal builder in the code base is found automatically; for every ``plain_text_input``
    in it, a password and a one-time code are submitted through the real signed HTTP path:
    the answer is a field error under that block, and nothing is stored.
(b) Every view and message builder is found automatically and rendered with hostile strings in
    every user-supplied field and display name: its mrkdwn carries no live mention, link or
    formatting from that text, and no invisible character anywhere.

Discovery: every public function of every ``bot.*.views`` / ``bot.*.*_views`` module. A
builder that the registries below don't cover fails ``test_*_registry_covers_every_builder``,
so a new builder can't be forgotten.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

import bot
from bot.checklist import problem_views, roster_views, status_views
from bot.checklist.models import Answer, Check, ChecklistRun
from bot.checklist.rosters import Roster, RosterEntry, TraderState
from bot.checklist.status import DeskStatus, TraderStatus
from bot.db import session_scope
from bot.desks import views as desk_views
from bot.desks.models import Away, Desk
from bot.escalation import views as escalation_views
from bot.escalation.models import Escalation, EscalationKind, EscalationState
from bot.people.service import Names
from bot.probe import views as probe_views
from bot.probe.home import ProbeCard, ProbeCount
from bot.probe.models import ProbeKind, ProbeState
from bot.probe.service import EndpointStatus
from bot.profile import modals as profile_modals
from bot.profile import views as profile_views
from bot.profile.drill import CodeOutcome, CodeResult
from bot.profile.fences import Fence
from bot.profile.home import AutomationLine, BrokerSetup, DeskOverview, ProfileCard, TraderLine
from bot.profile.models import Automation, GapKind, PlatformPermission, ReadinessGap, RiskTier
from bot.profile.policy import AutomationFlag, tier_policy
from bot.slack import home_views
from bot.slack.ids import FIELD
from bot.summary import views as summary_views
from tests.support.escalation_fixtures import post_checklist
from tests.support.factories import make_desk
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot
from tests.support.report_fixtures import weekly_report

# --- discovery -------------------------------------------------------------------------------------


def view_modules() -> list[str]:
    found = []
    for info in pkgutil.walk_packages(bot.__path__, "bot."):
        last = info.name.rsplit(".", 1)[-1]
        if last in ("views", "modals") or last.endswith("_views"):
            found.append(info.name)
    return sorted(found)


def builders() -> dict[str, Callable[..., Any]]:
    """Every public function of every views module, by qualified name."""
    out: dict[str, Callable[..., Any]] = {}
    for name in view_modules():
        module = importlib.import_module(name)
        for fn_name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == name and not fn_name.startswith("_"):
                out[f"{name}.{fn_name}"] = fn
    return out


def is_modal_builder(fn: Callable[..., Any]) -> bool:
    source = inspect.getsource(fn)
    return bool(re.search(r"\bmodal\(|\"type\": \"modal\"|_modal\(", source)) or fn.__name__.endswith("_modal")


# --- hostile text ------------------------------------------------------------------------------------

LIVE = ["<!channel>", "<@U123>", "<https://x|y>", "*x*"]  # would notify, mention, link or format
INVISIBLE = ["\u202e"]
HOSTILE = '<!channel> <@U123> <https://x|y> *x* $\\x$ \u202eevil\nline =HYPERLINK("x")'
LONG = HOSTILE + " " + "y" * 500
NOW = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
TZ = ZoneInfo("America/New_York")
DESK = Desk(
    id=7, name="equities", channel_id="C0123", timezone="America/New_York", post_at="08:00", deadline="09:00",
    escalation_channel_id="C0456", managers_channel_id="C0789", security_contact_text=HOSTILE[:120],
    ip_restrictions=True,
)  # fmt: skip
RUN = ChecklistRun(
    id=11, desk_id=7, trading_date=NOW.date(), channel_id="C0123", post_due_at=NOW, deadline_at=NOW,
    market_close_at=NOW + timedelta(hours=6), message_ts="1700000000.000100",
)  # fmt: skip
USERS = ["UTRD1", "UTRD2", "UTRD3", "UTRD4"]
NAMES = Names({"UTRD1": HOSTILE, "UTRD2": LONG, "UTRD3": '=HYPERLINK("x")', "UTRD4": "*x*", "UMGR1": HOSTILE})


def answer(user: str) -> Answer:
    return Answer(
        run_id=11, user_id=user, version=1, status="problem", failed_checks="authentication,permissions,contingency",
        auth_layer="device_trust", platform="tws", missing_permissions=LONG, permission_gaps="trading_permission",
        contingency_gaps="no_backup_factor,secondary_interface", note=LONG, restricted=True, created_at=NOW,
    )  # fmt: skip


def roster() -> Roster:
    states = [TraderState.RESTRICTED, TraderState.READY, TraderState.AWAY, TraderState.PENDING]
    entries = [
        RosterEntry(u, s, answer(u) if s in (TraderState.RESTRICTED, TraderState.READY) else None)
        for u, s in zip(USERS, states, strict=True)
    ]
    return Roster(desk=DESK, run=RUN, entries=entries, version=1, names=NAMES)


def escalation(state: EscalationState = EscalationState.RESOLVED, *, auto: bool = False) -> Escalation:
    return Escalation(
        id=3, desk_id=7, run_id=11, trader_id="UTRD1", kind=EscalationKind.RESTRICTED, level=2, state=state,
        detail=LONG, opened_at=NOW, acknowledged_at=NOW, acknowledged_by="UMGR1", resolved_at=NOW,
        resolved_by=None if auto else "UMGR1", resolution_note=LONG,
    )  # fmt: skip


def escalations() -> list[Escalation]:
    return [escalation(s) for s in EscalationState] + [escalation(auto=True)]


def card() -> ProfileCard:
    auto = Automation(
        id=1, desk_id=7, owner_id="UTRD1", name=HOSTILE[:64], interface="tws_api", broker_username="bot1",
        created_by="UTRD1", kill_switch_how=LONG[:300], second_factor_holder="bot", account_kind="paper",
    )  # fmt: skip
    perm = PlatformPermission(user_id="UTRD1", interface="tws", trading="us_stocks", market_data="", note=LONG)
    setup = BrokerSetup(
        ["u" * 64] * 5, list(Fence), True, [(HOSTILE, HOSTILE), (DESK.name, LONG)], (("u" * 64, HOSTILE, LONG),) * 6
    )
    return ProfileCard(
        user_id="UTRD1", profile=None, permissions=[perm], factors={}, recovery=[], enrollment=None,
        locked_until=None, automations=[AutomationLine(auto, DESK.name, list(AutomationFlag), tuple(Fence))],
        desks=[DESK], today=NOW.date(), tz=TZ, broker=setup,
    )  # fmt: skip


def overview() -> DeskOverview:
    lines = [TraderLine(u, RiskTier.STANDARD, None, 1) for u in USERS]
    return DeskOverview(DESK, tier_policy("standard"), tier_policy("elevated"), lines)


def aways() -> list[Away]:
    return [Away(id=1, user_id="UTRD1", start=date(2026, 12, 1), end=date(2026, 12, 3), note=LONG, set_by="UTRD1")]


def report() -> Any:
    week = weekly_report(4)
    week.names = Names({u: NAMES(USERS[i % 4]) for i, u in enumerate(week.rows)})
    return week


def probe_statuses() -> list[EndpointStatus]:
    """One endpoint per state (and one never probed), every text hostile."""
    states: list[ProbeState | None] = [*ProbeState, None]
    return [
        EndpointStatus(
            endpoint_id=i,
            trader_id="UTRD1",
            automation_id=None,
            label=HOSTILE[:64],
            kind=ProbeKind.GATEWAY if i % 2 else ProbeKind.TWS,
            target=HOSTILE,
            state=state,
            healthy=state in (ProbeState.AUTHENTICATED, ProbeState.ACCEPTING),
            detail=LONG,
            checked_at=None if state is None else NOW,
            server_version=HOSTILE,
            session_expires_at=NOW + timedelta(minutes=9),
        )  # fmt: skip
        for i, state in enumerate(states)
    ]


def probe_cards() -> list[ProbeCard]:
    return [ProbeCard(DESK, probe_statuses(), "🔌 probe: " + HOSTILE), ProbeCard(DESK, probe_statuses(), None)]


def probe_count() -> ProbeCount:
    return ProbeCount(DESK, endpoints=11, healthy=2, failing=8, not_probed=1, traders_failing=1, last_checked=NOW)


def home() -> Any:
    trading = [TraderStatus(desk=DESK, entry=roster().entries[0], next_post=NOW, run=RUN, names=NAMES)]
    managed = [
        home_views.ManagedDesk(
            status=DeskStatus(desk=DESK, roster=roster(), next_post=NOW, names=NAMES),
            escalations=escalations(),
            week=report(),
            traders=4,
        )
    ]
    data = home_views.HomeData(
        user="UTRD1", trading=trading, about_me=[(e, DESK) for e in escalations()], away=aways(), managed=managed,
        admin=True, contacts=USERS, names=NAMES, probes=probe_cards(), probe_counts={7: probe_count()},
    )  # fmt: skip
    return home_views.home_view(data, profile_views.profile_home_blocks(card(), [overview()], keys_configured=True))


def _status() -> DeskStatus:
    return DeskStatus(desk=DESK, roster=roster(), next_post=NOW, names=NAMES)


def _trader_status() -> TraderStatus:
    return TraderStatus(desk=DESK, entry=roster().entries[0], next_post=NOW, run=RUN, names=NAMES)


def _gap(kind: GapKind, closed: bool = False) -> ReadinessGap:
    return ReadinessGap(
        desk_id=7, user_id="UTRD1", kind=kind, subject="automation:1", detail=LONG, opened_at=NOW,
        closed_at=NOW if closed else None,
    )  # fmt: skip


_E = "bot.escalation.views."
_R = "bot.checklist.roster_views."
_S = "bot.checklist.status_views."
_D = "bot.desks.views."
_P = "bot.profile.views."
_PM = "bot.profile.modals."
_W = "bot.summary.views."
# Each builder rendered with hostile user text: a list of outputs to check.
RENDER: dict[str, Callable[[], list[Any]]] = {
    "bot.checklist.problem_views.problem_modal": lambda: [
        problem_views.problem_modal(RUN, DESK, channel_id="C0123", failed=frozenset(Check))
    ],
    _R + "checklist_message": lambda: [
        roster_views.checklist_message(roster()),
        roster_views.checklist_message(roster(), compact=True),
    ],
    _R + "roster_lines": lambda: roster_views.roster_lines(roster()),
    _R + "roster_summary": lambda: [roster_views.roster_summary(roster())],
    _R + "short_problem": lambda: [roster_views.short_problem(answer("UTRD1"))],
    _R + "weekly_login_text": lambda: [roster_views.weekly_login_text(roster()) or ""],
    _S + "desk_counts_line": lambda: [status_views.desk_counts_line(_status())],
    _S + "desk_status_text": lambda: [status_views.desk_status_text(_status())],
    _S + "managed_status_text": lambda: [status_views.managed_status_text([_status()])],
    _S + "not_on_a_desk_text": lambda: [status_views.not_on_a_desk_text(USERS, ["UMGR1"], NAMES)],
    _S + "own_status_text": lambda: [status_views.own_status_text([_trader_status()])],
    _S + "roster_text": lambda: [status_views.roster_text(roster())],
    _S + "status_word": lambda: [status_views.status_word(TraderState.RESTRICTED, answer("UTRD1"))],
    _S + "trader_status_text": lambda: [status_views.trader_status_text([_trader_status()], "UTRD1")],
    _D + "away_confirmation": lambda: [
        desk_views.away_confirmation("UTRD1", NOW.date(), NOW.date(), NAMES, own=o) for o in (True, False)
    ],
    _D + "away_line": lambda: [desk_views.away_line(aways()[0])],
    _D + "away_modal": lambda: [desk_views.away_modal(for_manager=m, today=NOW.date()) for m in (True, False)],
    _D + "away_text": lambda: [desk_views.away_text(aways())],
    _D + "back_confirmation": lambda: [
        desk_views.back_confirmation("UTRD1", NAMES, own=o, changed=c) for o in (True, False) for c in (True, False)
    ],
    _D + "refusal": lambda: [desk_views.refusal(HOSTILE), desk_views.refusal(None)],
    _D + "section_list": lambda: [desk_views.section_list("Traders", ["• a"])],
    _D + "settings_modal": lambda: [
        desk_views.settings_modal(desk_views.SettingsForm(desk=DESK, managers=["UMGR1"], traders=USERS, names=NAMES))
    ],
    _D + "settings_saved": lambda: [desk_views.settings_saved(DESK.name, True)],
    _E + "about": lambda: [escalation_views.about(e, NAMES) for e in escalations()],
    _E + "already_text": lambda: [escalation_views.already_text(e, DESK, NAMES) for e in escalations()],
    _E + "desk_escalations_text": lambda: [escalation_views.desk_escalations_text([(e, DESK) for e in escalations()])],
    _E + "digest_message": lambda: [escalation_views.digest_message(escalations(), DESK, NAMES, "digest:1")],
    _E + "escalation_message": lambda: [escalation_views.escalation_message(e, DESK, NAMES) for e in escalations()],
    _E + "escalation_text": lambda: [escalation_views.escalation_text(e, DESK, NAMES) for e in escalations()],
    _E + "item_line": lambda: [
        escalation_views.item_line(e, DESK, NAMES, with_trader=w) for e in escalations() for w in (True, False)
    ],
    _E + "level2_digest_message": lambda: [
        escalation_views.level2_digest_message(escalations(), DESK, ["UMGR1"], 15, NAMES)
    ],
    _E + "level2_message": lambda: [
        escalation_views.level2_message(e, DESK, ["UMGR1"], 15, NAMES) for e in escalations()
    ],
    _E + "manager_escalations_text": lambda: [
        escalation_views.manager_escalations_text([(e, DESK) for e in escalations()], 1, NAMES)
    ],
    _E + "own_escalations_text": lambda: [
        escalation_views.own_escalations_text([(e, DESK) for e in escalations()], NAMES)
    ],
    _E + "reminder_message": lambda: [escalation_views.reminder_message(DESK, RUN, "UTRD1")],
    _E + "resolve_modal": lambda: [escalation_views.resolve_modal(e, DESK, NAMES) for e in escalations()],
    _E + "state_line": lambda: [escalation_views.state_line(e, DESK, NAMES) for e in escalations()],
    _P + "automation_lines": lambda: profile_views.automation_lines(card()),
    _PM + "automation_modal": lambda: [
        profile_modals.automation_modal(card().automations[0].automation, [DESK], owner="UTRD1", can_assign=True)
    ],
    _P + "code_error": lambda: [profile_views.code_error(CodeResult(o, NOW, NOW, 1), TZ) for o in CodeOutcome],
    _P + "desk_overview_blocks": lambda: [profile_views.desk_overview_blocks(overview())],
    _PM + "drill_modal": lambda: [profile_modals.drill_modal()],
    _P + "drill_passed_text": lambda: [
        profile_views.drill_passed_text(CodeResult(CodeOutcome.OK, NOW), recorded=r, tz=TZ) for r in (True, False)
    ],
    _P + "drill_text": lambda: [profile_views.drill_text(card())],
    _PM + "enroll_modal": lambda: [profile_modals.enroll_modal()],
    _P + "enrolled_text": lambda: [profile_views.enrolled_text()],
    _P + "enrollment_message": lambda: [profile_views.enrollment_message("otpauth://totp/x")],
    _PM + "factors_modal": lambda: [profile_modals.factors_modal(card())],
    _P + "factors_text": lambda: [profile_views.factors_text(card())],
    _P + "gap_notice": lambda: [
        profile_views.gap_notice(_gap(k, c), DESK, enrolled=e, contact=who)
        for k in GapKind
        for c in (True, False)
        for e in (True, False)
        for who in (None, LONG)
    ],
    _P + "broker_text": lambda: [profile_views.broker_text(card())],
    _P + "security_guidance": lambda: [profile_views.security_guidance(card())],
    _PM + "broker_modal": lambda: [profile_modals.broker_modal(card())],
    _D + "broker_blocks": lambda: desk_views.broker_blocks(DESK),
    _PM + "interfaces_modal": lambda: [profile_modals.interfaces_modal(card())],
    _P + "permission_line": lambda: [profile_views.permission_line(p) for p in card().permissions],
    _PM + "permissions_modal": lambda: [profile_modals.permissions_modal(card(), "tws")],
    _P + "profile_home_blocks": lambda: [profile_views.profile_home_blocks(card(), [overview()], keys_configured=True)],
    _P + "profile_view": lambda: [profile_views.profile_view(card())],
    _P + "recovery_text": lambda: [profile_views.recovery_text(card())],
    _PM + "tier_modal": lambda: [profile_modals.tier_modal(7)],
    _P + "trader_line": lambda: [profile_views.trader_line(t) for t in overview().traders],
    _PM + "view_trader_modal": lambda: [profile_modals.view_trader_modal()],
    "bot.slack.home_views.home_view": lambda: [home()],
    "bot.probe.views.count_line": lambda: [probe_views.count_line(probe_count())],
    "bot.probe.views.endpoint_line": lambda: [
        probe_views.endpoint_line(s, DESK, desk_name=d) for s in probe_statuses() for d in (True, False)
    ],
    "bot.probe.views.fact_line": lambda: [probe_views.fact_line(c) for c in probe_cards()],
    "bot.probe.views.probe_texts": lambda: [probe_views.probe_texts(probe_cards())],
    _W + "attention_lines": lambda: summary_views.attention_lines(report()),
    _W + "calendar_note": lambda: [summary_views.calendar_note(report())],
    _W + "headline": lambda: [summary_views.headline(report())],
    _W + "preview_text": lambda: [summary_views.preview_text(report())],
    _W + "summary_blocks": lambda: [summary_views.summary_blocks(report())],
    _W + "summary_text": lambda: [summary_views.summary_text(report())],
    _W + "table_block": lambda: [summary_views.table_block(report(), chars=10000)[0]],
}
# Builders that take no user text at all (numbers, ids, dates, enums): nothing hostile can reach them.
NO_USER_TEXT = {
    _R + "answer_buttons",
    _R + "quick_buttons",  # the one-click report buttons: fixed labels, the run id
    "bot.checklist.problem_views.modal_fallback",  # fixed text and buttons
    # Its text is guidance_text's: fixed broker guidance chosen by the answer's checks, no user text.
    "bot.checklist.problem_views.details_reply",
    "bot.checklist.problem_views.report_recorded",  # the same guidance, shown in the report's modal
    _R + "roster_groups",  # pieces of checklist_message / roster_lines, rendered through them
    _R + "roster_sections",
    _R + "state_counts",
    _R + "weekly_login_done",
    _D + "settings_metadata",
    _D + "zone_groups",
    _E + "message_link",
    _E + "when_utc",
    _W + "cell",
    _W + "change",
    _W + "download_value",
    _W + "duration",
    _W + "parse_download_value",
    _W + "percent",
    _W + "table_order",
    _W + "week_span",
}


def _mrkdwn_and_all(node: Any, *, mrkdwn: bool) -> tuple[list[str], list[str]]:
    """(texts Slack parses as mrkdwn, every string)."""
    marked: list[str] = []
    every: list[str] = []

    def walk(value: Any, parsed: bool) -> None:
        if isinstance(value, str):
            every.append(value)
            if parsed:
                marked.append(value)
        elif isinstance(value, tuple):  # (fallback text, blocks): the text is mrkdwn
            for item in value:
                walk(item, True)
        elif isinstance(value, list):
            for item in value:
                walk(item, parsed)
        elif isinstance(value, dict):
            if value.get("type") == "mrkdwn" and isinstance(value.get("text"), str):
                marked.append(value["text"])
            for item in value.values():
                walk(item, False)

    walk(node, mrkdwn)
    return marked, every


def assert_inert(output: Any, where: str) -> None:
    marked, every = _mrkdwn_and_all(output, mrkdwn=isinstance(output, str))
    for text in marked:
        for raw in LIVE:
            assert raw not in text, f"{where}: live {raw!r} in mrkdwn {text[:160]!r}"
    for text in every:
        for ch in INVISIBLE:
            assert ch not in text, f"{where}: invisible {ch!r} in {text[:160]!r}"


def test_render_registry_covers_every_builder() -> None:
    found = set(builders())
    missing = found - set(RENDER) - NO_USER_TEXT
    assert not missing, f"builders with no hostile-text sample (add them to RENDER or NO_USER_TEXT): {sorted(missing)}"
    stale = (set(RENDER) | NO_USER_TEXT) - found
    assert not stale, f"registry names builders that no longer exist: {sorted(stale)}"


@pytest.mark.parametrize("name", sorted(RENDER))
def test_builder_renders_hostile_text_inert(name: str) -> None:
    outputs = RENDER[name]()
    assert outputs, name
    for output in outputs:
        assert_inert(output, name)


def test_the_inert_check_is_not_vacuous() -> None:
    with pytest.raises(AssertionError):
        assert_inert(("hi", [{"type": "section", "text": {"type": "mrkdwn", "text": "<!channel>"}}]), "x")
    with pytest.raises(AssertionError):
        assert_inert("a *x* b", "x")
    with pytest.raises(AssertionError):
        assert_inert({"type": "plain_text", "text": "\u202e"}, "x")
    assert_inert({"type": "plain_text", "text": "<!channel> *x*"}, "x")  # plain text is never parsed


# --- (a) every text input refuses a password and a one-time code ---------------------------------------

SECRETS = ["password: hunter2", "483920"]


@dataclass(frozen=True)
class Opened:
    user: str
    view: dict[str, Any]


def _desk(session: Session) -> Desk:
    return session.exec(select(Desk).where(Desk.name == "equities")).one()


def _problem(running: Bot, engine: Engine) -> Opened:
    posted = post_checklist(running)
    with session_scope(engine) as session:
        run = session.get(ChecklistRun, posted.run_id)
        assert run is not None
        view = problem_views.problem_modal(run, _desk(session), channel_id="C0123", failed=frozenset(Check))
    return Opened("UTRD1", view)


def _permissions(running: Bot, engine: Engine) -> Opened:
    return Opened("UTRD1", profile_modals.permissions_modal(card(), "tws"))


def _automation(running: Bot, engine: Engine) -> Opened:
    with session_scope(engine) as session:
        desk = _desk(session)
    return Opened("UTRD1", profile_modals.automation_modal(None, [desk], owner="UTRD1", can_assign=False))


def _broker(running: Bot, engine: Engine) -> Opened:
    return Opened("UTRD1", profile_modals.broker_modal(card()))


def _settings(running: Bot, engine: Engine) -> Opened:
    with session_scope(engine) as session:
        desk = _desk(session)
    form = desk_views.SettingsForm(desk=desk, managers=["UMGR1", "UMGR2"], traders=["UTRD1"], names=Names())
    return Opened("UMGR1", desk_views.settings_modal(form))


def _away(running: Bot, engine: Engine) -> Opened:
    return Opened("UTRD1", desk_views.away_modal(for_manager=False, today=running.clock().date()))


def _resolve(running: Bot, engine: Engine) -> Opened:
    posted = post_checklist(running)
    with session_scope(engine) as session:
        desk = _desk(session)
        assert desk.id is not None
        esc = Escalation(
            desk_id=desk.id, run_id=posted.run_id, trader_id="UTRD1", kind=EscalationKind.RESTRICTED, level=1,
            state=EscalationState.OPEN, detail="restricted", opened_at=running.clock(),
        )  # fmt: skip
        session.add(esc)
        session.flush()
        view = escalation_views.resolve_modal(esc, desk, Names())
    return Opened("UMGR1", view)


def _no_text_input(build: Callable[[], dict[str, Any]]) -> Callable[[Bot, Engine], Opened]:
    return lambda running, engine: Opened("UTRD1", build())


OPEN: dict[str, Callable[[Bot, Engine], Opened]] = {
    "bot.checklist.problem_views.problem_modal": _problem,
    _PM + "permissions_modal": _permissions,
    _PM + "automation_modal": _automation,
    _PM + "broker_modal": _broker,
    _D + "settings_modal": _settings,
    _D + "away_modal": _away,
    _E + "resolve_modal": _resolve,
    _PM + "interfaces_modal": _no_text_input(lambda: profile_modals.interfaces_modal(card())),
    _PM + "factors_modal": _no_text_input(lambda: profile_modals.factors_modal(card())),
    _PM + "tier_modal": _no_text_input(lambda: profile_modals.tier_modal(7)),
    _PM + "view_trader_modal": _no_text_input(profile_modals.view_trader_modal),
    _P + "profile_view": _no_text_input(lambda: profile_views.profile_view(card())),
    _PM + "drill_modal": _no_text_input(profile_modals.drill_modal),
    _PM + "enroll_modal": _no_text_input(profile_modals.enroll_modal),
    "bot.checklist.problem_views.report_recorded": _no_text_input(lambda: problem_views.report_recorded("ok")),
}
# Inputs that exist to take a secret or a code, by (builder, block): never refused as one.
SECRET_BY_DESIGN = {
    (_PM + "drill_modal", "code"): "the bot's own drill code (its TOTP secret, never IBKR's)",
    (_PM + "enroll_modal", "code"): "the bot's own enrolment code",
    (_D + "settings_modal", "pager_secret"): "the pager's routing key or webhook secret, stored encrypted",
}


def test_modal_registry_covers_every_modal_builder() -> None:
    modal_builders = {name for name, fn in builders().items() if is_modal_builder(fn)}
    missing = modal_builders - set(OPEN)
    assert not missing, f"modal builders not walked (add them to OPEN): {sorted(missing)}"
    assert set(OPEN) <= set(builders())


def _first_option(element: dict[str, Any]) -> dict[str, Any] | None:
    if element.get("options"):
        return dict(element["options"][0])
    if element.get("option_groups"):
        return dict(element["option_groups"][0]["options"][0])
    return None


def state_values(view: dict[str, Any], target: str, text: str, today: date) -> dict[str, Any]:
    """A plausible submission of ``view``: ``text`` in block ``target``, every other input filled
    with its initial value or a valid choice."""
    values: dict[str, Any] = {}
    for block in view["blocks"]:
        if block.get("type") != "input":
            continue
        element, block_id = block["element"], block["block_id"]
        kind = element["type"]
        value: dict[str, Any] = {"type": kind}
        if kind == "plain_text_input":
            value["value"] = text if block_id == target else element.get("initial_value", "ok")
        elif kind in ("static_select", "radio_buttons"):
            value["selected_option"] = element.get("initial_option") or _first_option(element)
        elif kind in ("checkboxes", "multi_static_select"):
            first = _first_option(element)
            value["selected_options"] = element.get("initial_options") or ([first] if first else [])
        elif kind == "datepicker":
            value["selected_date"] = element.get("initial_date") or today.isoformat()
        elif kind == "timepicker":
            value["selected_time"] = element.get("initial_time") or "08:00"
        elif kind == "users_select":
            value["selected_user"] = element.get("initial_user") or "UTRD1"
        elif kind == "multi_users_select":
            value["selected_users"] = element.get("initial_users") or ["UTRD1"]
        elif kind in ("conversations_select", "channels_select"):
            value["selected_conversation"] = value["selected_channel"] = (
                element.get("initial_conversation") or element.get("initial_channel") or "C0123"
            )
        elif kind == "number_input":
            value["value"] = element.get("initial_value") or str(element.get("min_value", 1))
        values[block_id] = {element.get("action_id", FIELD): value}
    return values


def text_inputs(view: dict[str, Any]) -> list[str]:
    return [
        b["block_id"] for b in view["blocks"] if b.get("type") == "input" and b["element"]["type"] == "plain_text_input"
    ]


def counts(engine: Engine) -> dict[str, int]:
    skip = {"slack_event"}  # events seen once across replicas: request bookkeeping, not user data
    with Session(engine) as session:
        return {
            t.name: session.exec(select(func.count()).select_from(t)).one()
            for t in SQLModel.metadata.sorted_tables
            if t.name not in skip
        }


@pytest.mark.parametrize("name", sorted(OPEN))
def test_every_text_input_refuses_a_password_and_a_code(
    name: str, bot: Bot, fake_slack: FakeSlack, engine: Engine
) -> None:
    make_desk(engine)
    opened = OPEN[name](bot, engine)
    view = opened.view
    assert view["type"] == "modal"
    inputs = [b for b in text_inputs(view) if (name, b) not in SECRET_BY_DESIGN]
    if OPEN[name].__name__ == "<lambda>":
        assert not inputs, f"{name} has text inputs {inputs}: give it a real opener in OPEN"
        return
    assert inputs, f"{name}: no text input found"
    today = bot.clock().date() + timedelta(days=1)
    for block in inputs:
        for secret in SECRETS:
            before = counts(engine)
            values = state_values(view, block, secret, today)
            response = bot.submit_view(opened.user, view["callback_id"], values, view.get("private_metadata", ""))
            bot.settle()
            assert response.status_code == 200, response.text
            body = response.json() if response.content else {}
            errors = body.get("errors") or {}
            assert body.get("response_action") == "errors" and block in errors, (
                f"{name}: {secret!r} in block {block!r} was not refused there: {json.dumps(body)[:300]}"
            )
            assert counts(engine) == before, f"{name}: something was stored after refusing {secret!r} in {block!r}"
