"""Where a plan's CPU goes: plan jobs made in-process, one after the other, phase by phase.

    .venv/bin/python benchmarks/plan_profile.py [--plans 200] [--chargers 10] [--scenario both]

Set-up (not timed): a fresh SQLite file (the real `Database`, migrated), a tenant, an OCMP peer
with a base URL and a site it names `site-1` with --chargers 11 kW charge points, as
benchmarks/ocmp_roundtrip.py seeds it. Scenario `benchmark` has nothing else, as there;
scenario `history` adds the site's Consumption and Production and each charge point's
Consumption over every plan window and the two days before it (what `hub.planning.gather`
reads), and a CP-API endpoint, so that the plan hook queues section 6 messages.

Each plan: a maximum forecast of 96 quarter hours stored and its plan job asked for (as the
OCMP handler does, untimed), the job claimed, then `hub.plan_jobs.make_plan` with the real
solver pool (one spawned worker, as `serve` runs by default), the CP-API plan hook and OCMP's
`send_optimal`. Printed per plan: this process's CPU (all its threads, the database driver's
included) and SQL statements in each phase, and the solve's own time in its worker, the
floor of a plan's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import describe
from sqlalchemy import event, func, select

import hub.plan_jobs
from adapter.solver import Solver
from hub.capacity import Block, Limit, store_limit
from hub.optimum import request_optimum, track
from hub.runtime import Hub
from optimizer import GroupPlan, GroupProblem
from protocols.cpapi.v1 import outbound as cpapi_outbound
from protocols.ocmp.v1_0.capacity import send_optimal
from store.catalogue import AssetSubType, AssetType, ConnectorType
from store.db import Database, open_database
from store.entities import Entity, add_connector, create_entity
from store.migrate import upgrade
from store.peers import Peer, add_peer
from store.plan_jobs import claim_plans
from store.references import ProtocolId, add_reference
from store.series import ensure_series
from store.series_types import SeriesType
from store.tables import outbox
from store.tenants import Tenant, add_tenant
from store.values import Blocks, write_values

Q = timedelta(minutes=15)
Q_US = 15 * 60 * 1_000_000
DAY = timedelta(days=1)
LEASE = timedelta(seconds=60)
PHASES = ("gather", "solve wait", "write", "hooks", "send", "job bookkeeping", "claim")


class Meter:
    """Exclusive CPU seconds and SQL statements per phase: nested phases are charged to
    themselves, not to the phase around them. One plan at a time, so no phase overlaps
    another's work."""

    def __init__(self, db: Database) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.statements: dict[str, int] = defaultdict(int)
        self._stack = ["outside"]
        self._since = time.process_time()
        for engine in db.engines:
            event.listen(engine.sync_engine, "before_cursor_execute", self._count)

    def _count(self, *_args: Any) -> None:
        self.statements[self._stack[-1]] += 1

    def _switch(self) -> None:
        now = time.process_time()
        self.cpu[self._stack[-1]] += now - self._since
        self._since = now

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._switch()
        self._stack.append(name)
        try:
            yield
        finally:
            self._switch()
            self._stack.pop()

    def reset(self) -> None:
        self.cpu.clear()
        self.statements.clear()
        self._since = time.process_time()


def _timed(meter: Meter, name: str, call: Callable[..., Awaitable[Any]]) -> Any:
    """`call`, its time and statements charged to phase `name`."""

    async def timed(*args: Any, **kwargs: Any) -> Any:
        with meter.phase(name):
            return await call(*args, **kwargs)

    return timed


async def _seed(db: Database, chargers: int) -> tuple[Tenant, Peer, Entity, list[Entity]]:
    """The tenant, the OCMP peer (reachable: it has a base URL) and the site with `chargers`
    11 kW charge points, as benchmarks/ocmp_roundtrip.py seeds them."""
    async with db.transaction() as tx:
        tenant, _ = await add_tenant(tx, "bench")
        site = await create_entity(tx, tenant, AssetType.AREA, AssetSubType.SITE, {"Name": "S"})
        await add_reference(tx, tenant, site, ProtocolId("ocmp", "cpo", "group", "site-1"))
        points = []
        for n in range(chargers):
            point = await create_entity(
                tx,
                tenant,
                AssetType.RESOURCE,
                AssetSubType.CHARGING,
                {"Name": f"CP {n}", "InstalledMaxCapacity": 11.0},
            )
            await add_connector(tx, tenant, site, point, ConnectorType.SITE)
            points.append(point)
        peer = await add_peer(
            tx, tenant, protocol="ocmp", name="cpo", base_url="http://127.0.0.1:9/cpo"
        )
        await track(tx, peer, "site-1", unit="A", phase="ALL")
    return tenant, peer, site, points


