"""How a problem is solved: solver limits and the relaxation penalties.

The penalties set the relaxation order. Every relaxation is a slack variable priced per kWh
in one solve; a larger price means the solver gives it up later. The order is
unmet_energy < soc_target < soc_bounds < grid_limit, so an infeasible problem first leaves
charging energy unserved, then misses storage targets, then leaves the storage thresholds,
and only breaks the grid limit when nothing flexible can keep it (the non-flexible load
alone is above it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from optimizer.checks import flag, integer, number, positive
from optimizer.errors import ProblemError
from optimizer.limits import MAX_THREADS


class Engine(StrEnum):
    """Two builds of one formulation: `highs` passes numpy arrays straight to HiGHS (fast,
    the default); `pyomo` builds the readable pyomo model and solves it with HiGHS too."""

    HIGHS = "highs"
    PYOMO = "pyomo"


@dataclass(frozen=True)
class SolveOptions:
    """Solver limits. One thread by default: a solve belongs to one pool worker, one core."""

    time_limit_s: float = 30.0
    mip_rel_gap: float = 1e-4
    threads: int = 1
    engine: Engine = Engine.HIGHS
    # Identical continuous chargers are solved as one (exact, see docs/optimizer.md).
    aggregate: bool = True

    def __post_init__(self) -> None:
        positive("time_limit_s", self.time_limit_s)
        number("mip_rel_gap", self.mip_rel_gap, low=0.0, high=1.0)
        integer("threads", self.threads, low=1, high=MAX_THREADS)
        flag("aggregate", self.aggregate)
        try:
            object.__setattr__(self, "engine", Engine(self.engine))
        except ValueError:
            choices = ", ".join(engine.value for engine in Engine)
            raise ProblemError("engine", f"must be one of {choices}") from None


@dataclass(frozen=True)
class Penalties:
    """EUR per kWh of each relaxation (for the grid limit: per kWh above the limit)."""

    unmet_energy: float = 100.0
    soc_target: float = 1_000.0
    soc_bounds: float = 10_000.0
    grid_limit: float = 100_000.0

    def __post_init__(self) -> None:
        values = [
            positive(name, getattr(self, name))
            for name in ("unmet_energy", "soc_target", "soc_bounds", "grid_limit")
        ]
        if not values[0] < values[1] < values[2] < values[3]:
            raise ProblemError(
                "penalties",
                "must increase: unmet_energy < soc_target < soc_bounds < grid_limit",
            )

    def check_prices(self, highest_price: float) -> None:
        """A penalty at or below a price would make leaving energy unserved a bargain."""
        if self.unmet_energy <= highest_price:
            raise ProblemError(
                "penalties.unmet_energy",
                f"must exceed every price (highest {highest_price:g} EUR/kWh)",
            )
