"""The profile capability's action_ids, callback_ids and block_ids (block_id == the error key)."""

from __future__ import annotations

from enum import StrEnum


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


class ProfileCallback(StrEnum):
    INTERFACES = "profile_interfaces_modal"
    PERMISSIONS = "profile_permissions_modal"
    FACTORS = "profile_factors_modal"
    AUTOMATION = "profile_automation_modal"
    ENROLL = "profile_enroll_modal"
    DRILL = "profile_drill_modal"
    TIER = "profile_tier_modal"
    VIEW = "profile_view_modal"


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
    FENCES = "fences"
    KILL_SWITCH = "kill_switch_tested_on"
    CREDENTIALS = "credentials_rotated_on"
    REMOVE = "remove"
    # Drill and enrolment
    CODE = "code"
    # Managers
    TRADER = "trader"
    TIER = "tier"


def verified_block(method: str) -> str:
    return f"verified_{method}"
