"""The database handle: what open_database makes of its pool arguments."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from store.db import open_database


async def test_postgresql_pool_keeps_pool_size_and_opens_at_most_max_overflow_more(
    database_url: str,
) -> None:
    """On PostgreSQL `pool_size` connections stay open and `max_overflow` more may be opened
    at a peak; SQLite ignores both (one writer, the driver's own pool rules)."""
    db = open_database(database_url, pool_size=2, max_overflow=1)
    held = asyncio.Event()
    release = asyncio.Event()
    inside = 0

    async def hold() -> None:
        nonlocal inside
        async with db.read() as conn:
            await conn.execute(text("SELECT 1"))
            inside += 1
            if inside == 3:
                held.set()
            await release.wait()

    try:
        holders = [asyncio.create_task(hold()) for _ in range(3)]
        await asyncio.wait_for(held.wait(), timeout=10)
        if db.dialect == "postgresql":
            pool = db.engine.pool
            assert (pool.size(), pool.checkedout(), pool.overflow()) == (2, 3, 1)  # type: ignore[attr-defined]
        release.set()
        await asyncio.gather(*holders)
    finally:
        release.set()
        await db.close()
