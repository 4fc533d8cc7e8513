"""Every action_id, callback_id and block_id the app uses, in one place."""

from __future__ import annotations

from enum import StrEnum


class Command(StrEnum):
    IBSTATUS = "/ibstatus"


class Action(StrEnum):
    CONFIRM_ALL = "checklist_confirm_all"
    REPORT_PROBLEM = "checklist_report_problem"
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
    REPORT_MODAL = "checklist_report_modal"
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
    # Report modal inputs (block_id == the field's error key).
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


# The input element inside each modal block uses this action_id.
FIELD = "value"
