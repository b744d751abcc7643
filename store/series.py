"""Series and their values: merge on write, latest belief on read, resampling on request.

A value is (series, start, end, value or null, belief time, source, status). Writing the same
(series, start, source) again merges: the newer belief replaces the older one, and an older
belief arriving late is ignored. Reads return the latest belief per start, optionally only
beliefs held at `prior`, made at least `horizon` ahead of their start, or from some sources.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from store.entities import Entity
from store.errors import FieldIssue, NotFound, ValidationError
from store.resample import Regular, interpolate_readings, readings_to_energy, resample
from store.series_types import Quantity, SeriesType, SeriesTypeInfo, info, value_issue
from store.tables import series as series_table
from store.tables import sources as sources_table
from store.tables import values as values_table
from store.tenants import Tenant
from store.timeutil import from_micros, require_utc, to_micros, utcnow
from store.units import AnyUnit, convert, parse_unit

_MICROS_PER_SECOND = 1_000_000
_MAX_ISSUES = 20  # enough to fix a batch; a million identical complaints helps nobody


@dataclass(frozen=True, slots=True)
class Series:
    id: int
    entity_id: int
    series_type: SeriesType
    phase: int | None  # CP-API Table 2 "Phase n" variants, n = 1..3
    unit: AnyUnit
    resolution: timedelta | None  # None: irregular instants ("Frequent")


class Point(NamedTuple):
    start: datetime
    end: datetime
    value: float | None
    status: str | None = None


def _series(row: Any) -> Series:
    resolution = timedelta(seconds=row.resolution_s) if row.resolution_s else None
    return Series(
        row.id,
        row.entity_id,
        SeriesType(row.series_type),
        row.phase or None,
        parse_unit(row.unit),
        resolution,
    )


def _resolution_seconds(resolution: timedelta | None) -> int:
    if resolution is None:
        return 0
    seconds = resolution.total_seconds()
    if seconds <= 0 or seconds != int(seconds):
        raise ValidationError(
            "resolution", f"must be a positive whole number of seconds, got {resolution}"
        )
    return int(seconds)


async def ensure_series(
    tx: AsyncConnection,
    tenant: Tenant,
    entity: Entity,
    series_type: SeriesType,
    *,
    phase: int | None = None,
    resolution: timedelta | None = None,
    unit: AnyUnit | None = None,
) -> Series:
    """The (entity, type, phase) series, created at `resolution` and `unit` if new.

    An existing series keeps its resolution: writing another one is refused rather than mixed,
    so that every value of a series covers blocks of one size.
    """
    if phase not in (None, 1, 2, 3):
        raise ValidationError("phase", f"must be 1, 2 or 3 (or none), got {phase}")
    if phase is not None and not info(series_type).has_phases:
        raise ValidationError("phase", f"{series_type} has no per-phase variants")
    seconds = _resolution_seconds(resolution)
    found = await find_series(tx, tenant, entity, series_type, phase=phase)
    if found is not None:
        if _resolution_seconds(found.resolution) != seconds:
            raise ValidationError(
                "resolution",
                f"{series_type} of {entity.name!r} is stored at "
                f"{found.resolution or 'irregular instants'}, not {resolution or 'irregular'}",
            )
        return found
    unit = unit or info(series_type).unit
    try:
        async with tx.begin_nested():
            result = await tx.execute(
                insert(series_table).values(
                    tenant_id=tenant.id,
                    entity_id=entity.id,
                    series_type=str(series_type),
                    phase=phase or 0,
                    unit=str(unit),
                    resolution_s=seconds,
                )
            )
    except IntegrityError:  # created concurrently: use that one
        return await ensure_series(
            tx, tenant, entity, series_type, phase=phase, resolution=resolution, unit=unit
        )
    return Series(result.inserted_primary_key[0], entity.id, series_type, phase, unit, resolution)


async def find_series(
    tx: AsyncConnection,
    tenant: Tenant,
    entity: Entity,
    series_type: SeriesType,
    *,
    phase: int | None = None,
) -> Series | None:
    query = select(series_table).where(
        series_table.c.tenant_id == tenant.id,
        series_table.c.entity_id == entity.id,
        series_table.c.series_type == str(series_type),
        series_table.c.phase == (phase or 0),
    )
    row = (await tx.execute(query)).first()
    return None if row is None else _series(row)


async def get_series(tx: AsyncConnection, tenant: Tenant, series_id: int) -> Series:
    query = select(series_table).where(
        series_table.c.id == series_id, series_table.c.tenant_id == tenant.id
    )
    row = (await tx.execute(query)).first()
    if row is None:
        raise NotFound("series", f"#{series_id}")
    return _series(row)


async def list_series(tx: AsyncConnection, tenant: Tenant, entity: Entity) -> list[Series]:
    query = select(series_table).where(
        series_table.c.tenant_id == tenant.id, series_table.c.entity_id == entity.id
    )
    return [_series(row) for row in await tx.execute(query.order_by(series_table.c.id))]


async def source_id(tx: AsyncConnection, tenant: Tenant, name: str) -> int:
    """The id of source `name` in this tenant, created on first use."""
    if not name or len(name) > 200:
        raise ValidationError("source", "1-200 characters")
    query = select(sources_table.c.id).where(
        sources_table.c.tenant_id == tenant.id, sources_table.c.name == name
    )
    found = (await tx.execute(query)).scalar_one_or_none()
    if found is not None:
        return found
    try:
        async with tx.begin_nested():
            result = await tx.execute(insert(sources_table).values(tenant_id=tenant.id, name=name))
    except IntegrityError:
        return (await tx.execute(query)).scalar_one()
    return result.inserted_primary_key[0]


def _upsert(dialect: str):  # type: ignore[no-untyped-def]
    """INSERT ... ON CONFLICT (series, start, source) DO UPDATE when the new belief is not older."""
    statement = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(values_table)
    new = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[values_table.c.series_id, values_table.c.start, values_table.c.source_id],
        set_={"end": new.end, "value": new.value, "belief": new.belief, "status": new.status},
        where=new.belief >= values_table.c.belief,
    )


def _row_issue(index: int, point: Any, res_us: int, meta: SeriesTypeInfo) -> FieldIssue | None:
    """Why point `index` cannot be stored, or None. Kept out of the hot loop's happy path."""
    where = f"values[{index}]"
    try:
        start, end, value = point[0], point[1], point[2]
    except (TypeError, IndexError):
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
    if value is not None:
        reason = value_issue(meta, value)
        if reason is not None:
            return FieldIssue(f"{where}.value", reason)
    return None


