"""Solve a GroupProblem: optimal capacity, setpoints and flexibility for one connection.

solve_group never raises: a solver failure, a time-out without a plan or an unexpected
error returns the headroom plan flagged as a fallback (fallback.py), with the reason.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from optimizer import engines, flexibility
from optimizer.aggregate import Units
from optimizer.assets import ChargerMode
from optimizer.checks import frozen, per_block
from optimizer.costs import energy_cost, usage_cost
from optimizer.fallback import headroom_plan
from optimizer.formulation import Formulation, from_group
from optimizer.options import Engine
from optimizer.plans import BatteryPlan, ChargerPlan, GroupPlan, PlanStatus, Timings
from optimizer.problems import GroupProblem
from optimizer.relaxations import used
from optimizer.solution import RawSolution

# Values this close to zero are solver round-off: a plan says 0 kW, not 1e-12 kW.
ROUND_OFF = 1e-9


def _clean(values: np.ndarray, low: np.ndarray | float, high: np.ndarray | float) -> np.ndarray:
    result = np.clip(values, low, high)
    result[np.abs(result) < ROUND_OFF] = 0.0
    return frozen(result)


def _chargers(problem: GroupProblem, merged: Units, raw: RawSolution) -> tuple[ChargerPlan, ...]:
    """Units back to chargers: a merged unit's plan is split evenly over its members."""
    share = merged.count[merged.members]
    kw = raw.unit_kw[merged.members] / share[:, None]
    on = raw.unit_on[merged.members]
    unmet = (
        raw.unmet_energy[merged.members] + problem.hours * raw.unmet_demand[merged.members].sum(1)
    ) / share
    plans = []
    for index, charger in enumerate(problem.chargers):
        plugged = charger.plugged(problem.blocks)
        if charger.mode is ChargerMode.ON_OFF:
            power = _clean(kw[index], 0.0, np.where(on[index] & plugged, charger.max_kw, 0.0))
            # On means drawing power: with min_kw 0 the solver may leave a switch on at 0 kW.
            plans.append(ChargerPlan(charger.id, power, frozen(power > 0), float(unmet[index])))
        else:
            low = np.where(plugged, charger.min_kw, 0.0)
            power = _clean(kw[index], low, np.where(plugged, charger.max_kw, 0.0))
            plans.append(ChargerPlan(charger.id, power, None, float(unmet[index])))
    return tuple(plans)


def _batteries(
    problem: GroupProblem, form: Formulation, raw: RawSolution
) -> tuple[BatteryPlan, ...]:
    st = form.storages
    return tuple(
        BatteryPlan(
            battery.id,
            _clean(raw.charge_kw[b], 0.0, st.max_charge[b]),
            _clean(raw.discharge_kw[b], 0.0, st.max_discharge[b]),
            _clean(raw.soc_kwh[b], st.floor[b], st.ceiling[b]),
        )
        for b, battery in enumerate(problem.batteries)
    )


def _plan(
    problem: GroupProblem, form: Formulation, merged: Units, raw: RawSolution, proven: bool
) -> GroupPlan:
    chargers = _chargers(problem, merged, raw)
    batteries = _batteries(problem, form, raw)
    capacity = np.zeros(problem.blocks)
    for charger in chargers:
        capacity += charger.setpoint_kw
    for battery in batteries:
        capacity += battery.charge_kw - battery.discharge_kw
    net = form.fixed_kw + capacity
    unit_ids: list[list[str]] = [[] for _ in range(merged.size)]
    for index, unit in enumerate(merged.members):
        unit_ids[unit].append(problem.chargers[index].id)
    usage = usage_cost(
        problem.hours,
        raw.charge_kw,
        raw.discharge_kw,
        form.storages.cost_charge,
        form.storages.cost_discharge,
    )
    energy = energy_cost(
        problem.hours, net, problem.price_eur_per_kwh, per_block(problem.export_price_eur_per_kwh)
    )
    return GroupPlan(
        start=problem.start,
        resolution=problem.resolution,
        status=PlanStatus.OPTIMAL if proven else PlanStatus.FEASIBLE,
        solver_status="",
        message="",
        engine=str(problem.solver.engine),
        objective=raw.objective,
        cost_eur=energy + usage,
        capacity_kw=frozen(capacity),
        net_import_kw=frozen(net),
        flexibility_up_kw=frozen(flexibility.up(per_block(problem.grid_limit_kw), net)),
        flexibility_down_kw=frozen(flexibility.down(form, raw)),
        chargers=chargers,
        batteries=batteries,
        relaxations=used(form, raw, unit_ids, [b.id for b in problem.batteries]),
        timings=Timings(),
    )


def _solve(problem: GroupProblem, started: float) -> GroupPlan:
    options = problem.solver
    form, merged = from_group(problem, options.aggregate and options.engine is Engine.HIGHS)
    prepared = time.perf_counter() - started
    run = engines.run(form, options)
    if not run.found:
        timings = Timings(prepared + run.build_s, run.solve_s, 0.0)
        plan = headroom_plan(problem, f"solver found no plan: {run.solver_status}", timings)
        return replace(plan, solver_status=run.solver_status)
    extracting = time.perf_counter()
    plan = _plan(problem, form, merged, run.read(), run.proven)
    message = "" if run.proven else f"{run.solver_status}: best plan found, not proven optimal"
    timings = Timings(prepared + run.build_s, run.solve_s, time.perf_counter() - extracting)
    return replace(plan, solver_status=run.solver_status, message=message, timings=timings)


def solve_group(problem: GroupProblem) -> GroupPlan:
    """The optimal plan, or the flagged headroom plan; never an exception."""
    started = time.perf_counter()
    try:
        return _solve(problem, started)
    except Exception as exc:  # a peer gets a fallback plan, never a traceback
        elapsed = Timings(build_s=time.perf_counter() - started)
        return headroom_plan(problem, f"solve failed: {type(exc).__name__}: {exc}", elapsed)
