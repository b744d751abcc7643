"""Plan jobs: which group plans are wanted, and which process makes each one.

A job is one peer's group over one window. Asking again for a job that is waiting or being
made bumps its `generation` rather than adding a row, so a burst of forecasts for one group
costs one plan (coalescing). A process claims due jobs with a lease (`FOR UPDATE SKIP
LOCKED` on PostgreSQL, so that processes on one database never claim the same job; SQLite
has one writer, which serialises claims); it finishes a job by deleting it, unless a newer
request came in while it planned: then the job is released and planned again with the
newest inputs. A process that dies leaves its claim to lapse after the lease; a process
that starts again under the same name releases its own claims at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from store.db import Database
from store.tables import plan_jobs, tenants
from store.tenants import Tenant
from store.timeutil import from_micros, to_micros, utcnow


@dataclass(frozen=True, slots=True)
class PlanJob:
    id: int
    tenant: Tenant
    peer_id: int
    group_key: str
    entity_id: int
    start: datetime
    end: datetime
    generation: int  # the request this run answers
    requested_at: datetime  # when the oldest request this run answers came in


def _micros(delta: timedelta) -> int:
    return int(delta / timedelta(microseconds=1))


async def request_plan(
    tx: AsyncConnection,
    *,
    tenant_id: int,
    peer_id: int,
    group_key: str,
    entity_id: int,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> None:
    """Ask for the plan of `group_key` over [start, end) for the peer (committed with `tx`)."""
    insert = (sqlite.insert if tx.dialect.name == "sqlite" else postgresql.insert)(plan_jobs)
    statement = insert.values(
        tenant_id=tenant_id,
        peer_id=peer_id,
        group_key=group_key,
        entity_id=entity_id,
        window_start=to_micros(start),
        window_end=to_micros(end),
        generation=1,
        requested_at=to_micros(now or utcnow()),
    ).on_conflict_do_update(
        index_elements=[
            plan_jobs.c.peer_id,
            plan_jobs.c.group_key,
            plan_jobs.c.window_start,
            plan_jobs.c.window_end,
        ],
        # The group may have been removed and made again under the same name.
        set_={"generation": plan_jobs.c.generation + 1, "entity_id": entity_id},
    )
    await tx.execute(statement)


def _job(row: Row[Any]) -> PlanJob:
    return PlanJob(
        id=row.id,
        tenant=Tenant(row.tenant_id, row.tenant_name),
        peer_id=row.peer_id,
        group_key=row.group_key,
        entity_id=row.entity_id,
        start=from_micros(row.window_start),
        end=from_micros(row.window_end),
        generation=row.claimed_generation,
        requested_at=from_micros(row.requested_at),
    )


async def claim_plans(
    db: Database, worker: str, limit: int, lease: timedelta, now: datetime | None = None
) -> list[PlanJob]:
    """Claim up to `limit` jobs no live worker holds, the longest waiting first."""
    now_us = to_micros(now or utcnow())
    free = (
        select(plan_jobs.c.id)
        .where(or_(plan_jobs.c.claimed_until.is_(None), plan_jobs.c.claimed_until < now_us))
        .order_by(plan_jobs.c.requested_at, plan_jobs.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    async with db.transaction() as tx:
        claimed = (
            (
                await tx.execute(
                    update(plan_jobs)
                    .where(plan_jobs.c.id.in_(free.scalar_subquery()))
                    .values(
                        claimed_by=worker,
                        claimed_until=now_us + _micros(lease),
                        claimed_generation=plan_jobs.c.generation,
                    )
                    .returning(plan_jobs.c.id)
                )
            )
            .scalars()
            .all()
        )
        if not claimed:
            return []
        rows = await tx.execute(
            select(plan_jobs, tenants.c.name.label("tenant_name"))
            .join(tenants, tenants.c.id == plan_jobs.c.tenant_id)
            .where(plan_jobs.c.id.in_(claimed))
            .order_by(plan_jobs.c.requested_at, plan_jobs.c.id)
        )
        return [_job(row) for row in rows]


async def finish_plan(tx: AsyncConnection, job: PlanJob, worker: str) -> bool:
    """The plan of `job` is written (in `tx`): the job is done unless it was asked for again
    since it was claimed, in which case it is released to be planned again; whether done."""
    done = await tx.execute(
        delete(plan_jobs).where(
            plan_jobs.c.id == job.id,
            plan_jobs.c.claimed_by == worker,
            plan_jobs.c.generation == job.generation,
        )
    )
    if done.rowcount:
        return True
    await tx.execute(
        update(plan_jobs)
        .where(plan_jobs.c.id == job.id, plan_jobs.c.claimed_by == worker)
        .values(claimed_by=None, claimed_until=None, claimed_generation=None)
    )
    return False


async def still_claimed(tx: AsyncConnection, job: PlanJob, worker: str) -> bool:
    """Whether `worker` still holds `job` (its lease may have lapsed to another), with the
    row locked until `tx` ends, so that the plan is written by one process only."""
    held = await tx.execute(
        select(plan_jobs.c.id)
        .where(plan_jobs.c.id == job.id, plan_jobs.c.claimed_by == worker)
        .with_for_update()
    )
    return held.first() is not None


async def drop_plan(tx: AsyncConnection, job: PlanJob) -> None:
    """The job can never be planned (its peer or group is gone): forget it."""
    await tx.execute(delete(plan_jobs).where(plan_jobs.c.id == job.id))


async def renew_plans(db: Database, worker: str, ids: list[int], lease: timedelta) -> int:
    """Extend the lease of the jobs `worker` holds among `ids` (it is still planning them)."""
    if not ids:
        return 0
    async with db.transaction() as tx:
        renewed = await tx.execute(
            update(plan_jobs)
            .where(plan_jobs.c.id.in_(ids), plan_jobs.c.claimed_by == worker)
            .values(claimed_until=to_micros(utcnow()) + _micros(lease))
        )
        return renewed.rowcount


async def release_plan_claims(db: Database, worker: str) -> int:
    """Release every job `worker` holds (a process starting again under its old name)."""
    async with db.transaction() as tx:
        released = await tx.execute(
            update(plan_jobs)
            .where(plan_jobs.c.claimed_by == worker)
            .values(claimed_by=None, claimed_until=None, claimed_generation=None)
        )
        return released.rowcount


async def waiting_plans(tx: AsyncConnection) -> int:
    """How many jobs wait or are being planned (the metrics' backlog)."""
    count = await tx.execute(select(func.count()).select_from(plan_jobs))
    return int(count.scalar_one())
