"""Time series management API (CP-API 4.3), flexbridge in the platform (IIP) role.

    POST /api/TimeSeries/GetTimeSeriesV1                    TimeSeriesRequestV1 -> TimeSeriesV1
    POST /api/TimeSeries/GetTimeSeriesListForEntityV1       TimeSeriesEntityListRequestV1
                                                            -> [TimeSeriesV1]
    POST /api/TimeSeries/SaveTimeSeriesV1                   TimeSeriesV1 -> SaveTimeSeriesResponseV1
    POST /api/TimeSeries/SaveTimeSeriesListForEntitiesV1    [TimeSeriesV1]
                                                            -> [SaveTimeSeriesResponseV1]

How the spec's words are read (resolutions, units, dates, bands, merges, refusals) is in
docs/protocols/cpapi-v1.md, "Time series (4.3)", each decision tested by name in
tests/test_cpapi_timeseries.py. A save writes what Table 2 derives (hub.derivations), sends
section 6 messages for control series (outbound.py) and marks stale the plans that read the
series (hub.replan).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from aiohttp import web
from marshmallow import Schema
from marshmallow import ValidationError as SchemaError
from sqlalchemy.ext.asyncio import AsyncConnection

from hub import replan
from hub.derivations import (
    DERIVED_STEP,
    ceil_to,
    derive,
    floor_to,
    follows_up,
)
from hub.inbound import Message, list_outcome
from hub.limits import (
    Budget,
    Limits,
    OverLimit,
    answer_budget,
    blocks_budget,
    check_items,
    derived_budget,
)
from protocols.common.context import (
    caller_of,
    database_of,
    limits_of,
    open_message,
    request_id_of,
)
from protocols.common.surface import ProtocolError, Refusal
from protocols.common.wire import marshmallow_issues, read_json
from protocols.cpapi.v1.codec.timeseries import (
    IRREGULAR,
    PERIODS,
    REFERENCE_FIELDS,
    STEPS,
    EntityKey,
    Resolution,
    TimeSeriesEntityListRequestSchema,
    TimeSeriesIn,
    TimeSeriesOut,
    TimeSeriesRequestSchema,
    TimeSeriesSchema,
    ValueColumns,
    ValueIn,
    ValueOut,
    dump_save_response,
    dump_time_series,
    raw_member,
    resolution_name,
    wire_issues,
)
from protocols.cpapi.v1.errors import error_response, item_error
from protocols.cpapi.v1.outbound import KINDS, emit
from store import calendar
from store.calendar import Period
from store.entities import Entity
from store.errors import Conflict, FieldIssue, NotFound, StoreError, ValidationError
from store.references import ExternalRef, find_many, normalise, resolve
from store.resample import over_periods
from store.series import (
    Series,
    SeriesKey,
    ensure_series,
    find_series,
    list_series,
    series_of_entities,
    source_id,
)
from store.series_types import (
    Quantity,
    SeriesType,
    format_series_name,
    info,
    parse_series_name,
)
from store.tenants import Tenant
from store.timeutil import to_micros
from store.units import AnyUnit, Dimension, PriceUnit, Unit, convert, dimension_of, parse_unit
from store.values import (
    Blocks,
    Point,
    count_starts,
    prepare_rows,
    read_periods,
    read_values,
    write_rows,
    write_values,
)

routes = web.RouteTableDef()

# Loading is stateless: one instance spares a schema set-up per item of a list.
_TIME_SERIES = TimeSeriesSchema()

PROTOCOL = "cpapi"
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
ENTITY_NOT_FOUND = "Entity with the supplied key could not be found"
_MICRO = timedelta(microseconds=1)
_UTC_NAMES = frozenset({"utc", "z", "gmt", "etc/utc", "etc/gmt", "zulu", "universal"})

# Table 2 "Resolution / Interval" per type for a NEW series saved without Resolution:
# "Frequent" for meter readings and for the rows that say Frequent for every asset type,
# "Hourly" for spot prices, "e.g. 15 minute" for everything else.
_DEFAULT_STEPS: dict[SeriesType, timedelta | None] = {
    **{t: None for t in SeriesType if info(t).quantity is Quantity.READING},
    SeriesType.ENERGY_LEVEL_METER_READING: None,
    SeriesType.CHARGING_CURRENT: None,
    SeriesType.CHARGING_POWER: None,
    SeriesType.DISCHARGING_CURRENT: None,
    SeriesType.DISCHARGING_POWER: None,
    SeriesType.SPOT_PRICE: timedelta(hours=1),
    SeriesType.FORECASTED_SPOT_PRICE: timedelta(hours=1),
}


def default_step(series_type: SeriesType) -> timedelta | None:
    """The resolution a new series of this type is made at when nothing names one."""
    return _DEFAULT_STEPS.get(series_type, DERIVED_STEP)


# ---------------------------------------------------------------------------------------------
# Units (3.3.1)

# The unit 3.3.1 accepts and displays, per dimension.
_WIRE_UNITS: dict[Dimension, Unit] = {
    Dimension.ENERGY: Unit.KWH,
    Dimension.POWER: Unit.KW,
    Dimension.CURRENT: Unit.A,
    Dimension.TEMPERATURE: Unit.DEG_C,
    Dimension.RATIO: Unit.PERCENT,
    Dimension.DIMENSIONLESS: Unit.DIMENSIONLESS,
}
_UNITS_SENTENCE = "CP-API 3.3.1 accepts kWh, kW, A, C, % and prices per MWh (e.g. EUR/MWh) only"


def _wire_unit(unit: AnyUnit) -> AnyUnit:
    if isinstance(unit, PriceUnit):
        return PriceUnit(unit.currency, Unit.MWH)
    return _WIRE_UNITS[dimension_of(unit)]


def _unit_text(unit: AnyUnit) -> str | None:
    if unit is Unit.DEG_C:
        return "C"  # Table 3 writes Celsius as "C"
    if unit is Unit.DIMENSIONLESS:
        return None  # states: Table 2 gives no unit ("0, 1, 2")
    return str(unit)


def _accepted_unit(text: str | None, series_type: SeriesType) -> AnyUnit | None:
    """The unit a TimeSeriesV1 declares, if 3.3.1 accepts it for this type."""
    if text is None or not text.strip():
        return None
    unit = parse_unit(text, field="Unit")
    canonical = info(series_type).unit
    accepted = unit is _wire_unit(unit) if not isinstance(unit, PriceUnit) else unit.per is Unit.MWH
    if not accepted:
        raise ValidationError("Unit", f"{text!r} is not accepted: {_UNITS_SENTENCE}")
    if dimension_of(unit) is not dimension_of(canonical):
        expected = _unit_text(_wire_unit(canonical)) or "no unit"
        raise ValidationError(
            "Unit", f"{text!r} is not a unit of {series_type} (its unit is {expected})"
        )
    return unit


# ---------------------------------------------------------------------------------------------
# Time


def _zone(name: str | None) -> tzinfo | None:
    if name is None or not name.strip():
        return None
    if name.strip().casefold() in _UTC_NAMES:
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            "TimeZone", f"unknown time zone {name!r} (an IANA name such as Europe/Oslo, or UTC)"
        ) from None


def _zone_text(zone: tzinfo) -> str:
    return "UTC" if zone is UTC else str(zone)


@dataclass(frozen=True, slots=True)
class _Calendar:
    """Calendar periods of a Day-or-coarser Resolution, in a time zone (store.calendar)."""

    period: Period
    zone: tzinfo

    def words(self) -> str:
        return f"{self.period} in {_zone_text(self.zone)}"


@dataclass(frozen=True, slots=True)
class _Form:
    """How a save at a Resolution is stored: blocks of `step` (None: an irregular series);
    with `periods`, each value covers a calendar period."""

    step: timedelta | None
    periods: _Calendar | None = None


def _save_form(resolution: Resolution, zone: tzinfo | None) -> _Form:
    """Day and coarser cover calendar periods in the item's TimeZone (4.3.1.1 "default UTC").
    A UTC day is always 24 hours and a UTC week 7 days, so those are regular series of blocks
    that answer Resolution Day or Week; any other calendar period is of no fixed length and is
    kept as an irregular series of [start, end) values (docs/protocols/cpapi-v1.md, "Calendar
    periods")."""
    if resolution in IRREGULAR:
        return _Form(None)
    period = PERIODS.get(resolution)
    if period is None:
        return _Form(STEPS[resolution])
    periods = _Calendar(period, zone or UTC)
    if periods.zone is UTC and resolution in STEPS:
        return _Form(STEPS[resolution], periods)
    return _Form(None, periods)


def _step_of(resolution: Resolution) -> timedelta | None:
    """The store resolution a save at `resolution` in UTC creates a series at."""
    return _save_form(resolution, UTC).step


# ---------------------------------------------------------------------------------------------
# Entities


def _reference_text(key: EntityKey) -> str:
    ref = key.ref
    if ref.key:
        return f"Key {ref.key}"
    return f"{ref.system}/{ref.reference_type}/{ref.external_key}"


def _unknown_entity(key: EntityKey, where: str = "EntityKey") -> ProtocolError:
    """An unknown entity is a 404 in the spec's words."""
    return ProtocolError(
        404,
        "not_found",
        ENTITY_NOT_FOUND,
        [FieldIssue(where, f"no entity {_reference_text(key)} in this tenant")],
    )


async def _entity(tx: AsyncConnection, tenant: Tenant, key: EntityKey, where: str) -> Entity:
    """The entity a reference names in the caller's tenant (4.1.2: Key wins over
    ExternalKey)."""
    try:
        return await resolve(tx, tenant, key.ref)
    except NotFound:
        raise _unknown_entity(key, where) from None
    except ValidationError as exc:
        raise ValidationError(issues=wire_issues(exc.issues, where)) from None


def _echo(key: EntityKey, entity: Entity) -> dict[str, Any]:
    """The reference as sent, completed with the platform key and a friendly name."""
    echo = dict(key.echo)
    echo["Key"] = str(entity.key)
    echo.setdefault("FriendlyName", entity.name)
    return {name: echo[name] for name in REFERENCE_FIELDS if name in echo}


# ---------------------------------------------------------------------------------------------
# Save


@dataclass(frozen=True, slots=True)
class _Work:
    """What one request may still spend (hub.limits): the blocks its values become once
    bands are split, and the blocks its Table 2 derivations lay out, all items together."""

    blocks: Budget
    derived: Budget


def _work(limits: Limits) -> _Work:
    return _Work(blocks_budget(limits), derived_budget(limits))


_EXPANDED = "blocks the values expand into"


def _points(
    values: Sequence[ValueIn], form: _Form, quantity: Quantity, budget: Budget
) -> tuple[list[Point], list[int]]:
    """Store points for the values, and for each point the index of the value it came from.

    A ValueToTime spanning n blocks is expanded into n blocks (energy divided by n); one
    spanning n calendar periods into n periods (energy shared by time). Every point is taken
    from `budget` before it is made."""
    step = form.step
    if form.periods is not None:
        _check_period_starts(values, form.periods)
        if step is None:
            return _period_points(values, form.periods, quantity, budget)
    if step is None or not any(item.to_time for item in values):  # one point each
        budget.take(len(values), "TimeSeriesValueList", _EXPANDED)
    if step is not None and not any(item.to_time for item in values):  # one block each
        return [Point(t, t + step, v, s) for t, _, v, s in values], list(range(len(values)))
    points: list[Point] = []
    origins: list[int] = []
    issues: list[FieldIssue] = []
    for index, item in enumerate(values):
        if step is None:  # irregular: an instant, or [ValueTime, ValueToTime)
            points.append(Point(item.time, item.to_time or item.time, item.value, item.status))
            origins.append(index)
            continue
        if item.to_time is None:
            budget.take(1, f"TimeSeriesValueList[{index}].ValueTime", _EXPANDED)
            points.append(Point(item.time, item.time + step, item.value, item.status))
            origins.append(index)
            continue
        length = item.to_time - item.time
        blocks = length // step if length > timedelta(0) else 0
        if blocks < 1 or length % step:
            issues.append(
                FieldIssue(
                    f"TimeSeriesValueList[{index}].ValueToTime",
                    f"must be after ValueTime by a whole number of {resolution_name(step)} "
                    f"blocks ({step}), got {length}",
                )
            )
            continue
        budget.take(blocks, f"TimeSeriesValueList[{index}].ValueToTime", _EXPANDED)
        value = item.value
        if value is not None and quantity is Quantity.ENERGY:
            value = value / blocks
        for k in range(blocks):
            start = item.time + k * step
            points.append(Point(start, start + step, value, item.status))
            origins.append(index)
    if issues:
        raise ValidationError(issues=issues)
    return points, origins


def _check_period_starts(values: Sequence[ValueIn], periods: _Calendar) -> None:
    """4.3.1.2: ValueTime is the start of the value's period, here a calendar one."""
    issues = []
    for index, item in enumerate(values):
        if not calendar.is_start(item.time, periods.period, periods.zone):
            start = calendar.floor(item.time, periods.period, periods.zone)
            issues.append(
                FieldIssue(
                    f"TimeSeriesValueList[{index}].ValueTime",
                    f"is not the start of a {periods.words()}; that {periods.period} starts "
                    f"at {start.isoformat().replace('+00:00', 'Z')}",
                )
            )
            if len(issues) >= 20:
                break
    if issues:
        raise ValidationError(issues=issues)


def _period_points(
    values: Sequence[ValueIn], periods: _Calendar, quantity: Quantity, budget: Budget
) -> tuple[list[Point], list[int]]:
    """Values of calendar periods as [start, end) points of an irregular series: one period
    each, or the periods up to ValueToTime (a band: an intensive value repeated, energy
    shared in proportion to each period's length). A reading or level is the value at its
    ValueTime, an instant, and is kept as the irregular series keeps it."""
    points: list[Point] = []
    origins: list[int] = []
    issues: list[FieldIssue] = []
    instants = quantity in (Quantity.READING, Quantity.LEVEL)
    for index, item in enumerate(values):
        where = f"TimeSeriesValueList[{index}].ValueToTime"
        if instants:
            budget.take(1, where, _EXPANDED)
            points.append(Point(item.time, item.to_time or item.time, item.value, item.status))
            origins.append(index)
            continue
        end = item.to_time or calendar.following(item.time, periods.period, periods.zone)
        if end <= item.time or not calendar.is_start(end, periods.period, periods.zone):
            issues.append(FieldIssue(where, f"must be the end of a {periods.words()}"))
            continue
        try:
            edges = calendar.edges(
                item.time,
                end,
                periods.period,
                periods.zone,
                limit=budget.left,
                field=where,
            )
        except ValidationError:
            what = f"{periods.period}s the values expand into"
            raise OverLimit(where, budget.reason(what)) from None
        budget.take(len(edges) - 1, where, _EXPANDED)
        shares = over_periods(
            [to_micros(item.time)],
            [to_micros(end)],
            [item.value],
            [to_micros(edge) for edge in edges],
            quantity,
        )
        for start, stop, share in zip(edges, edges[1:], shares, strict=False):
            points.append(Point(start, stop, share, item.status))
            origins.append(index)
    if issues:
        raise ValidationError(issues=issues)
    return points, origins


def _store_form(
    item: TimeSeriesIn, series: Series, budget: Budget
) -> tuple[Sequence[Point] | Blocks, Sequence[int]]:
    """`_points`, or the columns the fast reader made when they are already blocks."""
    values = item.values
    if isinstance(values, ValueColumns) and series.resolution is not None:
        budget.take(len(values), "TimeSeriesValueList", _EXPANDED)
        return values.blocks, range(len(values))  # one block a value, in microseconds
    quantity = info(series.series_type).quantity
    return _points(values, _Form(series.resolution), quantity, budget)


def _shape(item: TimeSeriesIn) -> tuple[SeriesType, int | None, AnyUnit | None]:
    """The series type and phase an item names, and the unit of its values."""
    series_type, phase = parse_series_name(item.series_type, field="TimeSeriesType")
    unit = _accepted_unit(item.unit, series_type)
    _zone(item.time_zone)  # validated; it aligns calendar periods, every date has its offset
    if item.from_time and item.to_time and item.to_time < item.from_time:
        raise ValidationError("ToDateTime", "must not be before FromDateTime")
    return series_type, phase, unit


async def _write_series(
    tx: AsyncConnection,
    tenant: Tenant,
    entity: Entity,
    item: TimeSeriesIn,
    source: str,
    work: _Work,
) -> list[tuple[Entity, SeriesType]]:
    """Store one TimeSeriesV1 for a resolved entity, then its Table 2 derivations; the series
    of the entity that changed (for hub.replan)."""
    origins: list[int] = []
    try:
        series_type, phase, unit = _shape(item)
        existing = await find_series(tx, tenant, entity, series_type, phase=phase)
        if item.resolution is not None:
            form = _save_form(item.resolution, _zone(item.time_zone))
        elif existing is not None:
            form = _Form(existing.resolution)
        else:
            form = _Form(default_step(series_type))
        step = form.step
        if existing is not None and step == existing.resolution:
            series = existing  # already checked: same entity, type, phase and resolution
        else:
            series = await ensure_series(
                tx,
                tenant,
                entity,
                series_type,
                phase=phase,
                resolution=step,
                unit=None if existing is not None else unit,
            )
        points, origins = _points(item.values, form, info(series_type).quantity, work.blocks)
        await write_values(tx, tenant, series, points, source=source, unit=unit)
    except ValidationError as exc:
        raise ValidationError(issues=wire_issues(exc.issues, "EntityKey", origins)) from None
    derived = await derive(
        tx, tenant, entity, series, points, budget=work.derived, field="TimeSeriesValueList"
    )
    # Section 6: control, capacity and flexibility-offer series go to the tenant's endpoint.
    await emit(tx, tenant, entity, series, points)
    return [(entity, t) for t in (series.series_type, *derived)]


class _Batch:
    """One SaveTimeSeriesListForEntitiesV1: the lookups of all its items made at once, and
    the rows of its plain items (a merge into an existing series, nothing derived, nothing
    sent) written together. A thousand round trips become a few dozen; an item needing
    more takes the `_write_series` path in its own savepoint, after the rows queued before
    it are written, so the items still apply in order."""

    def __init__(self, tx: AsyncConnection, tenant: Tenant, source: str, work: _Work) -> None:
        self.tx, self.tenant, self.source, self.work = tx, tenant, source, work
        self.entities: dict[uuid.UUID | ExternalRef, Entity] = {}
        self.series: dict[SeriesKey, Series] = {}
        self.source_id = 0
        self.rows: list[tuple[Any, ...]] = []
        self.changed: list[tuple[Entity, SeriesType]] = []  # for hub.replan

    async def look_up(self, items: Sequence[TimeSeriesIn]) -> None:
        targets = set()
        for item in items:
            with contextlib.suppress(ValidationError):  # refused again, by name, in `entity`
                targets.add(normalise(item.entity_key.ref))
        self.entities = await find_many(self.tx, self.tenant, targets)
        ids = sorted({entity.id for entity in self.entities.values()})
        self.series = await series_of_entities(self.tx, self.tenant, ids)
        self.source_id = await source_id(self.tx, self.tenant, self.source)

    def entity(self, key: EntityKey) -> Entity:
        try:
            entity = self.entities.get(normalise(key.ref))
        except ValidationError as exc:
            raise ValidationError(issues=wire_issues(exc.issues, "EntityKey")) from None
        if entity is None:
            raise _unknown_entity(key)
        return entity

    def add_plain(self, entity: Entity, item: TimeSeriesIn) -> bool:
        """Queue the rows of a plain item; False when the item needs `_write_series`."""
        origins: Sequence[int] = []
        try:
            series_type, phase, unit = _shape(item)
            series = self.series.get((entity.id, series_type, phase))
            if series is None or follows_up(series) or series_type in KINDS:
                return False
            if item.resolution is not None and (
                item.resolution in PERIODS or _step_of(item.resolution) != series.resolution
            ):
                return False  # periods are checked there; `ensure_series` words a refusal
            points, origins = _store_form(item, series, self.work.blocks)
            rows = prepare_rows(series, points, source_id=self.source_id, unit=unit)
        except ValidationError as exc:
            raise ValidationError(issues=wire_issues(exc.issues, "EntityKey", origins)) from None
        self.rows.extend(rows)
        self.changed.append((entity, series_type))
        return True

    async def flush(self) -> None:
        if self.rows:
            await write_rows(self.tx, self.rows)
            self.rows = []


async def save_time_series(
    tx: AsyncConnection,
    tenant: Tenant,
    item: TimeSeriesIn,
    *,
    source: str,
    limits: Limits = Limits(),  # noqa: B008 - frozen, shared safely
) -> Entity:
    """Store one TimeSeriesV1 (and what Table 2 derives from it); returns its entity.

    Raises ProtocolError (404, unknown entity) or ValidationError with wire field names.
    For other ingestion paths carrying TimeSeriesV1; the work is bounded by `limits`."""
    entity = await _entity(tx, tenant, item.entity_key, "EntityKey")
    await _write_series(tx, tenant, entity, item, source, _work(limits))
    return entity


# ---------------------------------------------------------------------------------------------
# Get


@dataclass(frozen=True, slots=True)
class _Query:
    start: datetime
    end: datetime | None
    resolution: Resolution | None
    step: timedelta | None  # a fixed length to resample into; None: as stored, or periods
    periods: _Calendar | None  # Day and coarser: calendar periods in the TimeZone


def _query(
    start: datetime, end: datetime | None, zone_name: str | None, resolution: Resolution | None
) -> _Query:
    if end is not None and end <= start:
        raise ValidationError("ToDateTime", "must be after FromDateTime")
    zone = _zone(zone_name)
    period = PERIODS.get(resolution) if resolution is not None else None
    if period is not None:
        return _Query(start, end, resolution, None, _Calendar(period, zone or UTC))
    step = None if resolution is None or resolution in IRREGULAR else STEPS[resolution]
    return _Query(start, end, resolution, step, None)


def _overlaps(point: Point, start: datetime, end: datetime) -> bool:
    if point.end > point.start:
        return point.start < end and point.end > start
    return start <= point.start < end


def _take(budget: Budget, count: int, name: str, *, spend: bool = True) -> None:
    """Refuse a window that would lay out or read more than the answer may hold."""
    what = f"values at {name} in the window (ask for a shorter one)"
    (budget.take if spend else budget.check)(count, "ToDateTime", what)


async def _stored(
    tx: AsyncConnection,
    tenant: Tenant,
    series: Series,
    start: datetime,
    end: datetime,
    budget: Budget,
    *,
    spend: bool = True,
) -> list[Point]:
    """The values as stored in [start, end), counted in the database before they are read
    (spent from the answer's budget, or only checked against it)."""
    name = f"the stored {resolution_name(series.resolution) or series.resolution}"
    step = series.resolution
    if step is None or end == FAR_FUTURE or (end - start) // step > budget.left:
        _take(budget, await count_starts(tx, tenant, series, start, end), name, spend=False)
    points = await read_values(tx, tenant, series, start, end)
    _take(budget, len(points) if spend else 0, name)
    return points


async def _resampled(
    tx: AsyncConnection, tenant: Tenant, series: Series, query: _Query, budget: Budget
) -> list[Point]:
    end = query.end
    if end is None:
        # Read only to find the end; the answer is counted when it is laid out.
        stored = await _stored(tx, tenant, series, query.start, FAR_FUTURE, budget, spend=False)
        if not stored:
            return []
        end = max(p.end for p in stored) + (_MICRO if series.resolution is None else timedelta(0))
    if query.periods is not None:
        read = await _over_periods(tx, tenant, series, query, end, budget)
    else:
        assert query.step is not None
        read = await _over_steps(tx, tenant, series, query, query.step, end, budget)
    return [p for p in read if _overlaps(p, query.start, end)]


async def _over_periods(
    tx: AsyncConnection,
    tenant: Tenant,
    series: Series,
    query: _Query,
    end: datetime,
    budget: Budget,
) -> list[Point]:
    """4.3.2 TimeZone: "for resolution Daily and above the time zone should be specified to
    get the correct day alignment of values": each value is a calendar period in the zone."""
    periods = query.periods
    assert periods is not None and query.resolution is not None
    name = f"{query.resolution.value} in {_zone_text(periods.zone)}"
    first = calendar.floor(query.start, periods.period, periods.zone)
    last = calendar.ceil(end, periods.period, periods.zone)
    if series.resolution is not None:  # the stored blocks it goes through
        stored = f"the stored {resolution_name(series.resolution) or series.resolution}"
        _take(budget, (last - first) // series.resolution, stored, spend=False)
    try:
        edges = calendar.edges(
            first, last, periods.period, periods.zone, limit=budget.left, field="ToDateTime"
        )
    except ValidationError:
        _take(budget, budget.left + 1, name)
    _take(budget, len(edges) - 1, name)
    return await read_periods(tx, tenant, series, edges)


async def _over_steps(
    tx: AsyncConnection,
    tenant: Tenant,
    series: Series,
    query: _Query,
    step: timedelta,
    end: datetime,
    budget: Budget,
) -> list[Point]:
    """Blocks of a fixed length on the grid from the UTC epoch."""
    name = query.resolution.value if query.resolution else str(step)
    own = series.resolution
    if own is None and info(series.series_type).quantity not in (Quantity.READING, Quantity.LEVEL):
        # An irregular series of intervals [start, end): the period rule on the grid.
        start, stop = floor_to(query.start, step), ceil_to(end, step)
        _take(budget, (stop - start) // step, name)
        edges = [start + k * step for k in range((stop - start) // step + 1)]
        return await read_periods(tx, tenant, series, edges)
    if (
        own is not None
        and (step // _MICRO) % (own // _MICRO)
        and (own // _MICRO) % (step // _MICRO)
    ):
        raise ValidationError(
            "Resolution",
            f"{name} is neither a whole multiple nor a whole divisor of the stored "
            f"{resolution_name(own) or own}",
        )
    own = own or step
    grid, finest = max(step, own), min(step, own)
    start, stop = floor_to(query.start, grid), ceil_to(end, grid)
    _take(budget, (stop - start) // finest, name)
    return await read_values(tx, tenant, series, start, stop, resolution=step)


async def _series_out(
    tx: AsyncConnection,
    tenant: Tenant,
    echo: dict[str, Any],
    series_type: SeriesType,
    phase: int | None,
    series: Series | None,
    query: _Query,
    budget: Budget,
) -> TimeSeriesOut:
    name = format_series_name(series_type, phase)
    stored_unit = series.unit if series is not None else info(series_type).unit
    unit = _wire_unit(stored_unit)
    zone = "UTC" if query.periods is None else _zone_text(query.periods.zone)
    if series is None:
        resolution = (
            query.resolution.value
            if query.resolution is not None
            else resolution_name(default_step(series_type))
        )
        return TimeSeriesOut(
            echo, name, query.start, query.end, _unit_text(unit), resolution, [], zone
        )
    if query.periods is None and (query.step is None or query.step == series.resolution):
        points = await _stored(tx, tenant, series, query.start, query.end or FAR_FUTURE, budget)
        step = series.resolution
        resolution = resolution_name(step)
    else:
        points = await _resampled(tx, tenant, series, query, budget)
        assert query.resolution is not None
        # A ValueToTime is answered where the resolution does not imply it: a calendar
        # period of another length than its Day or Week (23 hours), every month and year.
        step = query.step or STEPS.get(query.resolution)
        resolution = query.resolution.value
    values = convert([p.value for p in points], stored_unit, unit)
    out = [
        ValueOut(
            p.start,
            p.end if p.end != p.start and (step is None or p.end - p.start != step) else None,
            v,
            p.status,
        )
        for p, v in zip(points, values, strict=True)
        if v is not None
    ]
    end = query.end
    if end is None and points:
        end = max(p.end for p in points)
    return TimeSeriesOut(echo, name, query.start, end, _unit_text(unit), resolution, out, zone)


def _load(schema: Schema, body: Any, what: str) -> Any:
    if not isinstance(body, dict):
        raise ValidationError("body", f"expected a JSON object ({what})")
    return schema.load(body)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda o: orjson.dumps(o).decode())


@routes.post("/TimeSeries/GetTimeSeriesV1")
async def get_time_series(request: web.Request) -> web.Response:
    """4.3.2: "Given a Time series request ... returns the time series with its associated
    values over the required date range of the request"."""
    request_body = _load(TimeSeriesRequestSchema(), await read_json(request), "TimeSeriesRequestV1")
    tenant = caller_of(request).tenant
    try:
        series_type, phase = parse_series_name(request_body.series_type, field="TimeSeriesType")
        query = _query(
            request_body.from_time,
            request_body.to_time,
            request_body.time_zone,
            request_body.resolution,
        )
        async with database_of(request).read() as tx:
            entity = await _entity(tx, tenant, request_body.entity_key, "ExternalEntityReference")
            series = await find_series(tx, tenant, entity, series_type, phase=phase)
            out = await _series_out(
                tx,
                tenant,
                _echo(request_body.entity_key, entity),
                series_type,
                phase,
                series,
                query,
                answer_budget(limits_of(request)),
            )
    except ValidationError as exc:
        raise ValidationError(issues=wire_issues(exc.issues, "ExternalEntityReference")) from None
    return _json(dump_time_series(out))


@routes.post("/TimeSeries/GetTimeSeriesListForEntityV1")
async def get_time_series_list(request: web.Request) -> web.Response:
    """4.3.3: "returns the set of time series associated with the entity. The request options
    supplied will also control which time series types to return"."""
    request_body = _load(
        TimeSeriesEntityListRequestSchema(),
        await read_json(request),
        "TimeSeriesEntityListRequestV1",
    )
    tenant = caller_of(request).tenant
    try:
        wanted: list[tuple[SeriesType, int | None]] | None = None
        if not request_body.retrieve_all and request_body.series_types is not None:
            wanted = []
            for index, text in enumerate(request_body.series_types):
                parsed = parse_series_name(text, field=f"TimeSeriesTypeList[{index}]")
                if parsed not in wanted:
                    wanted.append(parsed)
        query = _query(
            request_body.from_time,
            request_body.to_time,
            request_body.time_zone,
            request_body.resolution,
        )
        async with database_of(request).read() as tx:
            entity = await _entity(tx, tenant, request_body.entity_key, "ExternalEntityReference")
            echo = _echo(request_body.entity_key, entity)
            stored = await list_series(tx, tenant, entity)
            by_type = {(s.series_type, s.phase): s for s in stored}
            if wanted is None:
                wanted = [(s.series_type, s.phase) for s in stored]
            answers, budget = [], answer_budget(limits_of(request))  # all the series together
            for series_type, phase in wanted:
                try:
                    answers.append(
                        await _series_out(
                            tx,
                            tenant,
                            echo,
                            series_type,
                            phase,
                            by_type.get((series_type, phase)),
                            query,
                            budget,
                        )
                    )
                except ValidationError as exc:
                    name = format_series_name(series_type, phase)
                    raise ValidationError(
                        issues=[FieldIssue(i.field, f"{name}: {i.reason}") for i in exc.issues]
                    ) from None
    except ValidationError as exc:
        raise ValidationError(issues=wire_issues(exc.issues, "ExternalEntityReference")) from None
    return _json([dump_time_series(answer) for answer in answers])


# ---------------------------------------------------------------------------------------------
# Save handlers


@dataclass(frozen=True, slots=True)
class _Refusal:
    status: int
    code: str
    message: str
    issues: tuple[FieldIssue, ...]
    error_message: str  # SaveTimeSeriesResponseV1.ErrorMessage


def _refusal(exc: Exception) -> _Refusal:
    if isinstance(exc, ProtocolError):
        text = exc.message if exc.status == 404 else item_error(exc.issues) or exc.message
        return _Refusal(exc.status, exc.code, exc.message, exc.issues, text)
    if isinstance(exc, SchemaError):
        issues = tuple(marshmallow_issues(exc.messages))
        return _Refusal(
            400,
            "invalid",
            "the TimeSeriesV1 does not match the CP-API types",
            issues,
            item_error(issues),
        )
    if isinstance(exc, ValidationError):
        text = item_error(exc.issues)
        return _Refusal(400, exc.code, text, exc.issues, text)
    if isinstance(exc, NotFound):
        return _Refusal(404, exc.code, str(exc), (), str(exc))
    if isinstance(exc, Conflict):
        return _Refusal(409, exc.code, str(exc), (), str(exc))
    raise exc


@dataclass(slots=True)
class _ItemResult:
    """One SaveTimeSeriesResponseV1 being made."""

    entity_key: Any
    series_type: Any
    key: str | None = None
    refusal: _Refusal | None = field(default=None)

    def dump(self) -> dict[str, Any]:
        error = None if self.refusal is None else self.refusal.error_message
        return dump_save_response(
            self.entity_key, self.series_type, self.refusal is None, self.key, error
        )


def _start_result(raw: Any) -> _ItemResult:
    return _ItemResult(raw_member(raw, "EntityKey"), raw_member(raw, "TimeSeriesType"))


async def _save_item(
    tx: AsyncConnection, tenant: Tenant, raw: Any, source: str, result: _ItemResult, work: _Work
) -> list[tuple[Entity, SeriesType]]:
    """Load and store one TimeSeriesV1, recording what the answer needs in `result`."""
    item: TimeSeriesIn = _load(_TIME_SERIES, raw, "TimeSeriesV1")
    result.entity_key = dict(item.entity_key.echo)
    result.series_type = item.series_type
    entity = await _entity(tx, tenant, item.entity_key, "EntityKey")
    result.key = str(entity.key)
    return await _write_series(tx, tenant, entity, item, source, work)


@routes.post("/TimeSeries/SaveTimeSeriesV1")
async def save_time_series_v1(request: web.Request) -> web.Response:
    """4.3.4: "saves the time series (and values) and returns a response message with the
    details of whether the save was a success, the platform internal key and any error
    details"."""
    caller = caller_of(request)
    result = _start_result(None)
    try:
        raw = await read_json(request)
        result = _start_result(raw)
        async with _open(request, "SaveTimeSeriesV1") as message:
            tenant = message.tenant
            work = _work(limits_of(request))
            changed = await _save_item(
                message.tx, tenant, raw, caller.account.username, result, work
            )
            await replan.inputs_changed(message.tx, tenant, changed)
            message.outcome("applied", _detail(result))
    except (StoreError, SchemaError, ProtocolError) as exc:
        result.refusal = _refusal(exc)
        async with _open(request, "SaveTimeSeriesV1") as message:
            message.outcome("refused", _detail(result))
        return _refused(request, result)
    return _json(result.dump())


@routes.post("/TimeSeries/SaveTimeSeriesListForEntitiesV1")
async def save_time_series_list(request: web.Request) -> web.Response:
    """4.3.5: "saves the list of time series (and values) and returns a list of response
    message (corresponding to the supplied list of time series)". One transaction; a refused
    item leaves nothing (its rows are only queued once all are good, and an item needing
    more than a merge runs in its own savepoint) and the others stay."""
    body = await read_json(request)
    if not isinstance(body, list):
        raise ValidationError("body", "expected a JSON array of TimeSeriesV1")
    limits = limits_of(request)
    check_items(limits, len(body), "body", "time series")
    caller = caller_of(request)
    results = [_start_result(raw) for raw in body]
    items = [_load_item(raw, result) for raw, result in zip(body, results, strict=True)]
    kind = "SaveTimeSeriesListForEntitiesV1"
    async with _open(request, kind) as message:
        batch = _Batch(message.tx, message.tenant, caller.account.username, _work(limits))
        await batch.look_up([item for item in items if item is not None])
        for item, result in zip(items, results, strict=True):
            if item is not None:
                await _save_listed(batch, item, result)
        await batch.flush()
        await replan.inputs_changed(message.tx, message.tenant, batch.changed)
        saved = sum(r.refusal is None for r in results)
        message.outcome(
            list_outcome(saved, len(results)), f"{saved} of {len(results)} time series saved"
        )
    return _json([r.dump() for r in results])


def _load_item(raw: Any, result: _ItemResult) -> TimeSeriesIn | None:
    """The item as typed values, or None with the refusal in `result`."""
    try:
        item: TimeSeriesIn = _load(_TIME_SERIES, raw, "TimeSeriesV1")
    except (StoreError, SchemaError) as exc:
        result.refusal = _refusal(exc)
        return None
    result.entity_key = dict(item.entity_key.echo)
    result.series_type = item.series_type
    return item


async def _save_listed(batch: _Batch, item: TimeSeriesIn, result: _ItemResult) -> None:
    try:
        entity = batch.entity(item.entity_key)
        result.key = str(entity.key)
        if not batch.add_plain(entity, item):
            await batch.flush()
            async with batch.tx.begin_nested():
                batch.changed += await _write_series(
                    batch.tx, batch.tenant, entity, item, batch.source, batch.work
                )
    except (StoreError, ProtocolError) as exc:
        result.refusal = _refusal(exc)


def _refused(request: web.Request, result: _ItemResult) -> web.Response:
    """The CP-API error shape, carrying the SaveTimeSeriesResponseV1 fields as well."""
    refusal = result.refusal
    assert refusal is not None
    envelope = error_response(
        Refusal(
            refusal.status,
            refusal.code,
            refusal.message,
            refusal.issues,
            request_id=request_id_of(request),
        )
    )
    body = json.loads(envelope.text or "{}")
    body.update(result.dump())
    return _json(body, status=refusal.status)


def _open(request: web.Request, message_type: str) -> AbstractAsyncContextManager[Message]:
    """A save opened as a message: logged, not a peer's, so not idempotent (4.1.3)."""
    message_id = request_id_of(request)
    return open_message(request, PROTOCOL, message_type, message_id=message_id, from_peer=False)


def _detail(result: _ItemResult) -> str:
    if result.refusal is None:
        return f"{result.series_type} saved"
    return f"{result.series_type}: {result.refusal.error_message}"
