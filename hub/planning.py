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
from store.entities import Connector, Entity, connectors_of
from store.series import Series, SeriesKey, ensure_many, series_of_entities
from store.series_types import SeriesType
from store.tenants import Tenant
from store.timeutil import MICROSECOND, to_micros
from store.values import Blocks, Point, Window, read_values, read_windows, write_many

log = logging.getLogger("flexbridge.planning")

OPTIMIZER_SOURCE = "optimizer"
DEFAULT_PRICE = 0.25  # EUR/kWh
HISTORY = timedelta(days=2)
# The optimum answers a forecast within about this much more: past it, the best plan found
# (or the headroom) goes. Solves run off the request path (hub.plan_jobs), holding no writer.
SOLVE_OPTIONS = SolveOptions(time_limit_s=2.0)
_HOURS = BLOCK / timedelta(hours=1)


# What gather reads, by (entity id, series type, which window), each as
# read_values(series, start, end, resolution=BLOCK if at_block else None).
_POSTED, _PAST = "posted", "past"
_Key = tuple[int, SeriesType, str]
_Read = tuple[Series, datetime, datetime, bool]  # series, start, end, at_block
_PRICE_TYPES = (SeriesType.FORECASTED_SPOT_PRICE, SeriesType.SPOT_PRICE)


async def _read_stored(
    tx: AsyncConnection, tenant: Tenant, reads: Mapping[_Key, _Read]
) -> dict[_Key, list[Point]]:
    """The reads that need no resampling (nearly all: plans and most inputs are stored at
    BLOCK), in one round trip: a plan's dozen series read one by one, twice each, were most
    of its gather."""
    direct = [
        key for key, (series, _, _, at_block) in reads.items() if _as_stored(series, at_block)
    ]
    windows = [Window(*reads[key][:3]) for key in direct]
    return dict(zip(direct, await read_windows(tx, tenant, windows), strict=True))


async def _read_resampled(
    tx: AsyncConnection, tenant: Tenant, reads: Mapping[_Key, _Read], got: Mapping[_Key, Any]
) -> dict[_Key, list[Point]]:
    """The reads `_read_stored` left, one by one (after the limits: a group without any is
    not planned, and none of its other series read)."""
    resampled = {}
    for key, (series, start, end, at_block) in reads.items():
        if key not in got:
            resolution = BLOCK if at_block else None
            resampled[key] = await read_values(
                tx, tenant, series, start, end, resolution=resolution
            )
    return resampled


def _as_stored(series: Series, at_block: bool) -> bool:
    """Whether the read needs no resampling (read_values reads such a series as stored)."""
    return not at_block or series.resolution == BLOCK


def _block_reads(
    found: Mapping[SeriesKey, Series],
    entity: Entity,
    series_type: SeriesType,
    starts: list[datetime],
) -> dict[_Key, _Read]:
    """The posted values on the blocks and the history before them (see `_blocks`)."""
    series = found.get((entity.id, series_type, None))
    if series is None or series.resolution is None:
        return {}
    start, end = starts[0], starts[-1] + BLOCK
    return {
        (entity.id, series_type, _POSTED): (series, start, end, True),
        (entity.id, series_type, _PAST): (series, start - HISTORY, start, True),
    }


def _group_reads(
    found: Mapping[SeriesKey, Series], group: Entity, starts: list[datetime]
) -> dict[_Key, _Read]:
    """The group's limit, prices, non-flexible load and PV."""
    start, end = starts[0], starts[-1] + BLOCK
    reads: dict[_Key, _Read] = {}
    limit = found.get((group.id, SeriesType.MAX_CAPACITY, None))
    if limit is not None:
        reads[(group.id, SeriesType.MAX_CAPACITY, _POSTED)] = (limit, start, end, False)
    for series_type in _PRICE_TYPES:
        prices = found.get((group.id, series_type, None))
        if prices is not None and prices.resolution is not None:
            reads[(group.id, series_type, _POSTED)] = (prices, start, end, True)
    for series_type in (SeriesType.CONSUMPTION, SeriesType.PRODUCTION):
        reads.update(_block_reads(found, group, series_type, starts))
    return reads