def _rows(
    series: Series, points: Sequence[Point], source: int, belief: int
) -> list[dict[str, Any]]:
    """Validate every point and turn it into a row; all problems are reported together."""
    res_us = _resolution_seconds(series.resolution) * _MICROS_PER_SECOND
    meta = info(series.series_type)
    rows: list[dict[str, Any]] = []
    issues: list[FieldIssue] = []
    for index, point in enumerate(points):
        issue = _row_issue(index, point, res_us, meta)
        if issue is not None:
            issues.append(issue)
            if len(issues) >= _MAX_ISSUES:
                break
            continue
        rows.append(
            {
                "series_id": series.id,
                "start": to_micros(point[0]),
                "end": to_micros(point[1]),
                "value": None if point[2] is None else float(point[2]),
                "belief": belief,
                "source_id": source,
                "status": point[3] if len(point) > 3 else None,
            }
        )
    if issues:
        raise ValidationError(issues=issues)
    return rows


async def write_values(
    tx: AsyncConnection,
    tenant: Tenant,
    series: Series,
    points: Sequence[Point],
    *,
    source: str,
    belief: datetime | None = None,
    unit: AnyUnit | None = None,
) -> int:
    """Merge `points` into `series`; returns how many. Nothing is written if any is bad."""
    if series.id != (await get_series(tx, tenant, series.id)).id:  # tenant check
        raise NotFound("series", f"#{series.id}")
    if unit is not None and unit != series.unit:
        converted = convert([p[2] for p in points], unit, series.unit)
        points = [
            Point(p[0], p[1], v, p[3] if len(p) > 3 else None)
            for p, v in zip(points, converted, strict=True)
        ]
    belief_us = (
        to_micros(require_utc(belief, "belief")) if belief is not None else to_micros(utcnow())
    )
    rows = _rows(series, points, await source_id(tx, tenant, source), belief_us)
    if rows:
        await tx.execute(_upsert(tx.dialect.name), rows)
    return len(rows)


