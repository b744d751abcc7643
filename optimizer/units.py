"""Current <-> power for a grid connection (DESIGN 4: A <-> kW needs voltage, phase count
and power factor; defaults 230 V, 3 phases, 1.0).

    P [kW] = phases * V * I * pf / 1000

with V the phase-to-neutral voltage and I the current per phase: a 3 x 25 A connection at
230 V and pf 1 carries 3 * 230 * 25 / 1000 = 17.25 kW.
"""

from __future__ import annotations

import numpy as np

from optimizer.checks import integer, number, positive

ArrayOrFloat = float | np.ndarray


def _factor(voltage_v: float, phases: int, power_factor: float) -> float:
    positive("voltage_v", voltage_v)
    integer("phases", phases, low=1, high=3)
    number("power_factor", power_factor, low=0.0, high=1.0)
    positive("power_factor", power_factor)
    return phases * voltage_v * power_factor / 1000.0


def amps_to_kw(
    amps: ArrayOrFloat, voltage_v: float = 230.0, phases: int = 3, power_factor: float = 1.0
) -> ArrayOrFloat:
    """Per-phase current limit (A, scalar or array) -> active power (kW)."""
    factor = _factor(voltage_v, phases, power_factor)
    if isinstance(amps, np.ndarray):
        return np.asarray(amps, dtype=np.float64) * factor
    return float(amps) * factor


def kw_to_amps(
    kw: ArrayOrFloat, voltage_v: float = 230.0, phases: int = 3, power_factor: float = 1.0
) -> ArrayOrFloat:
    """Active power (kW, scalar or array) -> per-phase current (A); inverse of amps_to_kw."""
    factor = _factor(voltage_v, phases, power_factor)
    if isinstance(kw, np.ndarray):
        return np.asarray(kw, dtype=np.float64) / factor
    return float(kw) / factor
