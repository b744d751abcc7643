"""Flexibility up and down around a group plan (docs/optimizer.md, Flexibility).

up[t]: headroom from the plan to the grid limit, max(0, limit - net import). The flexible
load may draw this much more in block t without crossing the limit (asset ratings aside).

down[t]: how far the flexible consumption can drop in block t, with the rest of the plan
unchanged, while every need the plan meets stays met: energy by each deadline (only what
the plan delivers beyond the need can go), demand forecasts in their block, each storage's
SoC thresholds and end threshold in block t and every later block, and every asset's own
minimum power. Charging drops first, then discharging rises. This is firm flexibility: it
can be activated in any one block without re-planning. It does not add up over blocks (one
EV's surplus energy can be dropped once).
"""

from __future__ import annotations

import numpy as np

from optimizer.formulation import Formulation
from optimizer.solution import RawSolution

TOLERANCE = 1e-9
ROUND_OFF = 1e-6


def up(limit_kw: np.ndarray, net_import_kw: np.ndarray) -> np.ndarray:
    headroom: np.ndarray = np.maximum(0.0, limit_kw - net_import_kw)
    return headroom


def _charger_least(form: Formulation, raw: RawSolution) -> np.ndarray:
    """(U, T): the least kW each unit could draw in each block, the others held."""
    units, hours = form.units, form.hours
    kw = np.maximum(raw.unit_kw, 0.0)
    counted = units.connected & (np.arange(form.blocks)[None, :] < units.deadline[:, None])
    delivered = hours * np.where(counted, kw, 0.0).sum(axis=1)
    surplus = np.maximum(0.0, delivered - (units.energy - raw.unmet_energy))
    need = np.where(
        units.has_energy[:, None] & counted, np.maximum(0.0, kw - surplus[:, None] / hours), 0.0
    )
    forecast = np.minimum(kw, units.demand - raw.unmet_demand)
    need = np.where(units.demand > 0, forecast, need)
    floor = np.maximum(units.lower[:, None], need)
    # A continuous charger keeps its minimum while plugged in; a switch can go to 0.
    continuous = np.where(units.connected, floor, 0.0)
    switched = np.where(need > TOLERANCE, floor, 0.0)
    least: np.ndarray = np.minimum(kw, np.where(units.on_off[:, None], switched, continuous))
    return least


def _storage_drop(form: Formulation, raw: RawSolution) -> np.ndarray:
    """(B, T): kW each storage could shift down in each block, the others held."""
    st, tg, hours = form.storages, form.targets, form.hours
    keep = np.repeat(st.low[:, None], form.blocks, axis=1)
    for k in range(tg.size):
        b, t = tg.storage[k], tg.block[k]
        # An exact target pins the SoC there; a minimum target raises the floor there.
        keep[b, t] = tg.value[k] if tg.exact[k] else max(keep[b, t], tg.value[k])
    margin = raw.soc_kwh - keep
    # Less SoC in block t is less SoC in every later block too.
    margin = np.maximum(0.0, np.minimum.accumulate(margin[:, ::-1], axis=1)[:, ::-1])
    eta_c, eta_d = st.eta_charge[:, None], st.eta_discharge[:, None]
    charge = np.maximum(raw.charge_kw, 0.0)
    less_charge = np.minimum(charge, margin / (hours * eta_c))
    left = margin - hours * eta_c * less_charge
    room = np.maximum(0.0, st.max_discharge[:, None] - raw.discharge_kw)
    drop: np.ndarray = less_charge + np.minimum(room, left * eta_d / hours)
    return drop


def down(form: Formulation, raw: RawSolution) -> np.ndarray:
    kw = np.maximum(raw.unit_kw, 0.0)
    chargers = np.maximum(0.0, kw - _charger_least(form, raw)).sum(axis=0)
    total = chargers + _storage_drop(form, raw).sum(axis=0)
    # Solver round-off (1e-8 kW) is no flexibility.
    return np.where(total < ROUND_OFF, 0.0, total)
