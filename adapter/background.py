"""What a process runs besides HTTP: outbox delivery, plan jobs and the peer clock, around the
one `Hub` they and the request handlers share.

`serve` runs all of it by default; with `run_jobs = false` it builds only the Hub its
handlers need and leaves the work to `flexbridge worker` processes, which run nothing else.
Every part coordinates through the database (leases, `FOR UPDATE SKIP LOCKED`, the peer's
row lock), so any number of processes may run it on one PostgreSQL: a message is sent once,
a plan made once for the same inputs, a heartbeat beaten once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import aiohttp

from adapter.metrics import Metrics
from adapter.outbox import DeliveryWorker
from adapter.peer_clock import PeerClock
from adapter.planner import PlanWorker
from adapter.settings import Settings
from adapter.solver import Solver
from hub.optimum import SendOptimum
from hub.runtime import Hub
from protocols.common.surface import Surface
from store.db import Database


def _nothing() -> None:
    """The wake-up of work this process does not run: others find it at their next poll."""


class Background:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        metrics: Metrics,
        session: aiohttp.ClientSession,
        surfaces: Sequence[Surface],
        *,
        name: str,
        runs_jobs: bool,
    ) -> None:
        self.solver = Solver(settings.solver_workers, settings.solver_deadline_seconds)
        self.delivery: DeliveryWorker | None = None
        self.planner: PlanWorker | None = None
        self.clock: PeerClock | None = None
        if runs_jobs:
            self.delivery = DeliveryWorker(
                db,
                settings,
                metrics,
                session,
                name=name,
                temporary={s.peer_protocol: s.retry_statuses for s in surfaces if s.peer_protocol},
            )
            self.planner = PlanWorker(
                db,
                metrics,
                name=name,
                concurrency=settings.solver_workers,
                lease=timedelta(seconds=settings.plan_lease_seconds),
                poll_seconds=settings.outbox_poll_seconds,
            )
        replan = settings.replan_minutes
        self.hub = Hub(
            public_url=settings.base_url,
            heartbeat_seconds=settings.heartbeat_seconds,
            resend_after=timedelta(minutes=settings.resend_minutes),
            replan_every=timedelta(minutes=replan) if replan else None,  # 0: no schedule
            wake_outbox=self.delivery.wake if self.delivery else _nothing,
            wake_planner=self.planner.wake if self.planner else _nothing,
            solve=self.solver.solve,
            plan_hooks=tuple(s.on_plan for s in surfaces if s.on_plan),
            optimum_senders=_senders(surfaces),
        )
        if runs_jobs:
            protocols = tuple(dict.fromkeys(s.peer_protocol for s in surfaces if s.peer_protocol))
            self.clock = PeerClock(
                db, self.hub, metrics, surfaces, protocols, settings.peer_clock_seconds
            )

    def start(self) -> None:
        if self.delivery is not None:
            self.delivery.start()
        if self.planner is not None:
            self.planner.start(self.hub)
        if self.clock is not None:
            self.clock.start()

    async def stop(self) -> None:
        """The clock first (it asks for plans), then plans (they queue messages), then the
        deliveries in hand; the solver's processes last."""
        if self.clock is not None:
            await self.clock.stop()
        if self.planner is not None:
            await self.planner.stop()
        if self.delivery is not None:
            await self.delivery.stop()
        await self.solver.close()


def _senders(surfaces: Sequence[Surface]) -> dict[str, SendOptimum]:
    return {
        s.peer_protocol: s.send_optimum
        for s in surfaces
        if s.peer_protocol is not None and s.send_optimum is not None
    }
