"""Store ingest: N series x M values written through the repository API, then read back
resampled, against the rate of a raw driver-level executemany into the same table.

    .venv/bin/python benchmarks/store_ingest.py [--series 1000] [--values 1000] [--postgres URL]

Each series is written in its own transaction (one message per series, as a peer would
send). The raw floor inserts the same rows with the driver's executemany and a plain
INSERT (no validation, no merge), in transactions of the same size. On PostgreSQL, where
large writes go through COPY (store.values.merge_by_copy), two more floors: asyncpg's binary
COPY of the same rows straight into the values table (no validation, no merge), and the
same COPY into a table like it without its foreign keys, which shows what PostgreSQL's
per-row foreign-key checks cost.

Target (the issue): >= 200,000 values/s written on PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import describe
from scratch_db import PG_URL, scratch_postgres
from sqlalchemy import text

from store.catalogue import AssetSubType, AssetType
from store.db import Database, open_database
from store.entities import create_entity
from store.migrate import upgrade
from store.series import ensure_series, source_id
from store.series_types import SeriesType
from store.tenants import add_tenant
from store.timeutil import to_micros, utcnow
from store.values import ROW_ORDER, Point, read_values, write_values

START = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)


def _points(count: int, offset: float) -> list[Point]:
    return [
        Point(START + i * STEP, START + (i + 1) * STEP, offset + (i % 96) * 0.25)
        for i in range(count)
    ]


async def _make_series(db: Database, count: int):  # type: ignore[no-untyped-def]
    async with db.transaction() as tx:
        tenant, _ = await add_tenant(tx, f"bench-{uuid.uuid4().hex[:8]}")
        made = []
        for n in range(count):
            entity = await create_entity(
                tx, tenant, AssetType.RESOURCE, AssetSubType.METER, {"Name": f"meter {n}"}
            )
            made.append(
                await ensure_series(tx, tenant, entity, SeriesType.CONSUMPTION, resolution=STEP)
            )
    return tenant, made


def _groups(items: list, size: int) -> list[list]:  # type: ignore[type-arg]
    return [items[first : first + size] for first in range(0, len(items), size)]


async def _repository_write(db: Database, tenant, all_series, values: int, per_tx: int) -> float:  # type: ignore[no-untyped-def]
    work = [(s, _points(values, float(n % 7))) for n, s in enumerate(all_series)]
    started = time.perf_counter()
    for group in _groups(work, per_tx):
        async with db.transaction() as tx:
            for series, points in group:
                await write_values(tx, tenant, series, points, source="bench")
    return time.perf_counter() - started


async def _repository_read(db: Database, tenant, all_series, values: int) -> float:  # type: ignore[no-untyped-def]
    end = START + values * STEP
    started = time.perf_counter()
    for series in all_series:
        async with db.read() as tx:
            hourly = await read_values(
                tx, tenant, series, START, end, resolution=timedelta(hours=1)
            )
        assert len(hourly) == values // 4
    return time.perf_counter() - started


async def _raw_write(db: Database, tenant, all_series, values: int, per_tx: int) -> float:  # type: ignore[no-untyped-def]
    """Plain executemany at the driver, same table, same transaction sizes."""
    async with db.transaction() as tx:
        source = await source_id(tx, tenant, "raw")
    marker = "?" if db.dialect == "sqlite" else "$"
    placeholders = ", ".join("?" * 7) if marker == "?" else ", ".join(f"${i}" for i in range(1, 8))
    sql = (
        'INSERT INTO "values" (series_id, start, source_id, "end", value, belief, status) '
        f"VALUES ({placeholders})"
    )
    batches = _raw_rows(all_series, source, values)
    started = time.perf_counter()
    for group in _groups(batches, per_tx):
        async with db.transaction() as tx:
            for rows in group:
                await tx.exec_driver_sql(sql, rows)
    return time.perf_counter() - started


def _raw_rows(all_series, source: int, values: int) -> list[list[tuple]]:  # type: ignore[no-untyped-def, type-arg]
    belief = to_micros(utcnow())
    step = int(STEP.total_seconds() * 1_000_000)
    origin = to_micros(START)
    return [
        [
            (s.id, origin + i * step, source, origin + (i + 1) * step, float(i % 96), belief, None)
            for i in range(values)
        ]
        for s in all_series
    ]


async def _raw_copy(  # type: ignore[no-untyped-def]
    db: Database, tenant, all_series, values: int, per_tx: int, table: str
) -> float:
    """asyncpg's binary COPY of the same rows into `table`, same transaction sizes."""
    async with db.transaction() as tx:
        source = await source_id(tx, tenant, f"copy {table}")
    batches = _raw_rows(all_series, source, values)
    started = time.perf_counter()
    for group in _groups(batches, per_tx):
        async with db.transaction() as tx:
            await tx.execute(text("SELECT 1"))  # the transaction begins through SQLAlchemy
            driver = (await tx.get_raw_connection()).driver_connection
            for rows in group:
                await driver.copy_records_to_table(table, records=rows, columns=ROW_ORDER)
    return time.perf_counter() - started