def _asset_reads(
    found: Mapping[SeriesKey, Series], asset: Entity, starts: list[datetime]
) -> dict[_Key, _Read]:
    """A charger's demand; a battery's levels before the horizon (see `_flexible`)."""
    if asset.asset_subtype is AssetSubType.CHARGING:
        return _block_reads(found, asset, SeriesType.CONSUMPTION, starts)
    level = found.get((asset.id, SeriesType.ENERGY_LEVEL, None))
    if level is None:
        return {}
    return {
        (asset.id, SeriesType.ENERGY_LEVEL, _PAST): (level, starts[0] - HISTORY, starts[0], False)
    }


def _blocks(
    got: Mapping[_Key, list[Point]],
    entity: Entity,
    series_type: SeriesType,
    starts: list[datetime],
    *,
    per_hour: bool,
    scale: float = 1.0,
) -> np.ndarray:
    """Posted values on the blocks (NaN where none), merged with the naive forecast."""
    posted = got.get((entity.id, series_type, _POSTED))
    past = got.get((entity.id, series_type, _PAST))
    if posted is None or past is None:  # no such series, or one of irregular instants
        return np.zeros(len(starts))
    factor = scale / (_HOURS if per_hour else 1.0)
    as_history = [
        History(
            [p.start for p in rows], [None if p.value is None else p.value * factor for p in rows]
        )
        for rows in (posted, past)
    ]
    return merge_forecasts(
        on_blocks(as_history[0], starts, BLOCK), naive_forecast(as_history[1], starts, BLOCK)
    )


def _limits(
    got: Mapping[_Key, list[Point]], group: Entity, starts: list[datetime]
) -> np.ndarray | None:
    rows = got.get((group.id, SeriesType.MAX_CAPACITY, _POSTED), [])
    known = {p.start: p.value for p in rows if p.value is not None}
    if not known:
        return None
    largest = max(known.values())
    return np.array([known.get(s, largest) for s in starts])


def _prices(got: Mapping[_Key, list[Point]], group: Entity, starts: list[datetime]) -> np.ndarray:
    for series_type in _PRICE_TYPES:
        rows = got.get((group.id, series_type, _POSTED), [])
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


def _flexible(
    got: Mapping[_Key, list[Point]], links: Sequence[Connector], starts: list[datetime]
) -> tuple[dict[str, Entity], list[Charger], list[Battery]]:
    assets: dict[str, Entity] = {}
    chargers: list[Charger] = []
    batteries: list[Battery] = []
    for link in links:
        child, props = link.child, link.child.properties
        if not is_flexible(child):
            continue
        if child.asset_subtype is AssetSubType.CHARGING:
            rated = _number(props, "InstalledMaxCapacity", "MaxChargingPower")
            assert rated is not None  # is_flexible
            demand = _blocks(got, child, SeriesType.CONSUMPTION, starts, per_hour=True)
            chargers.append(Charger(str(child.key), rated, demand_kw=np.minimum(demand, rated)))
            assets[str(child.key)] = child
        else:  # storage
            batteries.append(_battery(got, child))
            assets[str(child.key)] = child
    return assets, chargers, batteries


def _battery(got: Mapping[_Key, list[Point]], child: Entity) -> Battery:
    """A Storage child, its state of charge the latest EnergyLevel (half full if unknown)."""
    props = child.properties
    capacity = _number(props, "InstalledMaxCapacity")
    charge = _number(props, "MaxChargingPower")
    assert capacity is not None and charge is not None  # is_flexible
    known = [
        p.value
        for p in got.get((child.id, SeriesType.ENERGY_LEVEL, _PAST), [])
        if p.value is not None
    ]
    soc = min(max(known[-1], 0.0), capacity) if known else capacity / 2
    return Battery(
        str(child.key),
        capacity,
        soc,
        charge,
        _number(props, "MaxDischargingPower") or charge,
        charge_efficiency=_fraction(props, "EfficiencyOfCharging", 0.95),
        discharge_efficiency=_fraction(props, "EfficiencyOfDischarging", 0.95),
    )


async def _read_inputs(
    tx: AsyncConnection, tenant: Tenant, group: Entity, starts: list[datetime]
) -> tuple[list[Connector], dict[_Key, _Read], dict[_Key, list[Point]]]:
    """The group's children, what gather reads, and what needs no resampling read: the
    series of the group and its flexible children looked up in one query, their values
    read in one more."""
    links = await connectors_of(tx, tenant, group, direction="child", at=starts[0])
    flexible = {link.child.id: link.child for link in links if is_flexible(link.child)}
    found = await series_of_entities(tx, tenant, [group.id, *flexible])
    reads = _group_reads(found, group, starts)
    for child in flexible.values():
        reads.update(_asset_reads(found, child, starts))
    return links, reads, await _read_stored(tx, tenant, reads)


