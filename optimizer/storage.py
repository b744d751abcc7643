"""Solve a StorageProblem: the USEF device message schedule for one storage device.

The schedule is the device's consumption per block (kW, + charging, - discharging), the
cheapest one that reaches its SoC targets within its SoC and power limits, charging sooner
and discharging later when prices tie (FlexMeasures 7.2). Never raises: without a solver
plan the device idles (fallback.py).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from optimizer import engines
from optimizer.checks import frozen, per_block
from optimizer.costs import energy_cost
from optimizer.fallback import idle_plan
from optimizer.formulation import from_storage
from optimizer.plans import PlanStatus, StoragePlan, Timings
from optimizer.problems import StorageProblem
from optimizer.relaxations import used

ROUND_OFF = 1e-9


def _solve(problem: StorageProblem, started: float) -> StoragePlan:
    form = from_storage(problem)
    prepared = time.perf_counter() - started
    run = engines.run(form, problem.solver)
    if not run.found:
        timings = Timings(prepared + run.build_s, run.solve_s, 0.0)
        plan = idle_plan(problem, f"solver found no plan: {run.solver_status}", timings)
        return replace(plan, solver_status=run.solver_status)
    extracting = time.perf_counter()
    raw = run.read()
    st = form.storages
    charge = np.clip(raw.charge_kw[0], 0.0, st.max_charge[0])
    discharge = np.clip(raw.discharge_kw[0], 0.0, st.max_discharge[0])
    consumption = charge - discharge
    consumption[np.abs(consumption) < ROUND_OFF] = 0.0
    production = per_block(problem.production_price_eur_per_kwh)
    plan = StoragePlan(
        start=problem.start,
        resolution=problem.resolution,
        status=PlanStatus.OPTIMAL if run.proven else PlanStatus.FEASIBLE,
        solver_status=run.solver_status,
        message="" if run.proven else f"{run.solver_status}: best plan found, not proven optimal",
        engine=str(problem.solver.engine),
        objective=raw.objective,
        cost_eur=energy_cost(
            problem.hours,
            consumption,
            problem.price_eur_per_kwh,
            problem.price_eur_per_kwh if production is None else production,
        ),
        consumption_kw=frozen(consumption),
        soc_kwh=frozen(np.clip(raw.soc_kwh[0], st.floor[0], st.ceiling[0])),
        relaxations=used(form, raw, [], []),
        timings=Timings(),
    )
    timings = Timings(prepared + run.build_s, run.solve_s, time.perf_counter() - extracting)
    return replace(plan, timings=timings)


def solve_storage(problem: StorageProblem) -> StoragePlan:
    """The optimal schedule, or the flagged idle plan; never an exception."""
    started = time.perf_counter()
    try:
        return _solve(problem, started)
    except Exception as exc:  # a peer gets a fallback plan, never a traceback
        elapsed = Timings(build_s=time.perf_counter() - started)
        return idle_plan(problem, f"solve failed: {type(exc).__name__}: {exc}", elapsed)
