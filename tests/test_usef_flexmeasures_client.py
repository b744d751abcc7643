"""The real USEF API client, flexmeasures-client 0.9.6 (in .venv-usef), logs in to a real
`flexbridge serve` with requestAuthToken, and the token it gets opens the API.

A.9: the client supports only API v3_0 for its data calls, so the login is what can be
exercised with it; it sends `Authorization: <token>` with no scheme word and insists on an
email-looking login and on JSON answers.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest
from conftest import TEST_KEY
from live_server import LiveServer, free_port

from store.accounts import Role, add_account
from store.db import open_database
from store.migrate import upgrade
from store.secret_box import SecretBox
from store.tenants import add_tenant

ROOT = Path(__file__).resolve().parent.parent
CLIENT_PYTHON = ROOT / ".venv-usef" / "bin" / "python"
HARNESS = ROOT / "tests" / "peers" / "usef_fmc_login.py"
EMAIL, PASSWORD = "prosumer@example.com", "prosumer-password-1"

# Skipped on a developer's machine without .venv-usef; in CI (`make test` makes it) a
# missing client fails instead.
pytestmark = pytest.mark.skipif(
    not CLIENT_PYTHON.exists() and not os.environ.get("CI"),
    reason="flexmeasures-client is not installed: `make .venv-usef/.installed`",
)


async def _login(port: int, email: str, password: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(CLIENT_PYTHON),
        str(HARNESS),
        f"127.0.0.1:{port}",
        email,
        password,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(errors="replace")


@pytest.fixture
async def server(tmp_path):  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'flexbridge.db'}"
    db = open_database(url, secrets=SecretBox([TEST_KEY]))
    await upgrade(db)
    async with db.transaction() as tx:
        tenant, _ = await add_tenant(tx, "grid")
        await add_account(tx, tenant, EMAIL, Role.PARTICIPANT, PASSWORD, usef_roles=["Prosumer"])
    await db.close()
    live = LiveServer(url, free_port(), tmp_path / "serve.log")
    await live.start()
    try:
        yield live
    finally:
        live.stop()


async def test_flexmeasures_client_logs_in_and_its_token_opens_the_api(server):
    code, out = await _login(server.port, EMAIL, PASSWORD)
    assert code == 0, out
    token = out.strip().rsplit("token=", 1)[1]
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{server.base}/api/v1_1/getConnection", headers={"Authorization": token}
        ) as answer,
    ):
        assert answer.status == 200, await answer.text()
        assert (await answer.json())["type"] == "GetConnectionResponse"


async def test_flexmeasures_client_is_refused_a_wrong_password(server):
    """The client re-authenticates once on a 401, then raises: no token, and no loop."""
    code, out = await _login(server.port, EMAIL, "not-the-password")
    assert code == 3, out
    assert "refused=" in out and "token=" not in out
