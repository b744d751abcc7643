"""Two `flexbridge serve` processes and one `flexbridge worker` on one PostgreSQL (issue 13,
"Tests"): no message is sent twice, no plan is made twice for the same inputs, heartbeats
are not doubled, and each peer's last optimum of a window answers the newest limits it sent.

Four OCMP CPOs and one OSCP capacity provider, each with a recording endpoint of its own
(tests/live_server.py), handshake asking for our heartbeat every HEARTBEAT_SECONDS; then
each sends maximum forecasts for two groups over five windows, spread over both serves:
- paced windows: each version (new limits for the same window) is sent only once the
  optimum of the one before has arrived, so that no coalescing can hide a plan: each
  version is one job, made exactly once, so the outbox holds exactly one optimum per
  version (a job two processes made would queue two; one whose second run found the job
  taken over, and wrote nothing, logs so, and no process may log it);
- burst windows: four versions back to back through alternating serves, with jobs
  coalescing and runs overtaken by newer requests: at most one optimum per version, and
  the last the peer holds answers the newest. (These found plan runs deadlocking with
  forecasts for the same window on PostgreSQL: hub/plan_jobs.py now locks the peer's row
  before the job's, in the order every message of the peer takes.)
Every group has a charger wanting more than any limit, so every plan is a real solve whose
optimum is the limit itself (OCMP in Amps, OSCP in kW). The peer clock ticks every 0.1 s in
all three processes, so that they race for every heartbeat.

Two layouts: every process runs jobs (the strongest case: three claimants for every job,
delivery and heartbeat), and serves with run_jobs = false, where the worker alone plans,
delivers and beats (the serves' /metrics count no plan and no delivery).

Waiting is on conditions with deadlines; only the heartbeats take time (the test waits
until each peer has had several).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import TEST_KEY, _empty_tables
from live_server import (
    Arrival,
    CpoEndpoint,
    LiveServer,
    LiveWorker,
    free_port,
    iso,
    wait_for,
)
from sqlalchemy import select

from adapter import peer_admin
from adapter.auth import encode_basic_auth
from store.catalogue import AssetSubType, AssetType, ConnectorType
from store.db import Database, open_database
from store.entities import add_connector, create_entity
from store.migrate import upgrade
from store.outbox import OutboxStatus
from store.references import ProtocolId, add_reference
from store.secret_box import SecretBox
from store.series import ensure_series
from store.series_types import SeriesType
from store.tables import outbox, peers
from store.tenants import Tenant, add_tenant
from store.values import Point, write_values

pytestmark = pytest.mark.slow

HEARTBEAT_SECONDS = 2
BEATS = 6  # heartbeats each peer must have had before the test ends
Q = timedelta(minutes=15)
BLOCKS = 4  # quarter hours per window
KW_PER_AMP = 0.230 * 3  # 230 V, three phases (the groups' PhaseCount), power factor 1
CHARGER_KW = 500.0  # each charger's rating and demand: more than any limit sent
PACED = {0: 3, 1: 3, 2: 1}  # window -> versions, each sent after the last one's optimum
BURST = {3: 4, 4: 4}  # window -> versions sent back to back
WAIT = 30.0
TOKEN_A = "scale-out-token-A"
TOKEN_B = "scale-out-token-B"
SETTINGS = {
    "FLEXBRIDGE_PEER_CLOCK_SECONDS": "0.1",
    "FLEXBRIDGE_OUTBOX_POLL_SECONDS": "0.1",  # also the plan jobs' poll
    "FLEXBRIDGE_REPLAN_MINUTES": "0",  # no scheduled re-plans: every plan answers a forecast
    # INFO: a plan run that finds its job taken over says so (hub.plan_jobs); nothing else
    # of this test logs at INFO.
    "FLEXBRIDGE_LOG_LEVEL": "INFO",
}
TAKEN_OVER = "taken over"
OPTIMA = {"ocmp": "UpdateGroupOptimalCapacityForecast", "oscp": "UpdateGroupCapacityForecast"}
OPTIMUM_PATH = {"ocmp": CpoEndpoint.OPTIMAL, "oscp": "update_group_capacity_forecast"}


@pytest.fixture
async def pg(postgres_url: str | None) -> AsyncIterator[tuple[Database, str]]:
    """The session's scratch PostgreSQL database, emptied; skipped without one."""
    if postgres_url is None:
        pytest.skip("scale-out needs PostgreSQL (FLEXBRIDGE_TEST_DATABASE_URL)")
    db = open_database(postgres_url, secrets=SecretBox([TEST_KEY]))
    await upgrade(db)
    await _empty_tables(db)
    try:
        yield db, postgres_url
    finally:
        await db.close()


