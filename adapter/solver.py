"""The optimizer's process pool, as the server uses it (DESIGN.md section 5): spawned worker
processes, each solve with a deadline after which the headroom plan is used and the worker
replaced. Started at the first solve, so a server (or a test) that never plans never spawns
a process."""

from __future__ import annotations

import asyncio

from optimizer import GroupPlan, GroupProblem, SolverPool, solve_group, solve_in_pool


class Solver:
    def __init__(self, workers: int, deadline_s: float) -> None:
        self.workers, self.deadline_s = workers, deadline_s
        self._pool: SolverPool | None = None
        self._starting = asyncio.Lock()

    async def solve(self, problem: GroupProblem) -> GroupPlan:
        async with self._starting:
            if self._pool is None:
                pool = SolverPool(self.workers)
                await pool.start()
                self._pool = pool
        return await solve_in_pool(self._pool, solve_group, problem, self.deadline_s)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
