"""PostgreSQL connection pools: what open_database makes of its pool arguments, and that
the server passes its settings database_pool_size and database_max_overflow on."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from sqlalchemy import text

from adapter.app import create_app
from adapter.keys import DB
from adapter.settings import Settings
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
            counts = (pool.size(), pool.checkedout(), pool.overflow())  # type: ignore[attr-defined]
            assert counts == (2, 3, 1)
        release.set()
        await asyncio.gather(*holders)
    finally:
        release.set()
        await db.close()


async def test_the_server_opens_postgresql_with_the_pool_settings(
    aiohttp_client, postgres_url: str | None
) -> None:  # type: ignore[no-untyped-def]
    if postgres_url is None:
        pytest.skip("PostgreSQL does not answer")
    settings = replace(
        Settings(),
        database_url=postgres_url,
        admin_password="admin-pass",
        database_pool_size=3,
        database_max_overflow=7,
    )
    app = create_app(settings)
    await aiohttp_client(app)
    pool = app[DB].engine.pool
    assert (pool.size(), pool._max_overflow) == (3, 7)  # type: ignore[attr-defined]