async def run(url: str, series: int, values: int, per_tx: int) -> dict[str, float]:
    db = open_database(url)
    try:
        await upgrade(db)
        tenant, made = await _make_series(db, series)
        figures = {
            "write": await _repository_write(db, tenant, made, values, per_tx),
            "read": await _repository_read(db, tenant, made, values),
            "raw": await _raw_write(db, tenant, made, values, per_tx),
        }
        if db.dialect == "postgresql":
            figures["copy"] = await _raw_copy(db, tenant, made, values, per_tx, "values")
            async with db.transaction() as tx:  # the same columns, indexes and defaults
                await tx.execute(text('CREATE TABLE values_no_fk (LIKE "values" INCLUDING ALL)'))
            figures["copy_no_fk"] = await _raw_copy(
                db, tenant, made, values, per_tx, "values_no_fk"
            )
    finally:
        await db.close()
    total = series * values
    return {name: total / seconds for name, seconds in figures.items()}


def _report(label: str, figures: dict[str, float]) -> None:
    print(
        f"{label:<32} write {figures['write']:>10,.0f} values/s | raw executemany "
        f"{figures['raw']:>10,.0f} values/s | ratio {figures['write'] / figures['raw']:.0%} | "
        f"read resampled 15min->1h {figures['read']:>10,.0f} values/s",
        flush=True,
    )
    if "copy" in figures:
        met = "met" if figures["write"] >= 200_000 else "NOT met"
        print(
            f"{'':<32} raw COPY {figures['copy']:>10,.0f} values/s | ratio "
            f"{figures['write'] / figures['copy']:.0%} | raw COPY without foreign keys "
            f"{figures['copy_no_fk']:>10,.0f} values/s | target >= 200,000 values/s {met}",
            flush=True,
        )


async def _scenarios(label: str, database, args) -> None:  # type: ignore[no-untyped-def]
    """One fresh database per transaction size, so neither run warms the other."""
    for per_tx in args.per_tx:
        async with database() as url:
            figures = await run(url, args.series, args.values, per_tx)
        _report(f"{label}, {per_tx * args.values:,} values/tx", figures)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--values", type=int, default=1000)
    parser.add_argument(
        "--per-tx",
        type=int,
        nargs="+",
        default=[1, 10],
        help="series written per transaction (one run each; default 1 and 10)",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("FLEXBRIDGE_TEST_DATABASE_URL", PG_URL),
        help="admin URL of a PostgreSQL to create a scratch database in ('' to skip)",
    )
    parser.add_argument("--skip-sqlite", action="store_true", help="the PostgreSQL leg only")
    args = parser.parse_args()
    print(describe())
    print(f"{args.series} series x {args.values} values = {args.series * args.values:,} values")
    with tempfile.TemporaryDirectory() as folder:
        counter = iter(range(1_000_000))

        @asynccontextmanager
        async def sqlite_db() -> AsyncIterator[str]:
            yield f"sqlite+aiosqlite:///{folder}/bench{next(counter)}.db"

        if not args.skip_sqlite:
            await _scenarios("SQLite", sqlite_db, args)
    if not args.postgres:
        return
    try:
        await _scenarios("PostgreSQL", lambda: scratch_postgres(args.postgres), args)
    except OSError as exc:  # the figure is optional; say why it is missing
        print(f"PostgreSQL skipped: {exc}")


if __name__ == "__main__":
    asyncio.run(main())
