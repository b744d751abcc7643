"""What one SQLite statement costs through the store's two drivers, beside plain sqlite3.

    .venv/bin/python benchmarks/sqlite_driver.py [--statements 5000]

The readers' engine runs sqlite3 in aiosqlite's thread; the writer's (store/sqlite_inline.py)
runs it on the loop's thread. Each writes `--statements` single-row INSERTs in one
transaction and reads them back one SELECT by key at a time; the floor is the same
statements through the sqlite3 module with no SQLAlchemy and no event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import describe
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from store.db import open_database

CREATE = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"
INSERT = "INSERT INTO t (id, name) VALUES (:id, :name)"
SELECT = "SELECT name FROM t WHERE id = :id"


def _line(label: str, cpu: float, wall: float, count: int) -> str:
    return (
        f"{label:<44} {cpu / count * 1e6:7.1f} us CPU/statement | "
        f"{wall / count * 1e6:7.1f} us wall | {count / wall:9,.0f} statements/s"
    )


async def _through(engine: AsyncEngine, count: int) -> tuple[float, float, float, float]:
    async with engine.connect() as conn:
        await conn.execute(text(CREATE))
        await conn.commit()
        cpu, wall = time.process_time(), time.perf_counter()
        async with conn.begin():
            for n in range(count):
                await conn.execute(text(INSERT), {"id": n, "name": f"n{n}"})
        write = (time.process_time() - cpu, time.perf_counter() - wall)
        cpu, wall = time.process_time(), time.perf_counter()
        async with conn.begin():
            for n in range(count):
                (await conn.execute(text(SELECT), {"id": n})).scalar_one()
        read = (time.process_time() - cpu, time.perf_counter() - wall)
    return (*write, *read)


def _floor(path: Path, count: int) -> tuple[float, float, float, float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(CREATE)
    cpu, wall = time.process_time(), time.perf_counter()
    conn.execute("BEGIN")
    for n in range(count):
        conn.execute(INSERT, {"id": n, "name": f"n{n}"})
    conn.execute("COMMIT")
    write = (time.process_time() - cpu, time.perf_counter() - wall)
    cpu, wall = time.process_time(), time.perf_counter()
    conn.execute("BEGIN")
    for n in range(count):
        conn.execute(SELECT, {"id": n}).fetchone()
    conn.execute("COMMIT")
    read = (time.process_time() - cpu, time.perf_counter() - wall)
    conn.close()
    return (*write, *read)


async def main(count: int) -> None:
    print(describe())
    with tempfile.TemporaryDirectory() as scratch:
        rows = {}
        for name in ("aiosqlite", "inline"):
            db = open_database(f"sqlite+aiosqlite:///{scratch}/{name}.db")
            assert db.writer is not None
            engine = db.engine if name == "aiosqlite" else db.writer.engine
            rows[name] = await _through(engine, count)
            await db.close()
        rows["floor"] = _floor(Path(scratch) / "floor.db", count)
    labels = {
        "aiosqlite": "readers' engine (aiosqlite thread)",
        "inline": "writer's engine (sqlite3 on the loop)",
        "floor": "floor: sqlite3, no SQLAlchemy, no loop",
    }
    for kind, offset in (("INSERT", 0), ("SELECT by key", 2)):
        print(f"{kind}, {count:,} in one transaction:")
        for name, figures in rows.items():
            print("  " + _line(labels[name], figures[offset], figures[offset + 1], count))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=5000)
    asyncio.run(main(parser.parse_args().statements))
