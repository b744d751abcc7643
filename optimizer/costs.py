"""What a plan costs in money, at the prices given (no slope, no penalties)."""

from __future__ import annotations

import numpy as np


def energy_cost(
    hours: float, net_kw: np.ndarray, price: np.ndarray, export_price: np.ndarray | None
) -> float:
    """Import paid at the import price, export earning the export price (0 when none)."""
    earned = np.zeros_like(price) if export_price is None else export_price
    imported = np.maximum(net_kw, 0.0)
    exported = np.maximum(-net_kw, 0.0)
    return float(hours * np.sum(price * imported - earned * exported))


def usage_cost(
    hours: float,
    charge_kw: np.ndarray,
    discharge_kw: np.ndarray,
    cost_charging: np.ndarray,
    cost_discharging: np.ndarray,
) -> float:
    """Battery wear: EUR per kWh charged and per kWh discharged (CP-API CostCharging...)."""
    charged = hours * charge_kw.sum(axis=1) if charge_kw.size else np.zeros(0)
    discharged = hours * discharge_kw.sum(axis=1) if discharge_kw.size else np.zeros(0)
    return float(np.sum(cost_charging * charged) + np.sum(cost_discharging * discharged))
