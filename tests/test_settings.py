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


@pytest.mark.parametrize("name", ["host", "database_url", "log_level", "tenant_key_header"])
def test_an_empty_value_for_a_required_setting_is_refused(name):
    """An empty FLEXBRIDGE_HOST must not become None (aiohttp would listen everywhere)."""
    key = f"FLEXBRIDGE_{name.upper()}"
    with pytest.raises(SettingsError, match=rf"{key}: setting '{name}': must not be empty"):
        load_settings({}, environ={key: ""})


def test_an_empty_value_unsets_an_optional_setting(tmp_path):
    settings = load_settings(
        {}, environ={"FLEXBRIDGE_ADMIN_PASSWORD": "", "FLEXBRIDGE_JWT_SECRET": ""}
    )
    assert (settings.admin_password, settings.jwt_secret) == (None, None)
    config = tmp_path / "flexbridge.toml"
    config.write_text('host = ""\n')
    with pytest.raises(SettingsError, match=r"flexbridge\.toml: setting 'host'"):
        load_settings({"config": str(config)}, environ={})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_body_bytes", "0"),
        ("shutdown_timeout", "-1"),
        ("jwt_ttl_seconds", "0"),
        ("rate_limit_per_second", "0"),
        ("rate_limit_per_second", "nan"),
        ("rate_limit_burst", "0"),
        ("outbox_poll_seconds", "0"),
        ("outbox_poll_seconds", "inf"),
        ("outbox_batch", "0"),
        ("outbox_timeout_seconds", "0"),
        ("outbox_backoff_base_seconds", "-0.5"),
        ("outbox_deadline_seconds", "0"),
        ("outbox_lease_seconds", "-1"),
    ],
)
def test_out_of_range_numbers_are_refused_naming_the_setting(name, value):
    with pytest.raises(SettingsError, match=rf"setting '{name}': {value}"):
        load_settings({}, environ={f"FLEXBRIDGE_{name.upper()}": value})


def test_the_edges_of_the_numeric_ranges_are_accepted():
    settings = load_settings(
        {},
        environ={
            "FLEXBRIDGE_SHUTDOWN_TIMEOUT": "0",
            "FLEXBRIDGE_RATE_LIMIT_BURST": "1",
            "FLEXBRIDGE_OUTBOX_BACKOFF_BASE_SECONDS": "0",
            "FLEXBRIDGE_OUTBOX_BACKOFF_CAP_SECONDS": "0",
        },
    )
    assert (settings.shutdown_timeout, settings.rate_limit_burst) == (0.0, 1)
    assert (settings.outbox_backoff_base_seconds, settings.outbox_backoff_cap_seconds) == (0, 0)


def test_the_backoff_cap_may_not_be_below_its_base():
    with pytest.raises(SettingsError, match=r"'outbox_backoff_cap_seconds'.*below"):
        load_settings(
            {},
            environ={
                "FLEXBRIDGE_OUTBOX_BACKOFF_BASE_SECONDS": "10",
                "FLEXBRIDGE_OUTBOX_BACKOFF_CAP_SECONDS": "5",
            },
        )


@pytest.mark.parametrize("lease", ["10", "5"])
def test_the_outbox_lease_must_outlast_a_send(lease):
    """A lease that can expire during a send lets another process claim and send it again."""
    environ = {"FLEXBRIDGE_OUTBOX_TIMEOUT_SECONDS": "10", "FLEXBRIDGE_OUTBOX_LEASE_SECONDS": lease}
    with pytest.raises(SettingsError, match=r"'outbox_lease_seconds'.*outbox_timeout_seconds"):
        load_settings({}, environ=environ)
    environ["FLEXBRIDGE_OUTBOX_LEASE_SECONDS"] = "10.5"
    assert load_settings({}, environ=environ).outbox_lease_seconds == 10.5


@pytest.mark.parametrize("level", ["LOUD", "info2"])
def test_an_unknown_log_level_is_refused(level):
    with pytest.raises(SettingsError, match=f"setting 'log_level': '{level}'"):
        load_settings({}, environ={"FLEXBRIDGE_LOG_LEVEL": level})
    assert load_settings({}, environ={"FLEXBRIDGE_LOG_LEVEL": "debug"}).log_level == "debug"
