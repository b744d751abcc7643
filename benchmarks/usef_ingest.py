"""USEF API ingest: postMeterData of 100 connections x 96 quarter hours per request, against
the CP-API's SaveTimeSeriesListForEntitiesV1 of the same 100 x 96 values, through the same
real `flexbridge serve` on SQLite, in the same run.

    .venv/bin/python benchmarks/usef_ingest.py [--requests 30] [--concurrency 4] [--rounds 2]

Set-up (not timed): a fresh SQLite file with a tenant, 100 Meter resources named both by
the cross-reference bench/Resource/m<n> (the CP-API's) and by the EA1 address
ea1.2026-01.example.bench:m<n> (the USEF API's), a CP-API participant and a USEF account
(USEF role MDC) whose token is taken with requestAuthToken. Each USEF request has 100
groups, one per connection, each with its own 96 values (MW, horizon PT0H: meter data
after the fact), a different day per request; each CP-API
request carries the same numbers as kWh Consumption. Bodies are serialised before timing;
--concurrency requests are in flight; every answer must be 200 (USEF PROCESSED, CP-API
every item Success). One warm-up request per surface first (days of its own), so that the
one-off creation of the series is not in the figure. The two surfaces are measured in turn,
--rounds times each, alternating, and the best round of each is reported.

Targets (issue 15): >= 100,000 values/s, and >= 60% of the CP-API list-save rate.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import orjson
from cpapi_ingest import (
    PASSWORD,
    SERIES,
    START,
    USER,
    VALUES,
    Server,
    _body,
    _check_saved,
    _fire,
    _flexbridge_command,
    _free_port,
    _headers,
    _iso,
)
from machine import describe

from store.accounts import Role, add_account
from store.catalogue import AssetSubType, AssetType
from store.db import open_database
from store.entities import create_entity
from store.migrate import upgrade
from store.references import ExternalRef, add_reference
from store.tenants import add_tenant

CPAPI_PATH = "/api/TimeSeries/SaveTimeSeriesListForEntitiesV1"
USEF_PATH = "/api/v1_3/postMeterData"
EMAIL = "mdc@example.com"


def _address(n: int) -> str:
    return f"ea1.2026-01.example.bench:m{n}"


async def _seed(url: str) -> str:
    db = open_database(url)
    try:
        await upgrade(db)
        async with db.transaction() as tx:
            tenant, key = await add_tenant(tx, "bench")
            await add_account(tx, tenant, USER, Role.PARTICIPANT, PASSWORD)
            await add_account(
                tx, tenant, "mdc", Role.PARTICIPANT, PASSWORD, email=EMAIL, usef_roles=["MDC"]
            )
            for n in range(SERIES):
                meter = await create_entity(
                    tx, tenant, AssetType.RESOURCE, AssetSubType.METER, {"Name": f"meter {n}"}
                )
                await add_reference(tx, tenant, meter, ExternalRef("bench", "Resource", f"m{n}"))
                await add_reference(tx, tenant, meter, ExternalRef("usef", "ea1", _address(n)))
    finally:
        await db.close()
    return key


def _usef_body(day: int) -> bytes:
    """The numbers of cpapi_ingest._body(day), as MW of 100 groups."""
    return orjson.dumps(
        {
            "type": "PostMeterDataRequest",
            "groups": [
                {
                    "connection": _address(n),
                    "values": [
                        round(0.5 + (n % 7) * 0.1 + (i % 24) * 0.05, 3) for i in range(VALUES)
                    ],
                }
                for n in range(SERIES)
            ],
            "start": _iso(START + timedelta(days=day)),
            "duration": "P1D",
            "unit": "MW",
            "horizon": "PT0H",
        }
    )


def _check_processed(status: int, payload: bytes) -> None:
    if status != 200 or orjson.loads(payload).get("status") != "PROCESSED":
        raise RuntimeError(f"postMeterData answered {status}: {payload[:2000]!r}")


def _line(label: str, requests: int, elapsed: float) -> float:
    rate = requests / elapsed
    print(
        f"{label:<44} {requests * SERIES * VALUES / elapsed:>10,.0f} values/s | "
        f"{rate:>6.2f} requests/s | {elapsed:6.2f} s",
        flush=True,
    )
    return rate


async def run(args: argparse.Namespace, folder: Path) -> None:
    url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    key = await _seed(url)
    port = _free_port()
    env = {**os.environ, "FLEXBRIDGE_ADMIN_PASSWORD": "bench-admin-pw"}
    server = Server(
        "flexbridge (SQLite)",
        [*_flexbridge_command(), "serve", "--port", str(port), "--database-url", url],
        port,
        folder / "flexbridge.log",
        env,
    )
    n = args.requests
    cpapi_days = iter(range(0, 10_000))  # every request writes days no other one wrote
    usef_days = iter(range(10_000, 20_000))
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=600)
    best = {"USEF postMeterData": 0.0, "CP-API SaveTimeSeriesListForEntitiesV1": 0.0}
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await server.wait_ready(session, "/health")
            async with session.post(
                server.base + "/api/requestAuthToken",
                json={"email": EMAIL, "password": PASSWORD},
            ) as answer:
                token = (await answer.json())["auth_token"]
            usef = {"Authorization": token, "Content-Type": "application/json"}
            cpapi = _headers(key)
            for path, headers, make, check, days in (  # warm-up: the series are made
                (CPAPI_PATH, cpapi, _body, _check_saved, cpapi_days),
                (USEF_PATH, usef, _usef_body, _check_processed, usef_days),
            ):
                await _fire(session, server.base + path, headers, [make(next(days))], 1, check)
            for _ in range(args.rounds):
                for label, path, headers, make, check, days in (
                    (
                        "USEF postMeterData",
                        USEF_PATH,
                        usef,
                        _usef_body,
                        _check_processed,
                        usef_days,
                    ),
                    (
                        "CP-API SaveTimeSeriesListForEntitiesV1",
                        CPAPI_PATH,
                        cpapi,
                        _body,
                        _check_saved,
                        cpapi_days,
                    ),
                ):
                    bodies = [make(next(days)) for _ in range(n)]
                    elapsed, _ = await _fire(
                        session, server.base + path, headers, bodies, args.concurrency, check
                    )
                    best[label] = max(best[label], _line(label, n, elapsed))
    finally:
        code = server.stop()
        if code:
            print(server.output()[-4000:], flush=True)
    usef_rate, cpapi_rate = (
        best["USEF postMeterData"],
        best["CP-API SaveTimeSeriesListForEntitiesV1"],
    )
    values = usef_rate * SERIES * VALUES
    ratio = usef_rate / cpapi_rate
    print(f"{'best round, USEF / CP-API (requests/s)':<44} {ratio:>10.1%}")
    print(
        f"targets: >= 100,000 values/s {'met' if values >= 100_000 else 'NOT met'} "
        f"({values:,.0f}); >= 60% of the CP-API rate {'met' if ratio >= 0.6 else 'NOT met'} "
        f"({ratio:.1%})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30, help="timed requests per round")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each surface")
    args = parser.parse_args()
    if min(args.requests, args.concurrency, args.rounds) < 1:
        parser.error("--requests, --concurrency and --rounds must be at least 1")
    print(describe(), flush=True)
    print(
        f"{args.requests} requests x {SERIES} connections x {VALUES} values per round, "
        f"concurrency {args.concurrency}, {args.rounds} round(s) of each surface",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(run(args, Path(folder)))


if __name__ == "__main__":
    main()
