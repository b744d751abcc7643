"""What a solve returns: typed plans with status, objective, timings and relaxations.

Arrays are per block, kW, consumption positive. A plan is a value: its arrays are read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import numpy as np


class PlanStatus(StrEnum):
    OPTIMAL = "optimal"  # proven optimal (MIPs: within mip_rel_gap)
    FEASIBLE = "feasible"  # a limit stopped the solver; its best plan, not proven optimal
    FALLBACK = "fallback"  # no solver plan: the documented fallback rule instead


class RelaxationKind(StrEnum):
    """In the order they are given up (cheapest penalty first)."""

    UNMET_ENERGY = "unmet_energy"  # kWh of charging need left unserved
    SOC_TARGET = "soc_target"  # kWh missed, summed over targets
    SOC_BOUNDS = "soc_bounds"  # largest kWh outside a storage's SoC thresholds
    GRID_LIMIT = "grid_limit"  # kWh imported above the grid limit


@dataclass(frozen=True)
class Relaxation:
    kind: RelaxationKind
    amount_kwh: float
    assets: tuple[str, ...] = ()  # the assets concerned; empty for the grid limit


@dataclass(frozen=True)
class Timings:
    build_s: float = 0.0
    solve_s: float = 0.0
    extract_s: float = 0.0

    @property
    def total_s(self) -> float:
        return self.build_s + self.solve_s + self.extract_s


@dataclass(frozen=True, eq=False)
class ChargerPlan:
    id: str
    setpoint_kw: np.ndarray
    on: np.ndarray | None  # on/off chargers only: the binary decisions
    unmet_kwh: float  # charging need this plan leaves unserved


@dataclass(frozen=True, eq=False)
class BatteryPlan:
    id: str
    charge_kw: np.ndarray
    discharge_kw: np.ndarray
    soc_kwh: np.ndarray  # at the END of each block

    @property
    def setpoint_kw(self) -> np.ndarray:
        """Net consumption: + charging, - discharging."""
        net: np.ndarray = self.charge_kw - self.discharge_kw
        return net


@dataclass(frozen=True, eq=False)
class GroupPlan:
    """capacity_kw: the planned net flexible consumption of the group (sum of charger
    setpoints plus battery charging minus discharging); in a fallback plan, the headroom.
    net_import_kw: non-flexible load - PV + flexible consumption at the connection.
    flexibility_up_kw / _down_kw: see docs/optimizer.md (Flexibility)."""

    start: datetime
    resolution: timedelta
    status: PlanStatus
    solver_status: str
    message: str
    engine: str
    objective: float  # solver objective (NaN for a fallback)
    cost_eur: float  # energy cost at the given prices plus battery usage cost
    capacity_kw: np.ndarray
    net_import_kw: np.ndarray
    flexibility_up_kw: np.ndarray
    flexibility_down_kw: np.ndarray
    chargers: tuple[ChargerPlan, ...]
    batteries: tuple[BatteryPlan, ...]
    relaxations: tuple[Relaxation, ...]
    timings: Timings

    @property
    def fallback(self) -> bool:
        return self.status is PlanStatus.FALLBACK

    @property
    def relaxation_kinds(self) -> tuple[str, ...]:
        return tuple(str(r.kind) for r in self.relaxations)

    def charger(self, charger_id: str) -> ChargerPlan:
        return next(c for c in self.chargers if c.id == charger_id)

    def battery(self, battery_id: str) -> BatteryPlan:
        return next(b for b in self.batteries if b.id == battery_id)


@dataclass(frozen=True, eq=False)
class StoragePlan:
    """consumption_kw: the device message schedule, + charging, - discharging (USEF);
    soc_kwh at the end of each block."""

    start: datetime
    resolution: timedelta
    status: PlanStatus
    solver_status: str
    message: str
    engine: str
    objective: float
    cost_eur: float
    consumption_kw: np.ndarray
    soc_kwh: np.ndarray
    relaxations: tuple[Relaxation, ...]
    timings: Timings

    @property
    def fallback(self) -> bool:
        return self.status is PlanStatus.FALLBACK

    @property
    def relaxation_kinds(self) -> tuple[str, ...]:
        return tuple(str(r.kind) for r in self.relaxations)
