"""The one formulation, as parameter arrays both builds read (docs/optimizer.md, Model).

A GroupProblem and a StorageProblem both become a Formulation: chargers as units (after
merging identical ones), storages with their SoC bounds, SoC targets, prices and slopes, and
the grid terms. The storage problem is the same model with one storage, no chargers, no
non-flexible load and no grid limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from optimizer.aggregate import Units, merge
from optimizer.assets import ChargerMode
from optimizer.checks import per_block
from optimizer.options import Penalties
from optimizer.pricing import export_price, slopes
from optimizer.problems import GroupProblem, StorageProblem


@dataclass(frozen=True, eq=False)
class ChargerUnits:
    """Arrays over units (U) and blocks (T); energies, demands and bounds already scaled by
    the number of chargers merged into each unit."""

    lower: np.ndarray  # kW drawn at least while connected (continuous) or while on (on/off)
    upper: np.ndarray  # kW
    on_off: np.ndarray  # bool
    connected: np.ndarray  # (U, T) bool
    has_energy: np.ndarray  # bool: an energy need by a deadline
    energy: np.ndarray  # kWh (0 without a need)
    deadline: np.ndarray  # blocks [0, deadline) count towards the need
    demand: np.ndarray  # (U, T) kW to serve in its own block (0 without a forecast)

    @property
    def size(self) -> int:
        return int(self.upper.size)


@dataclass(frozen=True, eq=False)
class Storages:
    soc0: np.ndarray  # kWh now
    low: np.ndarray  # SoC thresholds, kWh
    high: np.ndarray
    floor: np.ndarray  # hard SoC bounds: the thresholds, widened to hold soc0
    ceiling: np.ndarray
    soft: np.ndarray  # bool: soc0 outside the thresholds, so they get slack
    max_charge: np.ndarray  # kW
    max_discharge: np.ndarray
    eta_charge: np.ndarray
    eta_discharge: np.ndarray
    cost_charge: np.ndarray  # EUR/kWh
    cost_discharge: np.ndarray

    @property
    def size(self) -> int:
        return int(self.soc0.size)


@dataclass(frozen=True, eq=False)
class Targets:
    storage: np.ndarray  # which storage
    block: np.ndarray  # SoC at the end of this block
    value: np.ndarray  # kWh
    exact: np.ndarray  # bool: SoC == value (USEF targets); else SoC >= value (end threshold)

    @property
    def size(self) -> int:
        return int(self.value.size)


@dataclass(frozen=True, eq=False)
class Formulation:
    hours: float  # block length
    fixed_kw: np.ndarray  # non-flexible load - PV
    limit_kw: np.ndarray | None  # grid import limit; None: no limit
    import_price: np.ndarray
    export_price: np.ndarray  # effective: <= import price
    charge_slope: np.ndarray
    discharge_slope: np.ndarray
    units: ChargerUnits
    storages: Storages
    targets: Targets
    penalties: Penalties

    @property
    def blocks(self) -> int:
        return int(self.import_price.size)

    @property
    def offset(self) -> float:
        """Constant objective term: the non-flexible load priced at the export price (the
        import part above it is priced through the import variable)."""
        return float(np.sum(self.hours * self.export_price * self.fixed_kw))


def _storages(
    soc0: list[float], low: list[float], high: list[float], **rest: list[float]
) -> Storages:
    soc = np.asarray(soc0, dtype=np.float64)
    lo = np.asarray(low, dtype=np.float64)
    hi = np.asarray(high, dtype=np.float64)
    return Storages(
        soc0=soc,
        low=lo,
        high=hi,
        floor=np.minimum(lo, soc),
        ceiling=np.maximum(hi, soc),
        soft=(soc < lo) | (soc > hi),
        **{name: np.asarray(values, dtype=np.float64) for name, values in rest.items()},
    )


def _units(problem: GroupProblem, merged: Units) -> ChargerUnits:
    blocks = problem.blocks
    chargers = [problem.chargers[i] for i in merged.first]
    count = merged.count
    on_off = np.array([c.mode is ChargerMode.ON_OFF for c in chargers], dtype=bool)
    has_energy = np.array([c.energy_kwh is not None for c in chargers], dtype=bool)
    demand = np.zeros((len(chargers), blocks))
    for row, charger in enumerate(chargers):
        if charger.demand_kw is not None:
            demand[row] = charger.demand_kw * count[row]
    return ChargerUnits(
        lower=np.array([c.min_kw for c in chargers]) * count,
        upper=np.array([c.max_kw for c in chargers]) * count,
        on_off=on_off,
        connected=np.array([c.plugged(blocks) for c in chargers], dtype=bool).reshape(-1, blocks),
        has_energy=has_energy,
        energy=np.array([c.energy_kwh or 0.0 for c in chargers]) * count,
        deadline=np.array([c.deadline(blocks) for c in chargers], dtype=np.int64),
        demand=demand,
    )


def from_group(problem: GroupProblem, aggregate: bool) -> tuple[Formulation, Units]:
    merged = merge(problem.chargers, problem.blocks, aggregate)
    batteries = problem.batteries
    charge_slope, discharge_slope = slopes(
        problem.price_eur_per_kwh, problem.prefer_charging_sooner
    )
    ends = [i for i, b in enumerate(batteries) if b.threshold_end is not None]
    end_kwh = [b.threshold_end * b.capacity_kwh for b in batteries if b.threshold_end is not None]
    formulation = Formulation(
        hours=problem.hours,
        fixed_kw=per_block(problem.non_flexible_kw) - per_block(problem.pv_kw),
        limit_kw=per_block(problem.grid_limit_kw),
        import_price=problem.price_eur_per_kwh,
        export_price=export_price(
            problem.price_eur_per_kwh, per_block(problem.export_price_eur_per_kwh)
        ),
        charge_slope=charge_slope,
        discharge_slope=discharge_slope,
        units=_units(problem, merged),
        storages=_storages(
            soc0=[b.soc_kwh for b in batteries],
            low=[b.threshold_min * b.capacity_kwh for b in batteries],
            high=[b.threshold_max * b.capacity_kwh for b in batteries],
            max_charge=[b.max_charge_kw for b in batteries],
            max_discharge=[b.max_discharge_kw for b in batteries],
            eta_charge=[b.charge_efficiency for b in batteries],
            eta_discharge=[b.discharge_efficiency for b in batteries],
            cost_charge=[b.cost_charging for b in batteries],
            cost_discharge=[b.cost_discharging for b in batteries],
        ),
        targets=Targets(
            storage=np.array(ends, dtype=np.int64),
            block=np.full(len(ends), problem.blocks - 1, dtype=np.int64),
            value=np.array(end_kwh),
            exact=np.zeros(len(ends), dtype=bool),
        ),
        penalties=problem.penalties,
    )
    return formulation, merged


def _no_units(blocks: int) -> ChargerUnits:
    empty = np.zeros(0)
    return ChargerUnits(
        lower=empty,
        upper=empty,
        on_off=np.zeros(0, bool),
        connected=np.zeros((0, blocks), bool),
        has_energy=np.zeros(0, bool),
        energy=empty,
        deadline=np.zeros(0, np.int64),
        demand=np.zeros((0, blocks)),
    )


def from_storage(problem: StorageProblem) -> Formulation:
    # The round trip loses sqrt(rte) on the way in and sqrt(rte) on the way out.
    eta = math.sqrt(problem.roundtrip_efficiency)
    price = problem.price_eur_per_kwh
    charge_slope, discharge_slope = slopes(price, problem.prefer_charging_sooner)
    production = per_block(problem.production_price_eur_per_kwh)
    targets = problem.targets
    return Formulation(
        hours=problem.hours,
        fixed_kw=np.zeros(problem.blocks),
        limit_kw=None,
        import_price=price,
        export_price=export_price(price, price if production is None else production),
        charge_slope=charge_slope,
        discharge_slope=discharge_slope,
        units=_no_units(problem.blocks),
        storages=_storages(
            soc0=[problem.soc_kwh],
            low=[problem.soc_min_kwh],
            high=[problem.soc_max_kwh],
            max_charge=[problem.max_charge_kw],
            max_discharge=[problem.max_discharge_kw],
            eta_charge=[eta],
            eta_discharge=[eta],
            cost_charge=[0.0],
            cost_discharge=[0.0],
        ),
        targets=Targets(
            storage=np.zeros(len(targets), dtype=np.int64),
            block=np.array([t.block for t in targets], dtype=np.int64),
            value=np.array([t.soc_kwh for t in targets], dtype=np.float64),
            exact=np.ones(len(targets), dtype=bool),
        ),
        penalties=problem.penalties,
    )