@dataclass
class Peer:
    """A CPO (OCMP) or capacity provider (OSCP): its endpoint, its groups, what it sent."""

    name: str
    protocol: str
    groups: list[str]
    day: datetime  # window w starts w hours after it
    endpoint: CpoEndpoint = field(default_factory=CpoEndpoint)
    token: str = TOKEN_A  # OSCP: A out of band, then the C we are given
    sent: dict[tuple[str, int], list[float]] = field(default_factory=dict)  # limits per window

    def start(self, window: int) -> datetime:
        return self.day + timedelta(hours=window)

    def headers(self) -> dict[str, str]:
        if self.protocol == "ocmp":
            login = encode_basic_auth(self.name, f"{self.name}-pw")
        else:
            login = f"Token {self.token}"
        return {"Authorization": login, "X-Request-ID": str(uuid.uuid4())}

    def path(self, message: str) -> str:
        return f"/ocmp/1.0/{message}" if self.protocol == "ocmp" else f"/oscp/co/2.0/{message}"

    async def post(self, server: LiveServer, message: str, body: Any) -> None:
        url = server.base + self.path(message)
        async with (
            aiohttp.ClientSession(headers=self.headers()) as session,
            session.post(url, json=body) as answer,
        ):
            assert answer.status == 204, (self.name, message, await answer.text())

    def optima(self) -> list[Arrival]:
        return self.endpoint.accepted(OPTIMUM_PATH[self.protocol])


async def _seed(db: Database, everyone: list[Peer]) -> None:
    async with db.transaction() as tx:
        tenant, _ = await add_tenant(tx, "scale")
        for peer in everyone:
            for group_id in peer.groups:
                await _group(tx, tenant, peer, group_id)
    for peer in everyone:
        if peer.protocol == "ocmp":
            new = peer_admin.NewPeer("scale", "ocmp", peer.name, None, peer.name, f"{peer.name}-pw")
        else:
            new = peer_admin.NewPeer("scale", "oscp", peer.name, None, token=TOKEN_A)
        await peer_admin.add(db, new)


async def _group(tx: Any, tenant: Tenant, peer: Peer, group_id: str) -> None:
    """A site with one charger that wants CHARGER_KW in every window: the optimum is the
    limit."""
    site = await create_entity(
        tx, tenant, AssetType.AREA, AssetSubType.SITE, {"Name": group_id, "PhaseCount": 3}
    )
    await add_reference(tx, tenant, site, ProtocolId(peer.protocol, peer.name, "group", group_id))
    charger = await create_entity(
        tx,
        tenant,
        AssetType.RESOURCE,
        AssetSubType.CHARGING,
        {"Name": f"{group_id} CP", "InstalledMaxCapacity": CHARGER_KW},
    )
    await add_connector(tx, tenant, site, charger, ConnectorType.SITE)
    demand = await ensure_series(tx, tenant, charger, SeriesType.CONSUMPTION, resolution=Q)
    per_quarter = CHARGER_KW * (Q / timedelta(hours=1))  # kWh in each quarter hour
    day, windows = peer.day, 1 + max(*PACED, *BURST)
    points = [Point(day + i * Q, day + (i + 1) * Q, per_quarter) for i in range(windows * 4)]
    await write_values(tx, tenant, demand, points, source="test")


