"""A group's plan: its inputs gathered from the store, the optimizer's solve, the plan written
back and handed to the protocols that send plans (docs/optimizer.md).

Inputs, per 15-minute block of the horizon:
- grid limit: the group's MaxCapacity (kW); a block without one takes the largest known;
- non-flexible load and PV: the group's Consumption and Production (energy per block, as
  kW); blocks nobody posted come from history (the same time yesterday, else the last
  value: `optimizer.naive_forecast`);
- prices: the group's ForecastedSpotPrice, else SpotPrice (per MWh -> per kWh); a flat
  DEFAULT_PRICE where there is none, so that only the preference for sooner decides;
- chargers: the group's active Charging children with an InstalledMaxCapacity or
  MaxChargingPower (kW); their demand is their own Consumption (posted or naive);
- batteries: Storage children with InstalledMaxCapacity (kWh) and MaxChargingPower, their
  state of charge the latest EnergyLevel (half full when unknown), the Table 1 efficiencies.

A group without chargers or batteries has nothing to optimise: its optimal capacity is the
headroom, max(0, limit - non-flexible load + PV). Otherwise the optimizer's capacity (the
planned flexible consumption, never below 0) is the optimal capacity, and its setpoints and
flexibility are written too, all with source `optimizer`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.capacity import BLOCK
from hub.runtime import PlanHook
from optimizer import (
    Battery,
    Charger,
    GroupPlan,
    GroupProblem,
    History,
    ProblemError,
    SolveOptions,
    block_starts,
    headroom_kw,
    merge_forecasts,
    naive_forecast,
    on_blocks,
)
from store.catalogue import AssetSubType
from store.entities import Entity, connectors_of
from store.series import ensure_series, find_series
from store.series_types import SeriesType
from store.tenants import Tenant
from store.values import Point, read_values, write_values

log = logging.getLogger("flexbridge.planning")

OPTIMIZER_SOURCE = "optimizer"
DEFAULT_PRICE = 0.25  # EUR/kWh
HISTORY = timedelta(days=2)
# The optimum answers a forecast within about this much more: past it, the best plan found
# (or the headroom) goes. Solves run off the request path (hub.plan_jobs), holding no writer.
SOLVE_OPTIONS = SolveOptions(time_limit_s=2.0)
_HOURS = BLOCK / timedelta(hours=1)


async def _blocks_of(
    tx: AsyncConnection,
    tenant: Tenant,
    entity: Entity,
    series_type: SeriesType,
    starts: list[datetime],
    *,
    per_hour: bool,
    scale: float = 1.0,
) -> np.ndarray:
    """Posted values on the blocks (NaN where none), merged with the naive forecast."""
    series = await find_series(tx, tenant, entity, series_type)
    if series is None or series.resolution is None:
        return np.zeros(len(starts))
    start, end = starts[0], starts[-1] + BLOCK
    factor = scale / (_HOURS if per_hour else 1.0)
    posted = await read_values(tx, tenant, series, start, end, resolution=BLOCK)
    past = await read_values(tx, tenant, series, start - HISTORY, start, resolution=BLOCK)
    as_history = [
        History(
            [p.start for p in rows], [None if p.value is None else p.value * factor for p in rows]
        )
        for rows in (posted, past)
    ]
    return merge_forecasts(
        on_blocks(as_history[0], starts, BLOCK), naive_forecast(as_history[1], starts, BLOCK)
    )


async def _limits(
    tx: AsyncConnection, tenant: Tenant, group: Entity, starts: list[datetime]
) -> np.ndarray | None:
    series = await find_series(tx, tenant, group, SeriesType.MAX_CAPACITY)
    if series is None:
        return None
    rows = await read_values(tx, tenant, series, starts[0], starts[-1] + BLOCK)
    known = {p.start: p.value for p in rows if p.value is not None}
    if not known:
        return None
    largest = max(known.values())
    return np.array([known.get(s, largest) for s in starts])


async def _prices(
    tx: AsyncConnection, tenant: Tenant, group: Entity, starts: list[datetime]
) -> np.ndarray:
    for series_type in (SeriesType.FORECASTED_SPOT_PRICE, SeriesType.SPOT_PRICE):
        series = await find_series(tx, tenant, group, series_type)
        if series is None or series.resolution is None:
            continue
        rows = await read_values(
            tx, tenant, series, starts[0], starts[-1] + BLOCK, resolution=BLOCK
        )
        known = {p.start: p.value / 1000.0 for p in rows if p.value is not None}  # per MWh
        if known:
            return np.array([known.get(s, DEFAULT_PRICE) for s in starts])
    return np.full(len(starts), DEFAULT_PRICE)


def _number(props: Mapping[str, Any], *names: str) -> float | None:
    for name in names:
        value = props.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


def _fraction(props: Mapping[str, Any], name: str, default: float) -> float:
    value = _number(props, name)
    if value is None:
        return default
    return value / 100.0 if value > 1 else value  # Table 1 gives percentages


def is_flexible(asset: Entity) -> bool:
    """Whether the planner optimises the asset: a Charging resource with a rated power, or a
    Storage resource with a capacity and a charging power."""
    props = asset.properties
    if asset.asset_subtype is AssetSubType.CHARGING:
        return _number(props, "InstalledMaxCapacity", "MaxChargingPower") is not None
    if asset.asset_subtype is AssetSubType.STORAGE:
        return (
            _number(props, "InstalledMaxCapacity") is not None
            and _number(props, "MaxChargingPower") is not None
        )
    return False


async def has_flexible_assets(
    tx: AsyncConnection, tenant: Tenant, group: Entity, at: datetime
) -> bool:
    """Whether `gather` finds something to optimise below the group at `at`."""
    children = await connectors_of(tx, tenant, group, direction="child", at=at)
    return any(is_flexible(link.child) for link in children)


async def _flexible(
    tx: AsyncConnection, tenant: Tenant, group: Entity, starts: list[datetime]
) -> tuple[dict[str, Entity], list[Charger], list[Battery]]:
    assets: dict[str, Entity] = {}
    chargers: list[Charger] = []
    batteries: list[Battery] = []
    for link in await connectors_of(tx, tenant, group, direction="child", at=starts[0]):
        child, props = link.child, link.child.properties
        if not is_flexible(child):
            continue
        if child.asset_subtype is AssetSubType.CHARGING:
            rated = _number(props, "InstalledMaxCapacity", "MaxChargingPower")
            assert rated is not None  # is_flexible
            demand = await _blocks_of(
                tx, tenant, child, SeriesType.CONSUMPTION, starts, per_hour=True
            )
            chargers.append(Charger(str(child.key), rated, demand_kw=np.minimum(demand, rated)))
            assets[str(child.key)] = child
        else:  # storage
            capacity = _number(props, "InstalledMaxCapacity")
            charge = _number(props, "MaxChargingPower")
            assert capacity is not None and charge is not None  # is_flexible
            level = await find_series(tx, tenant, child, SeriesType.ENERGY_LEVEL)
            soc = capacity / 2
            if level is not None:
                before = await read_values(tx, tenant, level, starts[0] - HISTORY, starts[0])
                known = [p.value for p in before if p.value is not None]
                soc = min(max(known[-1], 0.0), capacity) if known else soc
            batteries.append(
                Battery(
                    str(child.key),
                    capacity,
                    soc,
                    charge,
                    _number(props, "MaxDischargingPower") or charge,
                    charge_efficiency=_fraction(props, "EfficiencyOfCharging", 0.95),
                    discharge_efficiency=_fraction(props, "EfficiencyOfDischarging", 0.95),
                )
            )
            assets[str(child.key)] = child
    return assets, chargers, batteries


async def gather(
    tx: AsyncConnection, tenant: Tenant, group: Entity, start: datetime, end: datetime
) -> tuple[GroupProblem, dict[str, Entity]] | None:
    """The group's problem over [start, end) and its flexible assets by id; None when the
    group has no MaxCapacity there."""
    starts = block_starts(start, BLOCK, max(1, (end - start) // BLOCK))
    limits = await _limits(tx, tenant, group, starts)
    if limits is None:
        return None
    assets, chargers, batteries = await _flexible(tx, tenant, group, starts)
    problem = GroupProblem(
        start,
        BLOCK,
        await _prices(tx, tenant, group, starts),
        limits,
        non_flexible_kw=await _blocks_of(
            tx, tenant, group, SeriesType.CONSUMPTION, starts, per_hour=True
        ),
        pv_kw=await _blocks_of(tx, tenant, group, SeriesType.PRODUCTION, starts, per_hour=True),
        solver=SOLVE_OPTIONS,
    )
    try:
        return replace(problem, chargers=tuple(chargers), batteries=tuple(batteries)), assets
    except ProblemError as exc:  # an asset's stored properties the model refuses
        log.warning(
            "group %s planned by the headroom rule: %s: %s", group.key, exc.field, exc.reason
        )
        return problem, {}


async def _write(
    tx: AsyncConnection,
    tenant: Tenant,
    entity: Entity,
    series_type: SeriesType,
    start: datetime,
    values: np.ndarray,
    hooks: Sequence[PlanHook],
) -> list[Point]:
    series = await ensure_series(tx, tenant, entity, series_type, resolution=BLOCK)
    points = [
        Point(start + i * BLOCK, start + (i + 1) * BLOCK, round(float(v), 6) + 0.0)
        for i, v in enumerate(values)
    ]
    await write_values(tx, tenant, series, points, source=OPTIMIZER_SOURCE)
    for hook in hooks:
        await hook(tx, tenant, entity, series, points)
    return points


async def write_plan(
    tx: AsyncConnection,
    tenant: Tenant,
    group: Entity,
    problem: GroupProblem,
    plan: GroupPlan | None,
    assets: dict[str, Entity],
    hooks: Sequence[PlanHook] = (),
) -> list[Point]:
    """Store the plan (the headroom when `plan` is None) and hand each series to the hooks;
    returns the group's optimal capacity per block."""
    start = problem.start
    if plan is None:
        capacity = headroom_kw(problem)
        return await _write(
            tx, tenant, group, SeriesType.OPTIMAL_CAPACITY_REGULATION, start, capacity, hooks
        )
    capacity = np.maximum(plan.capacity_kw, 0.0)
    points = await _write(
        tx, tenant, group, SeriesType.OPTIMAL_CAPACITY_REGULATION, start, capacity, hooks
    )
    await _write(tx, tenant, group, SeriesType.FLEXIBILITY_UP, start, plan.flexibility_up_kw, hooks)
    await _write(
        tx, tenant, group, SeriesType.FLEXIBILITY_DOWN, start, plan.flexibility_down_kw, hooks
    )
    for charger in plan.chargers:
        await _write(
            tx,
            tenant,
            assets[charger.id],
            SeriesType.CHARGING_POWER_REGULATION,
            start,
            charger.setpoint_kw,
            hooks,
        )
    for battery in plan.batteries:
        entity = assets[battery.id]
        await _write(
            tx,
            tenant,
            entity,
            SeriesType.CHARGING_POWER_REGULATION,
            start,
            battery.charge_kw,
            hooks,
        )
        await _write(
            tx,
            tenant,
            entity,
            SeriesType.DISCHARGING_POWER_REGULATION,
            start,
            battery.discharge_kw,
            hooks,
        )
    return points
