"""store.plan_jobs: coalescing, claims, leases and the newest inputs winning, on SQLite and
PostgreSQL; hub.plan_jobs.make_plan writes nothing for a job it no longer holds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from hub.capacity import Block, Limit, quarter, store_limit
from hub.optimum import Optimum, request_optimum, track
from hub.plan_jobs import make_plan
from hub.runtime import Hub
from optimizer import GroupPlan, GroupProblem, solve_group
from store.catalogue import AssetSubType, AssetType
from store.entities import create_entity
from store.peers import add_peer
from store.plan_jobs import (
    claim_plans,
    finish_plan,
    release_plan_claims,
    request_plan,
    waiting_plans,
)
from store.references import ProtocolId, add_reference
from store.series import find_series
from store.series_types import SeriesType
from store.tenants import add_tenant
from store.values import read_values

Q = timedelta(minutes=15)
START = quarter(datetime.now(UTC)) + Q
LEASE = timedelta(seconds=30)


async def _solve(problem: GroupProblem) -> GroupPlan:
    return solve_group(problem)


async def _group(db, limit_kw: float = 20.0):  # type: ignore[no-untyped-def]
    """A site named g-1 by an OCMP peer, with a MaxCapacity over two quarters."""
    async with db.transaction() as tx:
        tenant, _ = await add_tenant(tx, "pilot")
        peer = await add_peer(tx, tenant, protocol="ocmp", name="cpo", base_url=None)
        site = await create_entity(tx, tenant, AssetType.AREA, AssetSubType.SITE, {"Name": "S"})
        await add_reference(tx, tenant, site, ProtocolId("ocmp", "cpo", "group", "g-1"))
        await _limit(tx, tenant, site, limit_kw)
        await track(tx, peer, "g-1", unit="A", phase="ALL")
    return tenant, peer, site


async def _limit(tx, tenant, site, kw: float) -> None:  # type: ignore[no-untyped-def]
    blocks = [Block(START + i * Q, START + (i + 1) * Q, kw) for i in range(2)]
    await store_limit(tx, tenant, site, Limit.CONSUMPTION, blocks, "cpo")


def _hub(sent: list[Optimum]) -> Hub:
    async def send(tx, optimum: Optimum) -> bool:  # type: ignore[no-untyped-def]
        sent.append(optimum)
        return True

    return Hub(
        public_url="http://flexbridge.test",
        heartbeat_seconds=900.0,
        resend_after=timedelta(minutes=5),
        wake_outbox=lambda: None,
        solve=_solve,
        optimum_senders={"ocmp": send},
    )


async def _ask(db, tenant, peer, site, start=START) -> None:  # type: ignore[no-untyped-def]
    async with db.transaction() as tx:
        await request_plan(
            tx,
            tenant_id=tenant.id,
            peer_id=peer.id,
            group_key="g-1",
            entity_id=site.id,
            start=start,
            end=start + 2 * Q,
        )


async def test_requests_for_one_group_and_window_coalesce_into_one_job(db):
    tenant, peer, site = await _group(db)
    for _ in range(5):
        await _ask(db, tenant, peer, site)
    await _ask(db, tenant, peer, site, START + Q)  # another window is another job
    async with db.read() as tx:
        assert await waiting_plans(tx) == 2
    jobs = await claim_plans(db, "w1", 10, LEASE)
    assert sorted((j.start, j.generation) for j in jobs) == [(START, 5), (START + Q, 1)]


async def test_a_claimed_job_is_not_claimed_again_until_its_lease_lapses(db):
    tenant, peer, site = await _group(db)
    await _ask(db, tenant, peer, site)
    assert len(await claim_plans(db, "w1", 10, LEASE)) == 1
    assert await claim_plans(db, "w2", 10, LEASE) == []
    later = datetime.now(UTC) + LEASE + timedelta(seconds=1)
    taken_over = await claim_plans(db, "w2", 10, LEASE, now=later)
    assert [j.group_key for j in taken_over] == ["g-1"]


async def test_a_request_during_the_run_leaves_the_job_for_a_run_with_the_newest_inputs(db):
    tenant, peer, site = await _group(db)
    await _ask(db, tenant, peer, site)
    (job,) = await claim_plans(db, "w1", 10, LEASE)
    await _ask(db, tenant, peer, site)  # new limits arrived while w1 was solving
    async with db.transaction() as tx:
        assert await finish_plan(tx, job, "w1") is False
    (again,) = await claim_plans(db, "w2", 10, LEASE)  # released at once, not at lease end
    assert again.id == job.id and again.generation == 2
    async with db.transaction() as tx:
        assert await finish_plan(tx, again, "w2") is True
        assert await waiting_plans(tx) == 0


async def test_a_restarted_worker_releases_its_own_claims(db):
    tenant, peer, site = await _group(db)
    await _ask(db, tenant, peer, site)
    await claim_plans(db, "host:1", 10, LEASE)
    assert await release_plan_claims(db, "host:other") == 0
    assert await release_plan_claims(db, "host:1") == 1
    assert len(await claim_plans(db, "host:1", 10, LEASE)) == 1


async def test_two_workers_claiming_at_once_never_share_a_job(db):
    tenant, peer, site = await _group(db)
    for i in range(20):
        await _ask(db, tenant, peer, site, START + i * Q)
    claims = await asyncio.gather(*(claim_plans(db, f"w{i}", 3, LEASE) for i in range(8)))
    ids = [job.id for jobs in claims for job in jobs]
    assert len(ids) == len(set(ids)) == 20


async def test_making_a_job_writes_the_plan_and_sends_the_optimum_for_the_newest_limits(db):
    tenant, peer, site = await _group(db, limit_kw=20.0)
    sent: list[Optimum] = []
    hub = _hub(sent)
    async with db.transaction() as tx:
        await request_optimum(tx, peer, site, "g-1", START, START + 2 * Q)
        await _limit(tx, tenant, site, 30.0)  # newer limits before the job runs
    (job,) = await claim_plans(db, "w1", 10, LEASE)
    await make_plan(db, hub, job, "w1")
    assert [(o.group_id, [b.kw for b in o.blocks]) for o in sent] == [("g-1", [30.0, 30.0])]
    async with db.read() as tx:
        assert await waiting_plans(tx) == 0
        series = await find_series(tx, tenant, site, SeriesType.OPTIMAL_CAPACITY_REGULATION)
        assert series is not None
        written = await read_values(tx, tenant, series, START, START + 2 * Q)
    assert [p.value for p in written] == [30.0, 30.0]


async def test_a_job_taken_over_by_another_worker_is_written_by_that_worker_only(db):
    tenant, peer, site = await _group(db)
    sent: list[Optimum] = []
    hub = _hub(sent)
    await _ask(db, tenant, peer, site)
    (stale,) = await claim_plans(db, "slow", 10, LEASE)
    later = datetime.now(UTC) + LEASE + timedelta(seconds=1)
    (fresh,) = await claim_plans(db, "fast", 10, LEASE, now=later)
    assert await make_plan(db, hub, stale, "slow") is False  # its lease lapsed: writes nothing
    assert sent == []
    async with db.read() as tx:
        assert await find_series(tx, tenant, site, SeriesType.OPTIMAL_CAPACITY_REGULATION) is None
    assert await make_plan(db, hub, fresh, "fast") is True
    assert len(sent) == 1
