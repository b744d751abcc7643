"""Merging identical continuous chargers into one unit, exactly.

k continuous chargers with the same bounds, need, deadline, demand and connection mask are
one unit with k times the bounds, need and demand. Exact both ways: any plan of the k
chargers sums to a feasible unit plan of the same cost (all terms are linear), and a unit
plan split evenly (each charger gets 1/k) is feasible for every charger at the same cost.
On/off chargers are never merged: a count of switched-on chargers does not split back into
individual schedules that each meet their own need.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimizer.assets import Charger, ChargerMode


@dataclass(frozen=True, eq=False)
class Units:
    members: np.ndarray  # unit index of each charger
    count: np.ndarray  # chargers per unit
    first: np.ndarray  # a charger standing for each unit

    @property
    def size(self) -> int:
        return int(self.count.size)


def _key(index: int, charger: Charger, blocks: int) -> tuple[object, ...]:
    if charger.mode is ChargerMode.ON_OFF:
        return ("single", index)
    demand = None if charger.demand_kw is None else charger.demand_kw.tobytes()
    return (
        charger.min_kw,
        charger.max_kw,
        charger.energy_kwh,
        charger.deadline(blocks),
        demand,
        charger.plugged(blocks).tobytes(),
    )


def merge(chargers: tuple[Charger, ...], blocks: int, enabled: bool) -> Units:
    if not enabled:
        identity = np.arange(len(chargers))
        return Units(identity, np.ones(len(chargers)), identity)
    first_of: dict[tuple[object, ...], int] = {}
    members = np.empty(len(chargers), dtype=np.int64)
    for index, charger in enumerate(chargers):
        members[index] = first_of.setdefault(_key(index, charger, blocks), len(first_of))
    count = np.bincount(members, minlength=len(first_of)).astype(np.float64)
    first = np.empty(len(first_of), dtype=np.int64)
    first[members[::-1]] = np.arange(len(chargers))[::-1]
    return Units(members, count, first)
