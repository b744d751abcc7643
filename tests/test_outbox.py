"""The outbox and its delivery worker, against a real HTTP peer on a real port."""

from __future__ import annotations

import asyncio
import base64
import logging
import random
from dataclasses import replace
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select, update

from adapter.metrics import Metrics
from adapter.outbox import DeliveryWorker, backoff_seconds
from adapter.settings import Settings
from store import outbox as outbox_store
from store.db import open_database
from store.messages import Direction, recent_messages
from store.peers import OutboundAuth, add_peer
from store.tables import outbox
from store.tenants import add_tenant
from store.timeutil import to_micros, utcnow

FAST = replace(
    Settings(),
    outbox_backoff_base_seconds=0.0,
    outbox_backoff_cap_seconds=0.0,
    outbox_timeout_seconds=2.0,
)


class Peer:
    """A peer endpoint that records what it receives and answers with scripted statuses."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((request.path, dict(request.headers), await request.read()))
        self.arrived.set()
        return web.Response(status=self.statuses.pop(0) if self.statuses else 204)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


async def _setup(db, base_url: str, auth=OutboundAuth.TOKEN):  # type: ignore[no-untyped-def]
    async with db.transaction() as tx:
        tenant, _ = await add_tenant(tx, "t")
        peer = await add_peer(
            tx,
            tenant,
            protocol="ocmp",
            name="cpo",
            base_url=base_url,
            auth=auth,
            username="us",
            secret="their-token",
        )
    return tenant, peer


async def _another_peer(db, tenant, like, name: str):  # type: ignore[no-untyped-def]
    async with db.transaction() as tx:
        return await add_peer(
            tx,
            tenant,
            protocol=like.protocol,
            name=name,
            base_url=like.base_url,
            auth=like.auth,
            username=like.username,
            secret=like.secret,
        )


async def _enqueue(db, tenant, peer, body=b'{"x": 1}', deadline=timedelta(hours=1)):  # type: ignore[no-untyped-def]
    async with db.transaction() as tx:
        return await outbox_store.enqueue(
            tx,
            tenant,
            peer,
            protocol="ocmp",
            message_type="Ping",
            path="/ocmp/1.0/ping",
            body=body,
            headers={"Content-Type": "application/json"},
            deadline=deadline,
        )


async def _row(db, row_id):  # type: ignore[no-untyped-def]
    async with db.read() as tx:
        return (await tx.execute(select(outbox).where(outbox.c.id == row_id))).one()


@pytest.fixture
async def http():  # type: ignore[no-untyped-def]
    async with aiohttp.ClientSession() as session:
        yield session


async def test_message_is_delivered_with_peer_auth_and_idempotency_id(db, aiohttp_server, http):
    peer_endpoint = Peer()
    server = await aiohttp_server(peer_endpoint.app())
    tenant, peer = await _setup(db, str(server.make_url("")))
    row_id = await _enqueue(db, tenant, peer)
    metrics = Metrics()
    worker = DeliveryWorker(db, FAST, metrics, http)

    assert await worker.deliver_due() == 1

    path, headers, body = peer_endpoint.received[0]
    row = await _row(db, row_id)
    assert (path, body) == ("/ocmp/1.0/ping", b'{"x": 1}')
    assert headers["Authorization"] == "Token their-token"
    assert headers["X-Request-ID"] == row.message_id
    assert (row.status, row.attempts, row.claimed_by) == ("sent", 1, None)
    async with db.read() as tx:
        logged = await recent_messages(tx, tenant)
    assert [(m.direction, m.status, m.message_id) for m in logged] == [
        (Direction.OUT, "sent", row.message_id)
    ]
    assert metrics.deliveries.labels("ocmp", "sent")._value.get() == 1
    assert await worker.deliver_due() == 0  # nothing is sent twice


async def test_basic_auth_toward_the_peer(db, aiohttp_server, http):
    peer_endpoint = Peer()
    server = await aiohttp_server(peer_endpoint.app())
    tenant, peer = await _setup(db, str(server.make_url("")), auth=OutboundAuth.BASIC)
    await _enqueue(db, tenant, peer)
    await DeliveryWorker(db, FAST, Metrics(), http).deliver_due()
    assert (
        peer_endpoint.received[0][1]["Authorization"]
        == "Basic " + base64.b64encode(b"us:their-token").decode()
    )


async def test_server_errors_are_retried_until_delivered(db, aiohttp_server, http):
    peer_endpoint = Peer([503, 500])
    server = await aiohttp_server(peer_endpoint.app())
    tenant, peer = await _setup(db, str(server.make_url("")))
    row_id = await _enqueue(db, tenant, peer)
    worker = DeliveryWorker(db, FAST, Metrics(), http)

    await worker.deliver_due()
    first = await _row(db, row_id)
    assert (first.status, first.attempts) == ("pending", 1)
    assert first.last_error.startswith("HTTP 503")
    await worker.deliver_due()
    await worker.deliver_due()

    final = await _row(db, row_id)
    assert (final.status, final.attempts) == ("sent", 3)
    assert len(peer_endpoint.received) == 3
    assert len({headers["X-Request-ID"] for _, headers, _ in peer_endpoint.received}) == 1


class _MaxJitter(random.Random):
    """Jitter pinned at its top, so that each backoff is exactly min(cap, base * 2**n)."""

    def uniform(self, a: float, b: float) -> float:
        return b


async def test_unreachable_peer_is_dead_lettered_at_the_deadline(db, unused_tcp_port, http):
    tenant, peer = await _setup(db, f"http://127.0.0.1:{unused_tcp_port}")
    expired = await _enqueue(db, tenant, peer, deadline=timedelta(0))
    soon = await _enqueue(db, tenant, peer, deadline=timedelta(seconds=30))
    later = await _enqueue(db, tenant, peer, deadline=timedelta(hours=1))
    # Backoffs of 20 s, then 40 s: the first retry of `soon` fits before its deadline,
    # the second would not.
    slow_backoff = replace(FAST, outbox_backoff_base_seconds=20.0, outbox_backoff_cap_seconds=300)
    metrics = Metrics()
    worker = DeliveryWorker(db, slow_backoff, metrics, http, rng=_MaxJitter())

    # One message per peer at a time, oldest first: each poll takes the head of the queue.
    assert await worker.deliver_due() == 1
    buried = await _row(db, expired)
    assert (buried.status, buried.attempts) == ("dead", 0)  # never sent
    assert buried.last_error == "deadline passed before delivery"
    assert await worker.deliver_due() == 1
    first = await _row(db, soon)
    assert (first.status, first.attempts) == ("pending", 1)
    assert "ClientConnectorError" in first.last_error
    assert (await _row(db, later)).attempts == 0  # waits behind `soon`
    assert await worker.deliver_due() == 0  # `soon` is not due yet, and blocks `later`
    assert metrics.deliveries.labels("ocmp", "dead")._value.get() == 1
    assert metrics.deliveries.labels("ocmp", "retry")._value.get() == 1

    async with db.transaction() as tx:  # the retry of `soon` is due now
        await tx.execute(
            update(outbox).where(outbox.c.id == soon).values(next_attempt_at=to_micros(utcnow()))
        )
    assert await worker.deliver_due() == 1  # `soon`: its next backoff passes its deadline
    assert await worker.deliver_due() == 1  # then `later`

    dead, waiting = await _row(db, soon), await _row(db, later)
    assert (dead.status, dead.attempts) == ("dead", 2)
    assert "ClientConnectorError" in dead.last_error
    assert (waiting.status, waiting.attempts) == ("pending", 1)
    assert metrics.deliveries.labels("ocmp", "dead")._value.get() == 2
    async with db.read() as tx:
        logged = await recent_messages(tx, tenant)
    assert sorted(m.status for m in logged) == ["dead", "dead", "retry", "retry"]


async def test_a_message_past_its_deadline_is_buried_without_being_sent(db, aiohttp_server, http):
    peer_endpoint = Peer()
    server = await aiohttp_server(peer_endpoint.app())
    tenant, peer = await _setup(db, str(server.make_url("")))
    row_id = await _enqueue(db, tenant, peer, deadline=timedelta(0))
    metrics = Metrics()

    assert await DeliveryWorker(db, FAST, metrics, http).deliver_due() == 1

    row = await _row(db, row_id)
    assert peer_endpoint.received == []
    assert (row.status, row.attempts, row.claimed_by) == ("dead", 0, None)
    assert row.last_error == "deadline passed before delivery"
    assert metrics.deliveries.labels("ocmp", "dead")._value.get() == 1
    async with db.read() as tx:
        logged = await recent_messages(tx, tenant)
    assert [(m.status, m.message_id) for m in logged] == [("dead", row.message_id)]


async def test_one_failing_delivery_does_not_abandon_the_others(
    db, aiohttp_server, http, monkeypatch, caplog
):
    peer_endpoint = Peer()
    server = await aiohttp_server(peer_endpoint.app())
    tenant, peer = await _setup(db, str(server.make_url("")))
    peers = [peer, *[await _another_peer(db, tenant, peer, f"cpo-{n}") for n in (2, 3)]]
    row_ids = [await _enqueue(db, tenant, p) for p in peers]  # one each: sent side by side
    broken = row_ids[1]
    real_mark_sent = outbox_store.mark_sent

    async def mark_sent(db, item, worker, now=None):  # type: ignore[no-untyped-def]
        if item.id == broken:
            raise ConnectionResetError("database went away")
        return await real_mark_sent(db, item, worker, now)

    monkeypatch.setattr(outbox_store, "mark_sent", mark_sent)
    worker = DeliveryWorker(db, FAST, Metrics(), http)

    with caplog.at_level(logging.ERROR, logger="flexbridge.outbox"):
        assert await asyncio.wait_for(worker.deliver_due(), timeout=10) == 3

    rows = {row_id: await _row(db, row_id) for row_id in row_ids}
    assert [rows[i].status for i in row_ids] == ["sent", "pending", "sent"]
    assert rows[broken].claimed_by == worker.name  # kept until the lease expires, then retried
    assert len(peer_endpoint.received) == 3
    assert rows[broken].message_id in caplog.text and "database went away" in caplog.text


def test_durations_convert_to_microseconds_exactly():
    assert outbox_store.to_micros_delta(timedelta(days=100_000, microseconds=1)) == (
        8_640_000_000_000_001
    )
    assert outbox_store.to_micros_delta(timedelta(seconds=60)) == 60_000_000


async def test_a_refusal_from_the_peer_is_not_retried(db, aiohttp_server, http):
    peer_endpoint = Peer([400])
    server = await aiohttp_server(peer_endpoint.app())
    tenant, peer = await _setup(db, str(server.make_url("")))
    row_id = await _enqueue(db, tenant, peer)
    await DeliveryWorker(db, FAST, Metrics(), http).deliver_due()
    row = await _row(db, row_id)
    assert (row.status, row.attempts) == ("dead", 1)
    assert len(peer_endpoint.received) == 1


async def test_a_claim_left_by_a_dead_process_is_taken_over_after_its_lease(db):
    tenant, peer = await _setup(db, "http://127.0.0.1:9")
    row_id = await _enqueue(db, tenant, peer)
    lease = timedelta(seconds=60)
    crashed = await outbox_store.claim_due(db, "crashed", limit=10, lease=lease)
    assert [item.id for item in crashed] == [row_id]
    assert await outbox_store.claim_due(db, "other", limit=10, lease=lease) == []
    later = utcnow() + lease + timedelta(seconds=1)
    taken = await outbox_store.claim_due(db, "other", limit=10, lease=lease, now=later)
    assert [item.id for item in taken] == [row_id]
    # The crashed worker may not finish a message whose lease it lost.
    assert not await outbox_store.mark_sent(db, crashed[0], "crashed")
    assert await outbox_store.mark_sent(db, taken[0], "other")


async def test_concurrent_workers_never_claim_the_same_row(db, database_url):
    """DESIGN 6: every outbox row is claimed with SELECT ... FOR UPDATE SKIP LOCKED, so no two
    processes send the same message. Four engines (four connection pools, as four processes
    would have) race to drain 200 rows."""
    tenant, peer = await _setup(db, "http://127.0.0.1:9")
    peers = [peer, *[await _another_peer(db, tenant, peer, f"cpo-{n}") for n in range(19)]]
    async with db.transaction() as tx:
        for n in range(200):
            await outbox_store.enqueue(
                tx,
                tenant,
                peers[n % 20],
                protocol="ocmp",
                message_type="Ping",
                path="/p",
                body=b"{}",
            )
    engines = [open_database(database_url) for _ in range(4)]

    async def drain(worker_db, name):  # type: ignore[no-untyped-def]
        mine = []
        while batch := await outbox_store.claim_due(
            worker_db, name, limit=7, lease=timedelta(minutes=5)
        ):
            mine.extend(item.id for item in batch)
            for item in batch:  # a peer's next message is claimable once this one is done
                assert await outbox_store.mark_sent(worker_db, item, name)
            await asyncio.sleep(0)
        return mine

    try:
        claimed = await asyncio.gather(*(drain(e, f"w{i}") for i, e in enumerate(engines)))
    finally:
        for engine in engines:
            await engine.close()
    every = [row_id for batch in claimed for row_id in batch]
    assert len(every) == 200
    assert len(set(every)) == 200


async def test_worker_wakes_on_demand_and_stops_cleanly(db, aiohttp_server, http):
    peer_endpoint = Peer()
    server = await aiohttp_server(peer_endpoint.app())
    tenant, peer = await _setup(db, str(server.make_url("")))
    slow_poll = replace(FAST, outbox_poll_seconds=3600)
    worker = DeliveryWorker(db, slow_poll, Metrics(), http)
    worker.start()
    try:
        row_id = await _enqueue(db, tenant, peer)
        worker.wake()
        await asyncio.wait_for(peer_endpoint.arrived.wait(), timeout=10)
    finally:
        # stop() lets the batch in hand finish, so the row is marked before it returns.
        await asyncio.wait_for(worker.stop(), timeout=5)
    assert (await _row(db, row_id)).status == "sent"


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    rng = random.Random(7)
    delays = [backoff_seconds(n, 1.0, 60.0, rng) for n in range(10)]
    for attempts, delay in enumerate(delays):
        ceiling = min(60.0, 2.0**attempts)
        assert ceiling * 0.5 <= delay <= ceiling
    assert max(delays) <= 60.0


# ---------------------------------------------------------------------------------------------
# Order, supersession and crash recovery


async def _enqueue_topic(db, tenant, peer, body: bytes, topic: str | None):  # type: ignore[no-untyped-def]
    async with db.transaction() as tx:
        return await outbox_store.enqueue(
            tx, tenant, peer, protocol="ocmp", message_type="M", path="/m", body=body, topic=topic
        )


async def test_a_newer_message_of_a_topic_supersedes_an_undelivered_older_one(
    db, aiohttp_server, http
):
    peer_endpoint = Peer()
    server = await aiohttp_server(peer_endpoint.app())
    tenant, peer = await _setup(db, str(server.make_url("")))
    old = await _enqueue_topic(db, tenant, peer, b"old beat", "heartbeat")
    handshake = await _enqueue_topic(db, tenant, peer, b"handshake", None)
    new = await _enqueue_topic(db, tenant, peer, b"new beat", "heartbeat")
    worker = DeliveryWorker(db, FAST, Metrics(), http)
    while await worker.deliver_due():
        pass
    assert [body for _, _, body in peer_endpoint.received] == [b"handshake", b"new beat"]
    assert (await _row(db, old)).status == "superseded"
    assert (await _row(db, handshake)).status == (await _row(db, new)).status == "sent"


async def test_after_an_outage_a_peers_messages_arrive_in_the_order_they_were_made(
    db, aiohttp_server, http
):
    peer_endpoint = Peer([503] * 7)  # down for the first seven attempts
    server = await aiohttp_server(peer_endpoint.app())
    tenant, peer = await _setup(db, str(server.make_url("")))
    bodies = [f"message {n}".encode() for n in range(10)]
    for body in bodies:
        await _enqueue_topic(db, tenant, peer, body, None)
    worker = DeliveryWorker(db, FAST, Metrics(), http)
    for _ in range(50):  # bounded: 7 failures and 10 deliveries need 17 polls
        await worker.deliver_due()
        async with db.transaction() as tx:  # every retry due at once (the back-off is not tested)
            await tx.execute(update(outbox).values(next_attempt_at=to_micros(utcnow())))
        if len(peer_endpoint.received) == 17:
            break
    arrived = [body for _, _, body in peer_endpoint.received]
    assert arrived == [bodies[0]] * 8 + bodies[1:]  # the head retried, then the rest in order


async def test_a_restarted_worker_sends_what_it_held_at_once_not_after_the_lease(
    db, aiohttp_server, http
):
    peer_endpoint = Peer()
    server = await aiohttp_server(peer_endpoint.app())
    tenant, peer = await _setup(db, str(server.make_url("")))
    row_id = await _enqueue(db, tenant, peer)
    # The process held the row, then was killed: its claim has an hour left.
    held = await outbox_store.claim_due(db, "host:8080", limit=10, lease=timedelta(hours=1))
    assert [item.id for item in held] == [row_id]
    worker = DeliveryWorker(db, FAST, Metrics(), http, name="host:8080")
    worker.start()
    try:
        await asyncio.wait_for(peer_endpoint.arrived.wait(), timeout=10)
    finally:
        await asyncio.wait_for(worker.stop(), timeout=5)
    assert (await _row(db, row_id)).status == "sent"


async def test_leases_are_renewed_while_a_message_is_being_sent(db, aiohttp_server, http):
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", slow)
    server = await aiohttp_server(app)
    tenant, peer = await _setup(db, str(server.make_url("")))
    row_id = await _enqueue(db, tenant, peer)
    short = replace(FAST, outbox_lease_seconds=0.6, outbox_timeout_seconds=30.0)
    worker = DeliveryWorker(db, short, Metrics(), http, name="sender")
    sending = asyncio.create_task(worker.deliver_due())
    try:
        first = None
        for _ in range(200):  # poll with a bound until the lease has moved on twice
            claimed_until = (await _row(db, row_id)).claimed_until
            first = first or claimed_until
            if claimed_until is not None and first is not None and claimed_until > first + 300_000:
                break
            await asyncio.sleep(0.05)
        assert claimed_until > first + 300_000, "the lease was not renewed"
        assert await outbox_store.claim_due(db, "other", limit=10, lease=timedelta(1)) == []
    finally:
        release.set()
        assert await asyncio.wait_for(sending, timeout=10) == 1
    assert (await _row(db, row_id)).status == "sent"


async def test_a_peers_backlog_goes_out_one_after_the_other_without_waiting_for_polls(
    db, aiohttp_server, http
):
    """One message per peer at a time: each one sent unblocks the next, which is sent at
    once rather than at the next poll (an hour here), so a backlog after an outage drains at
    the peer's pace."""
    peer_endpoint = Peer()
    server = await aiohttp_server(peer_endpoint.app())
    tenant, peer = await _setup(db, str(server.make_url("")))
    bodies = [f"message {n}".encode() for n in range(5)]
    for body in bodies:
        await _enqueue_topic(db, tenant, peer, body, None)
    worker = DeliveryWorker(db, replace(FAST, outbox_poll_seconds=3600), Metrics(), http)
    worker.start()
    try:
        for _ in range(200):  # poll with a bound until all five arrived
            if len(peer_endpoint.received) == len(bodies):
                break
            await asyncio.sleep(0.05)
    finally:
        await asyncio.wait_for(worker.stop(), timeout=5)
    assert [body for _, _, body in peer_endpoint.received] == bodies