def _forecast(peer: Peer, group_id: str, start: datetime, limit: float) -> dict[str, Any]:
    unit = "A" if peer.protocol == "ocmp" else "KW"
    body: dict[str, Any] = {
        "group_id": group_id,
        "forecasted_blocks": [
            {
                "capacity": limit,
                "phase": "ALL",
                "unit": unit,
                "start_time": iso(start + i * Q),
                "end_time": iso(start + (i + 1) * Q),
            }
            for i in range(BLOCKS)
        ],
    }
    if peer.protocol == "oscp":
        body["type"] = "CONSUMPTION"
    return body


def _answers(arrival: Arrival) -> tuple[str, str, list[float]]:
    """(group_id, window start, capacities) of an optimum a peer received."""
    blocks = arrival.body["forecasted_blocks"]
    return arrival.body["group_id"], blocks[0]["start_time"], [b["capacity"] for b in blocks]


def _holds(peer: Peer, group_id: str, start: datetime, limit: float) -> bool:
    """Whether the peer has received an optimum of the window answering `limit`."""
    for arrival in peer.optima():
        group, window, capacities = _answers(arrival)
        if (group, window) == (group_id, iso(start)) and capacities == pytest.approx(
            [limit] * BLOCKS, abs=0.01
        ):
            return True
    return False


async def _handshake(peer: Peer, server: LiveServer) -> None:
    if peer.protocol == "ocmp":
        body = {"base_url": peer.endpoint.base_url, "heartbeat_interval": HEARTBEAT_SECONDS}
        await peer.post(server, "handshake", body)
        return
    register = {
        "token": TOKEN_B,
        "version_url": [{"version": "2.0", "base_url": peer.endpoint.base_url}],
    }
    await peer.post(server, "register", register)
    await wait_for(lambda: bool(peer.endpoint.accepted("register")), WAIT, "our OSCP Register")
    peer.token = peer.endpoint.accepted("register")[0].body["token"]  # C replaces A
    behaviour = {
        "heartbeat_interval": HEARTBEAT_SECONDS,
        "measurement_configuration": ["CONTINUOUS"],
    }
    await peer.post(server, "handshake", {"required_behaviour": behaviour})


async def _paced(
    peer: Peer, group_id: str, window: int, versions: int, serves: list[LiveServer], offset: int
) -> None:
    """Each version sent once the optimum answering the one before has arrived."""
    for version in range(versions):
        limit = await _send_version(peer, group_id, window, version, serves, offset)
        await wait_for(
            lambda limit=limit: _holds(peer, group_id, peer.start(window), limit),  # type: ignore[misc]
            WAIT,
            f"{peer.name} {group_id} window {window}: the optimum of version {version}",
        )


async def _burst(
    peer: Peer, group_id: str, window: int, versions: int, serves: list[LiveServer], offset: int
) -> None:
    """Every version at once, one after another."""
    for version in range(versions):
        await _send_version(peer, group_id, window, version, serves, offset)


async def _send_version(
    peer: Peer, group_id: str, window: int, version: int, serves: list[LiveServer], offset: int
) -> float:
    """Send the version's limits through one serve, the next version through the other;
    the limits sent."""
    limit = _limit(peer, offset, window, version)
    body = _forecast(peer, group_id, peer.start(window), limit)
    await peer.post(serves[(offset + version) % 2], _forecast_message(peer), body)
    peer.sent.setdefault((group_id, window), []).append(limit)
    return limit


def _forecast_message(peer: Peer) -> str:
    if peer.protocol == "ocmp":
        return "update_group_maximum_capacity_forecast"
    return "update_group_capacity_forecast"


def _limit(peer: Peer, offset: int, window: int, version: int) -> float:
    """Distinct limits per version of a window (Amps for OCMP, kW for OSCP)."""
    amps = 16.0 + 2 * version + window + 0.5 * offset
    return amps if peer.protocol == "ocmp" else round(amps * KW_PER_AMP, 3)


async def _outbox_rows(db: Database) -> list[Any]:
    query = (
        select(outbox, peers.c.name.label("peer_name"))
        .join(peers, peers.c.id == outbox.c.peer_id)
        .order_by(outbox.c.id)
    )
    async with db.read() as tx:
        return list(await tx.execute(query))


