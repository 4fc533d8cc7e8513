"""manifest.yml is a valid Slack app manifest and agrees with the app: what it names is handled,
what the app handles is named, and its scopes cover the Web API methods the app calls."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

from bot.slack.ids import Command, Event
from tests.support.fakes.slack import FakeSlack
from tests.support.harness import Bot

ROOT = Path(__file__).resolve().parent.parent
# Slack's manifest schemas (slackapi/manifest-schema v0.5.0), in the folder CI provides beside
# the checkout; PREFLIGHT_MANIFEST_SCHEMAS points elsewhere.
SCHEMAS = Path(os.environ.get("PREFLIGHT_MANIFEST_SCHEMAS") or ROOT.parent / "shared" / "slack-manifest-schema")
REMOTE = "https://raw.githubusercontent.com/slackapi/manifest-schema/v0.5.0/schemas/"

# Web API method family -> the bot scope(s) it needs (views.* and auth.test need none).
SCOPE_OF: dict[str, str | tuple[str, ...] | None] = {
    "chat": "chat:write",
    "conversations.open": "im:write",
    # Public channels, private channels (bot.delivery.slack.find_posted reads desk channels).
    "conversations.history": ("channels:history", "groups:history"),
    # Saving a desk asks whether the bot is in its channels (bot.slack.channels): public, private.
    "conversations.info": ("channels:read", "groups:read"),
    "files": "files:write",
    "views": None,
    "auth": None,
    # Socket Mode: called with the app-level token (its connections:write scope), not a bot scope.
    "apps.connections_open": None,
    "users": "users:read",
    "reactions": "reactions:write",
}
SLACK_EVENTS_PATH = "/slack/events"


@cache
def manifest() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "manifest.yml").read_text())
    assert isinstance(data, dict)
    return data


def require_schemas(folder: Path, environ: Mapping[str, str]) -> None:
    """Skip, saying why, when Slack's schemas are not there (a fresh clone); under CI=true
    fail instead: CI provides them, so a skip there would hide that the check did not run."""
    if (folder / "manifest.schema.json").is_file():
        return
    why = f"Slack's manifest schemas are not in {folder} (CI provides them; see tests/test_manifest.py)"
    if environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(f"CI=true, but {why}", pytrace=False)
    pytest.skip(why)


def load_schema(name: str) -> dict[str, Any]:
    data = json.loads((SCHEMAS / name).read_text())
    assert isinstance(data, dict)
    return data


def offline_registry() -> Registry[Any]:
    """The versioned schemas under the URLs the top-level schema $refs, served from disk.
    Any other URL is refused, so validation never touches the network."""

    def refuse(uri: str) -> Resource[Any]:
        raise NoSuchResource(ref=uri)  # type: ignore[call-arg]

    resources = [
        (REMOTE + name, Resource.from_contents(load_schema(name)))
        for name in ("manifest.schema.1.0.0.json", "manifest.schema.2.0.0.json")
    ]
    return Registry(retrieve=refuse).with_resources(resources)  # type: ignore[call-arg]


def slash_commands() -> list[str]:
    return [c["command"] for c in manifest().get("features", {}).get("slash_commands", [])]


def bot_events() -> list[str]:
    return list(manifest().get("settings", {}).get("event_subscriptions", {}).get("bot_events", []))


def bot_scopes() -> set[str]:
    return set(manifest().get("oauth_config", {}).get("scopes", {}).get("bot", []))


# --- schema ----------------------------------------------------------------------------


def test_manifest_is_valid_against_slacks_schema() -> None:
    require_schemas(SCHEMAS, os.environ)
    top = load_schema("manifest.schema.json")
    Draft7Validator.check_schema(top)
    validator = Draft7Validator(top, registry=offline_registry())
    errors = sorted(validator.iter_errors(manifest()), key=lambda e: list(e.absolute_path))
    assert errors == [], [f"{list(e.absolute_path)}: {e.message}" for e in errors]
    # And directly against the classic (1.0.0) schema the manifest's _metadata selects.
    assert manifest()["_metadata"]["major_version"] == 1
    assert list(Draft7Validator(load_schema("manifest.schema.1.0.0.json")).iter_errors(manifest())) == []


def test_the_schema_check_is_not_vacuous() -> None:
    require_schemas(SCHEMAS, os.environ)
    broken = {**manifest(), "features": {**manifest()["features"], "slash_commands": [{"command": "ibstatus"}]}}
    validator = Draft7Validator(load_schema("manifest.schema.json"), registry=offline_registry())
    assert list(validator.iter_errors(broken)), "a slash command without description/leading slash must fail"


def test_missing_schemas_skip_with_the_reason_on_a_fresh_clone_and_fail_under_ci(tmp_path: Path) -> None:
    missing = tmp_path / "no-schemas-here"
    with pytest.raises(pytest.skip.Exception, match="manifest schemas are not in .*no-schemas-here"):
        require_schemas(missing, {})
    for ci in ("true", "TRUE", "1"):
        with pytest.raises(pytest.fail.Exception, match="CI=true, but Slack's manifest schemas are not in"):
            require_schemas(missing, {"CI": ci})
    with pytest.raises(pytest.skip.Exception):
        require_schemas(missing, {"CI": "false"})
    present = tmp_path / "schemas"
    present.mkdir()
    (present / "manifest.schema.json").write_text("{}")
    require_schemas(present, {"CI": "true"})  # there: the real check runs


@pytest.mark.slow
@pytest.mark.parametrize(
    ("ci", "outcome"),
    [("", "SKIPPED [2] tests/test_manifest.py"), ("true", "FAILED tests/test_manifest.py::test_the_schema_check")],
    ids=["fresh-clone", "ci"],
)
def test_a_fresh_clone_run_of_this_file_skips_and_a_ci_run_fails(tmp_path: Path, ci: str, outcome: str) -> None:
    env = {**os.environ, "PREFLIGHT_MANIFEST_SCHEMAS": str(tmp_path / "absent"), "CI": ci}
    # Exactly the two schema tests, by node id (nothing that could select this test again).
    nodes = [f"{__file__}::{test.__name__}" for test in SCHEMA_TESTS]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-rsf", "-p", "no:cacheprovider", *nodes],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert outcome in done.stdout, done.stdout[-3000:]
    assert "manifest schemas are not in" in done.stdout and str(tmp_path / "absent") in done.stdout
    assert done.returncode == (0 if not ci else 1)


SCHEMA_TESTS = (test_manifest_is_valid_against_slacks_schema, test_the_schema_check_is_not_vacuous)


def test_every_request_url_is_the_apps_events_endpoint() -> None:
    settings = manifest()["settings"]
    urls = [c["url"] for c in manifest()["features"]["slash_commands"]]
    urls += [settings["event_subscriptions"]["request_url"], settings["interactivity"]["request_url"]]
    assert all(url.endswith(SLACK_EVENTS_PATH) for url in urls), urls
    assert settings["interactivity"]["is_enabled"] is True
    assert manifest()["features"]["bot_user"]["display_name"]


# --- manifest <-> app ------------------------------------------------------------------


def test_everything_the_app_handles_is_in_the_manifest() -> None:
    assert {c.value for c in Command} <= set(slash_commands())
    assert {e.value for e in Event} <= set(bot_events())


def test_everything_the_manifest_names_is_an_id_of_the_app() -> None:
    assert set(slash_commands()) <= {c.value for c in Command}
    assert set(bot_events()) <= {e.value for e in Event}
    shortcuts = manifest().get("features", {}).get("shortcuts", [])
    assert shortcuts == [], "the app registers no shortcuts; add a listener before naming one"


@pytest.mark.parametrize("command", slash_commands())
def test_each_manifest_command_is_handled_by_the_running_app(bot: Bot, command: str) -> None:
    response = bot.command("UTRD1", "help", command=command)
    assert response.status_code == 200, response.text
    bot.settle()


@pytest.mark.parametrize("event_type", bot_events())
def test_each_manifest_event_is_handled_by_the_running_app(bot: Bot, fake_slack: FakeSlack, event_type: str) -> None:
    response = bot.event({"type": event_type, "user": "UTRD1", "channel": "D0123", "tab": "home", "event_ts": "1.0"})
    assert response.status_code == 200, response.text
    bot.settle()
    if event_type == "app_home_opened":
        assert [c.params["user_id"] for c in fake_slack.of("views.publish")] == ["UTRD1"]


def test_unhandled_requests_get_404_so_the_checks_above_mean_something(bot: Bot) -> None:
    assert bot.command("UTRD1", "", command="/not-ours").status_code == 404
    assert bot.event({"type": "reaction_added", "user": "UTRD1", "event_ts": "1.0"}).status_code == 404


# --- scopes ----------------------------------------------------------------------------

_FAMILIES = "chat|conversations|files|views|users|auth|reactions|pins|bookmarks|usergroups|team|apps|reminders|dnd"
_CALL = re.compile(rf"\.({_FAMILIES})_([A-Za-z0-9_]+)\(")


def web_api_methods() -> set[str]:
    """Web API methods called anywhere in bot/, e.g. 'chat.postMessage', 'files.upload_v2'."""
    found: set[str] = set()
    for path in (ROOT / "bot").rglob("*.py"):
        for family, method in _CALL.findall(path.read_text()):
            found.add(f"{family}.{method}")
    return found


def required_scopes(method: str) -> set[str]:
    family = method.split(".", 1)[0]
    if method not in SCOPE_OF:
        assert family in SCOPE_OF, f"{method}: add its scope to SCOPE_OF in this test (and to manifest.yml)"
    scopes = SCOPE_OF[method] if method in SCOPE_OF else SCOPE_OF[family]
    return set() if scopes is None else {scopes} if isinstance(scopes, str) else set(scopes)


def test_the_scan_finds_the_calls_the_app_is_known_to_make() -> None:
    assert {"chat.postMessage", "chat.update", "views.open", "views.publish"} <= web_api_methods()


def test_scopes_cover_every_web_api_method_the_app_calls() -> None:
    needed = {"commands"}.union(*(required_scopes(m) for m in web_api_methods()))
    missing = needed - bot_scopes()
    assert not missing, f"manifest.yml lacks scopes {sorted(missing)}"


def test_scopes_the_manifest_asks_for_are_used() -> None:
    used = {"commands"}.union(*(required_scopes(m) for m in web_api_methods()))
    assert bot_scopes() <= used, f"manifest.yml asks for unused scopes {sorted(bot_scopes() - used)}"
