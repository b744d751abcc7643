"""Values of series: merge on write, latest belief on read, resampling on request.

A value is (series, start, end, value or null, belief time, source, status). Writing the same
(series, start, source) again merges: the newer belief replaces the older one, and an older
belief arriving late is ignored. Reads return the latest belief per start, optionally only
beliefs held at `prior`, made at least `horizon` ahead of their start, or from some sources.

The write path is the store's hot path (a million values a minute is ordinary): the loop
over points does only cheap checks and builds driver-ready tuples; a point that fails a
cheap check is looked at again by `_point_issue`, which says precisely what is wrong.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, distinct, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.ext.asyncio import AsyncConnection

from store.errors import FieldIssue, NotFound, ValidationError
from store.resample import Regular, interpolate_readings, over_periods, resample, values_at
from store.series import Series, require_own_series, source_id
from store.series_types import Quantity, SeriesTypeInfo, Sign, info, value_issue
from store.tables import series as series_table
from store.tables import sources as sources_table
from store.tables import values as values_table
from store.tenants import Tenant
from store.timeutil import (
    EARLIEST,
    EPOCH,
    LATEST,
    MICROSECOND,
    from_micros,
    in_range,
    require_utc,
    to_micros,
    utcnow,
)
from store.units import AnyUnit, convert

_MICROS_PER_SECOND = 1_000_000
_MAX_ISSUES = 20  # enough to fix a batch; a million identical complaints helps nobody
_LARGEST = sys.float_info.max
# 28,000 parameters a statement: under SQLite's limit (32,766 since 3.32) and PostgreSQL's
# (32,767). Fewer, larger statements mean fewer trips through the driver thread, each of
# which waits for the GIL while the event loop reads other requests: 5% more values/s.
_CHUNK_ROWS = 4000
ROW_ORDER = ("series_id", "start", "source_id", "end", "value", "belief", "status")
# From this many rows a PostgreSQL write goes through COPY (three round trips, then the
# server's fastest input path); below it one multi-row statement is quicker (about even at
# 500 rows on 2 cores, benchmarks/store_ingest.py).
COPY_FROM_ROWS = 500
_STAGED = "values_staged"  # the session's staging table for COPY (temporary, never shared)


class Point(NamedTuple):
    start: datetime
    end: datetime
    value: float | None
    status: str | None = None


def _upsert_statement(dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    """INSERT ... ON CONFLICT (series, start, source) DO UPDATE when the new belief is not
    older, compiled for `dialect`, with the order of its positional parameters."""
    statement = (sqlite.insert if dialect.name == "sqlite" else postgresql.insert)(values_table)
    new = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=[values_table.c.series_id, values_table.c.start, values_table.c.source_id],
        set_={"end": new.end, "value": new.value, "belief": new.belief, "status": new.status},
        where=new.belief >= values_table.c.belief,
    )
    compiled = statement.compile(dialect=dialect)
    return compiled.string, tuple(compiled.positiontup or ())


# A memo of pure results (the SQL text per dialect and chunk size), not application state:
# a message of 96 values would otherwise pay SQLAlchemy's compiler on every write.
@functools.lru_cache(maxsize=64)
def _cached_upsert_sql(dialect: Dialect, rows: int) -> str:
    return _upsert_sql(dialect, rows)


def _upsert_sql(dialect: Dialect, rows: int) -> str:
    """The upsert for `rows` rows in one multi-row VALUES statement.

    One statement per chunk instead of one execution per row: SQLite runs it about 50%
    faster (fewer VM restarts and GIL round trips through the driver thread).
    """
    single, order = _upsert_statement(dialect)
    if order != ROW_ORDER:  # the rows are built positionally
        raise RuntimeError(f"upsert parameters are {order}, rows are {ROW_ORDER}")
    head, _, rest = single.partition(" VALUES (")
    group, _, tail = rest.partition(") ON CONFLICT")
    if dialect.paramstyle == "numeric_dollar":  # asyncpg: $1..$7, then $8..$14, ...
        width = len(ROW_ORDER)
        groups = ", ".join("(" + _shift_numbers(group, k * width) + ")" for k in range(rows))
    elif dialect.paramstyle == "qmark":
        groups = ", ".join([f"({group})"] * rows)
    else:
        raise NotImplementedError(f"paramstyle {dialect.paramstyle}")
    return f"{head} VALUES {groups} ON CONFLICT{tail}"


def _shift_numbers(group: str, offset: int) -> str:
    """`group` with each numeric parameter $n renumbered $(n + offset)."""
    return re.sub(r"\$(\d+)", lambda m: f"${int(m[1]) + offset}", group)


# Made once per database session, if missing, inside the writing transaction (so a rollback
# that takes it away also takes away the rows it held). ON COMMIT DELETE ROWS empties it at
# commit in place, so a pooled session's staging table never grows.
_CREATE_STAGED = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGED} (series_id integer, start bigint, "
    'source_id integer, "end" bigint, value double precision, belief bigint, '
    "status varchar(20)) ON COMMIT DELETE ROWS"
)


@functools.lru_cache(maxsize=4)
def _merge_staged_sql(dialect: Dialect) -> str:
    """The upsert of `_upsert_statement`, fed by the staging table, which it empties (a
    transaction may stage several times before its commit)."""
    single, _ = _upsert_statement(dialect)
    head, _, rest = single.partition(" VALUES (")
    _, _, tail = rest.partition(") ON CONFLICT")
    columns = ", ".join(f'"{name}"' for name in ROW_ORDER)
    return (
        f"WITH staged AS (DELETE FROM {_STAGED} RETURNING {columns}) "
        f"{head} SELECT {columns} FROM staged ON CONFLICT{tail}"
    )


async def merge_by_copy(tx: AsyncConnection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Merge distinct rows on PostgreSQL: binary COPY into the session's staging table, then
    one INSERT ... SELECT ... ON CONFLICT from it, with the rules of `merge_by_statements`.

    All of it runs in `tx`'s transaction: nothing is visible before its commit, and a
    rollback takes the staged and the merged rows away alike."""
    # Through SQLAlchemy first: this also begins the transaction if nothing else has yet.
    await tx.exec_driver_sql(_CREATE_STAGED)
    driver = (await tx.get_raw_connection()).driver_connection
    if driver is None or not driver.is_in_transaction():
        raise RuntimeError("COPY outside a transaction would be visible before the commit")
    try:
        await driver.copy_records_to_table(_STAGED, records=rows, columns=ROW_ORDER)
    except Exception as exc:
        raise _as_sqlalchemy_error(exc) from exc
    await tx.exec_driver_sql(_merge_staged_sql(tx.dialect))