async def _history(
    db: Database, tenant: Tenant, site: Entity, points: list[Entity], first: datetime, days: int
) -> None:
    """Consumption of the site and of each charge point and the site's Production (energy
    per quarter hour) over [first - 2 days, first + `days` days), and a CP-API endpoint."""
    start_us = int((first - 2 * DAY).timestamp() * 1_000_000)
    count = (days + 2) * 96
    starts = [start_us + i * Q_US for i in range(count)]
    wanted = [(site, SeriesType.CONSUMPTION), (site, SeriesType.PRODUCTION)]
    wanted += [(point, SeriesType.CONSUMPTION) for point in points]
    async with db.transaction() as tx:
        for entity, series_type in wanted:
            series = await ensure_series(tx, tenant, entity, series_type, resolution=Q)
            values = [0.5 + (i % 96) / 96 for i in range(count)]
            await write_values(tx, tenant, series, Blocks(starts, values), source="meter")
        await cpapi_outbound.configure_endpoint(
            tx,
            tenant,
            url="http://127.0.0.1:9/cpapi",
            username=None,
            password=None,
            system=None,
        )


async def _ask(db: Database, tenant: Tenant, peer: Peer, site: Entity, start: datetime) -> None:
    """What the OCMP forecast handler does for a maximum forecast of 96 quarter hours."""
    blocks = [Block(start + i * Q, start + (i + 1) * Q, 10.0 + (i % 8)) for i in range(96)]
    async with db.transaction() as tx:
        await store_limit(tx, tenant, site, Limit.CONSUMPTION, blocks, peer.name)
        await request_optimum(tx, peer, site, "site-1", start, start + 96 * Q)


class SolveClock:
    """The solver pool's solve, with the solve's own time in its worker kept."""

    def __init__(self, solver: Solver) -> None:
        self.solver = solver
        self.own_s: list[float] = []
        self.wall_s: list[float] = []

    async def solve(self, problem: GroupProblem) -> GroupPlan:
        began = time.perf_counter()
        plan = await self.solver.solve(problem)
        self.wall_s.append(time.perf_counter() - began)
        self.own_s.append(plan.timings.total_s)
        return plan


def _hub(meter: Meter, clock: SolveClock) -> Hub:
    """The server's Hub, its solve, hook and OCMP sender timed; the outbox is not delivered
    here (its rows are the work measured)."""
    send = _timed(meter, "send", send_optimal)
    return Hub(
        public_url="http://flexbridge.bench",
        heartbeat_seconds=900.0,
        resend_after=timedelta(minutes=5),
        wake_outbox=lambda: None,
        solve=_timed(meter, "solve wait", clock.solve),
        plan_hooks=(_timed(meter, "hooks", cpapi_outbound.emit),),
        optimum_senders={"ocmp": send},
    )


class Windows:
    """Plan window k: one day each, as the benchmark's forecasts."""

    def __init__(self, tenant: Tenant, peer: Peer, site: Entity, first: datetime) -> None:
        self.tenant, self.peer, self.site, self.first = tenant, peer, site, first

    def __call__(self, k: int) -> datetime:
        return self.first + k * DAY


async def _plans(
    db: Database, hub_: Hub, meter: Meter, windows: Windows, first: int, n: int
) -> tuple[float, float, float]:
    """Make plans `first`..`first + n - 1`: wall seconds, CPU seconds of the plan path, and
    those of the event loop's thread alone (the rest is the database driver's thread)."""
    wall = cpu = loop_cpu = 0.0
    for k in range(first, first + n):
        await _ask(db, windows.tenant, windows.peer, windows.site, windows(k))
        began, began_cpu, began_loop = time.perf_counter(), time.process_time(), time.thread_time()
        with meter.phase("claim"):
            (job,) = await claim_plans(db, "profile", 1, LEASE)
        with meter.phase("job bookkeeping"):
            made = await hub.plan_jobs.make_plan(db, hub_, job, "profile")
        wall += time.perf_counter() - began
        cpu += time.process_time() - began_cpu
        loop_cpu += time.thread_time() - began_loop
        if not made:
            raise RuntimeError(f"plan {k} was not made")
    return wall, cpu, loop_cpu


