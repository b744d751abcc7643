"""Group capacity as the store keeps it: kW on a 15-minute grid.

A block of any whole number of quarter hours is laid onto that grid (capacity is a power,
so it repeats). Amps (per phase) become kW with the group's NominalVoltage, PhaseCount and
PowerFactor (230 V, 3 phases, 1.0 when the group has none); a protocol whose Amps are on one
phase passes `phases=1`. A group has two limits: what it
may draw (CONSUMPTION, its MaxCapacity, what the optimizer plans within) and what it may
feed in (GENERATION, its ProductionPowerRegulation, a magnitude >= 0, kept for the operator
and the optimizer; the headroom rule does not read it yet).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncConnection

from store.entities import Entity
from store.errors import ValidationError
from store.series import ensure_series
from store.series_types import SeriesType
from store.tenants import Tenant
from store.units import (
    DEFAULT_PHASES,
    DEFAULT_POWER_FACTOR,
    DEFAULT_VOLTAGE,
    amps_to_kw,
    kw_to_amps,
)
from store.values import Point, write_values

BLOCK = timedelta(minutes=15)
_GRID_ORIGIN = datetime(2000, 1, 1)


class Limit(StrEnum):
    CONSUMPTION = "CONSUMPTION"
    GENERATION = "GENERATION"


SERIES = {
    Limit.CONSUMPTION: SeriesType.MAX_CAPACITY,
    Limit.GENERATION: SeriesType.PRODUCTION_POWER_REGULATION,
}


@dataclass(frozen=True, slots=True)
class Block:
    """A capacity in kW over [start, end)."""

    start: datetime
    end: datetime
    kw: float


def quarter(moment: datetime) -> datetime:
    """The start of the quarter hour holding `moment`."""
    return moment - (moment - _GRID_ORIGIN.replace(tzinfo=moment.tzinfo)) % BLOCK


def quarter_hours(start: datetime, end: datetime, kw: float, where: str) -> list[Block]:
    """A block laid onto the store's 15-minute grid."""
    if end <= start:
        raise ValidationError(f"{where}.end_time", "must be after start_time")
    if quarter(start) != start or (end - start) % BLOCK:
        raise ValidationError(
            f"{where}.start_time", "blocks must start and end on the quarter hour"
        )
    count = (end - start) // BLOCK
    return [Block(start + k * BLOCK, start + (k + 1) * BLOCK, kw) for k in range(count)]


@dataclass(frozen=True, slots=True)
class Electrical:
    """What A <-> kW needs of an entity (docs/store.md, "Units")."""

    voltage: float
    phases: int
    power_factor: float

    @classmethod
    def of(cls, entity: Entity, *, phases: int | None = None) -> Electrical:
        """The entity's; `phases` overrides its PhaseCount (a current on one phase)."""
        props = entity.properties
        return cls(
            float(props.get("NominalVoltage") or DEFAULT_VOLTAGE),
            phases or int(props.get("PhaseCount") or DEFAULT_PHASES),
            float(props.get("PowerFactor") or DEFAULT_POWER_FACTOR),
        )


def to_kw(entity: Entity, value: float, unit: str, *, phases: int | None = None) -> float:
    """A capacity in A (per phase), W or kW as kW."""
    if unit == "A":
        e = Electrical.of(entity, phases=phases)
        return amps_to_kw(value, voltage=e.voltage, phases=e.phases, power_factor=e.power_factor)
    return value / 1000.0 if unit.upper() == "W" else value


def from_kw(entity: Entity, kw: float, unit: str, *, phases: int | None = None) -> float:
    """A capacity in kW as A (per phase: of `phases`, else of the entity's), W or kW."""
    if unit == "A":
        e = Electrical.of(entity, phases=phases)
        return kw_to_amps(kw, voltage=e.voltage, phases=e.phases, power_factor=e.power_factor)
    return kw * 1000.0 if unit.upper() == "W" else kw


async def store_limit(
    tx: AsyncConnection,
    tenant: Tenant,
    group: Entity,
    limit: Limit,
    blocks: Sequence[Block],
    source: str,
) -> None:
    """The group's limit for these blocks (newer beliefs replace older ones)."""
    points = [Point(b.start, b.end, b.kw) for b in blocks]
    await _write_limit(tx, tenant, group, limit, points, source)


async def clear_limit(
    tx: AsyncConnection,
    tenant: Tenant,
    group: Entity,
    limit: Limit,
    blocks: Sequence[Block],
    source: str,
) -> None:
    """Write 'unknown' (null) over the blocks: a limit that no longer holds."""
    points = [Point(b.start, b.end, None) for b in blocks]
    await _write_limit(tx, tenant, group, limit, points, source)


async def _write_limit(
    tx: AsyncConnection,
    tenant: Tenant,
    group: Entity,
    limit: Limit,
    points: Sequence[Point],
    source: str,
) -> None:
    series = await ensure_series(tx, tenant, group, SERIES[limit], resolution=BLOCK)
    await write_values(tx, tenant, series, points, source=source)
