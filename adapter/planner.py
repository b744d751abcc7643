"""The plan worker: claims plan jobs (store.plan_jobs) and makes them (hub.plan_jobs), as
many at once as the solver pool has processes, then wakes the outbox for what they queued.

One per process that runs jobs (`serve` by default, `flexbridge worker`). Like the delivery
worker its name is stable for a process slot, so that a process starting again releases the
jobs it held at once instead of waiting out their lease; while a job is being made its lease
is renewed, so a slow solve is never taken over by another process and made twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from adapter.metrics import Metrics
from hub.plan_jobs import make_plan
from hub.runtime import Hub
from store import plan_jobs
from store.db import Database
from store.plan_jobs import PlanJob
from store.timeutil import utcnow

log = logging.getLogger("flexbridge.planning")


class PlanWorker:
    def __init__(
        self,
        db: Database,
        metrics: Metrics,
        *,
        name: str,
        concurrency: int,
        lease: timedelta,
        poll_seconds: float,
    ) -> None:
        self.db, self.metrics, self.name = db, metrics, name
        self.concurrency, self.lease, self.poll_seconds = concurrency, lease, poll_seconds
        self.hub: Hub | None = None
        self._wake = asyncio.Event()
        self._turn = asyncio.Lock()  # one claim-and-make round at a time (drain and the loop)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self, hub: Hub) -> None:
        """Run with `hub` (built after this worker: it carries our `wake`)."""
        self.hub = hub
        self._task = asyncio.create_task(self._run(), name="plan jobs")

    async def stop(self) -> None:
        """Finish the jobs in hand, then stop; the rest wait for the next start."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task

    def wake(self) -> None:
        """Make plans now rather than at the next poll (call after committing new jobs)."""
        self._wake.set()

    async def drain(self) -> int:
        """Make every job that is due, including those asked for meanwhile; how many."""
        made = 0
        while count := await self.make_due():
            made += count
        return made

    async def make_due(self) -> int:
        """Claim up to `concurrency` due jobs and make them; how many were claimed."""
        hub = self.hub
        assert hub is not None, "start() the worker first"
        async with self._turn:
            jobs = await plan_jobs.claim_plans(self.db, self.name, self.concurrency, self.lease)
            if not jobs:
                return 0
            renewing = asyncio.create_task(self._renew([job.id for job in jobs]))
            try:
                await asyncio.gather(*(self._make(hub, job) for job in jobs))
            finally:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
            hub.wake_outbox()
            return len(jobs)

    async def _make(self, hub: Hub, job: PlanJob) -> None:
        waited = (utcnow() - job.requested_at).total_seconds()
        self.metrics.plan_wait.observe(max(waited, 0.0))
        try:
            made = await make_plan(self.db, hub, job, self.name)
            self.metrics.plans.labels("made" if made else "abandoned").inc()
        except Exception:  # one bad job must not stop the others; its lease lets it retry
            self.metrics.plans.labels("failed").inc()
            log.exception("plan of group %r for peer #%d failed", job.group_key, job.peer_id)

    async def _renew(self, ids: list[int]) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                await plan_jobs.renew_plans(self.db, self.name, ids, self.lease)
            except Exception:  # the database away for a moment: the lease has room for it
                log.warning("could not renew plan leases", exc_info=True)

    async def _run(self) -> None:
        try:
            released = await plan_jobs.release_plan_claims(self.db, self.name)
        except Exception:
            log.exception("plan jobs: could not release the claims of %s", self.name)
            released = 0
        if released:
            log.warning("plan jobs: %d job(s) in hand at the last stop are due again", released)
        while not self._stopping.is_set():
            self._wake.clear()  # before polling, so a wake() during the poll is not lost
            try:
                made = await self.make_due()
            except Exception:  # a database hiccup must not end planning for good
                log.exception("plan jobs poll failed")
                made = 0
            if made:
                continue  # more may be due right away
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
