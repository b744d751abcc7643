"""Settings: defaults < TOML file < FLEXBRIDGE_* environment < command-line flags."""

from __future__ import annotations

import pytest

from adapter.settings import Settings, SettingsError, load_settings


def test_defaults_work_on_one_machine():
    settings = load_settings({}, environ={})
    assert settings == Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.database_url.startswith("sqlite+aiosqlite:///")


def test_each_layer_overrides_the_one_below(tmp_path):
    config = tmp_path / "flexbridge.toml"
    config.write_text('port = 9000\nhost = "0.0.0.0"\nlog_level = "DEBUG"\noutbox_batch = 7\n')
    environ = {
        "FLEXBRIDGE_CONFIG": str(config),
        "FLEXBRIDGE_PORT": "9100",
        "FLEXBRIDGE_OUTBOX_BATCH": "9",
    }
    settings = load_settings({"port": 9200, "host": None}, environ=environ)
    assert settings.port == 9200  # flag beats environment
    assert settings.outbox_batch == 9  # environment beats file
    assert settings.host == "0.0.0.0" and settings.log_level == "DEBUG"  # file beats default
    assert settings.config == str(config)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"FLEXBRIDGE_PORT": "eighty"}, "FLEXBRIDGE_PORT: setting 'port'"),
        ({"FLEXBRIDGE_RATE_LIMIT_PER_SECOND": "fast"}, "setting 'rate_limit_per_second'"),
        ({"FLEXBRIDGE_CONFIG": "/nonexistent/flexbridge.toml"}, "does not exist"),
    ],
)
def test_bad_values_name_the_setting_and_source(environ, message):
    with pytest.raises(SettingsError, match=message):
        load_settings({}, environ=environ)


def test_toml_errors_name_the_file_and_the_key(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("port = \n")
    with pytest.raises(SettingsError, match=r"broken\.toml"):
        load_settings({"config": str(broken)}, environ={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("databse_url = 'x'\n")
    with pytest.raises(SettingsError, match=r"unknown setting.*databse_url"):
        load_settings({"config": str(unknown)}, environ={})


def test_a_short_jwt_secret_is_refused():
    """RFC 7518 3.2: an HS256 key must be at least 256 bits."""
    with pytest.raises(SettingsError, match="jwt_secret"):
        load_settings({}, environ={"FLEXBRIDGE_JWT_SECRET": "short"})
    assert load_settings({}, environ={"FLEXBRIDGE_JWT_SECRET": "x" * 32}).jwt_secret == "x" * 32
