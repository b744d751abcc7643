"""Small messages at rate: SaveTimeSeriesV1 of 96 values, one event-hub message, one OCMP
metering message, from 16 clients, against a real `flexbridge serve` on SQLite and on
PostgreSQL, next to a no-op aiohttp handler fed the same requests in the same run.

    .venv/bin/python benchmarks/small_messages.py [--requests 1000] [--clients 16]
        [--backends sqlite,postgresql] [--group-commit-max N] [--postgres-url URL]

Set-up (not timed), per backend: a fresh database (a SQLite file, or a scratch PostgreSQL
database made on the --postgres-url server and dropped afterwards) with a tenant and

- a CP-API participant account and 16 meters m0..m15 (cross-references bench/Resource/m<n>);
  request k saves one TimeSeriesV1 of 96 15-minute Consumption values for meter k mod 16,
  day k div 16, so every request writes a new day;
- an event-hub gateway (SAS token) and 16 meters with DeviceId e0..e15; request k is one
  message of one accumulated reading (Consumption Meter Reading) of device k mod 16 at
  quarter hour k div 16, from which the server derives the quarter's energy (Table 2);
- an OCMP peer `cpo` and 16 charge points cp-0..cp-15 by the peer's asset ids; request k is
  one UpdateDetailedMeteringData of one reading of asset k mod 16 at quarter hour k div 16,
  with an X-Request-ID of its own (so the idempotency claim is part of every message).

Then `flexbridge serve` on that database (the per-account rate budget raised out of the
way: 16 clients of one account at these rates would be refused by the default 200/s). Each
kind first gets --warmup requests (untimed: the series are created there), then --requests
timed ones with --clients requests in flight on one aiohttp.ClientSession; every answer must
be the success the protocol defines (200 with Success true, 201, 204). The floor is a no-op
aiohttp server (this file run with --serve-noop) that reads the body and answers the same
status; it gets the very same requests from the same client, in the same run.

Target (the issue): >= 400 requests/s for each kind, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import orjson
from aiohttp import web
from cpapi_ingest import Server, _flexbridge_command, _free_port
from machine import describe

from adapter import peer_admin
from adapter.auth import encode_basic_auth
from protocols.cpapi.v1 import sas
from store.accounts import Role, add_account, record_token
from store.catalogue import AssetSubType, AssetType
from store.db import open_database
from store.entities import create_entity
from store.migrate import upgrade
from store.references import ExternalRef, ProtocolId, add_reference
from store.tenants import add_tenant

SAVE_PATH = "/api/TimeSeries/SaveTimeSeriesV1"
EVENT_PATH = "/iotexternaleh/publishers/gw1/messages"
METERING_PATH = "/ocmp/1.0/update_detailed_metering_data"
DEVICES = 16  # meters (and devices, and charge points) per kind
VALUES = 96
START = datetime(2026, 1, 1, tzinfo=UTC)
Q = timedelta(minutes=15)
USER, PASSWORD = "bench", "bench-pw"
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


# ---------------------------------------------------------------------------------------------
# Set-up


async def _seed(url: str) -> dict[str, str]:
    """The tenant, its accounts and devices; returns the credentials the clients send."""
    db = open_database(url)
    try:
        await upgrade(db)
        async with db.transaction() as tx:
            tenant, key = await add_tenant(tx, "bench")
            await add_account(tx, tenant, USER, Role.PARTICIPANT, PASSWORD)
            for n in range(DEVICES):
                meter = await create_entity(
                    tx, tenant, AssetType.RESOURCE, AssetSubType.METER, {"Name": f"meter {n}"}
                )
                await add_reference(tx, tenant, meter, ExternalRef("bench", "Resource", f"m{n}"))
                await create_entity(
                    tx,
                    tenant,
                    AssetType.RESOURCE,
                    AssetSubType.METER,
                    {"Name": f"device {n}", "DeviceId": f"e{n}"},
                )
                point = await create_entity(
                    tx,
                    tenant,
                    AssetType.RESOURCE,
                    AssetSubType.CHARGING,
                    {"Name": f"CP {n}", "InstalledMaxCapacity": 11.0},
                )
                await add_reference(
                    tx, tenant, point, ProtocolId("ocmp", "cpo", "asset", f"cp-{n}")
                )
            expiry = datetime.now(UTC) + timedelta(days=1)
            token = sas.make_token(f"https://hub.example{EVENT_PATH[:-9]}", expiry, key_name="gw1")
            gateway, _ = await add_account(tx, tenant, "gw1", Role.GATEWAY)
            await record_token(tx, gateway, sas.parse_token(token).signature, expiry)
        await peer_admin.add(db, peer_admin.NewPeer("bench", "ocmp", "cpo", None, "cpo", "cpo-pw"))
    finally:
        await db.close()
    return {"tenant_key": key, "sas": token}


async def _scratch_postgres(server_url: str, name: str, drop: bool = False) -> str:
    """Create (or drop) the scratch database `name` on the server of `server_url`."""
    import asyncpg  # only the PostgreSQL leg needs it

    plain = server_url.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(plain)
    try:
        if drop:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


# ---------------------------------------------------------------------------------------------
# The three kinds of request


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Request:
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Kind:
    label: str
    status: int
    make: Callable[[int, dict[str, str]], Request]  # (request number, credentials)


def _save(k: int, creds: dict[str, str]) -> Request:
    day = START + timedelta(days=k // DEVICES)
    body = {
        "EntityKey": {
            "SystemIdentifier": "bench",
            "ExternalEntityReferenceType": "Resource",
            "ExternalKey": f"m{k % DEVICES}",
        },
        "TimeSeriesType": "Consumption",
        "Resolution": "FifteenMinutes",
        "Unit": "kWh",
        "TimeSeriesValueList": [
            {"ValueTime": _iso(day + i * Q), "Value": round(0.5 + (i % 24) * 0.05, 3)}
            for i in range(VALUES)
        ],
    }
    headers = {
        "Authorization": encode_basic_auth(USER, PASSWORD),
        "X-Tenant-Key": creds["tenant_key"],
        "Content-Type": "application/json",
    }
    return Request(SAVE_PATH, orjson.dumps(body), headers)


def _event(k: int, creds: dict[str, str]) -> Request:
    body = {
        "deviceid": f"e{k % DEVICES}",
        "property": "Consumption Meter Reading",
        "format": "1.0",
        "unit": "kWh",
        "values": [{"starttime": _iso(START + (k // DEVICES) * Q), "value": 1000 + k * 0.25}],
    }
    headers = {
        "Authorization": creds["sas"],
        "Content-Type": "application/atom+xml;type=entry;charset=utf-8",
    }
    return Request(EVENT_PATH, orjson.dumps(body), headers)


def _metering(k: int, creds: dict[str, str]) -> Request:
    at = START + (k // DEVICES) * Q
    body = {
        "asset_id": f"cp-{k % DEVICES}",
        "meter_values": [{"value": 1000 + k * 0.25, "unit": "KWH", "measure_time": _iso(at)}],
    }
    headers = {
        "Authorization": encode_basic_auth("cpo", "cpo-pw"),
        "X-Tenant-Key": creds["tenant_key"],
        "Content-Type": "application/json",
        "X-Request-ID": f"metering-{k}",
    }
    return Request(METERING_PATH, orjson.dumps(body), headers)


KINDS = (
    Kind("SaveTimeSeriesV1 (96 values)", 200, _save),
    Kind("event-hub message (1 reading)", 201, _event),
    Kind("OCMP metering (1 reading)", 204, _metering),
)


# ---------------------------------------------------------------------------------------------
# The no-op floor (this file run with --serve-noop PORT)


async def _noop(request: web.Request) -> web.Response:
    await request.read()
    if request.path == SAVE_PATH:
        return web.Response(body=b'{"Success":true}', content_type="application/json")
    return web.Response(status=201 if request.path == EVENT_PATH else 204)


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def serve_noop(port: int) -> None:
    app = web.Application()
    app.router.add_post("/{tail:.*}", _noop)
    app.router.add_get("/health", _ok)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# ---------------------------------------------------------------------------------------------
# The load


def _check(kind: Kind, status: int, payload: bytes) -> None:
    if status != kind.status:
        raise RuntimeError(f"{kind.label}: answered {status}, not {kind.status}: {payload[:800]!r}")
    if kind.status == 200 and orjson.loads(payload).get("Success") is not True:
        raise RuntimeError(f"{kind.label}: not saved: {payload[:800]!r}")


async def _fire(
    session: aiohttp.ClientSession, base: str, kind: Kind, requests: Sequence[Request], clients: int
) -> tuple[float, list[float]]:
    """Send every request, `clients` in flight; elapsed seconds and each latency."""
    pending = iter(requests)
    latencies: list[float] = []

    async def client() -> None:
        for request in pending:  # a shared iterator: each request is taken by one client
            sent = time.perf_counter()
            async with session.post(
                base + request.path, data=request.body, headers=request.headers
            ) as answer:
                payload = await answer.read()
                status = answer.status
            latencies.append(time.perf_counter() - sent)
            _check(kind, status, payload)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - started, latencies


def _percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class Figure:
    rate: float
    p50: float
    p99: float
    cpu_ms: float  # the server process's CPU time per request
    flushes: float | None = None  # PostgreSQL: WAL flushes per request (the whole server's)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _wal_flushes(url: str | None) -> int | None:
    """WAL syncs of the PostgreSQL server so far (pg_stat_wal counts every database; the
    server's stats are published within about a second, hence the pause)."""
    if url is None:
        return None
    import asyncpg

    await asyncio.sleep(1.2)  # let the backends publish their counters, not a sync point
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        return int(await conn.fetchval("SELECT wal_sync FROM pg_stat_wal"))
    finally:
        await conn.close()


async def _run_kinds(
    server: Server, args: argparse.Namespace, creds: dict[str, str], pg_url: str | None = None
) -> dict[str, Figure]:
    figures = {}
    connector = aiohttp.TCPConnector(limit=args.clients)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await server.wait_ready(session, "/health")
        for kind in KINDS:
            warm = [kind.make(k, creds) for k in range(args.warmup)]
            timed = [kind.make(k, creds) for k in range(args.warmup, args.warmup + args.requests)]
            await _fire(session, server.base, kind, warm, args.clients)
            flushed, cpu = await _wal_flushes(pg_url), _cpu_seconds(server.process.pid)
            elapsed, latencies = await _fire(session, server.base, kind, timed, args.clients)
            cpu = _cpu_seconds(server.process.pid) - cpu
            after = await _wal_flushes(pg_url)
            figures[kind.label] = Figure(
                len(timed) / elapsed,
                _percentile(latencies, 0.5),
                _percentile(latencies, 0.99),
                cpu / len(timed) * 1000,
                None if after is None or flushed is None else (after - flushed) / len(timed),
            )
    return figures


async def _flexbridge(
    label: str, url: str, args: argparse.Namespace, folder: Path
) -> dict[str, Figure]:
    creds = await _seed(url)
    env = {
        **os.environ,
        "FLEXBRIDGE_ADMIN_PASSWORD": "bench-admin-pw",
        "FLEXBRIDGE_SECRET_KEY_FILE": str(folder / f"{label}.key"),
        "FLEXBRIDGE_RATE_LIMIT_PER_SECOND": "1000000",
        "FLEXBRIDGE_RATE_LIMIT_BURST": "1000000",
    }
    if args.group_commit_max is not None:
        env["FLEXBRIDGE_GROUP_COMMIT_MAX"] = str(args.group_commit_max)
    port = _free_port()
    command = [*_flexbridge_command(), "serve", "--port", str(port), "--database-url", url]
    server = Server(f"flexbridge on {label}", command, port, folder / f"{label}.log", env)
    try:
        pg_url = url if url.startswith("postgresql") else None
        figures = await _run_kinds(server, args, creds, pg_url)
    except BaseException:
        server.stop()
        print(f"{server.label} log, last 8,000 characters:\n{server.output()[-8000:]}", flush=True)
        raise
    code = server.stop()
    if code != 0:
        print(f"{server.label} exited with {code}:\n{server.output()[-4000:]}", flush=True)
    return figures


async def _noop_figures(args: argparse.Namespace, folder: Path) -> dict[str, Figure]:
    port = _free_port()
    command = [sys.executable, str(Path(__file__).resolve()), "--serve-noop", str(port)]
    server = Server("no-op aiohttp handler", command, port, folder / "noop.log")
    try:
        return await _run_kinds(server, args, {"tenant_key": "k", "sas": "SharedAccessSignature x"})
    finally:
        server.stop()


def _line(label: str, figure: Figure, floor: Figure | None) -> str:
    ratio = "" if floor is None else f" | {figure.rate / floor.rate:6.1%} of no-op"
    flushes = "" if figure.flushes is None else f" | {figure.flushes:4.2f} WAL flushes/request"
    return (
        f"  {label:<34} {figure.rate:>8,.0f} requests/s | p50 {figure.p50 * 1000:7.1f} ms | "
        f"p99 {figure.p99 * 1000:7.1f} ms | server CPU {figure.cpu_ms:5.2f} ms/request"
        f"{ratio}{flushes}"
    )


async def run(args: argparse.Namespace, folder: Path) -> None:
    gc = "server default" if args.group_commit_max is None else str(args.group_commit_max)
    print(
        f"{args.requests} timed requests per kind ({args.warmup} warm-up untimed), "
        f"{args.clients} clients; group_commit_max: {gc}",
        flush=True,
    )
    results: dict[str, dict[str, Figure]] = {}
    for backend in args.backends:
        if backend == "sqlite":
            results["SQLite"] = await _flexbridge(
                "sqlite", f"sqlite+aiosqlite:///{folder / 'bench.db'}", args, folder
            )
            continue
        name = f"flexbridge_small_{os.getpid()}"
        url = await _scratch_postgres(args.postgres_url, name)
        try:
            results["PostgreSQL"] = await _flexbridge("postgresql", url, args, folder)
        finally:
            await _scratch_postgres(args.postgres_url, name, drop=True)
    floor = await _noop_figures(args, folder)
    print("no-op aiohttp handler, same requests, same client:")
    for kind in KINDS:
        print(_line(kind.label, floor[kind.label], None))
    for backend, figures in results.items():
        print(f"flexbridge on {backend}:")
        for kind in KINDS:
            print(_line(kind.label, figures[kind.label], floor[kind.label]))
    missed = [
        f"{backend} {label} ({figure.rate:,.0f}/s)"
        for backend, figures in results.items()
        for label, figure in figures.items()
        if figure.rate < 400
    ]
    print("target >= 400 requests/s: " + ("met" if not missed else "NOT met: " + "; ".join(missed)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per kind")
    parser.add_argument("--warmup", type=int, default=64, help="untimed requests per kind first")
    parser.add_argument("--clients", type=int, default=16, help="requests in flight")
    parser.add_argument(
        "--backends",
        type=lambda text: [b.strip() for b in text.split(",") if b.strip()],
        default=["sqlite", "postgresql"],
        help="comma-separated: sqlite, postgresql (default both)",
    )
    parser.add_argument(
        "--group-commit-max", type=int, help="the server's group_commit_max (default: its own)"
    )
    parser.add_argument(
        "--postgres-url",
        default=PG_URL,
        help=f"a server to make a scratch database on (default {PG_URL})",
    )
    parser.add_argument("--serve-noop", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_noop is not None:
        serve_noop(args.serve_noop)
        return
    unknown = set(args.backends) - {"sqlite", "postgresql"}
    if unknown or args.requests < 1 or args.clients < 1 or args.warmup < 0:
        parser.error("--backends sqlite,postgresql; --requests, --clients >= 1; --warmup >= 0")
    print(describe(), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(run(args, Path(folder)))


if __name__ == "__main__":
    main()
