"""The peer clock stops the way the other workers do: the tick in hand finishes, its write
transaction commits, and only then does stop() return (a tick cancelled mid-transaction
used to fail the group commit it shared, and with it the server's shutdown)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from sqlalchemy import select

from adapter.metrics import Metrics
from adapter.peer_clock import PeerClock
from protocols.common.surface import Auth, Surface
from store.db import Database
from store.tables import tenants
from store.tenants import add_tenant


def surface_with(clock: Any) -> Surface:
    return Surface(
        name="test",
        routes=(),
        auth=Auth.TOKEN,
        roles=frozenset(),
        realm="test",
        render_error=lambda refusal: None,  # type: ignore[arg-type,return-value]
        clock=clock,
    )


async def test_stop_lets_the_tick_in_hand_commit_and_starts_no_other(db: Database) -> None:
    inside, release = asyncio.Event(), asyncio.Event()
    ticks: list[datetime] = []

    async def clock(database: Database, hub: Any, now: datetime) -> None:
        ticks.append(now)
        async with database.transaction() as tx:
            await add_tenant(tx, f"tick{len(ticks)}")
            inside.set()
            await release.wait()

    peer_clock = PeerClock(db, None, Metrics(), [surface_with(clock)], (), period=0.0)  # type: ignore[arg-type]
    peer_clock.start()
    await inside.wait()
    stopping = asyncio.create_task(peer_clock.stop())
    await asyncio.sleep(0)  # stop() has begun while the tick is inside its transaction
    assert not stopping.done()
    release.set()
    await stopping

    async with db.read() as tx:
        names = (await tx.execute(select(tenants.c.name))).scalars().all()
    assert names == ["tick1"]
    assert len(ticks) == 1
