"""CP-API ingest: SaveTimeSeriesListForEntitiesV1 over HTTP on SQLite and PostgreSQL, end to
end, against the request rate of a no-op aiohttp handler fed the same requests in the same run.

    .venv/bin/python benchmarks/cpapi_ingest.py [--requests 50] [--concurrency 4]
        [--backends sqlite,postgresql] [--postgres-url URL]

Set-up (not timed), per backend: a fresh database (a SQLite file, or a scratch PostgreSQL
database made on the --postgres-url server and dropped afterwards) with a tenant, a
participant account and 100 Meter resources named by the cross-references
bench/Resource/m0..m99, written through the store API; then a real `flexbridge serve`
subprocess on that database. Each request carries 100
TimeSeriesV1 (one per meter) of 96 15-minute Consumption values, a different day per
request, so every request writes new values; the bodies are serialised before timing. One
aiohttp.ClientSession keeps --concurrency requests in flight; every answer must be 200 with
every item Success true. The floor is a no-op aiohttp server, also a subprocess (this file,
run with --serve-noop), whose handler reads the body and answers a small JSON list; it gets
the very same bodies and headers at the same concurrency. Each server first gets --warmup
requests (days of their own, not timed), so that the one-off creation of the 100 series
is not in the figure. A second floor, a handler that only parses the body with aiohttp's
request.json(), shows what reading the JSON alone costs.

Targets (the issue): >= 100,000 values/s, and >= 40% of the no-op request rate.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import orjson
from aiohttp import web
from machine import describe
from scratch_db import PG_URL, scratch_postgres

from adapter.auth import encode_basic_auth
from store.accounts import Role, add_account
from store.catalogue import AssetSubType, AssetType
from store.db import open_database
from store.entities import create_entity
from store.migrate import upgrade
from store.references import ExternalRef, add_reference
from store.tenants import add_tenant

ROOT = Path(__file__).resolve().parent.parent
PATH = "/api/TimeSeries/SaveTimeSeriesListForEntitiesV1"
SERIES = 100
VALUES = 96
START = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)
USER, PASSWORD = "bench", "bench-pw"
STARTUP_SECONDS = 60.0
STOP_SECONDS = 40.0  # the server's shutdown_timeout is 30 s


# ---------------------------------------------------------------------------------------------
# Set-up


async def _seed(url: str) -> str:
    """Tenant, participant account and the meters; returns the tenant key."""
    db = open_database(url)
    try:
        await upgrade(db)
        async with db.transaction() as tx:
            tenant, key = await add_tenant(tx, "bench")
            await add_account(tx, tenant, USER, Role.PARTICIPANT, PASSWORD)
            for n in range(SERIES):
                meter = await create_entity(
                    tx, tenant, AssetType.RESOURCE, AssetSubType.METER, {"Name": f"meter {n}"}
                )
                await add_reference(tx, tenant, meter, ExternalRef("bench", "Resource", f"m{n}"))
    finally:
        await db.close()
    return key


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _body(day: int) -> bytes:
    """One request: SERIES meters x VALUES quarter hours of the day `day` days after START."""
    first = START + timedelta(days=day)
    times = [_iso(first + i * STEP) for i in range(VALUES)]
    return orjson.dumps(
        [
            {
                "EntityKey": {
                    "SystemIdentifier": "bench",
                    "ExternalEntityReferenceType": "Resource",
                    "ExternalKey": f"m{n}",
                },
                "TimeSeriesType": "Consumption",
                "Resolution": "FifteenMinutes",
                "Unit": "kWh",
                "TimeSeriesValueList": [
                    {"ValueTime": t, "Value": round(0.5 + (n % 7) * 0.1 + (i % 24) * 0.05, 3)}
                    for i, t in enumerate(times)
                ],
            }
            for n in range(SERIES)
        ]
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _flexbridge_command() -> list[str]:
    script = Path(sys.executable).with_name("flexbridge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "adapter.cli"]


class Server:
    """A server subprocess, its output in a log file, stopped with SIGTERM."""

    def __init__(self, label: str, command: Sequence[str], port: int, log: Path, env=None):  # type: ignore[no-untyped-def]
        self.label = label
        self.port = port
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    async def wait_ready(self, session: aiohttp.ClientSession, path: str) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.label} exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                async with session.get(self.base + path) as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError(
            f"{self.label} not ready after {STARTUP_SECONDS:.0f} s:\n{self.output()}"
        )

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                print(f"{self.label} did not stop within {STOP_SECONDS:.0f} s; killed", flush=True)
                self.process.kill()
                self.process.wait()
        return self.process.returncode


# ---------------------------------------------------------------------------------------------
# The no-op floor (this file run with --serve-noop PORT)


async def _noop(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=b'[{"Success":true}]', content_type="application/json")


async def _parse_only(request: web.Request) -> web.Response:
    """A second, more telling floor: the body parsed as JSON (aiohttp's own request.json())
    and nothing stored."""
    body = await request.json()
    return web.json_response([{"Success": True} for _ in body])


def serve_noop(port: int, parse: bool) -> None:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post(PATH, _parse_only if parse else _noop)
    app.router.add_get("/health", _ok)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


# ---------------------------------------------------------------------------------------------
# The load


def _check_saved(status: int, payload: bytes) -> None:
    if status != 200:
        raise RuntimeError(f"flexbridge answered {status}: {payload[:2000]!r}")
    answer = orjson.loads(payload)
    if not isinstance(answer, list) or len(answer) != SERIES:
        raise RuntimeError(f"expected {SERIES} SaveTimeSeriesResponseV1, got {payload[:2000]!r}")
    refused = [item for item in answer if item.get("Success") is not True]
    if refused:
        raise RuntimeError(f"{len(refused)} of {SERIES} items not saved, e.g. {refused[0]}")


def _check_noop(status: int, payload: bytes) -> None:
    if status != 200:
        raise RuntimeError(f"no-op server answered {status}: {payload[:2000]!r}")
    orjson.loads(payload)


async def _floor(  # type: ignore[no-untyped-def]
    label: str, flag: str, args: argparse.Namespace, folder: Path, headers, warm, bodies
) -> float:
    """The request rate of this file's no-op server (`flag` picks the handler)."""
    port = _free_port()
    noop = Server(
        label,
        [sys.executable, str(Path(__file__).resolve()), flag, str(port)],
        port,
        folder / f"{flag.strip('-')}.log",
    )
    try:
        elapsed, latencies = await _measure(
            noop, headers, warm, bodies, args.concurrency, _check_noop
        )
    finally:
        noop.stop()
    return _report(label, args.requests, elapsed, latencies)


async def _fire(  # type: ignore[no-untyped-def]
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    bodies: Sequence[bytes],
    concurrency: int,
    check,
) -> tuple[float, list[float]]:
    """Send every body, `concurrency` in flight; returns elapsed seconds and latencies."""
    pending = iter(bodies)
    latencies: list[float] = []

    async def worker() -> None:
        for body in pending:  # a shared iterator: each body is taken by one worker
            sent = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as answer:
                payload = await answer.read()
                status = answer.status
            latencies.append(time.perf_counter() - sent)
            check(status, payload)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


def _percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _report(label: str, count: int, elapsed: float, latencies: Sequence[float]) -> float:
    rate = count / elapsed
    print(
        f"{label:<56} {count * SERIES * VALUES / elapsed:>10,.0f} values/s | "
        f"{rate:>8,.1f} requests/s | p50 {_percentile(latencies, 0.5) * 1000:>8.1f} ms | "
        f"p99 {_percentile(latencies, 0.99) * 1000:>8.1f} ms | {elapsed:6.2f} s",
        flush=True,
    )
    return rate


async def _measure(  # type: ignore[no-untyped-def]
    server: Server, headers, warm: Sequence[bytes], bodies: Sequence[bytes], concurrency, check
) -> tuple[float, list[float]]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await server.wait_ready(session, "/health")
        if warm:
            await _fire(session, server.base + PATH, headers, warm, concurrency, check)
        return await _fire(session, server.base + PATH, headers, bodies, concurrency, check)


def _headers(key: str) -> dict[str, str]:
    return {
        "Authorization": encode_basic_auth(USER, PASSWORD),
        "X-Tenant-Key": key,
        "Content-Type": "application/json",
    }


async def _flexbridge(  # type: ignore[no-untyped-def]
    backend: str, url: str, args: argparse.Namespace, folder: Path, warm, bodies
) -> float:
    """flexbridge serve on `url`, seeded first; returns its request rate."""
    headers = _headers(await _seed(url))
    env = {**os.environ, "FLEXBRIDGE_ADMIN_PASSWORD": "bench-admin-pw"}
    port = _free_port()
    flexbridge = Server(
        f"flexbridge ({backend})",
        [*_flexbridge_command(), "serve", "--port", str(port), "--database-url", url],
        port,
        folder / f"flexbridge-{backend}.log",
        env,
    )
    try:
        elapsed, latencies = await _measure(
            flexbridge, headers, warm, bodies, args.concurrency, _check_saved
        )
    except BaseException:
        flexbridge.stop()
        print(f"flexbridge log, last 8,000 characters:\n{flexbridge.output()[-8000:]}", flush=True)
        raise
    code = flexbridge.stop()
    if code != 0:
        print(f"flexbridge exited with {code}:\n{flexbridge.output()}", flush=True)
    return _report(
        f"flexbridge SaveTimeSeriesListForEntitiesV1, {backend}", args.requests, elapsed, latencies
    )


async def run(args: argparse.Namespace, folder: Path) -> None:
    # Warm-up days come first in the calendar; the timed ones follow, so every timed request
    # writes values no earlier request wrote.
    warm = [_body(day) for day in range(args.warmup)]
    bodies = [_body(args.warmup + day) for day in range(args.requests)]
    size = sum(map(len, bodies)) / len(bodies)
    print(
        f"{args.requests} requests x {SERIES} series x {VALUES} values = "
        f"{args.requests * SERIES * VALUES:,} values; {size / 1024:,.0f} KiB per body; "
        f"concurrency {args.concurrency}; {args.warmup} warm-up request(s) per server untimed",
        flush=True,
    )
    rates: dict[str, float] = {}
    if "sqlite" in args.backends:
        url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
        rates["SQLite"] = await _flexbridge("SQLite", url, args, folder, warm, bodies)
    if "postgresql" in args.backends:
        async with scratch_postgres(args.postgres_url, "cpapi") as url:
            rates["PostgreSQL"] = await _flexbridge("PostgreSQL", url, args, folder, warm, bodies)

    # The floors need no database and no credentials; they get the same headers anyway.
    headers = _headers("bench-key")
    noop_rate = await _floor(
        "no-op aiohttp handler (subprocess), same bodies",
        "--serve-noop",
        args,
        folder,
        headers,
        warm,
        bodies,
    )
    parse_rate = await _floor(
        "parse-only handler (request.json())", "--serve-parse", args, folder, headers, warm, bodies
    )
    for backend, rate in rates.items():
        values = rate * SERIES * VALUES
        ratio = rate / noop_rate
        print(f"{f'ratio {backend} / no-op (requests/s)':<56} {ratio:>10.1%}", flush=True)
        print(f"{f'ratio {backend} / parse-only (requests/s)':<56} {rate / parse_rate:>10.1%}")
        values_met = "met" if values >= 100_000 else "NOT met"
        ratio_met = "met" if ratio >= 0.40 else "NOT met"
        print(
            f"targets, {backend}: >= 100,000 values/s {values_met} ({values:,.0f}); "
            f">= 40% of the no-op rate {ratio_met} ({ratio:.1%})",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="timed requests (default 50)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed requests per server first (default 1)"
    )
    parser.add_argument(
        "--backends",
        type=lambda text: text.split(","),
        default=["sqlite", "postgresql"],
        help="comma-separated: sqlite, postgresql (default both)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("FLEXBRIDGE_TEST_DATABASE_URL", PG_URL),
        help=f"a server to make a scratch database on (default {PG_URL})",
    )
    parser.add_argument("--serve-noop", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--serve-parse", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_noop is not None or args.serve_parse is not None:
        serve_noop(args.serve_noop or args.serve_parse, parse=args.serve_parse is not None)
        return
    if args.requests < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--requests and --concurrency must be >= 1, --warmup >= 0")
    if not args.backends or set(args.backends) - {"sqlite", "postgresql"}:
        parser.error("--backends: sqlite, postgresql or both, comma-separated")
    print(describe(), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(run(args, Path(folder)))


if __name__ == "__main__":
    main()
