"""The plans returned when no solver plan exists (failure, time-out, abandoned solve).

Group: the headroom rule. capacity[t] = max(0, limit[t] - non_flexible[t] + pv[t]): the
group may draw what the connection has left. Chargers share it in proportion to their
maximum power (plugged-in chargers only), each capped at its maximum; a charger whose share
is below its minimum power pauses (0 kW, off), so the setpoints never exceed the headroom.
Batteries idle. No flexibility is offered (up = down = 0): nothing was checked against the
needs. Storage: idle (0 kW), the SoC stays where it is.
"""

from __future__ import annotations

import numpy as np

from optimizer.assets import ChargerMode
from optimizer.checks import frozen, per_block
from optimizer.costs import energy_cost
from optimizer.plans import (
    BatteryPlan,
    ChargerPlan,
    GroupPlan,
    PlanStatus,
    StoragePlan,
    Timings,
)
from optimizer.problems import GroupProblem, StorageProblem


def headroom_kw(problem: GroupProblem) -> np.ndarray:
    return np.maximum(0.0, problem.grid_limit_kw - problem.non_flexible_kw + problem.pv_kw)


def _shares(problem: GroupProblem, headroom: np.ndarray) -> np.ndarray:
    """(N, T) kW per charger: headroom split by maximum power over the plugged-in ones."""
    blocks = problem.blocks
    rating = np.array(
        [c.max_kw * c.plugged(blocks) for c in problem.chargers], dtype=np.float64
    ).reshape(-1, blocks)
    total = rating.sum(axis=0)
    # rating / total first: a fraction, so no product of two huge inputs overflows
    fraction = np.divide(rating, total, out=np.zeros_like(rating), where=total > 0)
    share = headroom * fraction
    share = np.minimum(share, rating)
    least = np.array([c.min_kw for c in problem.chargers]).reshape(-1, 1)
    return np.where(share >= least, share, 0.0)


def _charger_plans(problem: GroupProblem, shares: np.ndarray) -> tuple[ChargerPlan, ...]:
    plans = []
    for charger, kw in zip(problem.chargers, shares, strict=True):
        unmet = 0.0
        if charger.energy_kwh is not None:
            delivered = problem.hours * kw[: charger.deadline(problem.blocks)].sum()
            unmet = max(0.0, charger.energy_kwh - delivered)
        elif charger.demand_kw is not None:
            unmet = problem.hours * float(np.maximum(0.0, charger.demand_kw - kw).sum())
        on = frozen(kw > 0) if charger.mode is ChargerMode.ON_OFF else None
        plans.append(ChargerPlan(charger.id, frozen(kw), on, unmet))
    return tuple(plans)


def headroom_plan(problem: GroupProblem, reason: str, timings: Timings | None = None) -> GroupPlan:
    blocks = problem.blocks
    headroom = headroom_kw(problem)
    shares = _shares(problem, headroom)
    net = problem.non_flexible_kw - problem.pv_kw + shares.sum(axis=0)
    zeros = frozen(np.zeros(blocks))
    batteries = tuple(
        BatteryPlan(b.id, zeros, zeros, frozen(np.full(blocks, b.soc_kwh)))
        for b in problem.batteries
    )
    return GroupPlan(
        start=problem.start,
        resolution=problem.resolution,
        status=PlanStatus.FALLBACK,
        solver_status="none",
        message=reason,
        engine=str(problem.solver.engine),
        objective=float("nan"),
        cost_eur=energy_cost(
            problem.hours,
            net,
            problem.price_eur_per_kwh,
            per_block(problem.export_price_eur_per_kwh),
        ),
        capacity_kw=frozen(headroom),
        net_import_kw=frozen(net),
        flexibility_up_kw=zeros,
        flexibility_down_kw=zeros,
        chargers=_charger_plans(problem, shares),
        batteries=batteries,
        relaxations=(),
        timings=timings or Timings(),
    )


def idle_plan(problem: StorageProblem, reason: str, timings: Timings | None = None) -> StoragePlan:
    blocks = problem.blocks
    return StoragePlan(
        start=problem.start,
        resolution=problem.resolution,
        status=PlanStatus.FALLBACK,
        solver_status="none",
        message=reason,
        engine=str(problem.solver.engine),
        objective=float("nan"),
        cost_eur=0.0,
        consumption_kw=frozen(np.zeros(blocks)),
        soc_kwh=frozen(np.full(blocks, problem.soc_kwh)),
        relaxations=(),
        timings=timings or Timings(),
    )


def fallback_for(problem: GroupProblem | StorageProblem, reason: str) -> GroupPlan | StoragePlan:
    """The fallback plan of either problem (what the pool returns for an abandoned solve)."""
    if isinstance(problem, GroupProblem):
        return headroom_plan(problem, reason)
    if isinstance(problem, StorageProblem):
        return idle_plan(problem, reason)
    raise TypeError(f"no fallback plan for {type(problem).__name__}")