def _latest_per_start(rows: Iterable[Any]) -> list[Point]:
    """Rows ordered by (start, belief): keep the last, i.e. the newest belief, of each start."""
    latest: dict[int, Any] = {}
    for row in rows:
        latest[row.start] = row
    return [
        Point(from_micros(r.start), from_micros(r.end), r.value, r.status) for r in latest.values()
    ]


@dataclass(frozen=True, slots=True)
class _BeliefFilter:
    prior: datetime | None = None
    horizon: timedelta | None = None
    sources: Sequence[str] | None = None


async def _fetch(
    tx: AsyncConnection, tenant: Tenant, series: Series, lo: int, hi: int, beliefs: _BeliefFilter
) -> list[Point]:
    """The latest belief per start for starts in [lo, hi) (epoch microseconds)."""
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
    points = await _fetch(
        tx,
        tenant,
        series,
        lo if before is None else before,
        (hi if after is None else after) + 1,
        beliefs,
    )
    return [(p.start, p.value) for p in points if p.value is not None]


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
    await get_series(tx, tenant, series.id)  # tenant check
    beliefs = _BeliefFilter(prior, horizon, sources)
    if resolution is None or resolution == series.resolution:
        return await _fetch(tx, tenant, series, to_micros(start), to_micros(end), beliefs)
    if series.resolution is None:
        return _instants(
            series,
            await _readings_around(tx, tenant, series, start, end, beliefs),
            start,
            end,
            resolution,
        )
    points = await _fetch(tx, tenant, series, to_micros(start), to_micros(end), beliefs)
    regular = resample(
        _grid(points, start, end, series.resolution), resolution, info(series.series_type).quantity
    )
    return [
        Point(
            regular.start + i * regular.resolution, regular.start + (i + 1) * regular.resolution, v
        )
        for i, v in enumerate(regular.values)
    ]


def _grid(points: Sequence[Point], start: datetime, end: datetime, step: timedelta) -> Regular:
    """Lay regular points on the grid start, start+step, ... < end; gaps become None."""
    count = int((end - start) / step)
    grid: list[float | None] = [None] * count
    step_us = int(step.total_seconds() * _MICROS_PER_SECOND)
    origin = to_micros(start)
    for point in points:
        offset = to_micros(point.start) - origin
        if offset % step_us == 0 and 0 <= offset // step_us < count:
            grid[offset // step_us] = point.value
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


async def derive_energy(
    tx: AsyncConnection,
    tenant: Tenant,
    entity: Entity,
    readings: Series,
    start: datetime,
    end: datetime,
    resolution: timedelta,
    *,
    source: str = "derived",
) -> Series:
    """CP-API Table 2: interval energy 'calculated from ... Meter Reading if supplied'.

    Reads the accumulated readings around [start, end), derives the energy of each block and
    merges it into the derived series (e.g. ConsumptionMeterReading -> Consumption).
    """
    target_type = info(readings.series_type).derives
    if target_type is None:
        raise ValidationError(
            "series_type", f"{readings.series_type} is not an accumulated reading"
        )
    samples = await _readings_around(tx, tenant, readings, start, end, _BeliefFilter())
    energy = readings_to_energy(
        samples, start, end, resolution, monotonic=info(readings.series_type).monotonic
    )
    target = await ensure_series(
        tx, tenant, entity, target_type, phase=readings.phase, resolution=resolution
    )
    points = [
        Point(energy.start + i * resolution, energy.start + (i + 1) * resolution, value)
        for i, value in enumerate(energy.values)
        if value is not None
    ]
    await write_values(tx, tenant, target, points, source=source)
    return target


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
