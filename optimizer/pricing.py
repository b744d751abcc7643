"""Prices as the formulation uses them: the tie-breaking slope and the export price.

Slope (FlexMeasures 7.2): prefer charging sooner and discharging later by a tiny artificial
price slope that penalises the future with at most 1/1000 of the price spread. Here it is a
COST on both directions, never a revenue: charging costs eps * t / (T - 1) extra per kWh,
discharging eps * (T - 1 - t) / (T - 1). Were the slope a revenue on discharging, a
lossless battery could cycle to earn it; as two costs, cycling never pays.
"""

from __future__ import annotations

import numpy as np

SLOPE_SHARE = 1e-3


def slope_size(prices: np.ndarray) -> float:
    """1/1000 of the spread; with equal prices (no spread) 1/1000 of the price level (or of
    1 EUR/kWh at zero prices), so that equal prices still charge sooner."""
    spread = float(prices.max() - prices.min())
    if spread > 0:
        return SLOPE_SHARE * spread
    level = float(np.abs(prices).max())
    return SLOPE_SHARE * (level if level > 0 else 1.0)


def slopes(prices: np.ndarray, enabled: bool) -> tuple[np.ndarray, np.ndarray]:
    """(charge slope, discharge slope), EUR/kWh per block."""
    blocks = prices.size
    if not enabled or blocks < 2:
        return np.zeros(blocks), np.zeros(blocks)
    ramp = np.arange(blocks) / (blocks - 1)
    size = slope_size(prices)
    return size * ramp, size * ramp[::-1]


def export_price(import_price: np.ndarray, export: np.ndarray | None) -> np.ndarray:
    """The export price the LP uses: never above the import price in the same block. One
    meter nets import and export; with export dearer than import the cost of the net
    exchange is not convex (an LP would import and export at once to earn the gap), so in
    such blocks exported energy is valued at the import price. Without an export price,
    export earns nothing (or costs the import price when that is negative)."""
    offered = np.zeros_like(import_price) if export is None else export
    price: np.ndarray = np.minimum(offered, import_price)
    return price
