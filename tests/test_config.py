"""Settings from the environment and a .env file; every problem names its setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import (
    DEFAULT_SLACK_API_URL,
    ConfigError,
    Settings,
    default_database_url,
    describe_database,
    load_settings,
    normalize_database_url,
    prepare_database,
)

NO_FILE = None


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The per-user data directory (platformdirs honours XDG_DATA_HOME): a temporary one."""
    home = tmp_path / "data-home"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


def test_defaults(data_home: Path) -> None:
    settings = load_settings({}, env_file=NO_FILE)
    assert settings.database_url == default_database_url() == f"sqlite:///{data_home}/ib-preflight/preflight.db"
    assert settings.port == 3000
    assert settings.slack_api_url == DEFAULT_SLACK_API_URL == "https://slack.com/api/"
    assert settings.slack_bot_token is None and settings.slack_signing_secret is None
    assert settings.slack_app_token is None
    assert settings.log_level == "INFO"


def test_values_are_read_and_trimmed() -> None:
    settings = load_settings(
        {
            "DATABASE_URL": " sqlite:////var/lib/preflight.db ",
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_SIGNING_SECRET": "sec",
            "SLACK_APP_TOKEN": "xapp-1",
            "SLACK_API_URL": "http://127.0.0.1:9999/api",
            "PORT": "8080",
            "LOG_LEVEL": "debug",
        },
        env_file=NO_FILE,
    )
    assert settings.database_url == "sqlite:////var/lib/preflight.db"
    assert settings.require_slack() == ("xoxb-1", "sec")
    assert settings.slack_app_token == "xapp-1"
    assert settings.slack_api_url == "http://127.0.0.1:9999/api/"  # a trailing slash is added
    assert settings.port == 8080
    assert settings.log_level == "DEBUG"


def test_blank_values_count_as_unset() -> None:
    settings = load_settings({"PORT": "  ", "DATABASE_URL": "", "SLACK_BOT_TOKEN": " "}, env_file=NO_FILE)
    assert settings.port == 3000
    assert settings.database_url == default_database_url()
    assert settings.slack_bot_token is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db:5432/pf", "postgresql+psycopg://u:p@db:5432/pf"),
        ("postgresql://u@db/pf", "postgresql+psycopg://u@db/pf"),
        ("postgresql+psycopg://u@db/pf", "postgresql+psycopg://u@db/pf"),
        ("sqlite:///preflight.db", "sqlite:///preflight.db"),
        ("sqlite+pysqlite:////tmp/x.db", "sqlite+pysqlite:////tmp/x.db"),
    ],
)
def test_database_url_normalisation(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected
    assert load_settings({"DATABASE_URL": given}, env_file=NO_FILE).database_url == expected


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("SLACK_BOT_TOKEN", "xoxp-123", "xoxb-"),
        ("SLACK_APP_TOKEN", "xoxb-123", "xapp-"),
        ("PORT", "abc", "whole number"),
        ("PORT", "0", "between"),
        ("PORT", "65536", "between"),
        ("PORT", "80.5", "whole number"),
        ("WEB_THREADS", "0", "between"),
        ("DATABASE_URL", "mysql://db/x", "unsupported scheme"),
        ("DATABASE_URL", "just-a-file.db", "malformed"),
        ("SLACK_API_URL", "ftp://slack.com/api", "malformed"),
        ("SLACK_API_URL", "slack.com/api", "malformed"),
        ("LOG_LEVEL", "CHATTY", "LOG_LEVEL"),
    ],
)
def test_malformed_values_raise_a_one_line_error_naming_the_setting(name: str, value: str, needle: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings({name: value}, env_file=NO_FILE)
    message = str(excinfo.value)
    assert name in message
    assert needle in message
    assert "\n" not in message


def test_require_slack_names_the_missing_setting() -> None:
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        load_settings({}, env_file=NO_FILE).require_slack()
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        load_settings({"SLACK_BOT_TOKEN": "xoxb-1"}, env_file=NO_FILE).require_slack()
    # Socket Mode needs no signing secret.
    socket = load_settings({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}, env_file=NO_FILE)
    assert socket.require_slack() == ("xoxb-1", "")


def test_dotenv_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# local settings\n"
        "SLACK_BOT_TOKEN=xoxb-from-file\n"
        "SLACK_SIGNING_SECRET='file secret'\n"
        "PORT=4000\n"
        "DATABASE_URL=postgres://u@db/pf\n"
    )
    settings = load_settings({"PORT": "5000"}, env_file=env_file)
    assert settings.port == 5000  # the environment wins
    assert settings.slack_bot_token == "xoxb-from-file"
    assert settings.slack_signing_secret == "file secret"
    assert settings.database_url == "postgresql+psycopg://u@db/pf"


def test_dotenv_in_the_working_directory_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("PORT=4321\n")
    assert load_settings({}).port == 4321
    monkeypatch.setenv("PORT", "1234")
    assert load_settings().port == 1234  # the process environment by default, still winning


def test_a_malformed_value_in_the_dotenv_file_is_reported_too(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=lots\n")
    with pytest.raises(ConfigError, match="PORT"):
        load_settings({}, env_file=env_file)


def test_missing_dotenv_file_is_fine(tmp_path: Path) -> None:
    assert load_settings({}, env_file=tmp_path / "absent.env").port == 3000


# --- where the database lives ----------------------------------------------------------------


def test_the_default_database_does_not_depend_on_the_working_directory(
    data_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = set()
    for folder in ("a", "b/c"):
        (tmp_path / folder).mkdir(parents=True)
        monkeypatch.chdir(tmp_path / folder)
        urls.add(load_settings({}, env_file=NO_FILE).database_url)
    assert urls == {f"sqlite:///{data_home}/ib-preflight/preflight.db"}


def test_prepare_database_makes_the_default_folder_only(data_home: Path, tmp_path: Path) -> None:
    assert not data_home.exists()
    prepare_database(load_settings({}, env_file=NO_FILE))
    assert (data_home / "ib-preflight").is_dir()
    # A DATABASE_URL the user chose is used as given: no folder is made for it.
    chosen = tmp_path / "elsewhere" / "x.db"
    prepare_database(load_settings({"DATABASE_URL": f"sqlite:///{chosen}"}, env_file=NO_FILE))
    assert not chosen.parent.exists()


def test_a_preflight_db_left_in_the_working_directory_is_not_silently_ignored(
    data_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "preflight.db").write_bytes(b"")  # the default before the per-user data directory
    with pytest.raises(ConfigError) as excinfo:
        prepare_database(load_settings({}, env_file=NO_FILE))
    message = str(excinfo.value)
    assert "\n" not in message and "DATABASE_URL" in message
    assert f"sqlite:///{tmp_path}/preflight.db" in message and str(data_home / "ib-preflight") in message
    assert not (data_home / "ib-preflight").exists()
    # Naming it (or any database) explicitly is fine.
    prepare_database(load_settings({"DATABASE_URL": "sqlite:///preflight.db"}, env_file=NO_FILE))


def test_database_label_shows_the_file_or_the_url_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings(database_url="sqlite:///preflight.db").database_label == str(tmp_path / "preflight.db")
    assert describe_database("sqlite:////var/lib/pf.db") == "/var/lib/pf.db"
    label = describe_database("postgresql+psycopg://pf:s3cret@db.internal:5432/preflight")
    assert "s3cret" not in label and "db.internal:5432/preflight" in label
