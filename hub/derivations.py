"""CP-API Table 2 ("Data Capture" C): what a saved series implies for others, for every
protocol that saves series (CP-API saves, OCMP metering, OSCP measurements).

Accumulated readings -> interval energy per block; Consumption/Production Phase 1..3 -> their
sum; Net Energy -> Consumption and Production. Written with source "derived". One rule for
values a peer supplied: a derived value never replaces one supplied for the same block
(Table 2 calculates a series "if supplied", "Alternatively"). The rules in full:
docs/protocols/cpapi-v1.md, "Table 2 derivations".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.limits import DERIVED_BLOCKS, Budget, Limits, OverLimit
from store.entities import Entity
from store.errors import ValidationError
from store.resample import Regular, readings_to_energy, resample
from store.series import Series, ensure_series, find_series
from store.series_types import Quantity, SeriesType, info
from store.tenants import Tenant
from store.timeutil import from_micros, to_micros
from store.units import convert
from store.values import Point, read_values, write_values

DERIVED_SOURCE = "derived"
# Table 2 gives calculated series "e.g. 15 minute": the resolution of a new derived series.
DERIVED_STEP = timedelta(minutes=15)
# How far from the saved readings to look for stored neighbours when widening a derivation.
NEIGHBOUR_WINDOW = timedelta(days=1)
# Blocks one save may expand its values into, or one derivation or resampled read may lay
# out, when the caller brings no budget of its own (hub.limits: the request's).
MAX_BLOCKS = Limits().derived_blocks
_MICRO = timedelta(microseconds=1)


def follows_up(series: Series) -> bool:
    """Whether a save into `series` may derive values of other series (`derive` acts)."""
    meta = info(series.series_type)
    return meta.is_counter or (
        meta.quantity is Quantity.ENERGY
        and series.resolution is not None
        and (series.phase is not None or series.series_type is SeriesType.NET_ENERGY)
    )


def floor_to(moment: datetime, step: timedelta) -> datetime:
    micros, size = to_micros(moment), step // _MICRO
    return from_micros(micros - micros % size)


def ceil_to(moment: datetime, step: timedelta) -> datetime:
    micros, size = to_micros(moment), step // _MICRO
    return from_micros(-(-micros // size) * size)


class _Deriving:
    """Turns a store refusal inside a derivation into one naming what could not be derived;
    a limit passed keeps its own words (the field and the setting)."""

    def __init__(self, target: SeriesType) -> None:
        self.target = target

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, ValidationError) and not isinstance(exc, OverLimit):
            raise ValidationError(
                "TimeSeriesType",
                f"the values were valid but {self.target} could not be derived from them: {exc}",
            ) from None


def implied(series: Series) -> list[SeriesType]:
    """The series types a save into `series` may derive values of."""
    if not follows_up(series):
        return []
    energy = info(series.series_type).derives or series.series_type
    if energy is SeriesType.NET_ENERGY:
        return [energy, SeriesType.CONSUMPTION, SeriesType.PRODUCTION]
    return [energy]


class _Span:
    """The blocks a derivation may still lay out (the request's budget), and the field a
    refusal names."""

    def __init__(self, budget: Budget, field: str) -> None:
        self.budget, self.field = budget, field

    def take(self, start: datetime, end: datetime, step: timedelta) -> None:
        """A derivation lays out every block of its span: refuse it before, beyond the
        budget."""
        blocks = (end - start) // step
        what = f"blocks derived from the values ({start.date()} to {end.date()} in {step})"
        self.budget.take(blocks, self.field, what)


async def derive(
    tx: AsyncConnection,
    tenant: Tenant,
    entity: Entity,
    series: Series,
    points: Sequence[Point],
    *,
    budget: Budget | None = None,
    field: str = "values",
) -> list[SeriesType]:
    """Write what Table 2 derives from the newly saved `points` of `series`; the series types
    it may have changed (for hub.replan.inputs_changed). Every block laid out is taken from
    `budget` (the request's, hub.limits; a fresh one of MAX_BLOCKS when None): a derivation
    past it is refused naming `field`, before anything is derived."""
    if not points or not follows_up(series):
        return []
    span = _Span(budget or Budget(MAX_BLOCKS, DERIVED_BLOCKS), field)
    lo = min(p.start for p in points)
    if info(series.series_type).is_counter:  # readings are instants: the last is the last start
        hi = max(p.start for p in points)
        await _energy_from_readings(tx, tenant, entity, series, lo, hi, span)
    else:
        await _from_energy(tx, tenant, entity, series, lo, max(p.end for p in points), span)
    return implied(series)


async def _write_derived(
    tx: AsyncConnection,
    tenant: Tenant,
    entity: Entity,
    target: Series | None,
    target_type: SeriesType,
    phase: int | None,
    step: timedelta,
    points: Sequence[Point],
) -> Series | None:
    """Merge derived points into the target series (created at `step` when new), except
    where a peer supplied the block: Table 2 derives a series "if supplied" from another,
    "Alternatively", so a value supplied for a block is not replaced by a calculated one. A
    block counts as supplied when its latest value is not the latest derived one."""
    if not points:
        return target
    if target is None:
        target = await ensure_series(tx, tenant, entity, target_type, phase=phase, resolution=step)
    else:
        lo, hi = points[0].start, points[-1].end
        latest = {p.start: p.value for p in await read_values(tx, tenant, target, lo, hi)}
        derived = {
            p.start: p.value
            for p in await read_values(tx, tenant, target, lo, hi, sources=[DERIVED_SOURCE])
        }
        points = [
            p
            for p in points
            if p.start not in latest or (p.start in derived and derived[p.start] == latest[p.start])
        ]
    await write_values(tx, tenant, target, points, source=DERIVED_SOURCE)
    return target


def _blocks(start: datetime, step: timedelta, values: Sequence[float | None]) -> list[Point]:
    return [
        Point(start + i * step, start + (i + 1) * step, v)
        for i, v in enumerate(values)
        if v is not None
    ]


async def _energy_from_readings(
    tx: AsyncConnection,
    tenant: Tenant,
    entity: Entity,
    readings: Series,
    lo: datetime,
    hi: datetime,
    span: _Span,
) -> None:
    """Table 2: "Calculated from ... Meter Reading if supplied": the energy of each block is
    the reading at its end minus the reading at its start, interpolated between readings
    (`store.resample.readings_to_energy`; a decrease of an unsigned counter leaves the blocks
    across it unknown)."""
    meta = info(readings.series_type)
    target_type = meta.derives
    assert target_type is not None  # every counter derives an energy type
    with _Deriving(target_type):
        target = await find_series(tx, tenant, entity, target_type, phase=readings.phase)
        if target is not None and target.resolution is None:
            return  # kept at irregular instants: no blocks to fill
        step = DERIVED_STEP if target is None or target.resolution is None else target.resolution
        before = await read_values(tx, tenant, readings, lo - NEIGHBOUR_WINDOW, lo)
        after = await read_values(tx, tenant, readings, hi + _MICRO, hi + NEIGHBOUR_WINDOW)
        start = floor_to(before[-1].start if before else lo, step)
        end = ceil_to(after[0].start if after else hi, step)
        if end <= start:
            return
        span.take(start, end, step)
        around = await read_values(
            tx, tenant, readings, start - NEIGHBOUR_WINDOW, end + NEIGHBOUR_WINDOW
        )
        samples = [(p.start, p.value) for p in around if p.value is not None]
        energy = readings_to_energy(samples, start, end, step, monotonic=meta.monotonic)
        unit = target.unit if target is not None else info(target_type).unit
        values = convert(energy.values, readings.unit, unit)
        target = await _write_derived(
            tx,
            tenant,
            entity,
            target,
            target_type,
            readings.phase,
            step,
            _blocks(start, step, values),
        )
    if target is not None:
        await _from_energy(tx, tenant, entity, target, start, end, span)


async def _from_energy(
    tx: AsyncConnection,
    tenant: Tenant,
    entity: Entity,
    energy: Series,
    lo: datetime,
    hi: datetime,
    span: _Span,
) -> None:
    if energy.phase is not None:
        await _sum_phases(tx, tenant, entity, energy, lo, hi, span)
    elif energy.series_type is SeriesType.NET_ENERGY:
        await _split_net(tx, tenant, entity, energy, lo, hi, span)


async def _sum_phases(
    tx: AsyncConnection,
    tenant: Tenant,
    entity: Entity,
    energy: Series,
    lo: datetime,
    hi: datetime,
    span: _Span,
) -> None:
    """Table 2: "(Consumption Phase n where n = 1..3), then it is calculated from sum of all 3
    phases"; a block is summed only when all three phases are known for it."""
    total_type = energy.series_type
    with _Deriving(total_type):
        phases = [await find_series(tx, tenant, entity, total_type, phase=n) for n in (1, 2, 3)]
        total = await find_series(tx, tenant, entity, total_type)
        if any(p is None or p.resolution is None for p in phases):
            return
        if total is not None and total.resolution is None:
            return
        step = total.resolution if total is not None else energy.resolution
        assert step is not None
        grid = max([step, *(p.resolution for p in phases if p is not None and p.resolution)])
        start, end = floor_to(lo, grid), ceil_to(hi, grid)
        span.take(start, end, min([step, *(p.resolution for p in phases if p and p.resolution)]))
        unit = total.unit if total is not None else info(total_type).unit
        known: list[dict[datetime, float]] = []
        for phase in phases:
            assert phase is not None
            read = await read_values(tx, tenant, phase, start, end, resolution=step)
            values = convert([p.value for p in read], phase.unit, unit)
            known.append({p.start: v for p, v in zip(read, values, strict=True) if v is not None})
        starts = sorted(set(known[0]).intersection(known[1], known[2]))
        points = [Point(s, s + step, math.fsum(k[s] for k in known)) for s in starts]
        await _write_derived(tx, tenant, entity, total, total_type, None, step, points)


async def _split_net(
    tx: AsyncConnection,
    tenant: Tenant,
    entity: Entity,
    net: Series,
    lo: datetime,
    hi: datetime,
    span: _Span,
) -> None:
    """Table 2: Consumption "Alternatively Calculated from Net Energy is supplied (+ve values)",
    Production "Alternatively Calculated from Net Energy is supplied (-ve values)", written
    as unsigned magnitudes. Split per block at the net series' own resolution, then
    coarsened (splitting after summing would net consumption against production)."""
    own = net.resolution
    assert own is not None
    for target_type, sign in ((SeriesType.CONSUMPTION, 1.0), (SeriesType.PRODUCTION, -1.0)):
        with _Deriving(target_type):
            target = await find_series(tx, tenant, entity, target_type)
            if target is not None and target.resolution is None:
                continue
            step = target.resolution if target is not None else own
            assert step is not None
            grid = max(step, own)
            start, end = floor_to(lo, grid), ceil_to(hi, grid)
            span.take(start, end, min(step, own))
            values: list[float | None] = [None] * ((end - start) // own)
            for point in await read_values(tx, tenant, net, start, end):
                values[(point.start - start) // own] = point.value
            part = Regular(
                start, own, [None if v is None else max(sign * v, 0.0) + 0.0 for v in values]
            )
            if step != own:
                part = resample(part, step, Quantity.ENERGY)
            unit = target.unit if target is not None else info(target_type).unit
            converted = convert(part.values, net.unit, unit)
            await _write_derived(
                tx,
                tenant,
                entity,
                target,
                target_type,
                None,
                step,
                _blocks(part.start, step, converted),
            )
