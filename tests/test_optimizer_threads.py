"""A solve's `solver.threads` holds for that solve alone: what ran before it in the same
process (or pool worker) does not change its outcome (docs/optimizer.md, Solver settings).

HiGHS starts its task scheduler once per calling thread, with the thread count of the first
solve; a later solve asking another count failed with model status "Not Set" (issue 12)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from optimizer import (
    Charger,
    Engine,
    GroupProblem,
    PlanStatus,
    SolveOptions,
    SolverPool,
    solve_group,
    solve_in_pool,
)


def _problem(threads: int = 1, engine: Engine = Engine.HIGHS) -> GroupProblem:
    return GroupProblem(
        start=datetime(2026, 3, 2, 16, tzinfo=UTC),
        resolution=timedelta(hours=1),
        price_eur_per_kwh=[0.32, 0.38, 0.24, 0.18],
        grid_limit_kw=20.0,
        chargers=(Charger("cp-1", max_kw=11.0, energy_kwh=20.0),),
        solver=SolveOptions(threads=threads, engine=engine),
    )


def _optimal(problem: GroupProblem) -> None:
    plan = solve_group(problem)
    assert plan.status is PlanStatus.OPTIMAL, (plan.solver_status, plan.message)
    assert plan.charger("cp-1").setpoint_kw.sum() == pytest.approx(20.0)


def test_a_two_thread_solve_then_a_default_solve_in_one_process_are_both_optimal() -> None:
    _optimal(_problem(threads=2))
    _optimal(_problem())


def test_a_default_solve_then_a_two_thread_solve_are_both_optimal() -> None:
    _optimal(_problem())
    _optimal(_problem(threads=2))
    _optimal(_problem(threads=3))


def test_the_pyomo_build_and_the_fast_build_do_not_fix_each_others_thread_count() -> None:
    _optimal(_problem(threads=2, engine=Engine.PYOMO))
    _optimal(_problem())
    _optimal(_problem(threads=2))
    _optimal(_problem(engine=Engine.PYOMO))


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_the_threads_of_a_many_thread_solve_are_gone_after_the_next_solve() -> None:
    """A pool worker lives for many solves: it must not keep the workers of every count."""

    def threads() -> int:
        return len(os.listdir("/proc/self/task"))

    _optimal(_problem())
    before = threads()
    _optimal(_problem(threads=4))
    _optimal(_problem())
    assert threads() == before


async def test_one_pool_worker_serves_a_two_thread_solve_then_a_default_one() -> None:
    pool = SolverPool(workers=1)
    await pool.start()
    try:
        first = await solve_in_pool(pool, solve_group, _problem(threads=2), deadline_s=60)
        second = await solve_in_pool(pool, solve_group, _problem(), deadline_s=60)
    finally:
        await pool.close()
    assert (first.status, second.status) == (PlanStatus.OPTIMAL, PlanStatus.OPTIMAL), second.message