async def _metric(server: LiveServer, name: str, **labels: str) -> float:
    """The sum of the samples of `name` with these `labels` at the server's /metrics (0 when
    it has none)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base + "/metrics") as answer,
    ):
        text = await answer.text()
    total = 0.0
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        sample, value = line.rsplit(" ", 1)
        metric, _, rest = sample.partition("{")
        have = dict(pair.split("=", 1) for pair in rest.rstrip("}").split(",") if pair)
        if metric == name and all(have.get(k) == f'"{v}"' for k, v in labels.items()):
            total += float(value)
    return total


@pytest.mark.parametrize("serves_run_jobs", [True, False], ids=["all-run-jobs", "worker-only"])
async def test_two_serves_and_a_worker_send_nothing_twice_plan_once_and_beat_once(
    pg: tuple[Database, str], tmp_path: Path, serves_run_jobs: bool
) -> None:
    db, url = pg
    day = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    everyone = [Peer(f"cpo-{n}", "ocmp", [f"c{n}-site-a", f"c{n}-site-b"], day) for n in range(4)]
    everyone.append(Peer("fp", "oscp", ["fp-site-a", "fp-site-b"], day))
    await _seed(db, everyone)
    settings = SETTINGS | {"FLEXBRIDGE_RUN_JOBS": str(serves_run_jobs).lower()}
    serves = [LiveServer(url, free_port(), tmp_path / f"serve-{n}.log", settings) for n in range(2)]
    worker = LiveWorker(url, "scale-worker", tmp_path / "worker.log", SETTINGS)
    processes = [*serves, worker]
    for peer in everyone:
        await peer.endpoint.start()
    try:
        await asyncio.gather(*(p.start() for p in processes))
        await asyncio.gather(*(_handshake(peer, serves[n % 2]) for n, peer in enumerate(everyone)))
        await asyncio.gather(*_streams(everyone, serves))
        await _settled(db, everyone)
        plans = [await _metric(s, "flexbridge_plans_total", result="made") for s in serves]
        deliveries = [await _metric(s, "flexbridge_outbox_deliveries_total") for s in serves]
        for process, code in zip(processes, await _stop(processes), strict=True):
            assert code == 0, process.output()[-4000:]
    finally:
        await _stop(processes)
        for peer in everyone:
            await peer.endpoint.stop()

    for process in processes:
        assert "Traceback" not in process.output(), process.output()[-6000:]
        # A run that finds its job taken over solved it for nothing: another process had
        # claimed the same job (leases of 30 s never lapse here).
        taken = [line for line in process.output().splitlines() if TAKEN_OVER in line]
        assert not taken, "\n".join(taken)
    for peer in everyone:
        _heartbeats_not_doubled(peer)
    rows = await _outbox_rows(db)
    _sent_at_most_once(everyone, rows)
    _planned_once_per_version(everyone, rows)
    _newest_limits_held_last(everyone)
    if not serves_run_jobs:  # the worker alone planned and delivered
        assert plans == [0.0, 0.0] and deliveries == [0.0, 0.0], (plans, deliveries)
    made = sum(r.message_type == OPTIMA[r.protocol] for r in rows)
    print(f"{made} optima made; by the serves: {plans}; by the worker the rest")


def _streams(everyone: list[Peer], serves: list[LiveServer]) -> list[Any]:
    """Every peer's forecasts, one stream per group and window, to run all at once."""
    streams = []
    for n, peer in enumerate(everyone):
        for g, group_id in enumerate(peer.groups):
            offset = 2 * n + g
            for window, versions in PACED.items():
                streams.append(_paced(peer, group_id, window, versions, serves, offset))
            for window, versions in BURST.items():
                streams.append(_burst(peer, group_id, window, versions, serves, offset))
    return streams


