"""Secrets at rest: what flexbridge presents to peers is sealed in the peers table
(store/secret_box.py), opened only to send, and re-sealed by `flexbridge secrets rotate`."""

from __future__ import annotations

import asyncio
import logging
import stat
from pathlib import Path

import aiohttp
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, update

from adapter.cli import main
from adapter.metrics import Metrics
from adapter.outbox import DeliveryWorker
from store import outbox as outbox_store
from store.db import Database, open_database
from store.key_file import secret_box
from store.migrate import upgrade
from store.peers import OutboundAuth, add_peer, find_peer
from store.secret_box import SecretBox
from store.tables import outbox, peers
from store.tenants import add_tenant, get_tenant
from tests.test_outbox import FAST, Peer


async def _peer(db: Database, name: str, base_url: str, secret: str) -> None:
    async with db.transaction() as tx:
        tenant = await add_tenant(tx, "t") if name == "a" else None
        tenant = tenant[0] if tenant else await get_tenant(tx, "t")
        peer = await add_peer(
            tx,
            tenant,
            protocol="oscp",
            name=name,
            base_url=base_url,
            auth=OutboundAuth.TOKEN,
            secret=secret,
        )
        await outbox_store.enqueue(
            tx, tenant, peer, protocol="oscp", message_type="Heartbeat", path="/hb", body=b"{}"
        )


async def _stored(db: Database) -> dict[str, str]:
    async with db.read() as tx:
        return dict((await tx.execute(select(peers.c.name, peers.c.out_secret))).all())


async def _secret(url: str, keys: list[str], name: str = "a") -> str | None:
    db = open_database(url, secrets=SecretBox(keys))
    try:
        async with db.read() as tx:
            peer = await find_peer(tx, await get_tenant(tx, "t"), "oscp", name)
            assert peer is not None
            return peer.secret
    finally:
        await db.close()


async def test_a_peers_secret_is_not_in_clear_in_the_table_and_delivery_authenticates_with_it(
    db, aiohttp_server
):  # type: ignore[no-untyped-def]
    endpoint = Peer()
    server = await aiohttp_server(endpoint.app())
    await _peer(db, "a", str(server.make_url("")), "token-b-of-the-peer")

    stored = (await _stored(db))["a"]
    assert "token-b-of-the-peer" not in stored and stored.startswith("fernet:")
    async with aiohttp.ClientSession() as http:
        assert await DeliveryWorker(db, FAST, Metrics(), http).deliver_due() == 1
    assert endpoint.received[0][1]["Authorization"] == "Token token-b-of-the-peer"


async def test_rotation_seals_old_values_under_the_new_key_then_the_new_key_alone_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    url = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    db = open_database(url, secrets=SecretBox([old]))
    await upgrade(db)
    await _peer(db, "a", "http://peer.invalid", "under-the-old-key")
    before = (await _stored(db))["a"]
    await db.close()
    assert await _secret(url, [new, old]) == "under-the-old-key"

    monkeypatch.setenv("FLEXBRIDGE_SECRET_KEYS", f"{new},{old}")
    assert await asyncio.to_thread(main, ["secrets", "rotate", "--database-url", url]) == 0

    db = open_database(url)
    after = (await _stored(db))["a"]
    await db.close()
    assert after != before
    assert await _secret(url, [new]) == "under-the-old-key"


async def test_a_clear_text_row_from_before_sealing_is_read_and_then_sealed_by_rotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Fernet.generate_key().decode()
    url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    db = open_database(url, secrets=SecretBox([key]))
    await upgrade(db)
    await _peer(db, "a", "http://peer.invalid", "x")
    async with db.transaction() as tx:  # as a row written before this change holds it
        await tx.execute(update(peers).values(out_secret="written-in-clear"))
    await db.close()
    assert await _secret(url, [key]) == "written-in-clear"

    monkeypatch.setenv("FLEXBRIDGE_SECRET_KEYS", key)
    assert await asyncio.to_thread(main, ["secrets", "rotate", "--database-url", url]) == 0

    db = open_database(url)
    stored = (await _stored(db))["a"]
    await db.close()
    assert stored.startswith("fernet:") and "written-in-clear" not in stored
    assert await _secret(url, [key]) == "written-in-clear"


def test_a_missing_key_file_is_created_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "flexbridge.key"

    box = secret_box(None, str(path))

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sealed = box.seal("s")
    assert secret_box(None, str(path)).open(sealed, "peer") == "s"  # the same key, read back


async def test_a_secret_no_key_opens_fails_that_peers_delivery_in_one_line_and_no_others(
    db, aiohttp_server, caplog: pytest.LogCaptureFixture
):  # type: ignore[no-untyped-def]
    endpoint = Peer()
    server = await aiohttp_server(endpoint.app())
    await _peer(db, "a", str(server.make_url("")), "sealed-under-a-lost-key")
    await _peer(db, "b", str(server.make_url("")), "token-of-b")
    lost = SecretBox([Fernet.generate_key().decode()]).seal("sealed-under-a-lost-key")
    async with db.transaction() as tx:
        await tx.execute(update(peers).where(peers.c.name == "a").values(out_secret=lost))

    with caplog.at_level(logging.ERROR, logger="flexbridge.outbox"):
        async with aiohttp.ClientSession() as http:
            assert await DeliveryWorker(db, FAST, Metrics(), http).deliver_due() == 2

    assert [headers["Authorization"] for _, headers, _ in endpoint.received] == ["Token token-of-b"]
    [record] = [r for r in caplog.records if r.name == "flexbridge.outbox"]
    assert record.exc_info is None and "\n" not in record.getMessage()
    assert "oscp peer 'a' of tenant 't'" in record.getMessage()
    async with db.read() as tx:
        rows = dict((await tx.execute(select(outbox.c.peer_id, outbox.c.status))).all())
    assert sorted(rows.values()) == ["pending", "sent"]  # a's waits for the right key
