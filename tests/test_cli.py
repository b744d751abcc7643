"""The `flexbridge` command, run as users run it: a real process, a real port."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from ports import free_port

from store.migrate import head_revision

FLEXBRIDGE = str(Path(sys.executable).with_name("flexbridge"))


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FLEXBRIDGE, *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture
def env(tmp_path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLEXBRIDGE_")}
    clean["FLEXBRIDGE_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    # Given, so that no key file is made in the work tree (nor logged about).
    clean["FLEXBRIDGE_SECRET_KEYS"] = "bm90LWEtcmVhbC1rZXktanVzdC1mb3ItdGVzdHMhIT0="
    return clean


@pytest.mark.parametrize(
    "command",
    [[], ["serve"], ["db", "upgrade"], ["tenant", "add"], ["account", "add"], ["token", "issue"]],
)
def test_every_command_has_help(command, env):
    result = _run(*command, "--help", env=env)
    assert result.returncode == 0
    assert "usage: flexbridge" in result.stdout


def test_administration_commands_chain(env):
    upgraded = _run("db", "upgrade", env=env)
    assert upgraded.returncode == 0 and f"revision {head_revision()}" in upgraded.stdout

    key = _run("tenant", "add", "pilot", env=env)
    assert key.returncode == 0 and len(key.stdout.strip()) >= 40

    generated = _run(
        "account", "add", "--tenant", "pilot", "--username", "cpo", "--role", "participant", env=env
    )
    assert generated.returncode == 0 and len(generated.stdout.strip()) >= 16

    given = _run(
        "account",
        "add",
        "--tenant",
        "pilot",
        "--username",
        "dso",
        "--role",
        "peer",
        "--password",
        "chosen",
        env=env,
    )
    assert given.returncode == 0 and "chosen" not in given.stdout

    token = _run("token", "issue", "--tenant", "pilot", "--username", "cpo", env=env)
    assert token.returncode == 0 and len(token.stdout.strip()) >= 40
    assert (
        token.stdout
        != _run("token", "issue", "--tenant", "pilot", "--username", "cpo", env=env).stdout
    )


def test_errors_are_one_line_and_exit_2(env):
    missing = _run(
        "account", "add", "--tenant", "nope", "--username", "x", "--role", "admin", env=env
    )
    assert missing.returncode == 2
    assert missing.stderr.strip() == "error: tenant not found: nope"
    bad_role = _run("tenant", "add", "t", env=env)
    assert bad_role.returncode == 0
    role = _run("account", "add", "--tenant", "t", "--username", "x", "--role", "god", env=env)
    assert role.returncode == 2 and "expected one of admin" in role.stderr
    again = _run("tenant", "add", "t", env=env)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert "Traceback" not in missing.stderr + role.stderr + again.stderr


def test_bad_config_is_refused_naming_the_setting(env, tmp_path):
    config = tmp_path / "flexbridge.toml"
    config.write_text("port = 9000\nprot = 1\n")
    result = _run("db", "upgrade", "--config", str(config), env=env)
    assert result.returncode == 2 and "unknown setting(s) prot" in result.stderr


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


UNREACHABLE = "postgresql+asyncpg://nobody@127.0.0.1:1/x"


@pytest.mark.parametrize(
    "command",
    [
        ["db", "upgrade"],
        ["tenant", "add", "pilot"],
        ["token", "issue", "--tenant", "pilot", "--username", "cpo", "--ttl-days", "1"],
    ],
)
def test_an_unreachable_database_is_one_line_and_exit_2(command, env):
    line = _one_error_line(_run(*command, "--database-url", UNREACHABLE, env=env))
    assert "Connect call failed" in line or "refused" in line.lower()


def test_serve_with_an_unreachable_database_is_one_line_and_exit_2(env):
    env = {**env, "FLEXBRIDGE_PORT": str(free_port())}
    line = _one_error_line(_run("serve", "--database-url", UNREACHABLE, env=env))
    assert "Connect call failed" in line or "refused" in line.lower()


def test_an_unopenable_sqlite_file_is_one_line_and_exit_2(env, tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'x.db'}"
    line = _one_error_line(_run("db", "upgrade", "--database-url", url, env=env))
    assert "unable to open database file" in line


def test_bad_tls_files_are_one_line_and_exit_2(env, tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    missing = _run(
        "serve", "--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(garbage), env=env
    )
    assert "FileNotFoundError" in _one_error_line(missing)
    unreadable = _run("serve", "--tls-cert", str(garbage), "--tls-key", str(garbage), env=env)
    assert "SSLError" in _one_error_line(unreadable)


@pytest.mark.parametrize(
    ("ttl", "reason"),
    [
        ("0", "must be a positive number of days"),
        ("-1", "must be a positive number of days"),
        ("nan", "must be a positive number of days"),
        ("1e12", "beyond the year 9999"),
        ("3000000", "beyond the year 9999"),
    ],
)
def test_token_lifetimes_must_be_positive_and_within_the_calendar(ttl, reason, env):
    """Refused while parsing, before any database work: a token born expired is no token."""
    refused = _run("token", "issue", "--tenant", "t", "--username", "u", "--ttl-days", ttl, env=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"argument --ttl-days: {ttl} " in refused.stderr and reason in refused.stderr
    assert refused.stdout == ""


def test_a_token_with_a_lifetime_is_issued(env):
    assert _run("tenant", "add", "pilot", env=env).returncode == 0
    account = ["--tenant", "pilot", "--username", "cpo"]
    assert _run("account", "add", *account, "--role", "participant", env=env).returncode == 0
    issued = _run("token", "issue", *account, "--ttl-days", "0.5", env=env)
    assert issued.returncode == 0 and len(issued.stdout.strip()) >= 40


def test_serve_answers_health_and_stops_on_sigterm(env, tmp_path):
    port = free_port()
    env = {**env, "FLEXBRIDGE_PORT": str(port), "FLEXBRIDGE_ADMIN_PASSWORD": "pw"}
    process = subprocess.Popen(
        [FLEXBRIDGE, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 15
        body = None
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/health", timeout=1
                ) as response:
                    body = response.read().decode()
            except OSError:
                time.sleep(0.1)
        assert body is not None and '"status": "ok"' in body
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "tenant:     default" in output and "Traceback" not in output


def test_gateway_add_prints_a_shared_access_signature(env):
    assert _run("tenant", "add", "pilot", env=env).returncode == 0
    made = _run(
        "gateway",
        "add",
        "--tenant",
        "pilot",
        "--gateway-id",
        "gw-9",
        "--base-url",
        "https://flex.example",
        env=env,
    )
    assert made.returncode == 0
    token = made.stdout.strip()
    assert token.startswith("SharedAccessSignature sr=https%3a%2f%2fflex.example%2fiotexternaleh")
    assert "&skn=gw-9" in token and "&se=" in token and "&sig=" in token
    again = _run("gateway", "add", "--tenant", "pilot", "--gateway-id", "gw-9", env=env)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_optimize_group_prints_the_plan_and_refuses_a_bad_field(env, tmp_path):
    """Issue 5: what-if solves from the command line, without a server or a database."""
    problem = {
        "start": "2026-03-02T00:00:00Z",
        "resolution": "PT1H",
        "price_eur_per_kwh": [0.30, 0.10],
        "grid_limit_kw": [20.0, 20.0],
        "chargers": [
            {"id": "cp-1", "max_kw": 11.0, "energy_kwh": 11.0, "deadline": "2026-03-02T02:00:00Z"}
        ],
    }
    path = tmp_path / "problem.json"
    path.write_text(json.dumps(problem))
    solved = _run("optimize", "group", "--input", str(path), env=env)
    assert solved.returncode == 0, solved.stderr
    plan = json.loads(solved.stdout)
    assert plan["status"] == "optimal" and plan["fallback"] is False
    assert plan["capacity_kw"] == pytest.approx([0.0, 11.0])  # all of it in the cheap hour
    problem["chargers"][0]["max_kw"] = -1
    path.write_text(json.dumps(problem))
    refused = _run("optimize", "group", "--input", str(path), env=env)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip().startswith("error: chargers[0].max_kw:")


def test_account_add_takes_an_email_and_usef_roles(env, tmp_path):
    """Fixed names (issue 15 item 7): `flexbridge account add ... --email E --usef-roles
    Prosumer,ESCo`; role names in any case are kept canonical, unknown ones refused."""
    assert _run("db", "upgrade", env=env).returncode == 0
    assert _run("tenant", "add", "pilot", env=env).returncode == 0
    base = ["account", "add", "--tenant", "pilot", "--role", "participant", "--password", "pw-1"]
    made = _run(
        *base,
        "--username",
        "prosumer",
        "--email",
        "prosumer@example.com",
        "--usef-roles",
        "prosumer, ESCo",
        env=env,
    )
    assert made.returncode == 0, made.stderr
    with sqlite3.connect(tmp_path / "cli.db") as db:
        row = db.execute(
            "SELECT email, usef_roles FROM accounts WHERE username = 'prosumer'"
        ).fetchone()
    assert row == ("prosumer@example.com", "Prosumer,ESCo")
    unknown = _run(*base, "--username", "x", "--usef-roles", "Prosumer,Plumber", env=env)
    assert unknown.returncode == 2 and "unknown USEF role Plumber" in unknown.stderr
    for email in ("not-an-address", "two@@example.com", "prosumer@example.com"):
        refused = _run(*base, "--username", f"u-{len(email)}", "--email", email, env=env)
        assert refused.returncode != 0, email
        assert "email" in refused.stderr + refused.stdout, refused
