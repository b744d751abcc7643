"""Series: (entity, canonical type, phase) with a unit and a resolution, and value sources.

The values themselves are in `store.values`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from store.db import inserted_id
from store.entities import Entity, require_own
from store.errors import NotFound, ValidationError
from store.series_types import SeriesType, info
from store.tables import series as series_table
from store.tables import sources as sources_table
from store.tenants import Tenant
from store.units import AnyUnit, dimension_of, parse_unit

_BATCH = 500  # entity ids per IN list


@dataclass(frozen=True, slots=True)
class Series:
    id: int
    tenant_id: int  # whose: read_values refuses another tenant's series without a query
    entity_id: int
    series_type: SeriesType
    phase: int | None  # CP-API Table 2 "Phase n" variants, n = 1..3
    unit: AnyUnit
    resolution: timedelta | None  # None: irregular instants ("Frequent")


def require_own_series(tenant: Tenant, *owned: Series) -> None:
    """Refuse a series of another tenant as if it did not exist, as require_own does an
    entity: a Series is only ever made from its row, so the check needs no query."""
    for series in owned:
        if series.tenant_id != tenant.id:
            raise NotFound("series", f"#{series.id}")


def _series(row: Any) -> Series:
    resolution = timedelta(seconds=row.resolution_s) if row.resolution_s else None
    return Series(
        row.id,
        row.tenant_id,
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

    An existing series keeps its resolution and unit: writing another one is refused rather
    than mixed, so that every value of a series covers blocks of one size in one unit.
    """
    require_own(tenant, entity)
    if phase not in (None, 1, 2, 3):
        raise ValidationError("phase", f"must be 1, 2 or 3 (or none), got {phase}")
    if phase is not None and not info(series_type).has_phases:
        raise ValidationError("phase", f"{series_type} has no per-phase variants")
    seconds = _resolution_seconds(resolution)
    canonical = info(series_type).unit
    if unit is not None and dimension_of(unit) != dimension_of(canonical):
        raise ValidationError("unit", f"{unit} is not a unit of {series_type} (like {canonical})")
    for attempt in range(2):
        found = await find_series(tx, tenant, entity, series_type, phase=phase)
        if found is not None:
            _check_same_shape(found, entity, seconds, unit)
            return found
        if attempt:
            break
        try:
            async with tx.begin_nested():
                result = await tx.execute(
                    insert(series_table).values(
                        tenant_id=tenant.id,
                        entity_id=entity.id,
                        series_type=str(series_type),
                        phase=phase or 0,
                        unit=str(unit or canonical),
                        resolution_s=seconds,
                    )
                )
        except IntegrityError:
            continue  # created concurrently: the second look finds it
        return Series(
            inserted_id(result),
            tenant.id,
            entity.id,
            series_type,
            phase,
            unit or canonical,
            resolution,
        )
    raise NotFound("entity", str(entity.key))  # the insert failed and nothing is there


async def ensure_many(
    tx: AsyncConnection,
    tenant: Tenant,
    wanted: Sequence[tuple[Entity, SeriesType]],
    *,
    resolution: timedelta | None = None,
) -> list[Series]:
    """`ensure_series(tx, tenant, entity, series_type, resolution=resolution)` for each, in
    order, the existing ones found in one query: a plan writes a dozen series, which exist
    from its group's first plan on (one lookup each was a fifth of a plan's statements)."""
    require_own(tenant, *(entity for entity, _ in wanted))
    seconds = _resolution_seconds(resolution)
    found = await series_of_entities(tx, tenant, list({entity.id: None for entity, _ in wanted}))
    ensured = []
    for entity, series_type in wanted:
        series = found.get((entity.id, series_type, None))
        if series is None:  # new: made (or found, if made concurrently) the one-by-one way
            series = await ensure_series(tx, tenant, entity, series_type, resolution=resolution)
            found[(entity.id, series_type, None)] = series
        else:
            _check_same_shape(series, entity, seconds, None)
        ensured.append(series)
    return ensured


def _check_same_shape(found: Series, entity: Entity, seconds: int, unit: AnyUnit | None) -> None:
    if _resolution_seconds(found.resolution) != seconds:
        raise ValidationError(
            "resolution",
            f"{found.series_type} of {entity.name!r} is stored at "
            f"{found.resolution or 'irregular instants'}, not "
            f"{timedelta(seconds=seconds) if seconds else 'irregular'}",
        )
    if unit is not None and str(unit) != str(found.unit):
        raise ValidationError(
            "unit", f"{found.series_type} of {entity.name!r} is stored in {found.unit}, not {unit}"
        )


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


SeriesKey = tuple[int, SeriesType, int | None]  # (entity id, type, phase)


async def series_of_entities(
    tx: AsyncConnection, tenant: Tenant, entity_ids: Sequence[int]
) -> dict[SeriesKey, Series]:
    """Every series of these entities of this tenant, by (entity id, type, phase), in one
    query per 500 entities: for messages that write many series at once."""
    found: dict[SeriesKey, Series] = {}
    for first in range(0, len(entity_ids), _BATCH):
        query = select(series_table).where(
            series_table.c.tenant_id == tenant.id,
            series_table.c.entity_id.in_(entity_ids[first : first + _BATCH]),
        )
        for row in await tx.execute(query):
            series = _series(row)
            found[(series.entity_id, series.series_type, series.phase)] = series
    return found


async def get_series(tx: AsyncConnection, tenant: Tenant, series_id: int) -> Series:
    query = select(series_table).where(
        series_table.c.id == series_id, series_table.c.tenant_id == tenant.id
    )
    row = (await tx.execute(query)).first()
    if row is None:
        raise NotFound("series", f"#{series_id}")
    return _series(row)


async def list_series(tx: AsyncConnection, tenant: Tenant, entity: Entity) -> list[Series]:
    require_own(tenant, entity)
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
    found: int | None = (await tx.execute(query)).scalar_one_or_none()
    if found is not None:
        return found
    try:
        async with tx.begin_nested():
            result = await tx.execute(insert(sources_table).values(tenant_id=tenant.id, name=name))
    except IntegrityError:  # made concurrently: take that one
        theirs: int | None = (await tx.execute(query)).scalar_one_or_none()
        if theirs is None:
            raise
        return theirs
    return inserted_id(result)


async def source_names(tx: AsyncConnection, tenant: Tenant) -> list[str]:
    """Every source the tenant's values have come from, by name."""
    query = select(sources_table.c.name).where(sources_table.c.tenant_id == tenant.id)
    return sorted((await tx.execute(query.order_by(sources_table.c.name))).scalars())
