"""UFTP 3.1 round trips, flexbridge as the DSO, against a real `flexbridge serve` on SQLite,
next to a floor handler that only verifies the signature and reads the inner XML, fed the
same requests by the same client in the same run.

    .venv/bin/python benchmarks/uftp_roundtrip.py [--messages 1000] [--clients 16]
        [--rounds 10] [--offers 20] [--peer-clock-seconds S] [--quick]

Set-up (not timed): a fresh SQLite file with a tenant, our UFTP identity (its domain
dso.bench.example), an AGR peer (agr.bench.example, its own Ed25519 key) whose base URL is an
aiohttp endpoint in this process, a congestion point the AGR is active at, and a CP-API
participant account; then `flexbridge serve` on it (FLEXBRIDGE_UFTP_DOMAIN set, outbox
polled every --outbox-poll-seconds, 50 ms, besides being woken by every message; the rate
budget raised out of the way). The AGR endpoint reads every
SignedMessage flexbridge sends (its signature verified with our public key only with
--verify-replies: that costs this process, which also drives the load) and counts them by
type.

1. D-Prognosis throughput: --messages signed D-Prognoses of 96 ISPs (a Period in
   Europe/Amsterdam with 96 ISPs, in the future), each its own MessageID, from --clients
   clients. Client c sends for Period c with Revision 1, 2, 3, ... one after the other,
   so that revisions rise per (AGR, congestion point, Period) as the specification
   requires whatever the interleaving between clients. Every body is signed before
   timing; --warmup per client go first, untimed. Figures: messages/s, p50/p99 of the HTTP
   round trip (to the empty 200), the server's CPU per message (/proc/<pid>/stat), and
   the time until every D-PrognosisResponse has reached the AGR (delivered/s). Every
   response must be Result="Accepted". The server's CPU per second while idle is taken
   before phase 1 and after it (--idle-seconds each): the peer clock checks every Period
   with a prognosis for congestion on each tick, so that cost grows with the Periods.
2. The floor: this file run with --serve-floor PORT, an aiohttp handler that reads the
   body, reads the SignedMessage envelope, verifies the signature with the AGR's key and
   reads the inner XML against our schema (codec.read_inner), then answers 200; the very
   same bodies, clients and warm-up. flexbridge's rate as a share of it.
3. FlexOffer -> FlexOrder: per round a new Period; its MaxCapacity is set to 100 kW with a
   CP-API SaveTimeSeriesV1 on the congestion point's platform key, then a D-Prognosis of
   80 kW with 120 kW on ISPs 41-44 overloads it, and the FlexRequest (20 kW on ISPs 41-44)
   is awaited at the AGR. Then --offers FlexOffers go out at once (competing, each its own
   price), in two kinds of round:
   - alone: each offer covers the whole need by itself (20 kW); the first one answered
     200 completes the cover, and one FlexOrder (the cheapest offer present) follows;
   - together: each offer covers 1/--offers of the need (MinActivationFactor 1.00), so
     only all of them cover it; the last one answered 200 completes the cover, and one
     FlexOrder per offer follows.
   The figure is the time from the 200 of the offer that completes the cover to the last
   FlexOrder of the round reaching the AGR. FlexOrders are placed by the UFTP clock, which
   runs on the peer clock (peer_clock_seconds, 1 s by default), so up to one tick of that
   is part of what is measured. --settle-seconds after the last round, the FlexOrders of
   every round are counted again: any beyond the cover are reported (an over-order).

Targets (the issue): >= 300 messages/s on one process, and >= 50% of the floor's rate, in
the same run; FlexOffer in -> FlexOrder delivered p99 <= 1 s for 20 competing offers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import orjson
from aiohttp import web
from cpapi_ingest import Server, _flexbridge_command, _free_port
from machine import describe
from small_messages import _cpu_seconds

from adapter import peer_admin
from adapter.auth import encode_basic_auth
from protocols.common.xmlschemas import parse
from protocols.uftp.v3_1.codec import Node, document, read_inner, timestamp
from protocols.uftp.v3_1.congestion_points import NewCongestionPoint, add_congestion_point
from protocols.uftp.v3_1.envelope import Role, read_envelope, write_envelope
from protocols.uftp.v3_1.identity import identity_of
from protocols.uftp.v3_1.sealing import SIGNATURE_BYTES, SigningKey, open_sealed, public_key
from store.accounts import Role as AccountRole
from store.accounts import add_account
from store.db import open_database
from store.key_file import secret_box
from store.migrate import upgrade
from store.tenants import add_tenant

PATH = "/shapeshifter/api/v3/message"
SAVE_PATH = "/api/TimeSeries/SaveTimeSeriesV1"
TENANT = "bench"
DSO_DOMAIN = "dso.bench.example"
AGR_DOMAIN = "agr.bench.example"
CP = "ea1.2026-12.nl.bench.dso:cp-1"
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
Q = timedelta(minutes=15)
ISPS = 96
USER, PASSWORD = "bench", "bench-pw"
XML = {"Content-Type": "text/xml; charset=utf-8"}
WAIT = 60.0  # seconds a reply may take before the run is abandoned (a failure, not a pause)
CAPACITY_KW = 100.0
BASE_W, PEAK_W = 80_000, 120_000  # the prognosis of a phase-3 round: 20 kW over on ISPs 41-44
NEED_W = PEAK_W - 1000 * int(CAPACITY_KW)
FIRST_PEAK, PEAK_ISPS = 41, 4


# ---------------------------------------------------------------------------------------------
# The AGR: what it signs, and its endpoint


@dataclass
class Arrival:
    kind: str
    attributes: dict[str, str]
    at: float  # time.perf_counter() when it arrived


@dataclass
class AgrEndpoint:
    """Every SignedMessage flexbridge sends the AGR, counted by type and kept by the ids the
    benchmark waits for."""

    dso_key: str | None = None
    verify: bool = False
    counts: Counter[str] = field(default_factory=Counter)
    responses: dict[str, Arrival] = field(default_factory=dict)  # by the id answered
    requests: dict[str, Arrival] = field(default_factory=dict)  # FlexRequest, by Period
    orders: dict[str, list[Arrival]] = field(default_factory=dict)  # FlexOrder, by Period
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def receive(self, request: web.Request) -> web.Response:
        sealed = read_envelope(await request.read()).sealed
        if self.verify:
            assert self.dso_key is not None
            inner = open_sealed(sealed, [public_key(self.dso_key)])
        else:
            inner = sealed[SIGNATURE_BYTES:]
        root = parse(inner)
        arrival = Arrival(root.tag, dict(root.attrib), time.perf_counter())
        self.counts[root.tag] += 1
        if root.tag == "D-PrognosisResponse":
            self.responses[root.attrib["D-PrognosisMessageID"]] = arrival
        elif root.tag == "FlexRequest":
            self.requests[root.attrib["Period"]] = arrival
        elif root.tag == "FlexOrder":
            self.orders.setdefault(root.attrib["Period"], []).append(arrival)
        self.changed.set()
        return web.Response(status=200)

    async def until(self, done: Any, what: str) -> None:
        """Wait, with a deadline, until `done()` is true of what has arrived."""
        deadline = time.monotonic() + WAIT
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"the AGR endpoint did not get {what} within {WAIT:.0f} s")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)


@dataclass
class Agr:
    key: SigningKey = field(default_factory=SigningKey.generate)

    def signed(self, kind: str, attributes: dict[str, str], children: list[Node]) -> bytes:
        inner = document(Node(kind, attributes, children))
        return write_envelope(AGR_DOMAIN, Role.AGR, self.key.seal(inner))

    @staticmethod
    def metadata(message_id: str, conversation: str | None = None) -> dict[str, str]:
        return {
            "Version": "3.1.0",
            "SenderDomain": AGR_DOMAIN,
            "RecipientDomain": DSO_DOMAIN,
            "TimeStamp": timestamp(datetime.now(UTC)),
            "MessageID": message_id,
            "ConversationID": conversation or str(uuid.uuid4()),
        }


def _flex(period: date) -> dict[str, str]:
    return {
        "ISP-Duration": "PT15M",
        "TimeZone": "Europe/Amsterdam",
        "Period": period.isoformat(),
        "CongestionPoint": CP,
    }


def _isps(powers: Sequence[int]) -> list[Node]:
    return [
        Node("ISP", {"Power": str(p), "Start": str(n + 1), "Duration": "1"})
        for n, p in enumerate(powers)
    ]


@dataclass(frozen=True, slots=True)
class Prognosis:
    message_id: str
    body: bytes


def _prognosis(agr: Agr, period: date, revision: int, powers: Sequence[int]) -> Prognosis:
    message_id = str(uuid.uuid4())
    attributes = {**agr.metadata(message_id), **_flex(period), "Revision": str(revision)}
    return Prognosis(message_id, agr.signed("D-Prognosis", attributes, _isps(powers)))


def _wavy(client: int, revision: int) -> list[int]:
    """A prognosis in watts that differs per client and revision (so no two bodies match)."""
    return [40_000 + 1000 * ((n + client + revision) % 24) for n in range(ISPS)]


def _periods(count: int) -> list[date]:
    """`count` Periods of 96 ISPs in Europe/Amsterdam from the day after tomorrow on (days
    on which the clocks change have 92 or 100 and are skipped)."""
    found: list[date] = []
    day = datetime.now(AMSTERDAM).date() + timedelta(days=2)
    while len(found) < count:
        start = datetime.combine(day, datetime.min.time(), AMSTERDAM)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), AMSTERDAM)
        if (end - start) // Q == ISPS:
            found.append(day)
        day += timedelta(days=1)
    return found


# ---------------------------------------------------------------------------------------------
# Set-up


@dataclass(frozen=True, slots=True)
class Seeded:
    tenant_key: str
    point_key: str
    dso_key: str  # our public key, as the AGR configures it


async def _seed(url: str, key_file: Path, agr: Agr, agr_url: str) -> Seeded:
    db = open_database(url, secrets=secret_box(None, str(key_file)))
    try:
        await upgrade(db)
        async with db.transaction() as tx:
            tenant, key = await add_tenant(tx, TENANT)
            identity = await identity_of(tx, tenant, DSO_DOMAIN)
            await add_account(tx, tenant, USER, AccountRole.PARTICIPANT, PASSWORD)
        await peer_admin.add(
            db,
            peer_admin.NewPeer(
                TENANT, "uftp", AGR_DOMAIN, agr_url, role="AGR", public_keys=(agr.key.public,)
            ),
        )
        point = await add_congestion_point(
            db, NewCongestionPoint(TENANT, CP, ("ean.871685900012345678",), (AGR_DOMAIN,))
        )
    finally:
        await db.close()
    return Seeded(key, str(point.key), identity.key.public)


# ---------------------------------------------------------------------------------------------
# The floor (this file run with --serve-floor PORT --floor-key B64)


def serve_floor(port: int, agr_key: str) -> None:
    keys = [public_key(agr_key)]  # decoded once: the floor does the least there is to do

    async def handle(request: web.Request) -> web.Response:
        envelope = read_envelope(await request.read())
        read_inner(open_sealed(envelope.sealed, keys))
        return web.Response(status=200)

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post(PATH, handle)
    app.router.add_get("/health", ok)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# ---------------------------------------------------------------------------------------------
# The load


def _percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> float:
    """POST one SignedMessage; the time of its 200 (anything else ends the run)."""
    async with session.post(url, data=body, headers=XML) as answer:
        payload = await answer.read()
        status = answer.status
    if status != 200:
        raise RuntimeError(f"{url} answered {status}: {payload[:800]!r}")
    return time.perf_counter()


async def _fire(
    session: aiohttp.ClientSession, url: str, lanes: Sequence[Sequence[Prognosis]]
) -> tuple[float, list[float]]:
    """Each lane is one client sending its messages in order; elapsed seconds, latencies."""
    latencies: list[float] = []

    async def client(lane: Sequence[Prognosis]) -> None:
        for message in lane:
            sent = time.perf_counter()
            latencies.append(await _post(session, url, message.body) - sent)

    started = time.perf_counter()
    await asyncio.gather(*(client(lane) for lane in lanes))
    return time.perf_counter() - started, latencies


@dataclass(frozen=True, slots=True)
class Throughput:
    count: int
    elapsed: float
    p50: float
    p99: float
    cpu_ms: float  # the server process's CPU time per message
    delivered: float | None = None  # seconds until every response reached the AGR

    @property
    def rate(self) -> float:
        return self.count / self.elapsed


def _lanes(agr: Agr, periods: Sequence[date], first: int, count: int) -> list[list[Prognosis]]:
    """Per client, its Period's prognoses with Revisions first .. first + count - 1."""
    return [
        [_prognosis(agr, period, r, _wavy(c, r)) for r in range(first, first + count)]
        for c, period in enumerate(periods)
    ]


