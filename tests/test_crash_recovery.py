"""kill -9 of a real server under a stream of acknowledged writes, three times on SQLite and
three times on PostgreSQL (issue 13, "Tests"): no write the server acknowledged is lost, and a
message in flight at the kill goes out again soon after the restart, not after its lease.

Each round starts `flexbridge serve` on the same port and database and streams writes from
concurrent clients until every client has some acknowledged and the CPO holds an optimal
forecast unanswered (in flight); then the server and its solver processes get SIGKILL while
the clients are still sending. What was acknowledged is an answer the clients read: a 200
with Success true for a CP-API SaveTimeSeriesV1, a 204 for an OCMP metering message or a
maximum capacity forecast. A request cut off by the kill may or may not have been applied;
none is counted. After the restart every acknowledged value is read back from the store.

The lease is set to two minutes, so that the message held at the kill could not be sent
again within the 30 s this test waits for it unless the restarted process (the same slot:
host and port) released its own claims at start (adapter/outbox.py): a logical bound, not a
timing one.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from live_server import CpoEndpoint, LiveServer, free_port, iso, wait_for

from adapter import peer_admin
from adapter.auth import encode_basic_auth
from store.accounts import Role, add_account
from store.catalogue import AssetSubType, AssetType
from store.db import Database
from store.entities import Entity, create_entity
from store.references import ExternalRef, ProtocolId, add_reference
from store.series import find_series
from store.series_types import SeriesType
from store.tenants import Tenant, add_tenant
from store.values import read_values

pytestmark = pytest.mark.slow

ROUNDS = 3
SAVERS = 4  # CP-API clients, one meter each
METERS = 2  # OCMP metering clients, one asset each
ENOUGH = 20  # acknowledged writes of every client before each kill
LEASE_SECONDS = 120.0
REDELIVERY_SECONDS = 30.0  # well inside the lease
Q = timedelta(minutes=15)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
KW_PER_AMP = 0.230 * 3  # 230 V, three phases, power factor 1 (the group's defaults)
SETTINGS = {
    "FLEXBRIDGE_OUTBOX_LEASE_SECONDS": str(LEASE_SECONDS),
    "FLEXBRIDGE_OUTBOX_TIMEOUT_SECONDS": "100",  # the CPO holds a send far longer than 10 s
    "FLEXBRIDGE_LOG_LEVEL": "WARNING",
}


@dataclass
class Site:
    tenant: Tenant
    key: str
    group: Entity
    meters: list[Entity]  # CP-API, SaveTimeSeriesV1
    assets: list[Entity]  # OCMP, metering


@dataclass
class Acknowledged:
    """Every write the server acknowledged, as the client sent it."""

    saves: dict[int, dict[datetime, float]] = field(default_factory=dict)  # by meter
    readings: dict[int, dict[datetime, float]] = field(default_factory=dict)  # by asset
    forecasts: dict[datetime, float] = field(default_factory=dict)  # window start -> Amps

    def counts(self) -> list[int]:
        return [
            *(len(self.saves.get(n, {})) for n in range(SAVERS)),
            *(len(self.readings.get(n, {})) for n in range(METERS)),
            len(self.forecasts),
        ]


async def _seed(db: Database) -> Site:
    async with db.transaction() as tx:
        tenant, key = await add_tenant(tx, "crash")
        await add_account(tx, tenant, "writer", Role.PARTICIPANT, "writer-pw")
        group = await create_entity(tx, tenant, AssetType.AREA, AssetSubType.SITE, {"Name": "S"})
        await add_reference(tx, tenant, group, ProtocolId("ocmp", "cpo", "group", "site-1"))
        meters, assets = [], []
        for n in range(SAVERS):
            meter = await create_entity(
                tx, tenant, AssetType.RESOURCE, AssetSubType.METER, {"Name": f"m{n}"}
            )
            await add_reference(tx, tenant, meter, ExternalRef("crash", "Resource", f"m{n}"))
            meters.append(meter)
        for n in range(METERS):
            asset = await create_entity(
                tx, tenant, AssetType.RESOURCE, AssetSubType.METER, {"Name": f"a{n}"}
            )
            await add_reference(tx, tenant, asset, ProtocolId("ocmp", "cpo", "asset", f"a{n}"))
            assets.append(asset)
    await peer_admin.add(db, peer_admin.NewPeer("crash", "ocmp", "cpo", None, "cpo", "cpo-pw"))
    return Site(tenant, key, group, meters, assets)


# ---------------------------------------------------------------------------------------------
# The clients: each writes until the server goes away, recording what was acknowledged


async def _saver(
    session: aiohttp.ClientSession,
    base: str,
    site: Site,
    n: int,
    k: itertools.count,
    acks: Acknowledged,
) -> None:
    headers = {"Authorization": encode_basic_auth("writer", "writer-pw"), "X-Tenant-Key": site.key}
    while True:
        first = next(k) * 4
        values = {T0 + (first + i) * Q: n * 1_000_000 + first + i + 0.25 for i in range(4)}
        body = {
            "EntityKey": {
                "SystemIdentifier": "crash",
                "ExternalEntityReferenceType": "Resource",
                "ExternalKey": f"m{n}",
            },
            "TimeSeriesType": "Consumption",
            "Resolution": "FifteenMinutes",
            "Unit": "kWh",
            "TimeSeriesValueList": [{"ValueTime": iso(t), "Value": v} for t, v in values.items()],
        }
        url = base + "/api/TimeSeries/SaveTimeSeriesV1"
        async with session.post(url, json=body, headers=headers) as answer:
            saved = await answer.json()
        assert answer.status == 200 and saved["Success"] is True, saved
        acks.saves.setdefault(n, {}).update(values)


async def _meter(
    session: aiohttp.ClientSession, base: str, n: int, k: itertools.count, acks: Acknowledged
) -> None:
    while True:
        step = next(k)
        at, register = T0 + step * Q, 1000.0 + 2.5 * step  # an accumulating register
        body = {
            "asset_id": f"a{n}",
            "meter_values": [{"value": register, "unit": "KWH", "measure_time": iso(at)}],
        }
        url = base + "/ocmp/1.0/update_detailed_metering_data"
        async with session.post(url, json=body) as answer:
            text = await answer.text()
        assert answer.status == 204, text
        acks.readings.setdefault(n, {})[at] = register


async def _forecaster(
    session: aiohttp.ClientSession,
    base: str,
    first: datetime,
    k: itertools.count,
    acks: Acknowledged,
) -> None:
    """One-hour windows one after the other, so that no optimum supersedes another."""
    while True:
        step = next(k)
        start, amps = first + step * 4 * Q, 10.0 + step % 40
        body = {
            "group_id": "site-1",
            "forecasted_blocks": [
                {
                    "capacity": amps,
                    "phase": "ALL",
                    "unit": "A",
                    "start_time": iso(start + i * Q),
                    "end_time": iso(start + (i + 1) * Q),
                }
                for i in range(4)
            ],
        }
        url = base + "/ocmp/1.0/update_group_maximum_capacity_forecast"
        async with session.post(url, json=body) as answer:
            text = await answer.text()
        assert answer.status == 204, text
        acks.forecasts[start] = amps


async def _until_cut_off(client: asyncio.Future[None]) -> None:
    """A client ends when the server is killed under it; any other end is a failure."""
    try:
        await client
    except (aiohttp.ClientError, TimeoutError):
        return
    raise AssertionError("a client stopped before the server was killed")


# ---------------------------------------------------------------------------------------------
# Reading back


async def _stored(
    db: Database, tenant: Tenant, entity: Entity, series_type: SeriesType
) -> dict[datetime, float | None]:
    async with db.read() as tx:
        series = await find_series(tx, tenant, entity, series_type)
        if series is None:
            return {}
        points = await read_values(
            tx, tenant, series, T0 - timedelta(days=1), T0 + timedelta(days=3650)
        )
    return {p.start: p.value for p in points}


async def _lost(db: Database, site: Site, acks: Acknowledged) -> list[str]:
    """Every acknowledged write missing from the store, or stored with another value."""
    lost: list[str] = []
    for n, values in acks.saves.items():
        stored = await _stored(db, site.tenant, site.meters[n], SeriesType.CONSUMPTION)
        lost += [f"m{n} {t}: {v}" for t, v in values.items() if stored.get(t) != v]
    for n, values in acks.readings.items():
        stored = await _stored(
            db, site.tenant, site.assets[n], SeriesType.CONSUMPTION_METER_READING
        )
        lost += [f"a{n} {t}: {v}" for t, v in values.items() if stored.get(t) != v]
    limits = await _stored(db, site.tenant, site.group, SeriesType.MAX_CAPACITY)
    for start, amps in acks.forecasts.items():
        for quarter in (start + i * Q for i in range(4)):
            kw = limits.get(quarter)
            if kw is None or abs(kw - amps * KW_PER_AMP) > 1e-6:
                lost.append(f"site-1 {quarter}: {amps} A, stored {kw} kW")
    return lost


def _optimum_windows(cpo: CpoEndpoint) -> set[str]:
    return {a.body["forecasted_blocks"][0]["start_time"] for a in cpo.accepted(cpo.OPTIMAL)}


# ---------------------------------------------------------------------------------------------


async def test_no_acknowledged_write_is_lost_across_three_kills(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    site = await _seed(db)
    cpo = CpoEndpoint()
    await cpo.start()
    server = LiveServer(database_url, free_port(), tmp_path / "serve.log", SETTINGS)
    acks = Acknowledged()
    steps = [itertools.count() for _ in range(SAVERS + METERS + 1)]
    first_window = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    login = {"Authorization": encode_basic_auth("cpo", "cpo-pw")}
    try:
        await server.start()
        async with aiohttp.ClientSession(headers=login) as session:
            handshake = {"base_url": cpo.base_url, "heartbeat_interval": 900}
            async with session.post(server.base + "/ocmp/1.0/handshake", json=handshake) as a:
                assert a.status == 204, await a.text()
        cpo.hold = True
        for kill in range(1, ROUNDS + 1):
            in_flight = await _stream_and_kill(server, site, cpo, steps, first_window, acks)
            await server.start()
            await wait_for(
                lambda: cpo.attempted(in_flight) >= 2,  # noqa: B023 (awaited in the loop)
                REDELIVERY_SECONDS,
                f"kill {kill}: message {in_flight}, in flight at the kill, sent again",
            )
            lost = await _lost(db, site, acks)
            assert lost == [], f"kill {kill}: {len(lost)} acknowledged writes lost: {lost[:10]}"
            cpo.release()

        # Every acknowledged forecast got its optimal forecast, though plans and sends were
        # cut off three times.
        cpo.hold = False
        cpo.release()
        expected = {iso(start) for start in acks.forecasts}
        await wait_for(
            lambda: expected <= _optimum_windows(cpo),
            60,
            f"an optimal forecast for each of {len(expected)} acknowledged forecasts",
        )
        assert server.stop() == 0, server.output()[-4000:]
    finally:
        server.stop()
        cpo.release()
        await cpo.stop()
    assert min(acks.counts()) >= ROUNDS * ENOUGH
    assert "Traceback" not in server.output(), server.output()[-6000:]


async def _stream_and_kill(
    server: LiveServer,
    site: Site,
    cpo: CpoEndpoint,
    steps: list[itertools.count[int]],
    first_window: datetime,
    acks: Acknowledged,
) -> str:
    """Stream writes until every client has ENOUGH more acknowledged and the CPO holds an
    optimal forecast, then SIGKILL the server under them; returns the held message's id."""
    login = {"Authorization": encode_basic_auth("cpo", "cpo-pw")}
    before = acks.counts()
    async with aiohttp.ClientSession(headers=login) as session:
        base = server.base
        clients = [
            *(
                asyncio.ensure_future(_saver(session, base, site, n, steps[n], acks))
                for n in range(SAVERS)
            ),
            *(
                asyncio.ensure_future(_meter(session, base, n, steps[SAVERS + n], acks))
                for n in range(METERS)
            ),
            asyncio.ensure_future(_forecaster(session, base, first_window, steps[-1], acks)),
        ]

        def streamed_and_in_flight() -> bool:
            for client in clients:
                if client.done():
                    client.result()  # a client that failed says why
            moved = [now - then for now, then in zip(acks.counts(), before, strict=True)]
            return min(moved) >= ENOUGH and bool(cpo.held)

        try:
            await wait_for(streamed_and_in_flight, 60, "writes acknowledged and a send held")
        except BaseException:
            for client in clients:
                client.cancel()
            raise
        in_flight = cpo.held[0]
        server.kill()
        await asyncio.wait_for(asyncio.gather(*map(_until_cut_off, clients)), 30)
    return in_flight
