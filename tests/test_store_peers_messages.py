"""Peers and the message log (audit trail and idempotency keys)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError

from store.errors import Conflict, ValidationError
from store.messages import Direction, claim_message, log_message, recent_messages
from store.peers import (
    OutboundAuth,
    add_peer,
    find_peer,
    list_peers,
    replace_state,
    update_peer,
)
from store.tenants import add_tenant
from store.timeutil import utcnow


async def test_peer_state_is_replaced_whole_and_peers_are_per_tenant(db):
    async with db.transaction() as tx:
        tenant, _ = await add_tenant(tx, "t")
        other, _ = await add_tenant(tx, "u")
        peer = await add_peer(
            tx,
            tenant,
            protocol="oscp",
            name="cpo",
            base_url="http://cpo.example/oscp/",
            auth=OutboundAuth.TOKEN,
            secret="tok",
        )
        await replace_state(tx, tenant, peer, {"registered": True})
        seen = utcnow()
        await replace_state(tx, tenant, peer, {"online": True})
        changed = await update_peer(tx, tenant, peer, seen=seen)
        assert changed.state == {"online": True}
        assert changed.base_url == "http://cpo.example/oscp"
        assert changed.last_seen_at == seen
        assert await find_peer(tx, tenant, "oscp", "cpo") == changed
        assert await find_peer(tx, other, "oscp", "cpo") is None
        assert await list_peers(tx, other) == []
        with pytest.raises(Conflict):
            await add_peer(tx, tenant, protocol="oscp", name="cpo", base_url=None)
        with pytest.raises(ValidationError) as bad_url:
            await add_peer(tx, tenant, protocol="ocmp", name="x", base_url="ftp://nope")
    assert bad_url.value.field == "base_url"


async def test_a_repeated_message_id_is_not_applied_twice(db):
    """DESIGN 2.6: "a repeated MessageId / X-Request-ID is not applied twice"."""
    async with db.transaction() as tx:
        tenant, _ = await add_tenant(tx, "t")
    async with db.transaction() as tx:
        first = await claim_message(
            tx, tenant, protocol="oscp", peer="cpo", message_id="m-1", message_type="Heartbeat"
        )
    async with db.transaction() as tx:
        again = await claim_message(
            tx, tenant, protocol="oscp", peer="cpo", message_id="m-1", message_type="Heartbeat"
        )
        other_peer = await claim_message(
            tx, tenant, protocol="oscp", peer="dso", message_id="m-1", message_type="Heartbeat"
        )
    assert first is not None and other_peer is not None and again is None


async def test_a_message_whose_transaction_failed_may_be_sent_again(db):
    async with db.transaction() as tx:
        tenant, _ = await add_tenant(tx, "t")
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            assert await claim_message(
                tx, tenant, protocol="ocmp", peer="p", message_id="m", message_type="Forecast"
            )
            raise RuntimeError("applying the message failed half-way")
    async with db.transaction() as tx:
        assert await claim_message(
            tx, tenant, protocol="ocmp", peer="p", message_id="m", message_type="Forecast"
        )


async def test_concurrent_repeats_apply_once(db, database_url):
    from store.db import open_database

    async with db.transaction() as tx:
        tenant, _ = await add_tenant(tx, "t")
    engines = [open_database(database_url) for _ in range(3)]

    async def attempt(engine):  # type: ignore[no-untyped-def]
        try:
            async with engine.transaction() as tx:
                return None is not await claim_message(
                    tx,
                    tenant,
                    protocol="oscp",
                    peer="cpo",
                    message_id="same",
                    message_type="Forecast",
                )
        except (IntegrityError, DBAPIError):  # losing the race at commit: not applied
            return False

    try:
        results = await asyncio.gather(*(attempt(e) for e in engines))
    finally:
        for engine in engines:
            await engine.close()
    assert sorted(results) == [False, False, True]


async def test_the_log_keeps_direction_status_and_detail(db):
    async with db.transaction() as tx:
        tenant, _ = await add_tenant(tx, "t")
        await log_message(
            tx,
            tenant,
            protocol="cpapi",
            message_type="SaveTimeSeriesV1",
            direction=Direction.IN,
            status="rejected",
            detail="values[3].start: naive",
        )
        logged = await recent_messages(tx, tenant)
    assert [(m.protocol, m.direction, m.status, m.detail) for m in logged] == [
        ("cpapi", Direction.IN, "rejected", "values[3].start: naive")
    ]


async def test_processes_starting_together_seed_the_database_once(db, database_url):
    """Several flexbridge processes may start on one database at the same moment."""
    from adapter.bootstrap import first_start
    from store.db import open_database
    from store.migrate import upgrade
    from store.tenants import list_tenants

    engines = [open_database(database_url) for _ in range(3)]
    try:
        await asyncio.gather(*(upgrade(engine) for engine in engines))
        seeded = await asyncio.gather(*(first_start(engine, "pw") for engine in engines))
    finally:
        for engine in engines:
            await engine.close()
    assert sum(result is not None for result in seeded) == 1
    async with db.read() as tx:
        assert [t.name for t in await list_tenants(tx)] == ["default"]