def _split(total: int, clients: int) -> list[int]:
    return [total // clients + (1 if c < total % clients else 0) for c in range(clients)]


async def _throughput(
    session: aiohttp.ClientSession,
    server: Server,
    warm: Sequence[Sequence[Prognosis]],
    timed: Sequence[Sequence[Prognosis]],
    agr: AgrEndpoint | None,
) -> Throughput:
    url = server.base + PATH
    await _fire(session, url, warm)
    if agr is not None:
        warm_ids = [m.message_id for lane in warm for m in lane]
        await agr.until(lambda: all(i in agr.responses for i in warm_ids), "the warm-up answers")
    cpu = _cpu_seconds(server.process.pid)
    started = time.perf_counter()
    elapsed, latencies = await _fire(session, url, timed)
    cpu = _cpu_seconds(server.process.pid) - cpu
    count = len(latencies)
    delivered = None
    if agr is not None:
        ids = [m.message_id for lane in timed for m in lane]
        await agr.until(lambda: all(i in agr.responses for i in ids), "every D-PrognosisResponse")
        delivered = max(agr.responses[i].at for i in ids) - started
    return Throughput(
        count,
        elapsed,
        _percentile(latencies, 0.5),
        _percentile(latencies, 0.99),
        cpu / count * 1000,
        delivered,
    )


async def _idle_cpu(server: Server, seconds: float) -> float:
    """The server's CPU per second while nothing is sent: its background work (the peer
    clock checking every Period with a prognosis for congestion, the outbox poll)."""
    cpu, started = _cpu_seconds(server.process.pid), time.perf_counter()
    await asyncio.sleep(seconds)  # an observation window, not a sync point
    cpu = _cpu_seconds(server.process.pid) - cpu
    return cpu / (time.perf_counter() - started) * 1000


def _check_accepted(agr: AgrEndpoint, messages: Sequence[Sequence[Prognosis]]) -> int:
    """How many D-PrognosisResponses were Accepted; the run ends on the first that was not."""
    accepted = 0
    for lane in messages:
        for message in lane:
            answer = agr.responses[message.message_id].attributes
            if answer.get("Result") != "Accepted":
                raise RuntimeError(f"D-Prognosis {message.message_id} answered {answer}")
            accepted += 1
    return accepted


# ---------------------------------------------------------------------------------------------
# Phase 3: FlexOffer -> FlexOrder


async def _max_capacity(
    session: aiohttp.ClientSession, base: str, seeded: Seeded, period: date
) -> None:
    """MaxCapacity of the congestion point for the Period, through the CP-API."""
    start = datetime.combine(period, datetime.min.time(), AMSTERDAM).astimezone(UTC)
    body = {
        "EntityKey": {"Key": seeded.point_key},
        "TimeSeriesType": "MaxCapacity",
        "Resolution": "FifteenMinutes",
        "Unit": "kW",
        "TimeSeriesValueList": [
            {"ValueTime": (start + n * Q).isoformat().replace("+00:00", "Z"), "Value": CAPACITY_KW}
            for n in range(ISPS)
        ],
    }
    headers = {
        "Authorization": encode_basic_auth(USER, PASSWORD),
        "X-Tenant-Key": seeded.tenant_key,
        "Content-Type": "application/json",
    }
    async with session.post(base + SAVE_PATH, data=orjson.dumps(body), headers=headers) as answer:
        payload = await answer.read()
        if answer.status != 200 or orjson.loads(payload).get("Success") is not True:
            raise RuntimeError(f"SaveTimeSeriesV1 answered {answer.status}: {payload[:800]!r}")


def _offer(agr: Agr, period: date, request: Arrival, n: int, watts: int) -> bytes:
    expires = datetime.now(UTC) + timedelta(hours=2)
    attributes = {
        **agr.metadata(str(uuid.uuid4()), request.attributes["ConversationID"]),
        **_flex(period),
        "ExpirationDateTime": timestamp(expires),
        "FlexRequestMessageID": request.attributes["MessageID"],
        "Currency": "EUR",
    }
    option = Node(
        "OfferOption",
        {"OptionReference": f"o{n}", "Price": f"{10 + n}.0000", "MinActivationFactor": "1.00"},
        [Node("ISP", {"Power": str(-watts), "Start": str(FIRST_PEAK), "Duration": "4"})],
    )
    return agr.signed("FlexOffer", attributes, [option])


@dataclass(frozen=True, slots=True)
class Round:
    request_s: float  # the overloading prognosis's 200 -> the FlexRequest at the AGR
    order_s: float  # the covering offer's 200 -> the last FlexOrder at the AGR
    ordered: tuple[str, ...]  # the options ordered
    period: str
    expected: int  # the FlexOrders the cover takes


async def _round(
    session: aiohttp.ClientSession,
    base: str,
    seeded: Seeded,
    agr: Agr,
    endpoint: AgrEndpoint,
    period: date,
    offers: int,
    together: bool,
) -> Round:
    key = period.isoformat()
    await _max_capacity(session, base, seeded, period)
    powers = [BASE_W] * ISPS
    for n in range(FIRST_PEAK - 1, FIRST_PEAK - 1 + PEAK_ISPS):
        powers[n] = PEAK_W
    prognosis = _prognosis(agr, period, 1, powers)
    answered = await _post(session, base + PATH, prognosis.body)
    await endpoint.until(lambda: key in endpoint.requests, f"the FlexRequest for {key}")
    request = endpoint.requests[key]
    watts = -(-NEED_W // offers) if together else NEED_W
    bodies = [_offer(agr, period, request, n, watts) for n in range(offers)]
    answers = await asyncio.gather(*(_post(session, base + PATH, b) for b in bodies))
    covered = max(answers) if together else min(answers)
    expected = -(-NEED_W // watts)
    await endpoint.until(
        lambda: len(endpoint.orders.get(key, [])) >= expected, f"{expected} FlexOrder(s) for {key}"
    )
    orders = endpoint.orders[key]
    return Round(
        request.at - answered,
        max(o.at for o in orders) - covered,
        tuple(sorted(o.attributes["OptionReference"] for o in orders)),
        key,
        expected,
    )


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class Results:
    flexbridge: Throughput | None = None
    floor: Throughput | None = None
    floor_cpu_ms: float | None = None
    accepted: int = 0
    # The server's CPU per second of wall time with no requests: before any prognosis, and
    # after phase 1 (when the clock has every phase-1 Period to check).
    idle_start_ms: float = 0.0
    idle_cpu_ms: float = 0.0
    extra_orders: Counter[str] = field(default_factory=Counter)  # beyond the cover, per kind
    rounds: dict[str, list[Round]] = field(default_factory=dict)
    replies: Counter[str] = field(default_factory=Counter)


def _env(args: argparse.Namespace, folder: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "FLEXBRIDGE_ADMIN_PASSWORD": "bench-admin-pw",
        "FLEXBRIDGE_SECRET_KEY_FILE": str(folder / "flexbridge.key"),
        "FLEXBRIDGE_UFTP_DOMAIN": DSO_DOMAIN,
        "FLEXBRIDGE_OUTBOX_POLL_SECONDS": str(args.outbox_poll_seconds),
        "FLEXBRIDGE_RATE_LIMIT_PER_SECOND": "1000000",
        "FLEXBRIDGE_RATE_LIMIT_BURST": "1000000",
    }
    if args.peer_clock_seconds is not None:
        env["FLEXBRIDGE_PEER_CLOCK_SECONDS"] = str(args.peer_clock_seconds)
    return env


async def _flexbridge(
    args: argparse.Namespace,
    folder: Path,
    agr: Agr,
    warm: list[list[Prognosis]],
    timed: list[list[Prognosis]],
    trade_periods: list[date],
    results: Results,
) -> None:
    endpoint = AgrEndpoint(verify=args.verify_replies)
    agr_app = web.Application()
    agr_app.router.add_post("/agr/message", endpoint.receive)
    runner = web.AppRunner(agr_app, access_log=None)
    await runner.setup()
    agr_port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", agr_port).start()
    url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    seeded = await _seed(
        url, folder / "flexbridge.key", agr, f"http://127.0.0.1:{agr_port}/agr/message"
    )
    endpoint.dso_key = seeded.dso_key
    port = _free_port()
    command = [*_flexbridge_command(), "serve", "--port", str(port), "--database-url", url]
    server = Server("flexbridge", command, port, folder / "flexbridge.log", _env(args, folder))
    try:
        connector = aiohttp.TCPConnector(limit=max(args.clients, args.offers))
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await server.wait_ready(session, "/health")
            results.idle_start_ms = await _idle_cpu(server, args.idle_seconds)
            results.flexbridge = await _throughput(session, server, warm, timed, endpoint)
            results.accepted = _check_accepted(endpoint, warm) + _check_accepted(endpoint, timed)
            results.idle_cpu_ms = await _idle_cpu(server, args.idle_seconds)
            periods = iter(trade_periods)
            for together in (False, True):
                label = "together" if together else "alone"
                rounds = results.rounds.setdefault(label, [])
                for _ in range(args.rounds):
                    rounds.append(
                        await _round(
                            session,
                            server.base,
                            seeded,
                            agr,
                            endpoint,
                            next(periods),
                            args.offers,
                            together,
                        )
                    )
            # Orders placed after the cover was complete come a clock tick or more later.
            await asyncio.sleep(args.settle_seconds)  # an observation window, not a sync point
            for label, rounds in results.rounds.items():
                for r in rounds:
                    results.extra_orders[label] += len(endpoint.orders[r.period]) - r.expected
    except BaseException:
        server.stop()
        await runner.cleanup()
        print(f"flexbridge log, last 8,000 characters:\n{server.output()[-8000:]}", flush=True)
        raise
    code = server.stop()
    await runner.cleanup()
    results.replies = endpoint.counts
    if code != 0:
        print(f"flexbridge exited with {code}:\n{server.output()[-4000:]}", flush=True)


async def _floor(
    args: argparse.Namespace,
    folder: Path,
    agr: Agr,
    warm: list[list[Prognosis]],
    timed: list[list[Prognosis]],
    results: Results,
) -> None:
    port = _free_port()
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve-floor",
        str(port),
        "--floor-key",
        agr.key.public,
    ]
    server = Server("floor", command, port, folder / "floor.log")
    try:
        connector = aiohttp.TCPConnector(limit=args.clients)
        async with aiohttp.ClientSession(connector=connector) as session:
            await server.wait_ready(session, "/health")
            results.floor = await _throughput(session, server, warm, timed, None)
    finally:
        server.stop()


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _print(args: argparse.Namespace, results: Results) -> None:
    fb, floor = results.flexbridge, results.floor
    assert fb is not None and floor is not None
    ratio = fb.rate / floor.rate
    print()
    print(f"{'':<44} {'figure':>16}   {'target':<22} result")
    rows = [
        ("D-Prognosis (96 ISPs) messages/s", f"{fb.rate:,.0f}/s", ">= 300/s", _met(fb.rate >= 300)),
        ("  HTTP round trip p50 / p99", f"{fb.p50 * 1000:.1f} / {fb.p99 * 1000:.1f} ms", "", ""),
        ("  server CPU per message", f"{fb.cpu_ms:.2f} ms", "", ""),
        (
            "  server CPU idle, before / after phase 1",
            f"{results.idle_start_ms:.0f} / {results.idle_cpu_ms:.0f} ms/s",
            f"({args.clients} Periods to check)",
            "",
        ),
        (
            "  every D-PrognosisResponse at the AGR",
            f"{fb.delivered or 0:.2f} s",
            f"({fb.count / (fb.delivered or 1):,.0f} delivered/s)",
            "",
        ),
        ("  responses Accepted", f"{results.accepted:,}", "all", "met"),
        ("floor (verify + read inner XML) messages/s", f"{floor.rate:,.0f}/s", "", ""),
        (
            "  floor round trip p50 / p99",
            f"{floor.p50 * 1000:.1f} / {floor.p99 * 1000:.1f} ms",
            "",
            "",
        ),
        ("  floor CPU per message", f"{floor.cpu_ms:.2f} ms", "", ""),
        ("flexbridge / floor", f"{ratio:.1%}", ">= 50%", _met(ratio >= 0.5)),
    ]
    for label, rounds in results.rounds.items():
        orders = [r.order_s for r in rounds]
        requests = [r.request_s for r in rounds]
        p99 = _percentile(orders, 0.99)
        rows.append(
            (
                f"FlexOffer -> FlexOrder, {args.offers} offers {label}",
                f"p50 {_percentile(orders, 0.5) * 1000:.0f} / p99 {p99 * 1000:.0f} ms",
                "p99 <= 1000 ms",
                _met(p99 <= 1.0),
            )
        )
        rows.append(
            (
                "  D-Prognosis -> FlexRequest at the AGR",
                f"p50 {_percentile(requests, 0.5) * 1000:.0f} / "
                f"p99 {_percentile(requests, 0.99) * 1000:.0f} ms",
                "(<= 10 s)",
                "",
            )
        )
        cheapest = sum(1 for r in rounds if label == "together" or r.ordered == ("o0",))
        rows.append(
            ("  rounds ordering the cheapest cover", f"{cheapest} of {len(rounds)}", "", "")
        )
        extra = results.extra_orders[label]
        rows.append(("  FlexOrders beyond the cover", f"{extra}", "0", _met(extra == 0)))
    for label, figure, target, result in rows:
        print(f"{label:<44} {figure:>16}   {target:<22} {result}")
    counts = ", ".join(f"{kind} {n:,}" for kind, n in sorted(results.replies.items()))
    print(f"messages at the AGR endpoint: {counts}", flush=True)


async def run(args: argparse.Namespace, folder: Path) -> None:
    clock = "server default" if args.peer_clock_seconds is None else f"{args.peer_clock_seconds} s"
    print(
        f"{args.messages} timed D-Prognoses of {ISPS} ISPs from {args.clients} clients "
        f"({args.warmup} per client untimed first); {args.rounds} rounds each of {args.offers} "
        f"offers alone and together; peer clock: {clock}",
        flush=True,
    )
    agr = Agr()
    periods = _periods(args.clients + 2 * args.rounds)
    lane_periods, trade_periods = periods[: args.clients], periods[args.clients :]
    warm = _lanes(agr, lane_periods, 1, args.warmup)
    sizes = _split(args.messages, args.clients)
    timed = [
        [_prognosis(agr, p, args.warmup + 1 + r, _wavy(c, r)) for r in range(size)]
        for c, (p, size) in enumerate(zip(lane_periods, sizes, strict=True))
    ]
    size = len(timed[0][0].body)
    print(f"{size:,} bytes per signed D-Prognosis", flush=True)
    results = Results()
    await _flexbridge(args, folder, agr, warm, timed, trade_periods, results)
    await _floor(args, folder, agr, warm, timed, results)
    _print(args, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000, help="timed D-Prognoses")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=5, help="untimed D-Prognoses per client")
    parser.add_argument("--rounds", type=int, default=10, help="FlexOffer rounds of each kind")
    parser.add_argument("--offers", type=int, default=20, help="competing offers per round")
    parser.add_argument(
        "--peer-clock-seconds", type=float, help="the server's peer clock (default: its own)"
    )
    parser.add_argument(
        "--outbox-poll-seconds",
        type=float,
        default=0.05,
        help="the server's outbox poll (default 0.05; each message also wakes it)",
    )
    parser.add_argument(
        "--verify-replies", action="store_true", help="verify flexbridge's signatures"
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=3.0, help="window for the server's idle CPU"
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=3.0,
        help="window after the last round in which further FlexOrders are counted",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: few of everything")
    parser.add_argument("--serve-floor", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--floor-key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor is not None:
        serve_floor(args.serve_floor, args.floor_key)
        return
    if args.quick:
        args.messages, args.clients, args.warmup, args.rounds = 48, 8, 1, 1
        args.idle_seconds, args.settle_seconds = 1.0, 1.5
    if min(args.messages, args.clients, args.rounds, args.offers) < 1 or args.warmup < 0:
        parser.error("--messages, --clients, --rounds, --offers must be >= 1, --warmup >= 0")
    if args.messages < args.clients:
        parser.error("--messages must be at least --clients")
    print(describe(), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(run(args, Path(folder)))


if __name__ == "__main__":
    main()
