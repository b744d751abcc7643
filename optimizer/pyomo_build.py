"""The readable reference: the formulation as a pyomo model, solved with HiGHS.

Same sets, variables, constraints and objective as highs_build.py; tests hold the two to the
same optimum. Building through pyomo costs seconds where the array build costs milliseconds
(benchmarks/optimizer.py), so this path is for checking and reading, not for serving.
pyomo is imported here only, and only when this engine is chosen.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from optimizer.formulation import Formulation
from optimizer.highs_threads import fresh_scheduler
from optimizer.options import SolveOptions
from optimizer.solution import EngineRun, RawSolution


def _sets(m: Any, form: Formulation) -> None:
    import pyomo.environ as pyo

    units = form.units
    pairs = [(int(u), int(t)) for u, t in zip(*np.nonzero(units.connected), strict=True)]
    m.T = pyo.Set(initialize=range(form.blocks), ordered=True)
    # (unit, block) pairs where the charger is plugged in: the only blocks it can draw
    m.P = pyo.Set(initialize=pairs, dimen=2, ordered=True)
    m.ONOFF = pyo.Set(initialize=[(u, t) for u, t in pairs if units.on_off[u]], dimen=2)
    m.NEED = pyo.Set(initialize=[int(u) for u in np.flatnonzero(units.has_energy)])
    m.DEMAND = pyo.Set(initialize=[(u, t) for u, t in pairs if units.demand[u, t] > 0], dimen=2)
    m.B = pyo.Set(initialize=range(form.storages.size))
    m.SOFT = pyo.Set(initialize=[int(b) for b in np.flatnonzero(form.storages.soft)])
    m.K = pyo.Set(initialize=range(form.targets.size))


def _variables(m: Any, form: Formulation) -> None:
    import pyomo.environ as pyo

    units, st, tg = form.units, form.storages, form.targets
    nonneg = pyo.NonNegativeReals

    def power_bounds(m: Any, u: int, t: int) -> tuple[float, float]:
        low = 0.0 if units.on_off[u] else units.lower[u]
        return (low, units.upper[u])

    m.p = pyo.Var(m.P, bounds=power_bounds)
    m.on = pyo.Var(m.ONOFF, domain=pyo.Binary)
    m.unmet_energy = pyo.Var(m.NEED, bounds=lambda m, u: (0.0, units.energy[u]))
    m.unmet_demand = pyo.Var(m.DEMAND, bounds=lambda m, u, t: (0.0, units.demand[u, t]))
    m.flexible = pyo.Var(m.T)
    m.imported = pyo.Var(m.T, domain=nonneg)
    if form.limit_kw is not None:
        m.over = pyo.Var(m.T, domain=nonneg)
    m.charge = pyo.Var(m.B, m.T, bounds=lambda m, b, t: (0.0, st.max_charge[b]))
    m.discharge = pyo.Var(m.B, m.T, bounds=lambda m, b, t: (0.0, st.max_discharge[b]))
    m.soc = pyo.Var(m.B, m.T, bounds=lambda m, b, t: (st.floor[b], st.ceiling[b]))
    m.below = pyo.Var(m.SOFT, m.T, domain=nonneg)
    m.above = pyo.Var(m.SOFT, m.T, domain=nonneg)
    m.short = pyo.Var(m.K, domain=nonneg)
    m.excess = pyo.Var(m.K, bounds=lambda m, k: (0.0, None if tg.exact[k] else 0.0))


def _grid_constraints(m: Any, form: Formulation) -> None:
    import pyomo.environ as pyo

    by_block: dict[int, list[int]] = {t: [] for t in range(form.blocks)}
    for u, t in m.P:
        by_block[t].append(u)

    def balance(m: Any, t: int) -> Any:
        storage = sum(m.charge[b, t] - m.discharge[b, t] for b in m.B)
        return m.flexible[t] == sum(m.p[u, t] for u in by_block[t]) + storage

    m.balance = pyo.Constraint(m.T, rule=balance)
    if form.limit_kw is not None:
        m.limit = pyo.Constraint(
            m.T,
            rule=lambda m, t: form.fixed_kw[t] + m.flexible[t] - m.over[t] <= form.limit_kw[t],
        )
    m.importing = pyo.Constraint(
        m.T, rule=lambda m, t: m.imported[t] >= form.fixed_kw[t] + m.flexible[t]
    )


def _charger_constraints(m: Any, form: Formulation) -> None:
    import pyomo.environ as pyo

    units, hours = form.units, form.hours

    def energy(m: Any, u: int) -> Any:
        before = [t for t in range(int(units.deadline[u])) if units.connected[u, t]]
        delivered = sum(hours * m.p[u, t] for t in before)
        return delivered + m.unmet_energy[u] >= units.energy[u]

    m.energy = pyo.Constraint(m.NEED, rule=energy)
    m.served = pyo.Constraint(
        m.DEMAND, rule=lambda m, u, t: m.p[u, t] + m.unmet_demand[u, t] >= units.demand[u, t]
    )
    m.switch_upper = pyo.Constraint(
        m.ONOFF, rule=lambda m, u, t: m.p[u, t] <= units.upper[u] * m.on[u, t]
    )

    def switch_lower(m: Any, u: int, t: int) -> Any:
        if units.lower[u] <= 0:
            return pyo.Constraint.Skip
        return m.p[u, t] >= units.lower[u] * m.on[u, t]

    m.switch_lower = pyo.Constraint(m.ONOFF, rule=switch_lower)


def _storage_constraints(m: Any, form: Formulation) -> None:
    import pyomo.environ as pyo

    st, tg, hours = form.storages, form.targets, form.hours

    def stock(m: Any, b: int, t: int) -> Any:
        before = st.soc0[b] if t == 0 else m.soc[b, t - 1]
        gained = hours * st.eta_charge[b] * m.charge[b, t]
        lost = hours * m.discharge[b, t] / st.eta_discharge[b]
        return m.soc[b, t] == before + gained - lost

    m.stock = pyo.Constraint(m.B, m.T, rule=stock)
    m.low = pyo.Constraint(
        m.SOFT, m.T, rule=lambda m, b, t: m.soc[b, t] + m.below[b, t] >= st.low[b]
    )
    m.high = pyo.Constraint(
        m.SOFT, m.T, rule=lambda m, b, t: m.soc[b, t] - m.above[b, t] <= st.high[b]
    )

    def target(m: Any, k: int) -> Any:
        reached = m.soc[int(tg.storage[k]), int(tg.block[k])] + m.short[k] - m.excess[k]
        return reached == tg.value[k] if tg.exact[k] else reached >= tg.value[k]

    m.target = pyo.Constraint(m.K, rule=target)


def _objective(m: Any, form: Formulation) -> None:
    import pyomo.environ as pyo

    hours, pen, st = form.hours, form.penalties, form.storages

    def energy_cost(m: Any) -> Any:
        return form.offset + sum(
            hours * (form.import_price[t] - form.export_price[t]) * m.imported[t]
            + hours * form.export_price[t] * m.flexible[t]
            for t in m.T
        )

    def usage_cost(m: Any) -> Any:
        charging = sum(hours * form.charge_slope[t] * m.p[u, t] for u, t in m.P)
        storage = sum(
            hours * (form.charge_slope[t] + st.cost_charge[b]) * m.charge[b, t]
            + hours * (form.discharge_slope[t] + st.cost_discharge[b]) * m.discharge[b, t]
            for b in m.B
            for t in m.T
        )
        return charging + storage

    def penalties(m: Any) -> Any:
        over = sum(pen.grid_limit * hours * m.over[t] for t in m.T) if hasattr(m, "over") else 0
        return (
            sum(pen.unmet_energy * m.unmet_energy[u] for u in m.NEED)
            + sum(pen.unmet_energy * hours * m.unmet_demand[u, t] for u, t in m.DEMAND)
            + sum(pen.soc_bounds * (m.below[b, t] + m.above[b, t]) for b in m.SOFT for t in m.T)
            + sum(pen.soc_target * (m.short[k] + m.excess[k]) for k in m.K)
            + over
        )

    m.cost = pyo.Objective(expr=energy_cost(m) + usage_cost(m) + penalties(m))


def build(form: Formulation) -> Any:
    import pyomo.environ as pyo

    m = pyo.ConcreteModel("flexbridge")
    _sets(m, form)
    _variables(m, form)
    _grid_constraints(m, form)
    _charger_constraints(m, form)
    _storage_constraints(m, form)
    _objective(m, form)
    return m


def _values(var: Any, shape: tuple[int, ...]) -> np.ndarray:
    result = np.zeros(shape)
    for index, v in var.items():
        result[index] = 0.0 if v.value is None else v.value
    return result


def _read(m: Any, form: Formulation, objective: float) -> RawSolution:
    units, blocks, st = form.units, form.blocks, form.storages
    pairs = (units.size, blocks)
    stores = (st.size, blocks)
    unmet_energy = np.zeros(units.size)
    for u, v in m.unmet_energy.items():
        unmet_energy[u] = v.value or 0.0
    return RawSolution(
        unit_kw=_values(m.p, pairs),
        unit_on=_values(m.on, pairs) > 0.5,
        unmet_energy=unmet_energy,
        unmet_demand=_values(m.unmet_demand, pairs),
        flexible_kw=_values(m.flexible, (blocks,)),
        import_kw=_values(m.imported, (blocks,)),
        over_limit_kw=_values(m.over, (blocks,)) if hasattr(m, "over") else np.zeros(blocks),
        charge_kw=_values(m.charge, stores),
        discharge_kw=_values(m.discharge, stores),
        soc_kwh=_values(m.soc, stores),
        below_kwh=_values(m.below, stores),
        above_kwh=_values(m.above, stores),
        target_short_kwh=_values(m.short, (form.targets.size,)),
        target_excess_kwh=_values(m.excess, (form.targets.size,)),
        objective=objective,
    )


def solve(form: Formulation, options: SolveOptions) -> EngineRun:
    from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition
    from pyomo.contrib.solver.solvers.highs import Highs

    started = time.perf_counter()
    m = build(form)
    built = time.perf_counter()
    fresh_scheduler()  # pyomo runs HiGHS in this thread too (highs_threads.py)
    result = Highs().solve(
        m,
        time_limit=options.time_limit_s,
        rel_gap=options.mip_rel_gap,
        solver_options={"threads": options.threads},
        load_solutions=False,
        raise_exception_on_nonoptimal_result=False,
    )
    solved = time.perf_counter()
    found = result.solution_status in (SolutionStatus.feasible, SolutionStatus.optimal)
    proven = result.termination_condition is TerminationCondition.convergenceCriteriaSatisfied
    objective = float(result.incumbent_objective) if found else float("nan")

    def read() -> RawSolution:
        result.solution_loader.load_vars()
        return _read(m, form, objective)

    return EngineRun(
        found=found,
        proven=found and proven,
        solver_status=str(result.termination_condition.name),
        build_s=built - started,
        solve_s=solved - built,
        read=read,
    )
