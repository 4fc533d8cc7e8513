"""Settings from the environment: the only module that reads ``os.environ``.

A ``.env`` file in the working directory is read too (values already in the
environment win). Every problem is reported as one sentence naming the setting.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from dotenv import dotenv_values
from platformdirs import user_data_dir

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
MAX_OFFSET = 366 * 24 * 3600  # PREFLIGHT_CLOCK_OFFSET: at most a year either way
APP_DIR_NAME = "ib-preflight"
LEGACY_DATABASE_FILE = "preflight.db"  # the default before 0.2: ./preflight.db, wherever the command ran


def default_database_path() -> Path:
    """The SQLite file used when DATABASE_URL is unset: one per user, whatever the working
    directory (~/.local/share/ib-preflight/preflight.db on Linux; $XDG_DATA_HOME is honoured)."""
    return Path(user_data_dir(APP_DIR_NAME, appauthor=False)) / "preflight.db"


def default_database_url() -> str:
    return f"sqlite:///{default_database_path()}"


class ConfigError(ValueError):
    """A missing or malformed setting; the message is one line naming it."""


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=default_database_url)
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    port: int = 3000
    # PREFLIGHT_SECRET_KEYS: the first encrypts and signs, every one decrypts (bot.crypto.Keyring).
    secret_keys: tuple[str, ...] = ()
    threads: int = 8
    log_level: str = "INFO"
    # LOG_FORMAT: "text" (one line per record, for people) or "json" (one JSON object per line).
    log_format: Literal["text", "json"] = "text"
    # Staging only: seconds added to the real clock, for rehearsing a morning (README).
    clock_offset: int = 0
    # PREFLIGHT_ALLOW_PRIVATE_PAGER=1: pager URLs may reach loopback/private addresses (an
    # on-premises pager; plain http only to those). Link-local and metadata addresses never.
    allow_private_pager: bool = False

    def require_slack(self) -> tuple[str, str]:
        """The bot token and signing secret, or a ConfigError naming the missing one."""
        if not self.slack_bot_token:
            raise ConfigError("SLACK_BOT_TOKEN is not set (the bot token, xoxb-...)")
        if not self.slack_signing_secret and not self.slack_app_token:
            raise ConfigError("SLACK_SIGNING_SECRET is not set (Basic Information > App Credentials)")
        return self.slack_bot_token, self.slack_signing_secret or ""

    @property
    def secret_key(self) -> str | None:
        """The current key (the first of ``secret_keys``), or None when none is set."""
        return self.secret_keys[0] if self.secret_keys else None

    @property
    def database_label(self) -> str:
        """Where the data lives, fit to show (a SQLite file's absolute path; a URL without its password)."""
        return describe_database(self.database_url)


SQLITE_FILE_PREFIXES = ("sqlite:///", "sqlite+pysqlite:///")


def sqlite_file(url: str) -> str | None:
    """The file of a plain ``sqlite:///FILE`` URL, as SQLAlchemy reads it (percent-escapes
    decoded), without importing SQLAlchemy; None for anything else (another backend, a query
    string, ``:memory:``, a ``file:`` URI, no file name)."""
    for prefix in SQLITE_FILE_PREFIXES:
        if url.startswith(prefix):
            rest = url[len(prefix) :]
            if "?" in rest:
                return None
            name = unquote(rest)
            return None if not name or name == ":memory:" or name.startswith("file:") else name
    return None


def describe_database(url: str) -> str:
    name = sqlite_file(url)
    if name is not None:  # the usual case, without importing SQLAlchemy (bot.desks.listing)
        return str(Path(name).absolute())
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        name = parsed.database or ":memory:"
        return name if name == ":memory:" or name.startswith("file:") else str(Path(name).absolute())
    return parsed.render_as_string(hide_password=True)


def prepare_database(settings: Settings) -> None:
    """Before a command opens the database: make the default SQLite file's folder, and refuse
    to guess when a ``./preflight.db`` from before the per-user default sits in the working
    directory (using either one silently would show the other one's desks as gone)."""
    default = default_database_path()
    if settings.database_url != default_database_url():
        return
    legacy = Path(LEGACY_DATABASE_FILE)
    if legacy.is_file() and legacy.resolve() != default.resolve():
        raise ConfigError(
            f"DATABASE_URL is not set and ./{LEGACY_DATABASE_FILE} is here: set "
            f"DATABASE_URL=sqlite:///{legacy.resolve()} to use it, or move it to {default}"
        )
    try:
        default.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"DATABASE_URL is not set and {default.parent} cannot be created: {exc.strerror}") from None