async def _settled(db: Database, everyone: list[Peer]) -> None:
    """Every peer holds the optimum of its newest limits and has had BEATS heartbeats, and
    nothing queued is left."""

    async def newest_held() -> bool:
        return all(
            _holds(peer, group_id, peer.start(window), limits[-1])
            for peer in everyone
            for (group_id, window), limits in peer.sent.items()
        )

    await wait_for(newest_held, WAIT, "every peer holding the optimum of its newest limits")
    await wait_for(
        lambda: all(len(p.endpoint.accepted("heartbeat")) >= BEATS for p in everyone),
        BEATS * HEARTBEAT_SECONDS + WAIT,
        f"{BEATS} heartbeats at every peer",
    )

    async def drained() -> bool:
        return all(r.status != OutboxStatus.PENDING for r in await _outbox_rows(db))

    await wait_for(drained, WAIT, "every queued message finished")


async def _stop(processes: list[Any]) -> list[int | None]:
    """SIGTERM them all at once, off the event loop: the peers' endpoints run in this loop
    and must keep answering what the others send while one shuts down."""
    return list(await asyncio.gather(*(asyncio.to_thread(p.stop) for p in processes)))


def _sent_at_most_once(everyone: list[Peer], rows: list[Any]) -> None:
    """No request id reaches a peer twice; what is sent arrived once, in the order made;
    what is not sent was superseded or is a heartbeat that expired."""
    by_id = {r.message_id: r for r in rows}
    for peer in everyone:
        tried = Counter(a.request_id for a in peer.endpoint.attempts)
        twice = {request_id: n for request_id, n in tried.items() if n > 1}
        assert not twice, f"{peer.name} was sent these more than once: {twice}"
        mine = [r for r in rows if r.peer_name == peer.name]
        for row in mine:
            assert (row.status == OutboxStatus.SENT) == (tried[row.message_id] == 1), row
            if row.status in (OutboxStatus.DEAD, OutboxStatus.PENDING):
                # A heartbeat expired, or was beaten as the last process stopped.
                assert row.message_type == "Heartbeat", row
            else:
                assert row.status in (OutboxStatus.SENT, OutboxStatus.SUPERSEDED), row
        order = [by_id[a.request_id].id for a in peer.endpoint.attempts]
        assert order == sorted(order), f"{peer.name}'s messages out of order: {order}"


def _planned_once_per_version(everyone: list[Peer], rows: list[Any]) -> None:
    """One optimum per version of a paced window (each version one job, made once); at most
    one per version of a burst (jobs coalesce, a run overtaken is made again)."""
    made: dict[tuple[str, str, str], int] = defaultdict(int)
    for row in rows:
        if row.message_type == OPTIMA[row.protocol]:
            _, group_id, span = row.topic.split(":", 2)
            made[(row.peer_name, group_id, span.split("/")[0])] += 1
    for peer in everyone:
        for (group_id, window), limits in peer.sent.items():
            key = (peer.name, group_id, peer.start(window).isoformat())
            if window in PACED:
                assert made[key] == len(limits), (key, made[key], limits)
            else:
                assert 1 <= made[key] <= len(limits), (key, made[key], limits)


def _newest_limits_held_last(everyone: list[Peer]) -> None:
    for peer in everyone:
        last: dict[tuple[str, str], list[float]] = {}
        for arrival in peer.optima():
            group_id, window, capacities = _answers(arrival)
            last[(group_id, window)] = capacities
        for (group_id, window), limits in peer.sent.items():
            held = last[(group_id, iso(peer.start(window)))]
            assert held == pytest.approx([limits[-1]] * BLOCKS, abs=0.01), (
                peer.name,
                group_id,
                window,
                held,
                limits,
            )


def _heartbeats_not_doubled(peer: Peer) -> None:
    """Each heartbeat was beaten at least one interval after the one before: its
    offline_mode_at, three intervals past the moment it was beaten, moves on by at least one
    interval (exact; two processes beating at once differ by milliseconds, and a heartbeat
    delivered twice by nothing). Arrival times are no measure of this: a heartbeat queued
    behind a burst of optima may arrive more than an interval late, next to the one after."""
    beats = peer.endpoint.accepted("heartbeat")
    vouched = [datetime.fromisoformat(b.body["offline_mode_at"]) for b in beats]
    interval = timedelta(seconds=HEARTBEAT_SECONDS)
    steps = [later - earlier for earlier, later in itertools.pairwise(vouched)]
    assert all(step >= interval for step in steps), (peer.name, steps)
