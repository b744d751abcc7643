"""The SQLite writer's driver (store/sqlite_inline.py): it runs on the loop's thread, so a
busy database must be waited for on the loop, never in SQLite's busy handler, or a second
writer on the same file in the same process would stall the loop holding the first."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from store import sqlite_inline
from store.db import Database, open_database
from store.tables import app_secrets


@pytest.fixture
async def two(tmp_path: Path, sqlite_template: Path) -> tuple[Database, Database, Path]:
    path = tmp_path / "shared.db"
    path.write_bytes(sqlite_template.read_bytes())
    first = open_database(f"sqlite+aiosqlite:///{path}")
    second = open_database(f"sqlite+aiosqlite:///{path}")
    yield first, second, path
    await first.close()
    await second.close()


async def _names(db: Database) -> set[str]:
    async with db.read() as conn:
        return set((await conn.execute(select(app_secrets.c.name))).scalars())


async def test_the_writer_runs_sqlite3_on_the_loop_and_the_readers_do_not(
    two: tuple[Database, Database, Path],
) -> None:
    db, _, _ = two
    async with db.transaction() as tx:
        writer = (await tx.get_raw_connection()).driver_connection
    async with db.read() as conn:
        reader = (await conn.get_raw_connection()).driver_connection
    assert isinstance(writer, sqlite_inline.Connection)
    assert not isinstance(reader, sqlite_inline.Connection)


async def test_a_second_writer_of_one_file_waits_on_the_loop_for_the_first(
    two: tuple[Database, Database, Path],
) -> None:
    """The first holds the write lock across an await; the second's BEGIN IMMEDIATE finds
    the database busy. Were that wait in SQLite's busy handler, on this thread, the first
    could never commit and the second would fail with "database is locked" after 15 s."""
    first, second, _ = two
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with first.transaction() as tx:
            await tx.execute(app_secrets.insert().values(name="first", value="1"))
            holding.set()
            await release.wait()

    async def write_second() -> None:
        async with second.transaction() as tx:
            await tx.execute(app_secrets.insert().values(name="second", value="2"))

    holder = asyncio.create_task(hold())
    await holding.wait()
    waiter = asyncio.create_task(write_second())
    for _ in range(20):  # the loop turns while the second waits: it is not blocked
        await asyncio.sleep(0)
    assert not waiter.done()
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, waiter), timeout=10)
    assert await _names(first) == {"first", "second"}


async def test_a_writer_gives_up_after_the_busy_timeout_and_writes_nothing(
    two: tuple[Database, Database, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, _, path = two
    monkeypatch.setattr(sqlite_inline, "BUSY_TIMEOUT_SECONDS", 0.2)
    other = sqlite3.connect(path, isolation_level=None)  # another process's writer, say
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            async with db.transaction() as tx:
                await tx.execute(app_secrets.insert().values(name="late", value="x"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await _names(db) == set()
    async with db.transaction() as tx:  # and the writer is fine afterwards
        await tx.execute(text("INSERT INTO app_secrets (name, value) VALUES ('after', 'y')"))
    assert await _names(db) == {"after"}
