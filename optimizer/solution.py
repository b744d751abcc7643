"""What either build hands back: the solver's verdict and the variable values by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class RawSolution:
    """Variable values, shaped like the Formulation: units U, storages B, targets K."""

    unit_kw: np.ndarray  # (U, T), 0 where not connected
    unit_on: np.ndarray  # (U, T) bool; False for continuous units
    unmet_energy: np.ndarray  # (U,) kWh
    unmet_demand: np.ndarray  # (U, T) kW
    flexible_kw: np.ndarray  # (T,)
    import_kw: np.ndarray  # (T,)
    over_limit_kw: np.ndarray  # (T,)
    charge_kw: np.ndarray  # (B, T)
    discharge_kw: np.ndarray  # (B, T)
    soc_kwh: np.ndarray  # (B, T)
    below_kwh: np.ndarray  # (B, T) under the low threshold
    above_kwh: np.ndarray  # (B, T) over the high threshold
    target_short_kwh: np.ndarray  # (K,)
    target_excess_kwh: np.ndarray  # (K,)
    objective: float


@dataclass(frozen=True)
class EngineRun:
    """`found`: the solver holds a primal feasible solution; `proven`: it is optimal (MIP:
    within the gap). `read` fetches the solution (timed as extraction)."""

    found: bool
    proven: bool
    solver_status: str
    build_s: float
    solve_s: float
    read: Callable[[], RawSolution]
