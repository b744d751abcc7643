"""Solves off the event loop, in spawned worker processes, each with a deadline.

Why spawn: FlexMeasures saw HiGHS deadlock inside forked job workers (a fork copies a
parent's threads' locks, not the threads); a spawned worker starts clean.

Why one executor per worker: a ProcessPoolExecutor cannot kill one stuck task. Each worker
here is its own single-process executor whose pid is known, so a solve that passes its
deadline is abandoned: its process is killed, a fresh worker takes its place, and the
caller gets the fallback plan at once. Solves running on other workers are untouched.

    pool = SolverPool(workers=2)
    await pool.start()
    plan = await solve_in_pool(pool, solve_group, problem, deadline_s=10)
    await pool.close()

Give the problem a solver time limit below the deadline: HiGHS then returns its best plan
itself, and the deadline only catches a solve that hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from optimizer.fallback import fallback_for

Problem = TypeVar("Problem")
Plan = TypeVar("Plan")

log = logging.getLogger(__name__)

# SIGKILL: a worker stuck inside HiGHS's C code never returns to Python to handle SIGTERM.
_KILL = getattr(signal, "SIGKILL", signal.SIGTERM)


def _warm_up() -> None:
    """Send the HiGHS banner (printed once per process) to stderr rather than stdout.
    The solver stack is imported by then: unpickling this function imported `optimizer`."""
    import highspy

    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@dataclass(eq=False)  # identity: each worker is one process
class _Worker:
    executor: ProcessPoolExecutor
    pid: int


def _swallow(future: Future[Any]) -> None:
    """An abandoned solve's result or error has no reader; retrieve it so nothing logs it."""
    if not future.cancelled():
        future.exception()


class SolverPool:
    """`workers` spawned solver processes. Use inside one event loop: start, then solve."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("workers: must be >= 1")
        self.workers = workers
        self._context = multiprocessing.get_context("spawn")
        self._free: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: set[_Worker] = set()
        self._replacing: set[asyncio.Task[None]] = set()
        self._closed = False

    async def start(self) -> None:
        started = await asyncio.gather(*(self._spawn() for _ in range(self.workers)))
        for worker in started:
            self._free.put_nowait(worker)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._replacing):
            task.cancel()
        await asyncio.gather(*self._replacing, return_exceptions=True)
        for worker in list(self._all):
            self._kill(worker)
        await asyncio.gather(*(self._shut(worker) for worker in list(self._all)))

    async def __aenter__(self) -> SolverPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def settle(self) -> None:
        """Wait until every replaced worker has been reaped and its successor is serving."""
        while self._replacing:
            await asyncio.gather(*self._replacing, return_exceptions=True)

    def pids(self) -> tuple[int, ...]:
        """Process ids of the live workers (for monitoring, and for tests)."""
        return tuple(sorted(w.pid for w in self._all))

    async def _spawn(self) -> _Worker:
        executor = ProcessPoolExecutor(
            max_workers=1, mp_context=self._context, initializer=_warm_up
        )
        pid = await asyncio.wrap_future(executor.submit(os.getpid))
        worker = _Worker(executor, pid)
        self._all.add(worker)
        return worker

    async def _take(self, timeout: float) -> _Worker:
        if self._closed:
            raise RuntimeError("the solver pool is closed")
        return await asyncio.wait_for(self._free.get(), timeout)

    def _give_back(self, worker: _Worker) -> None:
        self._free.put_nowait(worker)

    def _kill(self, worker: _Worker) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, _KILL)

    async def _shut(self, worker: _Worker) -> None:
        # shutdown(wait=True) joins (reaps) the killed process; it blocks, so off the loop.
        await asyncio.to_thread(worker.executor.shutdown, wait=True, cancel_futures=True)
        self._all.discard(worker)

    def _replace(self, worker: _Worker) -> None:
        """Kill a stuck or dead worker now; a pool-owned task reaps it and adds a fresh one."""
        self._kill(worker)
        if self._closed:  # close() reaps every worker itself
            return

        async def replace() -> None:
            await self._shut(worker)
            if not self._closed:
                self._give_back(await self._spawn())

        task = asyncio.get_running_loop().create_task(replace())
        self._replacing.add(task)
        task.add_done_callback(self._replaced)

    def _replaced(self, task: asyncio.Task[None]) -> None:
        self._replacing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("could not replace a solver worker", exc_info=task.exception())


async def solve_in_pool(
    pool: SolverPool,
    fn: Callable[[Problem], Plan],
    problem: Problem,
    deadline_s: float,
    fallback: Callable[[Problem, str], Plan] | None = None,
) -> Plan:
    """fn(problem) in a pool worker, or the fallback plan once deadline_s has passed.

    `fn` must be a module-level function (it is pickled to the worker). `fallback` makes the
    plan returned when the solve is abandoned or its worker dies; by default the problem's
    own fallback (headroom plan for a GroupProblem, idle plan for a StorageProblem).
    """
    # The default, fallback_for, makes the plan of a GroupProblem or StorageProblem: the
    # plan type of the solve functions (solve_group, solve_storage) such problems go to.
    make_fallback = fallback or cast("Callable[[Problem, str], Plan]", fallback_for)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    try:
        worker = await pool._take(max(0.0, deadline_s))
    except TimeoutError:
        return make_fallback(problem, f"no solver worker free within {deadline_s:g} s")
    try:
        submitted = worker.executor.submit(fn, problem)
    except Exception as exc:  # the worker died while idle (BrokenProcessPool)
        pool._replace(worker)
        return make_fallback(problem, f"solver worker unusable: {type(exc).__name__}: {exc}")
    submitted.add_done_callback(_swallow)
    future = asyncio.wrap_future(submitted)
    try:
        done, _ = await asyncio.wait({future}, timeout=max(0.0, deadline - loop.time()))
    except BaseException:  # the caller gave up (cancelled): the worker may still be busy
        future.cancel()
        pool._replace(worker)
        raise
    if not done:
        # Cancelling the wrapper detaches it: the worker's late BrokenProcessPool has no
        # reader to complain to.
        future.cancel()
        pool._replace(worker)
        return make_fallback(problem, f"solve abandoned at its deadline of {deadline_s:g} s")
    error = future.exception()
    if error is None:
        pool._give_back(worker)
        return future.result()
    # The worker died (BrokenProcessPool) or fn raised; either way do not trust the process.
    pool._replace(worker)
    return make_fallback(problem, f"solve failed: {type(error).__name__}: {error}")
