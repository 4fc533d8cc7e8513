"""Every action_id, callback_id and block_id the app uses, in one place: Bolt routes a click
by its action_id and a submission by its callback_id across the whole app, so they share one
namespace: in one module, no two capabilities can claim one id unseen. The values are
wire ids (in messages and modals already sent): rename a member freely, never its value."""

from __future__ import annotations

from enum import StrEnum

# The input element inside each modal block uses this action_id.
FIELD = "value"


class Command(StrEnum):
    IBSTATUS = "/ibstatus"


class Action(StrEnum):
    CONFIRM_ALL = "checklist_confirm_all"
    REPORT_PROBLEM = "checklist_report_problem"
    # One-click reports (bot.checklist.quick): "checklist_quick_" + QuickProblem's value.
    QUICK_CANT_LOG_IN = "checklist_quick_cant_log_in"
    QUICK_PERMISSION_MISSING = "checklist_quick_permission_missing"
    QUICK_NO_BACKUP = "checklist_quick_no_backup"
    SUMMARY_DOWNLOAD_CSV = "summary_download_csv"
    ESCALATION_ACK = "escalation_acknowledge"
    ESCALATION_RESOLVE = "escalation_resolve"
    ESCALATION_ACK_ALL = "escalation_acknowledge_all"
    HOME_DESK_SETTINGS = "home_desk_settings"
    HOME_NEW_DESK = "home_new_desk"
    HOME_AWAY = "home_away"
    HOME_AWAY_CANCEL = "home_away_cancel"
    HOME_REFRESH = "home_refresh"


class Callback(StrEnum):
    REPORT_MODAL = "checklist_report_modal"  # the problem-report modal (bot.checklist.problem_views)
    RESOLVE_MODAL = "escalation_resolve_modal"
    DESK_SETTINGS_MODAL = "desk_settings_modal"
    AWAY_MODAL = "away_modal"


class Block(StrEnum):
    ACTIONS = "checklist_actions"
    ROSTER = "checklist_roster"
    ESCALATION_SUMMARY = "escalation_summary"
    ESCALATION_ACTIONS = "escalation_actions"
    RESOLUTION_NOTE = "resolution_note"
    SUMMARY_ACTIONS = "summary_actions"
    REMINDER_ACTIONS = "reminder_actions"
    QUICK_REPLY = "checklist_quick_reply"  # the buttons of a reply after a one-click report
    # Problem-report modal inputs (block_id == the field's error key).
    FAILED = "failed"
    AUTH_LAYER = "auth_layer"
    PLATFORM = "platform"
    MISSING_PERMISSIONS = "missing_permissions"
    PERMISSION_GAPS = "permission_gaps"
    GAPS = "gaps"
    NOTE = "note"


class Event(StrEnum):
    APP_HOME_OPENED = "app_home_opened"
    USER_CHANGE = "user_change"


# --- the readiness profile (block_id == the error key) -----------------------------------------


class ProfileAction(StrEnum):
    EDIT_INTERFACES = "profile_edit_interfaces"
    EDIT_PERMISSIONS = "profile_edit_permissions"
    EDIT_FACTORS = "profile_edit_factors"
    ADD_AUTOMATION = "profile_add_automation"
    EDIT_AUTOMATION = "profile_edit_automation"
    ENROLL = "profile_enroll"
    ENTER_ENROLL_CODE = "profile_enroll_code"
    RUN_DRILL = "profile_run_drill"
    SET_TIER = "profile_set_tier"
    VIEW_TRADER = "profile_view_trader"
    EDIT_BROKER = "profile_edit_broker"


class ProfileCallback(StrEnum):
    INTERFACES = "profile_interfaces_modal"
    PERMISSIONS = "profile_permissions_modal"
    FACTORS = "profile_factors_modal"
    AUTOMATION = "profile_automation_modal"
    ENROLL = "profile_enroll_modal"
    DRILL = "profile_drill_modal"
    TIER = "profile_tier_modal"
    VIEW = "profile_view_modal"
    BROKER = "profile_broker_modal"


class ProfileBlock(StrEnum):
    # Interfaces
    PRIMARY_INTERFACE = "primary_interface"
    SECONDARY_INTERFACE = "secondary_interface"
    # Permissions (one platform per save) and automations
    INTERFACE = "interface"
    TRADING = "trading"
    MARKET_DATA = "market_data"
    NOTE = "note"
    # Second factors; each method's date block is "verified_<method>"
    PRIMARY_FACTOR = "primary_factor"
    REGISTERED = "registered"
    # Automations
    DESK = "desk"
    OWNER = "owner"
    NAME = "name"
    BROKER_USERNAME = "broker_username"
    SESSION_HOST = "session_host"
    PERSON_LOGS_IN = "person_logs_in"
    FENCES = "fences"
    KILL_SWITCH = "kill_switch_tested_on"
    CREDENTIALS = "credentials_rotated_on"
    SECOND_FACTOR_HOLDER = "second_factor_holder"
    ACCOUNT_KIND = "account_kind"
    KILL_SWITCH_HOW = "kill_switch_how"
    REMOVE = "remove"
    # A trader's broker setup
    USERNAMES = "usernames"
    BROKER_FENCES = "broker_fences"
    # Drill and enrolment
    CODE = "code"
    # Managers
    TRADER = "trader"
    TIER = "tier"
    DSC_PLUS_ELIGIBLE = "dsc_plus_eligible"


def verified_block(method: str) -> str:
    return f"verified_{method}"