async def gather(
    tx: AsyncConnection, tenant: Tenant, group: Entity, start: datetime, end: datetime
) -> tuple[GroupProblem, dict[str, Entity]] | None:
    """The group's problem over [start, end) and its flexible assets by id; None when the
    group has no MaxCapacity there."""
    starts = block_starts(start, BLOCK, max(1, (end - start) // BLOCK))
    links, reads, got = await _read_inputs(tx, tenant, group, starts)
    limits = _limits(got, group, starts)
    if limits is None:
        return None
    got.update(await _read_resampled(tx, tenant, reads, got))
    assets, chargers, batteries = _flexible(got, links, starts)
    problem = GroupProblem(
        start,
        BLOCK,
        _prices(got, group, starts),
        limits,
        non_flexible_kw=_blocks(got, group, SeriesType.CONSUMPTION, starts, per_hour=True),
        pv_kw=_blocks(got, group, SeriesType.PRODUCTION, starts, per_hour=True),
        solver=SOLVE_OPTIONS,
    )
    try:
        return replace(problem, chargers=tuple(chargers), batteries=tuple(batteries)), assets
    except ProblemError as exc:  # an asset's stored properties the model refuses
        log.warning(
            "group %s planned by the headroom rule: %s: %s", group.key, exc.field, exc.reason
        )
        return problem, {}


# One series of a plan: whose, which type, a value per block from the plan's start.
_Planned = tuple[Entity, SeriesType, np.ndarray]


def _plan_series(
    group: Entity, problem: GroupProblem, plan: GroupPlan | None, assets: dict[str, Entity]
) -> list[_Planned]:
    """The series a plan writes, the group's optimal capacity first (the headroom when
    `plan` is None)."""
    if plan is None:
        return [(group, SeriesType.OPTIMAL_CAPACITY_REGULATION, headroom_kw(problem))]
    planned: list[_Planned] = [
        (group, SeriesType.OPTIMAL_CAPACITY_REGULATION, np.maximum(plan.capacity_kw, 0.0)),
        (group, SeriesType.FLEXIBILITY_UP, plan.flexibility_up_kw),
        (group, SeriesType.FLEXIBILITY_DOWN, plan.flexibility_down_kw),
    ]
    for charger in plan.chargers:
        planned.append(
            (assets[charger.id], SeriesType.CHARGING_POWER_REGULATION, charger.setpoint_kw)
        )
    for battery in plan.batteries:
        entity = assets[battery.id]
        planned.append((entity, SeriesType.CHARGING_POWER_REGULATION, battery.charge_kw))
        planned.append((entity, SeriesType.DISCHARGING_POWER_REGULATION, battery.discharge_kw))
    return planned


def _rounded(values: np.ndarray) -> list[float]:
    """Plan values as stored: to the micro-kW, never -0.0."""
    return [round(v, 6) + 0.0 for v in values.tolist()]


def _as_written(start: datetime, columns: list[list[float]]) -> tuple[list[int], list[list[Point]]]:
    """The block starts in epoch microseconds (what the store writes from) and each series
    as points (what the hooks are given), the block edges made once for all series."""
    blocks = max(map(len, columns), default=0)
    edges = [start + i * BLOCK for i in range(blocks + 1)]
    first_us, block_us = to_micros(start), BLOCK // MICROSECOND
    starts_us = [first_us + i * block_us for i in range(blocks)]
    points = [
        [Point(edges[i], edges[i + 1], v) for i, v in enumerate(column)] for column in columns
    ]
    return starts_us, points


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
    returns the group's optimal capacity per block.

    All series are looked up, and all their values merged, at once: one by one, three
    statements per series were most of a plan's write."""
    planned = _plan_series(group, problem, plan, assets)
    wanted = [(entity, series_type) for entity, series_type, _ in planned]
    written = await ensure_many(tx, tenant, wanted, resolution=BLOCK)
    columns = [_rounded(values) for _, _, values in planned]
    starts_us, points = _as_written(problem.start, columns)
    blocks = [Blocks(starts_us[: len(column)], column) for column in columns]
    await write_many(tx, tenant, list(zip(written, blocks, strict=True)), source=OPTIMIZER_SOURCE)
    for (entity, _, _), series, values in zip(planned, written, points, strict=True):
        for hook in hooks:
            await hook(tx, tenant, entity, series, values)
    return points[0]
