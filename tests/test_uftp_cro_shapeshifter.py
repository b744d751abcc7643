"""flexbridge's DSO toward shapeshifter-uftp 2.4.0 as the CRO, both as real processes, and
each new command as a real process (docs/protocols/uftp-3.1.md, "The CRO", "TestMessage").

A `flexbridge serve` subprocess (SQLite, provisioned through the store before it starts:
tenant, our identity, the CRO and an AGR as uftp peers, a congestion point, whose
DSOPortfolioUpdate is queued as it is added) and the library's own ShapeshifterCroService in
the harness tests/peers/uftp_cro.py (.venv-peers). Every message of ours counted as arrived
is one the library verified, parsed and handed to its process_* callback; every answer the
CRO gives is built and sent by the library's ShapeshifterCroDsoClient, which takes nothing
but 200 as success. The commands run as `flexbridge` processes on the server's database;
the server delivers what they queue and takes in the answers they wait for.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from conftest import TEST_KEY
from live_server import LiveServer, free_port
from sqlalchemy import select
from test_uftp_settlement import FLEXBRIDGE
from uftp_peer import CRO_HARNESS, UftpPeer, node, requires_uftp_peer, wait_until

from adapter import peer_admin
from hub.peer_state import state_of
from protocols.uftp.v3_1.congestion_points import NewCongestionPoint, add_congestion_point
from protocols.uftp.v3_1.identity import identity_of
from protocols.uftp.v3_1.market import Market
from store.db import open_database
from store.migrate import upgrade
from store.peers import find_peer
from store.secret_box import SecretBox
from store.tables import uftp_exchanges
from store.tenants import add_tenant, get_tenant

pytestmark = [requires_uftp_peer, pytest.mark.asyncio(loop_scope="module")]

TENANT = "grid"
DSO_DOMAIN, CRO_DOMAIN, AGR_DOMAIN = "dso.example.com", "cro.example.com", "agr.example.com"
MESSAGE_PATH = "/shapeshifter/api/v3/message"
CP = "ea1.2026-12.nl.example.dso:cp-cro"
EAN = "ean.871685900012345678"
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
SETTINGS = {
    "FLEXBRIDGE_UFTP_DOMAIN": DSO_DOMAIN,
    "FLEXBRIDGE_PEER_CLOCK_SECONDS": "0.2",
    "FLEXBRIDGE_OUTBOX_POLL_SECONDS": "0.1",
}
WAIT = "30"  # seconds a command waits for its answer: a failure, never a pause


@dataclass
class Setting:
    server: LiveServer
    cro: UftpPeer
    database_url: str


async def _provision(database_url: str, cro: UftpPeer) -> str:
    """Tenant, identity, the CRO and an AGR as peers, the congestion point; our key."""
    db = open_database(database_url, secrets=SecretBox([TEST_KEY]))
    await upgrade(db)
    try:
        async with db.transaction() as tx:
            tenant, _ = await add_tenant(tx, TENANT)
            identity = await identity_of(tx, tenant, DSO_DOMAIN)
        for domain, role, url, key in [
            (CRO_DOMAIN, "CRO", cro.message_url, cro.public_key),
            (AGR_DOMAIN, "AGR", "http://127.0.0.1:9/agr", identity.key.public),
        ]:
            new = peer_admin.NewPeer(TENANT, "uftp", domain, url, role=role, public_keys=(key,))
            await peer_admin.add(db, new)
        await add_congestion_point(db, NewCongestionPoint(TENANT, CP, (EAN,)), Market(DSO_DOMAIN))
    finally:
        await db.close()
    return identity.key.public


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def setting(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Setting]:
    tmp = tmp_path_factory.mktemp("cro")
    cro = await UftpPeer.start(CRO_HARNESS, tmp, "--domain", CRO_DOMAIN, "--dso-domain", DSO_DOMAIN)
    try:
        database_url = f"sqlite+aiosqlite:///{tmp / 'flexbridge.db'}"
        dso_key = await _provision(database_url, cro)
        await cro.set_peer(public_key=dso_key)
        server = LiveServer(database_url, free_port(), tmp / "serve.log", SETTINGS)
        try:
            await server.start()
            await cro.set_peer(url=server.base + MESSAGE_PATH)
            yield Setting(server, cro, database_url)
        finally:
            served = server.output()
            assert await asyncio.to_thread(server.stop) == 0, server.output()[-3000:]
            assert "Traceback" not in served, served[-3000:]
    finally:
        assert await cro.stop() == 0


async def flexbridge(setting: Setting, *args: str) -> asyncio.subprocess.Process:
    """A `flexbridge` command on the server's database, running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEXBRIDGE_")}
    env.update(
        FLEXBRIDGE_DATABASE_URL=setting.database_url,
        FLEXBRIDGE_SECRET_KEYS=TEST_KEY,
        FLEXBRIDGE_UFTP_DOMAIN=DSO_DOMAIN,
    )
    return await asyncio.create_subprocess_exec(
        FLEXBRIDGE,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finished(proc: asyncio.subprocess.Process) -> list[str]:
    """The command's stdout lines, once it exited 0."""
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert not err.strip(), err.decode()
    return out.decode().strip().splitlines()


async def arrived(cro: UftpPeer, kind: str, **match: str) -> list[dict[str, Any]]:
    async def found() -> list[dict[str, Any]]:
        return [
            m
            for m in await cro.received(kind)
            if all(m["attributes"].get(k) == v for k, v in match.items())
        ]

    return await wait_until(found, f"{kind} {match} at the library's CRO")


async def answer(
    cro: UftpPeer, kind: str, attributes: dict[str, str], children: Any = None
) -> None:
    status, outcome = await cro.send(kind, attributes, children)
    assert (status, outcome["error"]) == (200, None), outcome


async def exchange_status(setting: Setting, message_id: str) -> str:
    db = open_database(setting.database_url, secrets=SecretBox([TEST_KEY]))
    try:
        async with db.read() as tx:
            query = select(uftp_exchanges.c.status).where(uftp_exchanges.c.message_id == message_id)
            return (await tx.execute(query)).scalar_one()
    finally:
        await db.close()


async def test_the_library_takes_our_portfolio_update_and_we_record_its_answer(setting):
    """The DSOPortfolioUpdate queued as the congestion point was added reaches the library's
    CRO, parsed into its model; its DSOPortfolioUpdateResponse marks the update accepted.
    `flexbridge uftp portfolio update` sends it again on demand."""
    (update,) = await arrived(setting.cro, "DSOPortfolioUpdate")
    (point,) = update["children"]
    assert point["attributes"]["EntityAddress"] == CP
    assert [c["attributes"]["EntityAddress"] for c in point["children"]] == [EAN]
    message_id = update["attributes"]["MessageID"]
    await answer(
        setting.cro,
        "DSOPortfolioUpdateResponse",
        {
            "ConversationID": update["attributes"]["ConversationID"],
            "Result": "Accepted",
            "DSOPortfolioUpdateResponseMessageID": message_id,
        },
    )

    async def accepted() -> bool:
        return await exchange_status(setting, message_id) == "accepted"

    await wait_until(accepted, "the update accepted")

    proc = await flexbridge(setting, "uftp", "portfolio", "update", "--tenant", TENANT)
    (line,) = await finished(proc)
    assert line.startswith("DSOPortfolioUpdate ") and f"queued for {CRO_DOMAIN}: 1" in line
    again = line.split()[1]
    await arrived(setting.cro, "DSOPortfolioUpdate", MessageID=again)


async def test_the_query_command_waits_for_the_libraries_answer_and_links_the_agr(setting):
    """`flexbridge uftp portfolio query --congestion-point EA --period D --wait S`: the
    library's CRO takes the query and answers which AGR represents our connection; the
    command prints it, and the AGR is active at the congestion point."""
    period = datetime.now(AMSTERDAM).date().isoformat()
    proc = await flexbridge(
        setting, "uftp", "portfolio", "query", "--tenant", TENANT,
        "--congestion-point", CP, "--period", period, "--wait", WAIT,
    )  # fmt: skip
    (query,) = await arrived(setting.cro, "DSOPortfolioQuery")
    assert (query["attributes"]["EntityAddress"], query["attributes"]["Period"]) == (CP, period)
    connection = node("Connection", EntityAddress=EAN, **{"AGR-Domain": AGR_DOMAIN})
    await answer(
        setting.cro,
        "DSOPortfolioQueryResponse",
        {
            "ConversationID": query["attributes"]["ConversationID"],
            "Result": "Accepted",
            "DSOPortfolioQueryMessageID": query["attributes"]["MessageID"],
            "TimeZone": "Europe/Amsterdam",
            "Period": period,
        },
        [node("CongestionPoint", [connection], EntityAddress=CP)],
    )
    lines = await finished(proc)
    assert lines[0].startswith("DSOPortfolioQuery ") and f"{CP} on {period}" in lines[0]
    assert lines[1:] == [
        f"DSOPortfolioQueryResponse from {CRO_DOMAIN}: Accepted, {CP}: 1 connection(s)",
        f"  {EAN}  AGR {AGR_DOMAIN} (linked)",
    ]
    db = open_database(setting.database_url, secrets=SecretBox([TEST_KEY]))
    try:
        async with db.read() as tx:
            agr = await find_peer(tx, await get_tenant(tx, TENANT), "uftp", AGR_DOMAIN)
    finally:
        await db.close()
    assert agr is not None and state_of(agr).congestion_points == [CP]


async def test_the_test_message_command_prints_the_libraries_response(setting):
    """`flexbridge uftp test-message --peer DOMAIN --wait S`: the library answers a
    TestMessage by itself (with Result="Accepted", which its model defaults to)."""
    proc = await flexbridge(
        setting, "uftp", "test-message", "--tenant", TENANT, "--peer", CRO_DOMAIN, "--wait", WAIT
    )
    lines = await finished(proc)
    assert lines[0].startswith("TestMessage ") and f"queued for {CRO_DOMAIN}" in lines[0]
    assert lines[1] == f"TestMessageResponse from {CRO_DOMAIN} (Result Accepted)"
    (received,) = await arrived(setting.cro, "TestMessage")
    assert received["attributes"]["MessageID"] == lines[0].split()[1]


async def test_the_commands_refuse_bad_input_in_one_line(setting):
    """An unknown peer, a bad --period: exit 2, one line on stderr naming what is wrong
    (the other refusals are the same path, tested in process)."""
    for args, words in [
        (("test-message", "--tenant", TENANT, "--peer", "nobody.example.com"), "not found"),
        (("portfolio", "query", "--tenant", TENANT, "--period", "2026-13-01"), "--period"),
    ]:
        proc = await flexbridge(setting, "uftp", *args)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 2, (args, err)
        text = err.decode().strip()
        assert words in text and len(text.splitlines()) == 1, text
