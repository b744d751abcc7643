"""The optimizer: typed problems in, typed plans out. Pure: no HTTP, no database.

    from optimizer import GroupProblem, Charger, solve_group
    plan = solve_group(GroupProblem(start, timedelta(minutes=15), prices, grid_limit_kw=50,
                                    chargers=(Charger("cp-1", max_kw=11, energy_kwh=20),)))
    plan.capacity_kw, plan.flexibility_up_kw, plan.charger("cp-1").setpoint_kw

See docs/optimizer.md for the model, the definitions and the JSON shapes.
"""

from optimizer.assets import Battery, Charger, ChargerMode
from optimizer.errors import ProblemError
from optimizer.fallback import fallback_for, headroom_kw, headroom_plan, idle_plan
from optimizer.flex_orders import (
    FlexOrderOffer,
    FlexOrderOption,
    FlexOrderPlan,
    FlexOrderPlanStatus,
    FlexOrderProblem,
    OrderedOption,
    solve_flex_orders,
)
from optimizer.forecast import History, block_starts, merge_forecasts, naive_forecast, on_blocks
from optimizer.group import solve_group
from optimizer.options import Engine, Penalties, SolveOptions
from optimizer.plans import (
    BatteryPlan,
    ChargerPlan,
    GroupPlan,
    PlanStatus,
    Relaxation,
    RelaxationKind,
    StoragePlan,
    Timings,
)
from optimizer.pool import SolverPool, solve_in_pool
from optimizer.problems import GroupProblem, SocTarget, StorageProblem
from optimizer.storage import solve_storage
from optimizer.units import amps_to_kw, kw_to_amps


def solve(problem: GroupProblem | StorageProblem) -> GroupPlan | StoragePlan:
    """Either problem's solve (module-level, so a pool can pickle it)."""
    if isinstance(problem, StorageProblem):
        return solve_storage(problem)
    return solve_group(problem)


__all__ = [
    "Battery",
    "BatteryPlan",
    "Charger",
    "ChargerMode",
    "ChargerPlan",
    "Engine",
    "FlexOrderOffer",
    "FlexOrderOption",
    "FlexOrderPlan",
    "FlexOrderPlanStatus",
    "FlexOrderProblem",
    "GroupPlan",
    "GroupProblem",
    "History",
    "OrderedOption",
    "Penalties",
    "PlanStatus",
    "ProblemError",
    "Relaxation",
    "RelaxationKind",
    "SocTarget",
    "SolveOptions",
    "SolverPool",
    "StoragePlan",
    "StorageProblem",
    "Timings",
    "amps_to_kw",
    "block_starts",
    "fallback_for",
    "headroom_kw",
    "headroom_plan",
    "idle_plan",
    "kw_to_amps",
    "merge_forecasts",
    "naive_forecast",
    "on_blocks",
    "solve",
    "solve_flex_orders",
    "solve_group",
    "solve_in_pool",
    "solve_storage",
]
