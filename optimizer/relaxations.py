"""Which relaxations a solution used, and how much (docs/optimizer.md, Relaxations)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from optimizer.formulation import Formulation
from optimizer.plans import Relaxation, RelaxationKind
from optimizer.solution import RawSolution

# Below this many kWh a slack is solver noise, not a relaxation.
TOLERANCE = 1e-6


def _names(groups: Sequence[Sequence[str]], used: np.ndarray) -> tuple[str, ...]:
    if not groups:  # a single device (StorageProblem) has no ids to list
        return ()
    return tuple(name for index in np.flatnonzero(used) for name in groups[int(index)])


def used(
    form: Formulation,
    raw: RawSolution,
    unit_ids: Sequence[Sequence[str]],
    storage_ids: Sequence[str],
) -> tuple[Relaxation, ...]:
    """In relaxation order. unit_ids: the charger ids behind each unit; empty id lists
    leave the assets out."""
    found = []
    unmet = raw.unmet_energy + form.hours * raw.unmet_demand.sum(axis=1)
    if unmet.sum() > TOLERANCE:
        names = _names(unit_ids, unmet > TOLERANCE)
        found.append(Relaxation(RelaxationKind.UNMET_ENERGY, float(unmet.sum()), names))
    missed = raw.target_short_kwh + raw.target_excess_kwh
    if missed.sum() > TOLERANCE:
        storages = np.zeros(form.storages.size, dtype=bool)
        storages[form.targets.storage[missed > TOLERANCE]] = True
        names = _names([[s] for s in storage_ids], storages)
        found.append(Relaxation(RelaxationKind.SOC_TARGET, float(missed.sum()), names))
    outside = np.maximum(raw.below_kwh, raw.above_kwh)
    if outside.size and outside.max() > TOLERANCE:
        names = _names([[s] for s in storage_ids], outside.max(axis=1) > TOLERANCE)
        found.append(Relaxation(RelaxationKind.SOC_BOUNDS, float(outside.max()), names))
    over = form.hours * raw.over_limit_kw.sum()
    if over > TOLERANCE:
        found.append(Relaxation(RelaxationKind.GRID_LIMIT, float(over)))
    return tuple(found)
