"""Bulk value writes: PostgreSQL's COPY path merges exactly as the statement path does.

Large writes on PostgreSQL go through COPY into a staging table and one INSERT ... SELECT
... ON CONFLICT (store.values.merge_by_copy); small ones, and every write on SQLite, through
multi-row INSERT ... ON CONFLICT statements (merge_by_statements). Both are held to one
model of the merge rule: the same (series, start, source) written again keeps the newer
belief (an equal belief: the later write), an older one is ignored, and within one write
the later point wins.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from store.catalogue import AssetSubType, AssetType
from store.db import Database, open_database
from store.entities import create_entity
from store.series import Series, ensure_series, source_id
from store.series_types import SeriesType
from store.tables import values
from store.tenants import add_tenant
from store.timeutil import to_micros
from store.values import COPY_FROM_ROWS, merge_by_copy, merge_by_statements, write_rows

T0 = to_micros(datetime(2026, 3, 1, tzinfo=UTC))
Q = timedelta(minutes=15)
Q_US = 15 * 60 * 1_000_000
SLOTS = 1500  # starts a scenario draws from: batches overlap each other often
Row = tuple[Any, ...]


async def _series(db: Database, count: int) -> tuple[list[Series], list[int]]:
    """`count` Consumption series of one tenant, and three of its sources."""
    async with db.transaction() as tx:
        tenant, _ = await add_tenant(tx, "copy")
        made = []
        for n in range(count):
            meter = await create_entity(
                tx, tenant, AssetType.RESOURCE, AssetSubType.METER, {"Name": f"M{n}"}
            )
            made.append(
                await ensure_series(tx, tenant, meter, SeriesType.CONSUMPTION, resolution=Q)
            )
        sources = [await source_id(tx, tenant, name) for name in ("a", "b", "c")]
    return made, sources


def _scenario(seed: int, sources: Sequence[int]) -> list[list[list[Row]]]:
    """Transactions of batches of rows (series id 0, set per series later): large and small
    batches, repeated points inside a batch, newer, equal and older beliefs than stored,
    nulls and statuses, several sources at one start."""
    draw = random.Random(seed)
    transactions = []
    for _ in range(6):
        batches = []
        for _ in range(draw.choice((1, 1, 2, 3))):
            size = draw.choice((COPY_FROM_ROWS, 1200, 3000, 7, 120))
            batch = []
            for _ in range(size):
                start = T0 + draw.randrange(SLOTS) * Q_US
                value = None if draw.random() < 0.1 else round(draw.uniform(-5, 50), 3)
                status = draw.choice((None, None, "Estimated", "Measured"))
                belief = T0 - draw.randrange(4) * 1_000_000  # few beliefs: many ties
                batch.append((0, start, draw.choice(sources), start + Q_US, value, belief, status))
            batches.append(batch)
        transactions.append(batches)
    return transactions


def _model(transactions: list[list[list[Row]]]) -> list[Row]:
    """What the merge rule stores, computed in Python: (start, source, end, value, belief,
    status) sorted."""
    stored: dict[tuple[int, int], Row] = {}
    for batches in transactions:
        for batch in batches:
            latest = {(row[1], row[2]): row for row in batch}  # the later point of a write
            for key, row in latest.items():
                if key not in stored or row[5] >= stored[key][5]:
                    stored[key] = row
    return sorted(row[1:] for row in stored.values())


def _for_series(batch: list[Row], series: Series) -> list[Row]:
    return [(series.id, *row[1:]) for row in batch]


def _distinct(rows: list[Row]) -> list[Row]:
    return list({row[:3]: row for row in rows}.values())


async def _stored(db: Database, series: Series) -> list[Row]:
    column = values.c
    query = select(
        column.start, column.source_id, column.end, column.value, column.belief, column.status
    ).where(column.series_id == series.id)
    async with db.read() as tx:
        return sorted(tuple(row) for row in await tx.execute(query))


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_write_rows_stores_what_the_merge_rule_says(db: Database, seed: int) -> None:
    """Large writes take COPY on PostgreSQL, small ones statements; SQLite statements only:
    every backend ends with the model's rows."""
    [series], sources = await _series(db, 1)
    transactions = _scenario(seed, sources)
    for batches in transactions:
        async with db.transaction() as tx:
            for batch in batches:
                await write_rows(tx, _for_series(batch, series))
    assert await _stored(db, series) == _model(transactions)


@pytest.mark.parametrize("seed", [4, 5])
async def test_copy_and_statements_store_the_same_rows(db: Database, seed: int) -> None:
    if db.dialect != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    (by_copy, by_statements), sources = await _series(db, 2)
    transactions = _scenario(seed, sources)
    for batches in transactions:
        async with db.transaction() as tx:
            for batch in batches:
                await merge_by_copy(tx, _distinct(_for_series(batch, by_copy)))
                await merge_by_statements(tx, _distinct(_for_series(batch, by_statements)))
    copied = await _stored(db, by_copy)
    assert copied == await _stored(db, by_statements) == _model(transactions)
    assert len(copied) > SLOTS  # starts repeat across sources: the comparison had overlaps


async def test_copied_rows_are_invisible_until_commit_and_gone_on_rollback(
    db: Database,
) -> None:
    """A COPY runs inside the caller's transaction: another connection sees nothing of it
    before the commit, a rollback takes staged and merged rows away, and the next
    transaction on the same database session merges only its own rows."""
    if db.dialect != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    [series], sources = await _series(db, 1)
    one_session = open_database(
        db.engine.url.render_as_string(hide_password=False), pool_size=1, max_overflow=0
    )
    first = [
        (series.id, T0 + i * Q_US, sources[0], T0 + (i + 1) * Q_US, 1.0, T0, None)
        for i in range(COPY_FROM_ROWS)
    ]
    second = [(series.id, T0 + i * Q_US, sources[1], *row[3:]) for i, row in enumerate(first)]
    sessions = []
    try:
        with pytest.raises(RuntimeError, match="refused after the write"):
            async with one_session.transaction() as tx:
                sessions.append((await tx.execute(text("SELECT pg_backend_pid()"))).scalar())
                await merge_by_copy(tx, first)
                assert len(await _stored(db, series)) == 0  # another connection: not yet
                raise RuntimeError("refused after the write")
        assert len(await _stored(db, series)) == 0
        async with one_session.transaction() as tx:
            sessions.append((await tx.execute(text("SELECT pg_backend_pid()"))).scalar())
            await merge_by_copy(tx, second)
            staged = await tx.execute(text("SELECT count(*) FROM values_staged"))
            assert staged.scalar() == 0  # emptied by the merge itself
    finally:
        await one_session.close()
    assert sessions[0] == sessions[1]  # the same session, its staging table reused
    stored = await _stored(db, series)
    assert {row[1] for row in stored} == {sources[1]} and len(stored) == COPY_FROM_ROWS


async def test_a_row_of_a_missing_series_is_the_same_integrity_error_either_way(
    db: Database,
) -> None:
    [series], sources = await _series(db, 1)
    rows = [
        (series.id + 1000, T0 + i * Q_US, sources[0], T0 + (i + 1) * Q_US, 1.0, T0, None)
        for i in range(COPY_FROM_ROWS)
    ]
    merges = [merge_by_statements] + ([merge_by_copy] if db.dialect == "postgresql" else [])
    for merge in merges:
        with pytest.raises(IntegrityError):
            async with db.transaction() as tx:
                await merge(tx, rows)
    async with db.read() as tx:
        assert (await tx.execute(select(func.count()).select_from(values))).scalar() == 0