def normalize_database_url(url: str) -> str:
    """Accept Heroku-style ``postgres://`` URLs and pick the psycopg 3 driver."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"DATABASE_URL is malformed: {url!r} (expected sqlite:///FILE or postgresql://...)")
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    if scheme == "postgresql+psycopg" or scheme == "sqlite" or scheme == "sqlite+pysqlite":
        return url
    raise ConfigError(f"DATABASE_URL has an unsupported scheme {scheme!r} (use sqlite or postgresql)")


def _api_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"SLACK_API_URL is malformed: {value!r} (expected e.g. https://slack.com/api/)")
    return value if value.endswith("/") else value + "/"


def _int(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {number}")
    return number


def _flag(name: str, value: str | None) -> bool:
    if value is None:
        return False
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0, got {value!r}")


def _secret_keys(keys: str | None, single: str | None) -> tuple[str, ...]:
    """PREFLIGHT_SECRET_KEYS (comma-separated, current first) or the older PREFLIGHT_SECRET_KEY
    (one key, taken whole). A single key set beside a list that lacks it would leave the
    secrets it encrypted unreadable without a word: that is refused."""
    if keys is None:
        return (single,) if single else ()
    listed = tuple(dict.fromkeys(k.strip() for k in keys.split(",") if k.strip()))
    if single and single not in listed:
        raise ConfigError(
            "PREFLIGHT_SECRET_KEY is set but is not in PREFLIGHT_SECRET_KEYS: "
            "add it to the list (after the current key) and unset PREFLIGHT_SECRET_KEY"
        )
    return listed


def load_settings(environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")) -> Settings:
    """Build Settings from ``environ`` (default: the process environment) and a ``.env`` file."""
    values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)

    def get(name: str) -> str | None:
        raw = values.get(name)
        return raw.strip() if raw and raw.strip() else None

    bot_token = get("SLACK_BOT_TOKEN")
    if bot_token is not None and not bot_token.startswith("xoxb-"):
        raise ConfigError("SLACK_BOT_TOKEN is malformed: a bot token starts with 'xoxb-'")
    app_token = get("SLACK_APP_TOKEN")
    if app_token is not None and not app_token.startswith("xapp-"):
        raise ConfigError("SLACK_APP_TOKEN is malformed: an app-level token starts with 'xapp-'")
    level = (get("LOG_LEVEL") or "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    log_format = (get("LOG_FORMAT") or "text").lower()
    if log_format not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT must be text or json, got {log_format!r}")
    return Settings(
        database_url=normalize_database_url(get("DATABASE_URL") or default_database_url()),
        slack_bot_token=bot_token,
        slack_signing_secret=get("SLACK_SIGNING_SECRET"),
        slack_app_token=app_token,
        slack_api_url=_api_url(get("SLACK_API_URL") or DEFAULT_SLACK_API_URL),
        port=_int("PORT", get("PORT") or "3000", 1, 65535),
        secret_keys=_secret_keys(get("PREFLIGHT_SECRET_KEYS"), get("PREFLIGHT_SECRET_KEY")),
        threads=_int("WEB_THREADS", get("WEB_THREADS") or "8", 1, 64),
        log_level=level,
        log_format="json" if log_format == "json" else "text",
        clock_offset=_int("PREFLIGHT_CLOCK_OFFSET", get("PREFLIGHT_CLOCK_OFFSET") or "0", -MAX_OFFSET, MAX_OFFSET),
        allow_private_pager=_flag("PREFLIGHT_ALLOW_PRIVATE_PAGER", get("PREFLIGHT_ALLOW_PRIVATE_PAGER")),
    )


def utc_now() -> datetime:
    """The real time (UTC). The app's own clock is ``clock_of(settings)``."""
    return datetime.now(UTC)


def clock_of(settings: Settings) -> Callable[[], datetime]:
    """The one clock every ``now`` comes from — scheduler, escalation passes, clicks, the
    outbox, the CLI: the real time plus ``PREFLIGHT_CLOCK_OFFSET`` (staging rehearsals).
    Every process started with the same offset agrees on the time. Slack's request
    signatures are checked against the real time (``bot.web``), never this clock."""
    if not settings.clock_offset:
        return utc_now
    offset = timedelta(seconds=settings.clock_offset)

    def shifted() -> datetime:
        return datetime.now(UTC) + offset

    return shifted
