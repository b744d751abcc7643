"""The flexible assets behind a connection: EV chargers and batteries (CP-API Table 1)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from optimizer.checks import frozen, integer, mask, number, positive, series
from optimizer.errors import ProblemError


class ChargerMode(StrEnum):
    """CP-API ControllableType: a continuous setpoint, or a switch."""

    CONTINUOUS = "continuous"
    ON_OFF = "on_off"


def _name(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ProblemError("id", "must be a non-empty string")
    return value


@dataclass(frozen=True, eq=False)
class Charger:
    """One EV charger.

    continuous: draws min_kw..max_kw in every connected block (min_kw 0 lets it pause).
    on_off: off (0 kW) or on at min_kw..max_kw; min_kw == max_kw is a pure switch.
    Needs (at most one): `energy_kwh` delivered within blocks [0, deadline_block)
    (deadline_block None = the whole horizon), or `demand_kw`, a forecast served in its
    own block. `connected` masks the blocks the EV is plugged in (None = all).
    """

    id: str
    max_kw: float
    min_kw: float = 0.0
    mode: ChargerMode = ChargerMode.CONTINUOUS
    energy_kwh: float | None = None
    deadline_block: int | None = None
    demand_kw: np.ndarray | None = None
    connected: np.ndarray | None = None

    def __post_init__(self) -> None:
        _name(self.id)
        max_kw = number("max_kw", self.max_kw, low=0.0)
        number("min_kw", self.min_kw, low=0.0, high=max_kw)
        try:
            object.__setattr__(self, "mode", ChargerMode(self.mode))
        except ValueError:
            raise ProblemError("mode", "must be 'continuous' or 'on_off'") from None
        if self.energy_kwh is not None:
            number("energy_kwh", self.energy_kwh, low=0.0)
        if self.deadline_block is not None:
            if self.energy_kwh is None:
                raise ProblemError("deadline_block", "needs energy_kwh")
            integer("deadline_block", self.deadline_block, low=0)
        if self.demand_kw is not None:
            if self.energy_kwh is not None:
                raise ProblemError("demand_kw", "give energy_kwh or demand_kw, not both")
            object.__setattr__(self, "demand_kw", series("demand_kw", self.demand_kw, None, low=0))
        if self.connected is not None:
            size = len(self.connected) if hasattr(self.connected, "__len__") else -1
            object.__setattr__(self, "connected", mask("connected", self.connected, size))

    def check_horizon(self, blocks: int) -> None:
        """Per-block fields against the horizon, once the problem knows it."""
        if self.deadline_block is not None and self.deadline_block > blocks:
            raise ProblemError("deadline_block", f"must be <= {blocks} (the horizon)")
        for name in ("demand_kw", "connected"):
            value = getattr(self, name)
            if value is not None and value.size != blocks:
                raise ProblemError(name, f"has {value.size} values, expected {blocks}")
        if self.demand_kw is not None and self.connected is not None:
            stranded = np.flatnonzero((self.demand_kw > 0) & ~self.connected)
            if stranded.size:
                raise ProblemError(f"demand_kw[{stranded[0]}]", "positive while not connected")

    def plugged(self, blocks: int) -> np.ndarray:
        return self.connected if self.connected is not None else frozen(np.ones(blocks, bool))

    def deadline(self, blocks: int) -> int:
        return blocks if self.deadline_block is None else self.deadline_block


@dataclass(frozen=True, eq=False)
class Battery:
    """A stationary battery, with the CP-API storage properties. Thresholds are fractions
    of capacity (ThresholdDischarge, ThresholdCharge, ThresholdStoredEnergyEndP); costs are
    EUR per kWh charged or discharged (CostCharging, CostDischarging: wear, cycle cost)."""

    id: str
    capacity_kwh: float
    soc_kwh: float
    max_charge_kw: float
    max_discharge_kw: float
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    threshold_min: float = 0.0
    threshold_max: float = 1.0
    threshold_end: float | None = None
    cost_charging: float = 0.0
    cost_discharging: float = 0.0

    def __post_init__(self) -> None:
        _name(self.id)
        capacity = positive("capacity_kwh", self.capacity_kwh)
        number("soc_kwh", self.soc_kwh, low=0.0, high=capacity)
        number("max_charge_kw", self.max_charge_kw, low=0.0)
        number("max_discharge_kw", self.max_discharge_kw, low=0.0)
        for name in ("charge_efficiency", "discharge_efficiency"):
            positive(name, getattr(self, name))
            number(name, getattr(self, name), high=1.0)
        low = number("threshold_min", self.threshold_min, low=0.0, high=1.0)
        high = number("threshold_max", self.threshold_max, low=low, high=1.0)
        if self.threshold_end is not None:
            number("threshold_end", self.threshold_end, low=0.0, high=high)
        number("cost_charging", self.cost_charging, low=0.0)
        number("cost_discharging", self.cost_discharging, low=0.0)
