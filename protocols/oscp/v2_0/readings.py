"""OSCP 2.0 measurements as the store keeps them.

EnergyMeasurement (an accumulated register, WH or KWH) -> a meter-reading series of the entity,
in kWh, by direction; the interval energy per quarter hour follows by the hub's one Table 2
rule (hub.derivations), as for every protocol:

    IMPORT  ConsumptionMeterReading  -> Consumption
    EXPORT  ProductionMeterReading   -> Production
    NET     NetEnergyMeterReading    -> NetEnergy (signed)

phase ONE, TWO, THREE -> the series of that phase; ALL and UNKNOWN -> the entity's total.
(NetEnergyMeterReading has no per-phase series: a NET reading of one phase is refused.)

InstantaneousMeasurement (A, W or KW at an instant) -> a power series of the entity, in kW,
by the asset's category:

    CHARGING, CONSUMPTION  ConsumptionInstantPower
    GENERATION             ProductionInstantPower
    STORAGE                NetInstantPower (signed)

Amps are per phase: on phase ONE, TWO or THREE they are that one phase's current, on ALL or
UNKNOWN each of the entity's PhaseCount phases (NominalVoltage and PowerFactor as for groups).
An energy unit is no instantaneous value and is refused.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hub import derivations
from hub.capacity import to_kw
from hub.limits import Budget, Limits
from hub.limits import check_span as check_limit
from protocols.oscp.v2_0.codec import timestamp
from store.entities import Entity
from store.errors import ValidationError
from store.series import ensure_series
from store.series_types import SeriesType
from store.tenants import Tenant
from store.values import Point, write_values

_PHASES = {"ONE": 1, "TWO": 2, "THREE": 3}
_REGISTERS = {
    "IMPORT": SeriesType.CONSUMPTION_METER_READING,
    "EXPORT": SeriesType.PRODUCTION_METER_READING,
    "NET": SeriesType.NET_ENERGY_METER_READING,
}
_INSTANTS = {
    "CHARGING": SeriesType.CONSUMPTION_INSTANT_POWER,
    "CONSUMPTION": SeriesType.CONSUMPTION_INSTANT_POWER,
    "GENERATION": SeriesType.PRODUCTION_INSTANT_POWER,
    "STORAGE": SeriesType.NET_INSTANT_POWER,
}


@dataclass(frozen=True, slots=True)
class Reading:
    series_type: SeriesType
    phase: int | None
    at: datetime
    kwh: float


@dataclass(frozen=True, slots=True)
class Instant:
    series_type: SeriesType
    at: datetime
    kw: float


def reading_of(measurement: dict[str, Any], where: str) -> Reading:
    """An EnergyMeasurement as a register reading; ValidationError naming the field."""
    direction = measurement["direction"]
    series_type = _REGISTERS[direction]
    phase = _PHASES.get(measurement["phase"])
    if phase is not None and direction == "NET":
        raise ValidationError(
            f"{where}.phase", "a NET register is kept per entity, not per phase: send ALL"
        )
    value = float(measurement["value"])
    if direction != "NET" and value < 0:
        raise ValidationError(f"{where}.value", f"an {direction} register cannot be negative")
    kwh = value / 1000.0 if measurement["unit"] == "WH" else value
    return Reading(
        series_type, phase, timestamp(measurement["measure_time"], f"{where}.measure_time"), kwh
    )


def instant_of(entity: Entity, category: str, measurement: dict[str, Any], where: str) -> Instant:
    """An InstantaneousMeasurement as a power in kW; ValidationError naming the field."""
    unit = measurement["unit"]
    if unit in ("WH", "KWH"):
        raise ValidationError(
            f"{where}.unit", f"{unit} is an energy; an instantaneous value is A, W or KW"
        )
    series_type = _INSTANTS[category]
    value = float(measurement["value"])
    if series_type is not SeriesType.NET_INSTANT_POWER and value < 0:
        raise ValidationError(f"{where}.value", f"a {category} asset's power is a magnitude >= 0")
    # Amps on one phase are that phase's current; on ALL or UNKNOWN, each phase's.
    kw = to_kw(entity, value, unit, phases=1 if measurement["phase"] in _PHASES else None)
    return Instant(series_type, timestamp(measurement["measure_time"], f"{where}.measure_time"), kw)


def check_span(limits: Limits, moments: Sequence[datetime], field: str) -> None:
    """Refuse measurements lying further apart than one message may span (hub.limits)."""
    if moments:
        check_limit(limits, min(moments), max(moments), field)


async def store_readings(
    tx: AsyncConnection,
    tenant: Tenant,
    entity: Entity,
    readings: Sequence[Reading],
    source: str,
    derived: Budget,
) -> list[SeriesType]:
    """Write the readings per series and what Table 2 derives from them (the blocks taken
    from the message's budget `derived`); the series types that may have changed."""
    by_series: dict[tuple[SeriesType, int | None], list[Reading]] = defaultdict(list)
    for reading in readings:
        by_series[(reading.series_type, reading.phase)].append(reading)
    changed: list[SeriesType] = []
    for (series_type, phase), group in by_series.items():
        series = await ensure_series(tx, tenant, entity, series_type, phase=phase)
        points = [Point(r.at, r.at, r.kwh) for r in group]
        await write_values(tx, tenant, series, points, source=source)
        changed += await derivations.derive(
            tx, tenant, entity, series, points, budget=derived, field="measurements"
        )
    return changed


async def store_instants(
    tx: AsyncConnection, tenant: Tenant, entity: Entity, instants: Sequence[Instant], source: str
) -> None:
    by_type: dict[SeriesType, list[Instant]] = defaultdict(list)
    for instant in instants:
        by_type[instant.series_type].append(instant)
    for series_type, group in by_type.items():
        series = await ensure_series(tx, tenant, entity, series_type)
        await write_values(
            tx, tenant, series, [Point(i.at, i.at, i.kw) for i in group], source=source
        )