async def _outbox_rows(db: Database) -> int:
    async with db.read() as tx:
        return int((await tx.execute(select(func.count()).select_from(outbox))).scalar_one())


async def scenario(name: str, args: argparse.Namespace, folder: Path) -> None:
    db = open_database(f"sqlite+aiosqlite:///{folder / (name + '.db')}")
    solver = Solver(1, 5.0)
    try:
        await upgrade(db)
        tenant, peer, site, points = await _seed(db, args.chargers)
        day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        first = day + 10 * DAY
        warm = 3
        if name == "history":
            await _history(db, tenant, site, points, first, args.plans + warm)
        meter, clock = Meter(db), SolveClock(solver)
        hub_ = _hub(meter, clock)
        originals = hub.plan_jobs.gather, hub.plan_jobs.write_plan
        hub.plan_jobs.gather = _timed(meter, "gather", originals[0])  # type: ignore[assignment]
        hub.plan_jobs.write_plan = _timed(meter, "write", originals[1])  # type: ignore[assignment]
        try:
            windows = Windows(tenant, peer, site, first)
            await _plans(db, hub_, meter, windows, 0, warm)  # starts the pool, warms caches
            meter.reset()
            clock.own_s.clear()
            clock.wall_s.clear()
            profile = cProfile.Profile(time.thread_time) if args.cprofile else None
            if profile is not None:
                profile.enable()
            wall, cpu, loop_cpu = await _plans(db, hub_, meter, windows, warm, args.plans)
            if profile is not None:
                profile.disable()
        finally:
            hub.plan_jobs.gather, hub.plan_jobs.write_plan = originals
        _print(name, args, meter, clock, (wall, cpu, loop_cpu), await _outbox_rows(db))
        if profile is not None:  # the event loop's thread's CPU only, slowed by the tracing
            pstats.Stats(profile).sort_stats("tottime").print_stats(args.cprofile)
    finally:
        await solver.close()
        await db.close()


def _print(
    name: str,
    args: argparse.Namespace,
    meter: Meter,
    clock: SolveClock,
    times: tuple[float, float, float],
    outbox_rows: int,
) -> None:
    n = args.plans
    wall, cpu, loop_cpu = times
    print(
        f"\nscenario {name}: {n} plans of {args.chargers} charge points, "
        f"{outbox_rows} outbox rows queued in all",
        flush=True,
    )
    print(f"  {wall / n * 1000:7.2f} ms wall per plan, {n / wall:6.1f} plans/s (one at a time)")
    print(
        f"  {cpu / n * 1000:7.2f} ms CPU of this process per plan (claim + make_plan), "
        f"{loop_cpu / n * 1000:.2f} ms of it on the event loop's thread"
    )
    print(f"  {'phase':<18} {'CPU ms/plan':>12} {'statements/plan':>16}")
    for phase in PHASES:
        print(
            f"  {phase:<18} {meter.cpu[phase] / n * 1000:12.2f} {meter.statements[phase] / n:16.1f}"
        )
    total = sum(meter.statements[p] for p in PHASES) / n
    print(f"  {'all':<18} {sum(meter.cpu[p] for p in PHASES) / n * 1000:12.2f} {total:16.1f}")
    own = sum(clock.own_s) / max(1, len(clock.own_s))
    waited = sum(clock.wall_s) / max(1, len(clock.wall_s))
    print(
        f"  solve: {own * 1000:.2f} ms its own time in the worker (the floor), "
        f"{waited * 1000:.2f} ms waited for",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=200)
    parser.add_argument("--chargers", type=int, default=10)
    parser.add_argument("--scenario", choices=("benchmark", "history", "both"), default="both")
    parser.add_argument(
        "--cprofile", type=int, default=0, metavar="N", help="also print the N costliest calls"
    )
    args = parser.parse_args()
    print(describe(), flush=True)
    names = ("benchmark", "history") if args.scenario == "both" else (args.scenario,)
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            asyncio.run(scenario(name, args, Path(folder)))


if __name__ == "__main__":
    main()
