"""The two problems the optimizer solves, as validated values.

GroupProblem: the charge management operator's job for one grid connection (capacity,
setpoints, flexibility). StorageProblem: one storage device from a USEF device message
(SoC now, SoC targets, limits, prices) -> a consumption schedule.

The price array defines the horizon: one block per price. Every other per-block field takes
a number (the same in every block) or one value per block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import numpy as np

from optimizer.assets import Battery, Charger
from optimizer.checks import aware, duration, flag, integer, number, series, unique_ids
from optimizer.errors import ProblemError
from optimizer.limits import check_horizon, check_size
from optimizer.options import Penalties, SolveOptions

_T = TypeVar("_T")


def _members(name: str, items: Any, kind: type[_T]) -> tuple[_T, ...]:
    """A tuple of `kind`; errors raised while checking item i are reported as name[i]."""
    if not isinstance(items, list | tuple):
        raise ProblemError(name, "must be a list")
    for index, item in enumerate(items):
        if not isinstance(item, kind):
            raise ProblemError(f"{name}[{index}]", f"must be a {kind.__name__}")
    return tuple(items)


def _horizon(start: Any, resolution: Any, price: Any) -> np.ndarray:
    aware("start", start)
    duration("resolution", resolution)
    prices = series("price_eur_per_kwh", price, None)
    check_horizon(start, resolution, prices.size)
    return prices


def _settings(problem: Any) -> None:
    flag("prefer_charging_sooner", problem.prefer_charging_sooner)
    if not isinstance(problem.penalties, Penalties):
        raise ProblemError("penalties", "must be a Penalties")
    if not isinstance(problem.solver, SolveOptions):
        raise ProblemError("solver", "must be a SolveOptions")


@dataclass(frozen=True, eq=False)
class GroupProblem:
    """One grid connection: its import limit, the non-flexible load and PV behind it, the
    flexible assets and the prices. All powers in kW, prices in EUR/kWh, PV as a magnitude.
    Without an export price, exported energy earns nothing."""

    start: datetime
    resolution: timedelta
    price_eur_per_kwh: np.ndarray
    grid_limit_kw: np.ndarray | float
    non_flexible_kw: np.ndarray | float = 0.0
    pv_kw: np.ndarray | float = 0.0
    export_price_eur_per_kwh: np.ndarray | float | None = None
    chargers: tuple[Charger, ...] = ()
    batteries: tuple[Battery, ...] = ()
    prefer_charging_sooner: bool = True
    penalties: Penalties = field(default_factory=Penalties)
    solver: SolveOptions = field(default_factory=SolveOptions)

    def __post_init__(self) -> None:
        price = _horizon(self.start, self.resolution, self.price_eur_per_kwh)
        blocks = price.size
        put = object.__setattr__
        put(self, "price_eur_per_kwh", price)
        put(self, "grid_limit_kw", series("grid_limit_kw", self.grid_limit_kw, blocks, low=0))
        put(self, "non_flexible_kw", series("non_flexible_kw", self.non_flexible_kw, blocks))
        put(self, "pv_kw", series("pv_kw", self.pv_kw, blocks, low=0))
        if self.export_price_eur_per_kwh is not None:
            export = series("export_price_eur_per_kwh", self.export_price_eur_per_kwh, blocks)
            put(self, "export_price_eur_per_kwh", export)
        put(self, "chargers", _members("chargers", self.chargers, Charger))
        put(self, "batteries", _members("batteries", self.batteries, Battery))
        check_size(blocks, len(self.chargers) + len(self.batteries))
        for index, charger in enumerate(self.chargers):
            try:
                charger.check_horizon(blocks)
            except ProblemError as exc:
                raise exc.inside(f"chargers[{index}]") from None
        unique_ids("assets", [a.id for a in self.chargers] + [b.id for b in self.batteries])
        _settings(self)
        self.penalties.check_prices(self._highest_price())

    def _highest_price(self) -> float:
        highest = float(np.abs(self.price_eur_per_kwh).max())
        if self.export_price_eur_per_kwh is not None:
            highest = max(highest, float(np.abs(self.export_price_eur_per_kwh).max()))
        return highest

    @property
    def blocks(self) -> int:
        return int(self.price_eur_per_kwh.size)

    @property
    def hours(self) -> float:
        """Block length in hours: kW * hours = kWh."""
        return self.resolution.total_seconds() / 3600.0


@dataclass(frozen=True)
class SocTarget:
    """The SoC (kWh) the device should hold at the END of block `block`, i.e. at time
    start + (block + 1) * resolution (a USEF target's datetime is that instant)."""

    block: int
    soc_kwh: float

    def __post_init__(self) -> None:
        integer("block", self.block, low=0)
        number("soc_kwh", self.soc_kwh, low=0.0)


@dataclass(frozen=True, eq=False)
class StorageProblem:
    """One storage device (battery, one-way or two-way EVSE) as in a USEF UDI event:
    SoC now (0 when unknown, FlexMeasures 7.2), targets, SoC limits, power limits and a
    round-trip efficiency split evenly over charging and discharging. Consumption prices
    per block; production earns `production_price_eur_per_kwh` (default: the same price)."""

    start: datetime
    resolution: timedelta
    price_eur_per_kwh: np.ndarray
    soc_max_kwh: float
    max_charge_kw: float
    max_discharge_kw: float = 0.0
    soc_kwh: float = 0.0
    soc_min_kwh: float = 0.0
    roundtrip_efficiency: float = 1.0
    targets: tuple[SocTarget, ...] = ()
    production_price_eur_per_kwh: np.ndarray | float | None = None
    prefer_charging_sooner: bool = True
    penalties: Penalties = field(default_factory=Penalties)
    solver: SolveOptions = field(default_factory=SolveOptions)

    def __post_init__(self) -> None:
        price = _horizon(self.start, self.resolution, self.price_eur_per_kwh)
        blocks = price.size
        object.__setattr__(self, "price_eur_per_kwh", price)
        if self.production_price_eur_per_kwh is not None:
            production = series(
                "production_price_eur_per_kwh", self.production_price_eur_per_kwh, blocks
            )
            object.__setattr__(self, "production_price_eur_per_kwh", production)
        low = number("soc_min_kwh", self.soc_min_kwh, low=0.0)
        high = number("soc_max_kwh", self.soc_max_kwh, low=low)
        # A SoC outside [min, max] is a state, not an error: the solve relaxes the bounds.
        number("soc_kwh", self.soc_kwh, low=0.0)
        number("max_charge_kw", self.max_charge_kw, low=0.0)
        number("max_discharge_kw", self.max_discharge_kw, low=0.0)
        number("roundtrip_efficiency", self.roundtrip_efficiency, high=1.0)
        if self.roundtrip_efficiency <= 0:
            raise ProblemError("roundtrip_efficiency", "must be > 0")
        object.__setattr__(self, "targets", _members("targets", self.targets, SocTarget))
        self._check_targets(blocks, low, high)
        _settings(self)
        highest = float(np.abs(price).max())
        if self.production_price_eur_per_kwh is not None:
            highest = max(highest, float(np.abs(self.production_price_eur_per_kwh).max()))
        self.penalties.check_prices(highest)

    def _check_targets(self, blocks: int, low: float, high: float) -> None:
        seen: set[int] = set()
        for index, target in enumerate(self.targets):
            name = f"targets[{index}]"
            if target.block >= blocks:
                raise ProblemError(f"{name}.block", f"must be < {blocks} (the horizon)")
            if target.block in seen:
                raise ProblemError(f"{name}.block", "two targets for the same time")
            if not low <= target.soc_kwh <= high:
                raise ProblemError(f"{name}.soc_kwh", f"outside [{low:g}, {high:g}] kWh")
            seen.add(target.block)

    @property
    def blocks(self) -> int:
        return int(self.price_eur_per_kwh.size)

    @property
    def hours(self) -> float:
        return self.resolution.total_seconds() / 3600.0
