"""The `flexbridge` command, run as users run it: a real process, a real port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

FLEXBRIDGE = str(Path(sys.executable).with_name("flexbridge"))


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FLEXBRIDGE, *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture
def env(tmp_path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLEXBRIDGE_")}
    clean["FLEXBRIDGE_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
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
    assert upgraded.returncode == 0 and "revision 0001" in upgraded.stdout

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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_answers_health_and_stops_on_sigterm(env, tmp_path):
    port = _free_port()
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