def _as_sqlalchemy_error(exc: Exception) -> Exception:
    """What the same failure raises through SQLAlchemy's asyncpg adapter, so that callers
    see one kind of error whichever way the rows went."""
    import asyncpg  # type: ignore[import-untyped]  # only a PostgreSQL database gets here

    statement = f"COPY {_STAGED}"
    if isinstance(exc, asyncpg.PostgresError):
        return DBAPIError(statement, None, exc)
    if isinstance(exc, asyncpg.InterfaceError):  # e.g. the connection is gone
        return InterfaceError(statement, None, exc, connection_invalidated=True)
    return exc


async def write_rows(tx: AsyncConnection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Merge rows made by `prepare_rows` (of one or many series) into the store."""
    if len({row[:3] for row in rows}) != len(rows):
        # One statement may not touch a row twice (PostgreSQL refuses): the later point of
        # the same (series, start, source) wins, as it would if written one after the other.
        rows = list({row[:3]: row for row in rows}.values())
    if tx.dialect.name == "postgresql" and len(rows) >= COPY_FROM_ROWS:
        await merge_by_copy(tx, rows)
    else:
        await merge_by_statements(tx, rows)


async def merge_by_statements(tx: AsyncConnection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Merge distinct rows with multi-row INSERT ... ON CONFLICT statements (any backend)."""
    for first in range(0, len(rows), _CHUNK_ROWS):
        chunk = rows[first : first + _CHUNK_ROWS]
        sql = _cached_upsert_sql(tx.dialect, len(chunk))
        await tx.exec_driver_sql(sql, tuple(itertools.chain.from_iterable(chunk)))


def _point_issue(
    index: int, point: Any, res_us: int, align_us: int, meta: SeriesTypeInfo
) -> FieldIssue:
    """Why point `index` was refused by the cheap checks of `_rows`, in words."""
    where = f"values[{index}]"
    try:
        start, end, value = point[0], point[1], point[2]
    except (TypeError, IndexError, KeyError):
        return FieldIssue(where, "expected (start, end, value[, status])")
    for name, moment in (("start", start), ("end", end)):
        if not isinstance(moment, datetime):
            return FieldIssue(f"{where}.{name}", "expected a datetime")
        if moment.tzinfo is None or moment.utcoffset() is None:
            return FieldIssue(f"{where}.{name}", "naive timestamp: a UTC offset or 'Z' is required")
    length = to_micros(end) - to_micros(start)
    if length < 0 or (length == 0 and res_us):
        return FieldIssue(f"{where}.end", "must be after start")
    if res_us and length != res_us:
        return FieldIssue(
            f"{where}.end",
            f"block of {timedelta(microseconds=length)} in a series "
            f"at {timedelta(microseconds=res_us)}",
        )
    if align_us and to_micros(start) % align_us:
        return FieldIssue(
            f"{where}.start",
            f"{start.isoformat()} is not on the {timedelta(microseconds=align_us)} grid "
            "(blocks start at whole multiples of the resolution from 00:00 UTC)",
        )
    if in_range(start) is None or in_range(end) is None:
        return FieldIssue(f"{where}.start", "outside the years 1900-8999")
    if isinstance(value, bool) or not isinstance(value, int | float | None):
        return FieldIssue(
            f"{where}.value", f"expected a number or null, got {type(value).__name__}"
        )
    status = point[3] if len(point) > 3 else None
    if status is not None and (not isinstance(status, str) or len(status) > 20):
        return FieldIssue(f"{where}.status", "expected text of at most 20 characters")
    reason = value_issue(meta, value) if value is not None else None
    return FieldIssue(f"{where}.value", reason or "refused")


def _value_bounds(meta: SeriesTypeInfo) -> tuple[float, float] | None:
    """Inclusive bounds a value may take, or None when only `value_issue` can tell (states).

    NaN fails every comparison and infinities lie outside, so a bounds check refuses both.
    """
    if meta.states is not None:
        return None
    low = 0.0 if meta.sign is Sign.UNSIGNED else -_LARGEST
    high = _LARGEST if meta.maximum is None else float(meta.maximum)
    return low, high


def _block_micros(series: Series) -> int:
    """Microseconds per block; 0 for an irregular series."""
    return int(series.resolution.total_seconds()) * _MICROS_PER_SECOND if series.resolution else 0


def _alignment_micros(series: Series) -> int:
    """The grid block starts must lie on, counted from the UTC epoch; 0 for no rule.

    Blocks of up to an hour start on their own grid (15-minute blocks at :00, :15, ...), so
    two writers can never store overlapping blocks. Longer blocks are not checked: a day
    starts at local midnight, which no UTC grid describes.
    """
    block = _block_micros(series)
    return block if 0 < block <= 3600 * _MICROS_PER_SECOND else 0


class Blocks(NamedTuple):
    """Values of a regular series as columns, the store's cheapest input: block starts in
    integer microseconds since the epoch (each block lasts the series' resolution), the
    values, and the statuses (None when no value has one). A reader that already holds
    microseconds (a memo of the timestamps a message repeats) skips the datetimes."""

    starts_us: Sequence[int]
    values: Sequence[float | None]
    statuses: Sequence[str | None] | None = None


class _Checks(NamedTuple):
    """What every point of one series is checked against, worked out once per write."""

    res_us: int
    align_us: int
    meta: SeriesTypeInfo
    low: float
    high: float
    bounded: bool
    states: frozenset[int]  # the values a series of states may take; empty when bounded


def _checks(series: Series) -> _Checks:
    meta = info(series.series_type)
    bounds = _value_bounds(meta)
    low, high = bounds or (0.0, 0.0)
    return _Checks(
        _block_micros(series),
        _alignment_micros(series),
        meta,
        low,
        high,
        bounds is not None,
        meta.states or frozenset(),
    )


def _checked_value(value: Any, status: Any, checks: _Checks) -> float | None:
    """`value` as stored; ValueError for a value or status the series cannot hold."""
    if value is not None:
        if value.__class__ is int:  # bool is not: its __class__ is bool
            value = float(value)
        elif value.__class__ is not float:
            raise ValueError
        if checks.bounded:
            if not checks.low <= value <= checks.high:
                raise ValueError
        elif value not in checks.states:
            raise ValueError
    if status is not None and (status.__class__ is not str or len(status) > 20):
        raise ValueError
    stored: float | None = value
    return stored


def _rows(series: Series, points: Sequence[Any], source: int, belief: int) -> list[tuple[Any, ...]]:
    """Driver-ready rows in ROW_ORDER (the upsert's parameter order) for `points`.

    Every point is checked; all problems (up to _MAX_ISSUES) are reported together.
    """
    checks = _checks(series)
    res_us, align_us = checks.res_us, checks.align_us
    sid = series.id
    epoch, micro = EPOCH, MICROSECOND
    earliest, latest = to_micros(EARLIEST), to_micros(LATEST)
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    issues: list[FieldIssue] = []
    for index, point in enumerate(points):
        try:
            start, end, value = point[0], point[1], point[2]
            status = point[3] if len(point) > 3 else None
            # Exact integer microseconds in two C operations; a naive datetime raises here.
            start_us = (start - epoch) // micro
            end_us = (end - epoch) // micro
            length = end_us - start_us
            if (length != res_us) if res_us else (length < 0):
                raise ValueError
            if align_us and start_us % align_us:
                raise ValueError
            if not earliest <= start_us <= end_us < latest:
                raise ValueError
            value = _checked_value(value, status, checks)
        except Exception:  # any malformed point: find out precisely what, off the happy path
            issues.append(_point_issue(index, point, res_us, align_us, checks.meta))
            if len(issues) >= _MAX_ISSUES:
                break
            continue
        append((sid, start_us, source, end_us, value, belief, status))
    if issues:
        raise ValidationError(issues=issues)
    return rows


def _block_point(blocks: Blocks, index: int, res_us: int) -> Any:
    """Block `index` as a point, for `_point_issue` to judge; the raw start if unreadable."""
    start_us = blocks.starts_us[index]
    status = blocks.statuses[index] if blocks.statuses is not None else None
    try:
        start = from_micros(start_us)
        return Point(start, start + timedelta(microseconds=res_us), blocks.values[index], status)
    except (TypeError, OverflowError):
        return (start_us, None, blocks.values[index], status)


def _block_rows(series: Series, blocks: Blocks, source: int, belief: int) -> list[tuple[Any, ...]]:
    """`_rows` for columns of block starts: the same checks, on integers."""
    checks = _checks(series)
    res_us, align_us = checks.res_us, checks.align_us
    if not res_us:
        raise ValidationError("values", "blocks need a series with a resolution")
    if len(blocks.starts_us) != len(blocks.values) or (
        blocks.statuses is not None and len(blocks.statuses) != len(blocks.values)
    ):
        raise ValidationError("values", "block columns of different lengths")
    sid = series.id
    earliest, last_start = to_micros(EARLIEST), to_micros(LATEST) - res_us
    statuses = blocks.statuses if blocks.statuses is not None else itertools.repeat(None)
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    issues: list[FieldIssue] = []
    for index, (start_us, value, status) in enumerate(
        zip(blocks.starts_us, blocks.values, statuses, strict=False)  # lengths checked above
    ):
        try:
            if start_us.__class__ is not int or not earliest <= start_us < last_start:
                raise ValueError
            if align_us and start_us % align_us:
                raise ValueError
            value = _checked_value(value, status, checks)
        except Exception:  # any malformed block: find out precisely what, off the happy path
            point = _block_point(blocks, index, res_us)
            issues.append(_point_issue(index, point, res_us, align_us, checks.meta))
            if len(issues) >= _MAX_ISSUES:
                break
            continue
        append((sid, start_us, source, start_us + res_us, value, belief, status))
    if issues:
        raise ValidationError(issues=issues)
    return rows


async def _checked_source(
    tx: AsyncConnection, tenant: Tenant, series_ids: set[int], source: str
) -> int:
    """The source id, after checking in the same round trip that every one of `series_ids`
    is this tenant's."""
    query = (
        select(series_table.c.id, sources_table.c.id.label("source_id"))
        .outerjoin(
            sources_table,
            (sources_table.c.tenant_id == series_table.c.tenant_id)
            & (sources_table.c.name == source),
        )
        .where(series_table.c.id.in_(sorted(series_ids)), series_table.c.tenant_id == tenant.id)
    )
    rows = (await tx.execute(query)).all()
    missing = series_ids - {row.id for row in rows}
    if missing:
        raise NotFound("series", f"#{min(missing)}")
    found: int | None = rows[0].source_id
    return found if found is not None else await source_id(tx, tenant, source)


def _believed(beliefs: Sequence[datetime]) -> list[int]:
    return [to_micros(require_utc(moment, "belief")) for moment in beliefs]


def _rows_believed(
    series: Series, points: Sequence[Point] | Blocks, source: int, believed: Sequence[int]
) -> list[tuple[Any, ...]]:
    """`_rows` with each point's own belief time (epoch microseconds)."""
    count = len(points.values) if isinstance(points, Blocks) else len(points)
    if len(believed) != count:
        raise ValidationError("belief", f"{len(believed)} belief times for {count} values")
    if isinstance(points, Blocks):
        rows = _block_rows(series, points, source, 0)
    else:
        rows = _rows(series, points, source, 0)
    return [(*row[:5], b, row[6]) for row, b in zip(rows, believed, strict=True)]


def _prepared(
    series: Series,
    points: Sequence[Point] | Blocks,
    source: int,
    known: datetime | list[int],
    unit: AnyUnit | None,
) -> list[tuple[Any, ...]]:
    if isinstance(known, datetime):
        return prepare_rows(series, points, source_id=source, belief=known, unit=unit)
    rows = _rows_believed(series, points, source, known)
    return _converted(rows, series, unit)


def _converted(
    rows: list[tuple[Any, ...]], series: Series, unit: AnyUnit | None
) -> list[tuple[Any, ...]]:
    if unit is None or str(unit) == str(series.unit):
        return rows
    values = convert([row[4] for row in rows], unit, series.unit)
    return [(*row[:4], value, *row[5:]) for row, value in zip(rows, values, strict=True)]


def prepare_rows(
    series: Series,
    points: Sequence[Point] | Blocks,
    *,
    source_id: int,
    belief: datetime | Sequence[datetime] | None = None,
    unit: AnyUnit | None = None,
) -> list[tuple[Any, ...]]:
    """Check `points` and make the driver-ready rows `write_rows` merges; ValidationError
    naming every bad point, and nothing made, if any is bad. The caller vouches that `series`
    and `source_id` are the tenant's (they came from a tenant-filtered lookup).

    `belief`: when the values were known, for all (None: now) or one per point (the USEF
    API's horizons give each interval its own).

    `unit`: the unit the values are given in, converted to the series' unit after they
    have been checked.
    """
    if isinstance(belief, Sequence):
        rows = _rows_believed(series, points, source_id, _believed(belief))
    else:
        belief_us = to_micros(require_utc(belief, "belief") if belief is not None else utcnow())
        if isinstance(points, Blocks):
            rows = _block_rows(series, points, source_id, belief_us)
        else:
            rows = _rows(series, points, source_id, belief_us)
    return _converted(rows, series, unit)


async def write_values(
    tx: AsyncConnection,
    tenant: Tenant,
    series: Series,
    points: Sequence[Point] | Blocks,
    *,
    source: str,
    belief: datetime | Sequence[datetime] | None = None,
    unit: AnyUnit | None = None,
) -> int:
    """Merge `points` into `series`; returns how many. Nothing is written if any is bad.
    `belief`: when they were known, for all or one per point (None: now)."""
    source_key = await _checked_source(tx, tenant, {series.id}, source)
    rows = prepare_rows(series, points, source_id=source_key, belief=belief, unit=unit)
    if rows:
        await write_rows(tx, rows)
    return len(rows)


async def write_many(
    tx: AsyncConnection,
    tenant: Tenant,
    writes: Sequence[tuple[Series, Sequence[Point] | Blocks]],
    *,
    source: str,
    belief: datetime | Sequence[datetime] | None = None,
    unit: AnyUnit | None = None,
) -> int:
    """`write_values(tx, tenant, series, points, source=source, belief=belief, unit=unit)`
    for each (series, points), merged in one round trip for all (a plan writes a dozen
    series of 96 values: three statements each were half of its write; a USEF message a
    hundred connections); returns how many values. Nothing is written if any point is bad.
    A `belief` per point applies to each write's points alike."""
    if not writes:
        return 0
    source_key = await _checked_source(tx, tenant, {series.id for series, _ in writes}, source)
    known: datetime | list[int] | None = None
    if isinstance(belief, Sequence):
        known = _believed(belief)
    else:
        known = require_utc(belief, "belief") if belief is not None else utcnow()
    rows = [
        row
        for series, points in writes
        for row in _prepared(series, points, source_key, known, unit)
    ]
    if rows:
        await write_rows(tx, rows)
    return len(rows)


def _latest_per_start(rows: Iterable[Any]) -> list[Any]:
    """Rows ordered by (start, belief): keep the last, i.e. the newest belief, of each start."""
    latest: dict[int, Any] = {}
    for row in rows:
        latest[row[0]] = row
    return list(latest.values())


def _as_points(rows: Iterable[Any]) -> list[Point]:
    return [Point(from_micros(r[0]), from_micros(r[1]), r[2], r[3]) for r in rows]


@dataclass(frozen=True, slots=True)
class _BeliefFilter:
    prior: datetime | None = None
    horizon: timedelta | None = None
    sources: Sequence[str] | None = None


async def _fetch(
    tx: AsyncConnection, tenant: Tenant, series: Series, lo: int, hi: int, beliefs: _BeliefFilter
) -> list[Any]:
    """(start, end, value, status) rows, the latest belief per start for starts in [lo, hi),
    all times in epoch microseconds (datetimes are made only for what a caller returns)."""
    column = values_table.c
    query = (
        select(column.start, column.end, column.value, column.status, column.belief)
        .where(column.series_id == series.id, column.start >= lo, column.start < hi)
        .order_by(column.start, column.belief)
    )
    if beliefs.prior is not None:
        query = query.where(column.belief <= to_micros(require_utc(beliefs.prior, "prior")))
    if beliefs.horizon is not None:
        ahead = int(beliefs.horizon.total_seconds() * _MICROS_PER_SECOND)
        query = query.where(column.start - column.belief >= ahead)
    if beliefs.sources is not None:
        query = query.join(sources_table, sources_table.c.id == column.source_id).where(
            sources_table.c.tenant_id == tenant.id, sources_table.c.name.in_(list(beliefs.sources))
        )
    return _latest_per_start(await tx.execute(query))


async def _readings_around(
    tx: AsyncConnection,
    tenant: Tenant,
    series: Series,
    start: datetime,
    end: datetime,
    beliefs: _BeliefFilter,
) -> list[tuple[datetime, float]]:
    """Readings in [start, end] plus the nearest one outside each edge, so that values at
    the edges can be interpolated rather than left unknown."""
    lo, hi = to_micros(start), to_micros(end)
    before = await _neighbour(tx, series, lo, before=True)
    after = await _neighbour(tx, series, hi, before=False)
    rows = await _fetch(
        tx,
        tenant,
        series,
        lo if before is None else before,
        (hi if after is None else after) + 1,
        beliefs,
    )
    return [(from_micros(r[0]), r[2]) for r in rows if r[2] is not None]


async def read_values(
    tx: AsyncConnection,
    tenant: Tenant,
    series: Series,
    start: datetime,
    end: datetime,
    *,
    resolution: timedelta | None = None,
    prior: datetime | None = None,
    horizon: timedelta | None = None,
    sources: Sequence[str] | None = None,
) -> list[Point]:
    """Values with start in [start, end): the latest belief per start, resampled on request.

    Irregular series read at a resolution give the value AT each grid instant: meter
    readings and levels interpolated between the readings around it.
    """
    start = require_utc(start, "start")
    end = require_utc(end, "end")
    if end <= start:
        raise ValidationError("end", "must be after start")
    require_own_series(tenant, series)
    beliefs = _BeliefFilter(prior, horizon, sources)
    if resolution is None or resolution == series.resolution:
        return _as_points(
            await _fetch(tx, tenant, series, to_micros(start), to_micros(end), beliefs)
        )
    if series.resolution is None:
        return _instants(
            series,
            await _readings_around(tx, tenant, series, start, end, beliefs),
            start,
            end,
            resolution,
        )
    lo, hi = to_micros(start), to_micros(end)
    _check_window(series, lo, hi)
    rows = await _fetch(tx, tenant, series, lo, hi, beliefs)
    regular = resample(
        _grid(rows, start, end, series.resolution), resolution, info(series.series_type).quantity
    )
    return [
        Point(
            regular.start + i * regular.resolution, regular.start + (i + 1) * regular.resolution, v
        )
        for i, v in enumerate(regular.values)
    ]


class Window(NamedTuple):
    """One series' values with start in [start, end), as stored: what `read_windows` reads."""

    series: Series
    start: datetime
    end: datetime


def _windows_clause(windows: Sequence[tuple[int, int, int]]) -> ColumnElement[bool]:
    """series_id IN (...) AND start in [lo, hi), one term per distinct window."""
    column = values_table.c
    by_span: dict[tuple[int, int], list[int]] = {}
    for series_id, lo, hi in windows:
        by_span.setdefault((lo, hi), []).append(series_id)
    return or_(
        *(
            and_(column.series_id.in_(sorted(set(ids))), column.start >= lo, column.start < hi)
            for (lo, hi), ids in by_span.items()
        )
    )


def _spans(windows: Sequence[Window]) -> list[tuple[int, int, int]]:
    """(series id, lo, hi) in epoch microseconds per window, checked as read_values does."""
    spans = []
    for window in windows:
        lo = to_micros(require_utc(window.start, "start"))
        hi = to_micros(require_utc(window.end, "end"))
        if hi <= lo:
            raise ValidationError("end", "must be after start")
        spans.append((window.series.id, lo, hi))
    return spans


async def read_windows(
    tx: AsyncConnection, tenant: Tenant, windows: Sequence[Window]
) -> list[list[Point]]:
    """`read_values(tx, tenant, w.series, w.start, w.end)` for each window, in its order, in
    one statement for all (a plan reads a dozen series: one round trip each was most of its
    cost). As stored: no resampling, the latest belief per start."""
    spans = _spans(windows)
    if not spans:
        return []
    require_own_series(tenant, *(window.series for window in windows))
    column = values_table.c
    query = (
        select(column.series_id, column.start, column.end, column.value, column.status)
        .where(_windows_clause(spans))
        .order_by(column.series_id, column.start, column.belief)
    )
    rows: dict[int, list[Any]] = {}
    for row in await tx.execute(query):
        rows.setdefault(row[0], []).append(row[1:])
    # The series of one read mostly share their block edges: each instant made once.
    moments: dict[int, datetime] = {}
    return [_points_of(_in_span(rows.get(sid, []), lo, hi), moments) for sid, lo, hi in spans]


def _in_span(rows: list[Any], lo: int, hi: int) -> list[Any]:
    """The latest belief per start of `rows` (one series' (start, end, value, status), by
    start and belief), for starts in [lo, hi): two windows of one series may differ."""
    first = bisect.bisect_left(rows, lo, key=_start_of)
    last = bisect.bisect_left(rows, hi, lo=first, key=_start_of)
    return _latest_per_start(rows[first:last])


def _start_of(row: Any) -> int:
    start: int = row[0]
    return start


def _points_of(rows: Iterable[Any], moments: dict[int, datetime]) -> list[Point]:
    """`_as_points`, each instant made once per `moments`."""
    points = []
    for start, end, value, status in rows:
        if (first := moments.get(start)) is None:
            first = moments[start] = from_micros(start)
        if (last := moments.get(end)) is None:
            last = moments[end] = from_micros(end)
        points.append(Point(first, last, value, status))
    return points


async def count_starts(
    tx: AsyncConnection, tenant: Tenant, series: Series, start: datetime, end: datetime
) -> int:
    """How many values `read_values` gives for [start, end) as stored (one per start),
    counted in the database: for a caller that bounds a read before making it."""
    require_own_series(tenant, series)
    column = values_table.c
    query = select(func.count(distinct(column.start))).where(
        column.series_id == series.id,
        column.start >= to_micros(require_utc(start, "start")),
        column.start < to_micros(require_utc(end, "end")),
    )
    return int((await tx.execute(query)).scalar_one())


async def read_periods(
    tx: AsyncConnection,
    tenant: Tenant,
    series: Series,
    edges: Sequence[datetime],
    *,
    prior: datetime | None = None,
    horizon: timedelta | None = None,
    sources: Sequence[str] | None = None,
) -> list[Point]:
    """The series over the periods [edges[k], edges[k+1]) (calendar periods from
    store.calendar, or any ascending boundaries), by the resampling rules: block kinds
    through `resample.over_periods` (a stored block across a boundary shared by time),
    readings and levels as the value AT each period start (`resample.values_at`).

    An irregular series of a block kind holds intervals [start, end) and is read the same
    way; an instant in it has no length to share, and is refused.
    """
    if len(edges) < 2:
        return []
    times = [require_utc(moment, "edges") for moment in edges]
    require_own_series(tenant, series)
    beliefs = _BeliefFilter(prior, horizon, sources)
    if info(series.series_type).quantity in (Quantity.READING, Quantity.LEVEL):
        readings = await _readings_around(tx, tenant, series, times[0], times[-1], beliefs)
        at = values_at(readings, times[:-1])
        return [Point(t, t, v) for t, v in zip(times[:-1], at, strict=True)]
    lo, hi = to_micros(times[0]), to_micros(times[-1])
    # The value begun last before the first edge may reach into the first period.
    before = await _neighbour(tx, series, lo, before=True)
    rows = await _fetch(tx, tenant, series, lo if before is None else before, hi, beliefs)
    if series.resolution is None and any(row[1] == row[0] for row in rows):
        raise ValidationError(
            "resolution",
            f"{series.series_type} holds values at instants, which have no length to resample; "
            "only meter readings and levels can be read at a resolution",
        )
    starts, ends = [row[0] for row in rows], [row[1] for row in rows]
    values = over_periods(
        starts,
        ends,
        [row[2] for row in rows],
        [to_micros(t) for t in times],
        info(series.series_type).quantity,
    )
    return [Point(a, b, v) for a, b, v in zip(times, times[1:], values, strict=False)]


def _check_window(series: Series, lo: int, hi: int) -> None:
    """A resampled read covers whole stored blocks: a partial block would read as missing."""
    block, align = _block_micros(series), _alignment_micros(series)
    if align and lo % align:
        raise ValidationError("start", f"not on the {series.resolution} grid of the series")
    if (hi - lo) % block:
        raise ValidationError("end", f"the window must be whole {series.resolution} blocks")


def _grid(rows: Sequence[Any], start: datetime, end: datetime, step: timedelta) -> Regular:
    """Lay (start, end, value, status) rows on the grid start, start+step, ... < end; gaps
    become None."""
    count = int((end - start) / step)
    grid: list[float | None] = [None] * count
    step_us = int(step.total_seconds() * _MICROS_PER_SECOND)
    origin = to_micros(start)
    for row in rows:
        index, misalignment = divmod(row[0] - origin, step_us)
        if not misalignment and 0 <= index < count:
            grid[index] = row[2]
    return Regular(start, step, grid)


def _instants(
    series: Series,
    readings: Sequence[tuple[datetime, float]],
    start: datetime,
    end: datetime,
    resolution: timedelta,
) -> list[Point]:
    if info(series.series_type).quantity not in (Quantity.READING, Quantity.LEVEL):
        raise ValidationError(
            "resolution",
            f"{series.series_type} is irregular; only meter readings and levels can be read "
            "at a resolution",
        )
    boundaries = interpolate_readings(readings, start, end, resolution)
    # Boundaries include `end`; the window is [start, end).
    return [
        Point(boundaries.start + i * resolution, boundaries.start + i * resolution, value)
        for i, value in enumerate(boundaries.values[:-1])
    ]


async def _neighbour(tx: AsyncConnection, series: Series, at: int, *, before: bool) -> int | None:
    """The start (epoch microseconds) of the nearest value strictly before or after `at`."""
    column = values_table.c.start
    query = select(column).where(values_table.c.series_id == series.id)
    query = (
        query.where(column < at).order_by(column.desc())
        if before
        else query.where(column > at).order_by(column)
    ).limit(1)
    return (await tx.execute(query)).scalar_one_or_none()
