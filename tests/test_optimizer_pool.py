"""Solves in a spawned process pool: they complete, and a hung one is abandoned at its
deadline while the pool keeps serving.

DESIGN 5: "use a spawn-based process pool ..., set a time limit on every solve, and test
that a solve run through the pool completes and that a hung solve is abandoned at its
deadline."
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from optimizer import (
    Charger,
    GroupPlan,
    GroupProblem,
    PlanStatus,
    SocTarget,
    SolverPool,
    StorageProblem,
    solve,
    solve_group,
    solve_in_pool,
)

START = datetime(2026, 1, 1, tzinfo=UTC)


def hang_forever(problem: object) -> GroupPlan:
    """A solve that never returns (module level, so it pickles to the worker)."""
    threading.Event().wait()
    raise AssertionError("unreachable")


def crash(problem: object) -> GroupPlan:
    os._exit(3)  # the worker process dies mid-solve


def _problem() -> GroupProblem:
    return GroupProblem(
        START,
        timedelta(hours=1),
        np.array([0.3, 0.2, 0.25]),
        np.array([10.0, 6.0, 10.0]),
        non_flexible_kw=2.0,
        chargers=(Charger("ev", 11.0, energy_kwh=12.0),),
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_solve_through_the_pool_completes() -> None:
    problem = _problem()
    async with SolverPool(workers=1) as pool:
        plan = await solve_in_pool(pool, solve_group, problem, deadline_s=120)
        (worker,) = pool.pids()
    assert worker != os.getpid()
    assert plan.status is PlanStatus.OPTIMAL
    np.testing.assert_allclose(plan.capacity_kw, solve_group(problem).capacity_kw)
    # 12 kWh: all 4 the limit leaves in the cheapest block, 8 in the next cheapest
    np.testing.assert_allclose(plan.charger("ev").setpoint_kw, [0.0, 4.0, 8.0])


async def test_a_storage_problem_solves_through_the_pool() -> None:
    problem = StorageProblem(
        START,
        timedelta(hours=1),
        np.array([0.3, 0.1]),
        soc_max_kwh=10.0,
        max_charge_kw=5.0,
        targets=(SocTarget(1, 6.0),),
    )
    async with SolverPool() as pool:
        plan = await solve_in_pool(pool, solve, problem, deadline_s=120)
    np.testing.assert_allclose(plan.consumption_kw, [1.0, 5.0])


async def test_a_hung_solve_is_abandoned_at_its_deadline_and_the_pool_recovers() -> None:
    problem = _problem()
    async with SolverPool(workers=1) as pool:
        (stuck,) = pool.pids()
        plan = await solve_in_pool(pool, hang_forever, problem, deadline_s=1.0)
        assert plan.fallback and plan.status is PlanStatus.FALLBACK
        assert "deadline" in plan.message
        # the headroom plan: limit - non-flexible load
        np.testing.assert_allclose(plan.capacity_kw, [8.0, 4.0, 8.0])
        after = await solve_in_pool(pool, solve_group, problem, deadline_s=120)
        assert after.status is PlanStatus.OPTIMAL
        (fresh,) = pool.pids()
    assert fresh != stuck
    assert not _alive(stuck)  # killed and reaped, not left running


async def test_a_hung_solve_does_not_hold_up_the_other_worker() -> None:
    problem = _problem()
    async with SolverPool(workers=2) as pool:
        before = set(pool.pids())
        hung, done = await asyncio.gather(
            solve_in_pool(pool, hang_forever, problem, deadline_s=2.0),
            solve_in_pool(pool, solve_group, problem, deadline_s=120),
        )
        assert hung.fallback and not done.fallback
        await pool.settle()
        after = set(pool.pids())
        assert len(after) == 2 and len(before & after) == 1  # the stuck one was replaced
        again = await asyncio.gather(
            *(solve_in_pool(pool, solve_group, problem, deadline_s=120) for _ in range(2))
        )
    assert all(plan.status is PlanStatus.OPTIMAL for plan in again)


async def test_a_worker_that_dies_gives_a_fallback_and_is_replaced() -> None:
    problem = _problem()
    async with SolverPool(workers=1) as pool:
        (dead,) = pool.pids()
        plan = await solve_in_pool(pool, crash, problem, deadline_s=60)
        assert plan.fallback and "solve failed" in plan.message
        after = await solve_in_pool(pool, solve_group, problem, deadline_s=120)
        assert after.status is PlanStatus.OPTIMAL
        assert dead not in pool.pids() and not _alive(dead)


async def test_a_worker_that_died_while_idle_is_replaced_on_its_next_use() -> None:
    problem = _problem()
    async with SolverPool(workers=1) as pool:
        (dead,) = pool.pids()
        os.kill(dead, signal.SIGKILL)
        plan = await solve_in_pool(pool, solve_group, problem, deadline_s=60)
        assert plan.fallback  # this request found the worker dead...
        after = await solve_in_pool(pool, solve_group, problem, deadline_s=120)
        assert after.status is PlanStatus.OPTIMAL  # ...the next one finds its successor
        assert dead not in pool.pids()


async def test_an_abandoned_solve_uses_the_fallback_it_is_given() -> None:
    async with SolverPool(workers=1) as pool:
        result = await solve_in_pool(
            pool, hang_forever, "problem", deadline_s=0.5, fallback=lambda p, why: (p, why)
        )
    assert result[0] == "problem" and "deadline" in result[1]


async def test_a_closed_pool_refuses_work() -> None:
    pool = SolverPool(workers=1)
    await pool.start()
    await pool.close()
    assert pool.pids() == ()
    with pytest.raises(RuntimeError, match="closed"):
        await solve_in_pool(pool, solve_group, _problem(), deadline_s=5)
