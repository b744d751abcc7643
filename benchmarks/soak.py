"""Soak: the simulators of every protocol at once against one real flexbridge server on SQLite,
for minutes, watching the server's memory and every answer.

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--speed 1800] [--sample-seconds 5]

Set-up (not measured): a fresh SQLite file provisioned as for the conformance suite
(conformance/provision.py: a CP-API participant, an OCMP peer, an OSCP peer with its token A,
an event-hub gateway, the tenant's CP-API section 6 endpoint pointed at an endpoint in this
process); a `flexbridge serve` subprocess on it with its default settings; over the CP-API a
meter with a DeviceId (for the event hub) and a charger cross-referenced in the endpoint's
system (for section 6).

The load, all at once for --minutes, each on its own compressed clock at --speed simulated
seconds per real second (1800: a quarter hour every half second):
- `flexbridge simulate cpo` (OCMP 1.0), `flexbridge simulate cpo --protocol oscp` (OSCP 2.0)
  and `flexbridge simulate scada` (CP-API), as subprocesses, exactly as a user runs them;
  each prints every answer with its round trip, which this script reads back;
- the event hub, which has no simulator: each cycle a gateway message with the meter's
  reading; and CP-API section 6: each cycle a Charging Power Regulation for the charger (the
  server sends it on as a ControlRegulationMessage) and a GetTimeSeriesV1 of the consumption
  the server derived from the event-hub readings.

The server's resident memory (VmRSS of the process, and of it with its solver processes) is
sampled every --sample-seconds. Growth is the last sample against the one at the end of the
warm-up (the first minute, so that start-up allocation and the first plans do not count).

Errors: any answer that is not 2xx or a CP-API item not saved (no request is meant to be
refused), a request with no answer, a simulator exiting non-zero, a server log line at ERROR
or CRITICAL or a traceback, a server 5xx in its /metrics, an outbox message dead or still
pending a minute after the load, and the server not stopping cleanly on SIGTERM.

Exit status: 0 when RSS growth < 10% and there were no errors (the issue's target), else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from cpapi_ingest import ROOT, Server, _flexbridge_command, _free_port
from machine import describe

from adapter.auth import encode_basic_auth
from conformance.peer import PeerEndpoint
from conformance.provision import OCMP_PEER, OSCP_PEER, OUTBOUND_SYSTEM, TENANT, provision
from conformance.simulate import Pacer, household_kw
from conformance.template import iso
from store.db import open_database
from store.entities import update_entity
from store.key_file import secret_box
from store.references import ProtocolId, find
from store.secret_box import SecretBox
from store.tenants import get_tenant

Q = timedelta(minutes=15)
GROWTH_LIMIT = 0.10
DRAIN_SECONDS = 60.0
SIMULATOR_GRACE_SECONDS = 120.0  # a CPO waits up to 15 s for the last optimal forecasts
DEVICE = "soak-dev"
SYSTEM = "soak"
LOG_ERROR = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) |^Traceback ")
# What the simulators print for each answer (conformance/simulate.py, Client.send).
ANSWERED = re.compile(r"-> (?P<label>.+?): (?P<status>\d{3}) in (?P<ms>[\d.]+) ms")
UNANSWERED = re.compile(r"-> (?P<label>.+?): no answer")
ITEM_REFUSED = re.compile(r"<- (?P<label>.+?): refused: ")
RECEIVED = re.compile(r"^\s*[\d.]+s <- (?P<name>[a-z_]+)(?: |$)")  # a message's name


# ---------------------------------------------------------------------------------------------
# What each protocol's traffic came to


@dataclass
class Traffic:
    """Requests of one protocol: counts by message type, round trips, errors."""

    requests: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds
    errors: list[str] = field(default_factory=list)
    received: Counter[str] = field(default_factory=Counter)  # messages the server sent

    def answered(self, kind: str, status: int, seconds: float, detail: str = "") -> None:
        self.requests[kind] += 1
        self.latencies.append(seconds)
        if not 200 <= status < 300:
            self.errors.append(f"{kind}: {status} {detail[:300]}")


def read_simulator_log(text: str) -> Traffic:
    """A simulator's output turned back into counts, round trips and refusals."""
    traffic = Traffic()
    for line in text.splitlines():
        if found := ANSWERED.search(line):
            kind = found["label"].split(" ")[0]
            rest = line[found.end() :].strip()  # a refusal's body
            traffic.answered(kind, int(found["status"]), float(found["ms"]) / 1000, rest)
        elif found := UNANSWERED.search(line):
            traffic.requests[found["label"].split(" ")[0]] += 1
            traffic.errors.append(line.strip())
        elif ITEM_REFUSED.search(line):
            traffic.errors.append(line.strip())
        elif found := RECEIVED.match(line):
            traffic.received[found["name"]] += 1
    return traffic


def percentile(samples: Sequence[float], fraction: float) -> float:
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


# ---------------------------------------------------------------------------------------------
# The server's memory


def _rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    """The processes below `pid` (the solver pool is spawned, so these are its workers and
    multiprocessing's resource tracker)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # seconds since the load started
    server_kib: int
    tree_kib: int  # the server with its solver processes
    cpu_seconds: float  # the server process's, so far


class RssSampler:
    def __init__(self, pid: int, every: float) -> None:
        self.pid, self.every = pid, every
        self.samples: list[Sample] = []

    def take(self, since: float) -> Sample:
        server = _rss_kib(self.pid)
        tree = server + sum(_rss_kib(child) for child in _descendants(self.pid))
        sample = Sample(time.monotonic() - since, server, tree, _cpu_seconds(self.pid))
        self.samples.append(sample)
        return sample

    async def run(self, since: float, until: float) -> None:
        """A sample every `every` seconds from `since` until `until` (monotonic), and one
        at `until` itself."""
        k = 0
        while (at := since + k * self.every) < until:
            await asyncio.sleep(max(0.0, at - time.monotonic()))  # pacing the samples
            self.take(since)
            k += 1
        await asyncio.sleep(max(0.0, until - time.monotonic()))
        self.take(since)

    def at(self, seconds: float) -> Sample:
        """The first sample taken at or after `seconds` into the load."""
        return next((s for s in self.samples if s.at >= seconds), self.samples[-1])


# ---------------------------------------------------------------------------------------------
# Set-up


@dataclass(frozen=True, slots=True)
class Site:
    url: str
    credentials: Path
    cpapi_headers: dict[str, str]
    eventhub_headers: dict[str, str]
    gateway: str


async def _provision(folder: Path, url: str, env: dict[str, str], peer_url: str) -> Site:
    database_url = f"sqlite+aiosqlite:///{folder / 'soak.db'}"
    credentials = folder / "credentials.json"
    keys = secret_box(None, env["FLEXBRIDGE_SECRET_KEY_FILE"])
    creds = await provision(
        database_url, credentials, peer_url=peer_url, base_url=url, secrets=keys
    )
    await _make_chargers_flexible(database_url, keys)
    cpapi = creds["cpapi"]
    return Site(
        url,
        credentials,
        {
            "Authorization": encode_basic_auth(cpapi["username"], cpapi["password"]),
            "X-Tenant-Key": cpapi["tenant_key"],
        },
        {
            "Authorization": creds["eventhub"]["sas_token"],
            "Content-Type": "application/atom+xml;type=entry;charset=utf-8",
        },
        creds["eventhub"]["gateway_id"],
    )


async def _make_chargers_flexible(database_url: str, keys: SecretBox) -> None:
    """Give the chargers of the OCMP and OSCP groups a rating, so that each of their forecasts
    is planned by the optimizer in its solver processes, not by the headroom rule alone."""
    db = open_database(database_url, secrets=keys)
    try:
        async with db.transaction() as tx:
            tenant = await get_tenant(tx, TENANT)
            for protocol, peer, asset in (
                ("ocmp", OCMP_PEER, "cp-1"),
                ("oscp", OSCP_PEER, "evse-1"),
            ):
                charger = await find(tx, tenant, ProtocolId(protocol, peer, "asset", asset))
                if charger is None:
                    raise RuntimeError(f"provisioning made no {protocol} charger {asset}")
                await update_entity(tx, tenant, charger, {"InstalledMaxCapacity": 11.0})
    finally:
        await db.close()


def _key(system: str, kind: str, name: str) -> dict[str, str]:
    return {"SystemIdentifier": system, "ExternalEntityReferenceType": kind, "ExternalKey": name}


METER = _key(SYSTEM, "Resource", "soak-meter")
CHARGER = _key(OUTBOUND_SYSTEM, "Resource", "soak-charger")


def _asset(key: dict[str, str], sub: str, name: str, *props: tuple[str, Any]) -> dict[str, Any]:
    pairs = (("AssetType", "Resource"), ("AssetSubType", sub), ("Name", name), *props)
    return {
        "AssetKey": key,
        "AssetProperties": {
            "ListOption": "PartialList",
            "AssetPropertyList": [{"PropertyName": n, "PropertyValue": v} for n, v in pairs],
        },
    }


async def _save_assets(session: aiohttp.ClientSession, site: Site) -> None:
    """The event-hub meter (by its DeviceId) and the charger section 6 messages are about."""
    assets = [
        _asset(METER, "Meter", "Soak event-hub meter", ("DeviceId", DEVICE)),
        _asset(CHARGER, "Charging", "Soak charger", ("InstalledMaxCapacity", 11)),
    ]
    async with session.post(
        f"{site.url}/api/Asset/SaveAssetV1List", json=assets, headers=site.cpapi_headers
    ) as answer:
        saved = await answer.json()
    if answer.status != 200 or not all(item.get("Success") for item in saved):
        raise RuntimeError(f"the soak's assets were not saved: {answer.status} {saved}")


# ---------------------------------------------------------------------------------------------
# The load this script drives itself (the event hub and CP-API section 6 have no simulator)


async def _timed(
    traffic: Traffic,
    kind: str,
    session: aiohttp.ClientSession,
    url: str,
    body: Any,
    headers: dict[str, str],
    check: Callable[[Any], str | None] = lambda _: None,
) -> Any:
    sent = time.perf_counter()
    try:
        async with session.post(url, json=body, headers=headers) as answer:
            raw = await answer.read()
            status = answer.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        traffic.requests[kind] += 1
        traffic.errors.append(f"{kind}: no answer ({type(exc).__name__}: {exc})")
        return None
    traffic.answered(kind, status, time.perf_counter() - sent, raw.decode("utf-8", "replace"))
    reply = await answer.json(content_type=None) if raw.strip() and status < 300 else None
    problem = check(reply) if 200 <= status < 300 else None
    if problem:
        traffic.errors.append(f"{kind}: {problem}")
    return reply


def _all_saved(reply: Any) -> str | None:
    if not isinstance(reply, list) or not all(item.get("Success") for item in reply):
        return f"not every item saved: {str(reply)[:300]}"
    return None


async def drive_event_hub(
    session: aiohttp.ClientSession, site: Site, speed: float, seconds: float, traffic: Traffic
) -> None:
    """Each cycle the meter's accumulated reading, as a gateway sends it."""
    url = f"{site.url}/iotexternaleh/publishers/{site.gateway}/messages"
    pacer, start, register = Pacer(speed, None, seconds), _today(10), 500.0
    k = 0
    while pacer.more(k):
        await pacer.wait_for(k)
        now = start + k * Q
        register += household_kw(now) * 0.25
        message = {
            "deviceid": DEVICE,
            "property": "Consumption Meter Reading",
            "format": "1.0",
            "unit": "kWh",
            "values": [{"starttime": iso(now), "value": round(register, 3)}],
        }
        await _timed(traffic, "event", session, url, message, site.eventhub_headers)
        k += 1


async def drive_section6(
    session: aiohttp.ClientSession, site: Site, speed: float, seconds: float, traffic: Traffic
) -> None:
    """Each cycle a regulation of the charger for the next hour (which the server sends on to
    the endpoint) and a read of the energy the server derived from the event-hub readings."""
    api = f"{site.url}/api/TimeSeries"
    pacer, start = Pacer(speed, None, seconds), _today(10)
    k = 0
    while pacer.more(k):
        await pacer.wait_for(k)
        now = start + k * Q
        regulation = {
            "EntityKey": CHARGER,
            "TimeSeriesType": "Charging Power Regulation",
            "Unit": "kW",
            "Resolution": "FifteenMinutes",
            "TimeSeriesValueList": [
                {"ValueTime": iso(now + i * Q), "Value": 11.0 if (k + i) % 3 else 5.5}
                for i in range(4)
            ],
        }
        await _timed(
            traffic,
            "SaveTimeSeriesListForEntitiesV1",
            session,
            f"{api}/SaveTimeSeriesListForEntitiesV1",
            [regulation],
            site.cpapi_headers,
            _all_saved,
        )
        read = {
            "ExternalEntityReference": METER,
            "TimeSeriesType": "Consumption",
            "FromDateTime": iso(now - 8 * Q),
            "ToDateTime": iso(now),
        }
        await _timed(
            traffic, "GetTimeSeriesV1", session, f"{api}/GetTimeSeriesV1", read, site.cpapi_headers
        )
        k += 1


def _today(hour: int) -> datetime:
    return datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)


# ---------------------------------------------------------------------------------------------
# The simulators


SIMULATORS = (
    ("OCMP 1.0", ["cpo"]),
    ("OSCP 2.0", ["cpo", "--protocol", "oscp"]),
    ("CP-API", ["scada", "--prefix", "soak"]),
)


@dataclass
class Simulator:
    name: str
    log: Path
    process: subprocess.Popen[bytes]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_simulator(
    name: str, args: Sequence[str], site: Site, speed: float, seconds: float, folder: Path
) -> Simulator:
    command = [*_flexbridge_command(), "simulate", *args]
    command += ["--target", site.url, "--credentials", str(site.credentials)]
    command += ["--speed", str(speed), "--duration", str(seconds)]
    log = folder / f"simulate-{name.split()[0].lower()}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    return Simulator(name, log, process)


async def wait_simulators(simulators: Sequence[Simulator], deadline: float) -> None:
    for simulator in simulators:
        while simulator.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.2)  # polling a child process with a deadline
        if simulator.process.poll() is None:
            simulator.process.kill()
            simulator.process.wait()


# ---------------------------------------------------------------------------------------------
# After the load


def _metric_lines(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of metric `name` in Prometheus text: (labels, value)."""
    found = []
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels_text, _, value = line[len(name) + 1 :].rpartition("} ")
        labels = dict(re.findall(r'(\w+)="([^"]*)"', labels_text))
        found.append((labels, float(value)))
    return found


async def _metrics(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(f"{url}/metrics") as answer:
        return await answer.text()


def _pending(metrics: str) -> int:
    return sum(
        int(v)
        for labels, v in _metric_lines(metrics, "flexbridge_outbox_messages")
        if labels.get("status") == "pending"
    )


async def watch_outbox(
    session: aiohttp.ClientSession, url: str, every: float, until: float, peaks: list[int]
) -> None:
    """The outbox's pending rows every `every` seconds during the load: a delivery rate
    below the rate messages are made shows as a growing backlog long before the end."""
    while time.monotonic() < until:
        peaks.append(_pending(await _metrics(session, url)))
        await asyncio.sleep(min(every, max(0.0, until - time.monotonic())))  # pacing


async def drain_outbox(
    session: aiohttp.ClientSession, url: str, deadline: float
) -> tuple[str, float]:
    """The server's /metrics once its outbox holds nothing pending (or at the deadline), and
    the seconds that took."""
    started = time.monotonic()
    while True:
        text = await _metrics(session, url)
        if _pending(text) == 0 or time.monotonic() >= deadline:
            return text, time.monotonic() - started
        await asyncio.sleep(0.5)  # polling the server with a deadline


def server_log_errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if LOG_ERROR.search(line)]


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class Outcome:
    traffic: dict[str, Traffic]
    received: Counter[str]  # by the section 6 endpoint
    sampler: RssSampler
    warmup: float
    metrics: str
    pending_peak: int  # outbox rows pending, the most seen during the load
    drain_seconds: float  # from the simulators' end until nothing was pending
    server_errors: list[str]
    exit_code: int | None
    simulator_codes: dict[str, int | None]
    load_before: float  # the machine's 1-minute load average as the load started


async def run(args: argparse.Namespace, folder: Path) -> Outcome:
    port = _free_port()
    endpoint = PeerEndpoint(port=0)
    await endpoint.start()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "FLEXBRIDGE_ADMIN_PASSWORD": "soak-admin-pw",
        "FLEXBRIDGE_SECRET_KEY_FILE": str(folder / "flexbridge.key"),
    }
    site = await _provision(folder, url, env, endpoint.url)
    database_url = f"sqlite+aiosqlite:///{folder / 'soak.db'}"
    command = [*_flexbridge_command(), "serve", "--port", str(port), "--database-url", database_url]
    server = Server("flexbridge", command, port, folder / "flexbridge.log", env)
    seconds = args.minutes * 60
    simulators: list[Simulator] = []
    pending: list[int] = []
    try:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await server.wait_ready(session, "/health")
            await _save_assets(session, site)
            print(f"server pid {server.process.pid} on {url}; load for {seconds:.0f} s", flush=True)
            for name, flags in SIMULATORS:
                simulators.append(start_simulator(name, flags, site, args.speed, seconds, folder))
            started, load_before = time.monotonic(), os.getloadavg()[0]
            sampler = RssSampler(server.process.pid, args.sample_seconds)
            eventhub, section6 = Traffic(), Traffic()
            await asyncio.gather(
                sampler.run(started, started + seconds),
                watch_outbox(session, url, args.sample_seconds, started + seconds, pending),
                _progress(sampler, started, seconds),
                drive_event_hub(session, site, args.speed, seconds, eventhub),
                drive_section6(session, site, args.speed, seconds, section6),
            )
            await wait_simulators(simulators, time.monotonic() + SIMULATOR_GRACE_SECONDS)
            metrics, drain = await drain_outbox(session, url, time.monotonic() + DRAIN_SECONDS)
    finally:
        for simulator in simulators:  # only still running when the load itself failed
            if simulator.process.poll() is None:
                simulator.process.kill()
                simulator.process.wait()
        exit_code = server.stop()
        await endpoint.stop()
    traffic = {s.name: read_simulator_log(s.output()) for s in simulators}
    traffic["CP-API"].requests.update(section6.requests)
    traffic["CP-API"].latencies += section6.latencies
    traffic["CP-API"].errors += section6.errors
    traffic["event hub"] = eventhub
    received = Counter(
        str(m.body.get("MessageName")) if isinstance(m.body, dict) else m.path
        for m in endpoint.received
    )
    return Outcome(
        traffic,
        received,
        sampler,
        min(60.0, seconds / 4),
        metrics,
        max(pending, default=0),
        drain,
        server_log_errors(server.output()),
        exit_code,
        {s.name: s.process.returncode for s in simulators},
        load_before,
    )


async def _progress(sampler: RssSampler, started: float, seconds: float) -> None:
    """A line a minute, so that a long run shows it is alive."""
    for minute in range(1, int(seconds // 60) + 1):
        await asyncio.sleep(max(0.0, started + minute * 60 - time.monotonic()))
        if sampler.samples:
            last = sampler.samples[-1]
            print(
                f"  {minute:>3} min: server RSS {last.server_kib / 1024:7.1f} MiB, "
                f"with solvers {last.tree_kib / 1024:7.1f} MiB",
                flush=True,
            )


# ---------------------------------------------------------------------------------------------
# The report


def _growth(start: int, end: int) -> float:
    return (end - start) / start if start else math.inf


def _slope_mib_per_minute(samples: Sequence[Sample], after: float) -> float:
    """Least-squares slope of the server's RSS after the warm-up: a leak shows as a steady
    climb even when the two end points happen to be close."""
    points = [(s.at / 60, s.server_kib / 1024) for s in samples if s.at >= after]
    if len(points) < 2:
        return 0.0
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    spread = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / spread if spread else 0.0


def report(outcome: Outcome) -> int:
    """Print the figures; returns the exit status."""
    errors: list[str] = []
    print(f"{'protocol':<12} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8}  by type")
    for name, traffic in outcome.traffic.items():
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(traffic.requests.items()))
        print(
            f"{name:<12} {sum(traffic.requests.values()):>9,} {len(traffic.errors):>7} "
            f"{percentile(traffic.latencies, 0.5) * 1000:>8.1f} "
            f"{percentile(traffic.latencies, 0.99) * 1000:>8.1f}  {kinds}"
        )
        errors += [f"{name}: {e}" for e in traffic.errors]
    for name, traffic in outcome.traffic.items():
        if traffic.received:
            got = ", ".join(f"{n} {kind}" for kind, n in sorted(traffic.received.items()))
            print(f"received by the {name} simulator: {got}")
    got = ", ".join(f"{n} {kind}" for kind, n in sorted(outcome.received.items())) or "nothing"
    print(f"received by the CP-API section 6 endpoint: {got}")
    for name, code in outcome.simulator_codes.items():
        if code != 0:
            errors.append(f"{name} simulator exited with {code}")
    errors += _metric_errors(outcome.metrics)
    print(
        f"outbox pending during the load: at most {outcome.pending_peak}; nothing pending "
        f"{outcome.drain_seconds:.1f} s after the simulators stopped"
    )
    errors += [f"server log: {line}" for line in outcome.server_errors]
    if outcome.exit_code != 0:
        errors.append(f"the server exited with {outcome.exit_code} on SIGTERM")

    samples, warm = outcome.sampler.samples, outcome.sampler.at(outcome.warmup)
    end = samples[-1]
    server_growth = _growth(warm.server_kib, end.server_kib)
    tree_growth = _growth(warm.tree_kib, end.tree_kib)
    peak = max(s.server_kib for s in samples)
    print(
        f"server RSS: {warm.server_kib / 1024:.1f} MiB at {warm.at:.0f} s (warm-up end), "
        f"{end.server_kib / 1024:.1f} MiB at {end.at:.0f} s (end): {server_growth:+.1%}; "
        f"peak {peak / 1024:.1f} MiB; slope after warm-up "
        f"{_slope_mib_per_minute(samples, warm.at):+.2f} MiB/min; {len(samples)} samples"
    )
    print(
        f"with its solver processes: {warm.tree_kib / 1024:.1f} MiB -> "
        f"{end.tree_kib / 1024:.1f} MiB: {tree_growth:+.1%}"
    )
    busy = (end.cpu_seconds - samples[0].cpu_seconds) / max(end.at - samples[0].at, 1e-9)
    print(
        f"server CPU during the load: {busy:.0%} of one core; machine load average "
        f"{outcome.load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (1 min)"
    )
    growth = max(server_growth, tree_growth)
    print(f"errors: {len(errors)}")
    for line in errors[:20]:
        print(f"  {line}")
    if len(errors) > 20:
        print(f"  ... and {len(errors) - 20} more")
    growth_met = "met" if growth < GROWTH_LIMIT else "NOT met"
    errors_met = "met" if not errors else "NOT met"
    print(
        f"targets: RSS growth < {GROWTH_LIMIT:.0%} {growth_met} ({growth:+.1%}); "
        f"zero errors {errors_met} ({len(errors)})",
        flush=True,
    )
    return 0 if growth < GROWTH_LIMIT and not errors else 1


def _metric_errors(metrics: str) -> list[str]:
    """What the server's own counters say went wrong, and print its outbox."""
    problems = []
    for labels, value in _metric_lines(metrics, "flexbridge_http_requests_total"):
        if labels.get("status", "").startswith("5") and value:
            problems.append(f"server counted {value:.0f} x {labels['status']} on {labels}")
    depth = {
        labels["status"]: int(value)
        for labels, value in _metric_lines(metrics, "flexbridge_outbox_messages")
    }
    deliveries = Counter[str]()
    for labels, value in _metric_lines(metrics, "flexbridge_outbox_deliveries_total"):
        deliveries[f"{labels['protocol']} {labels['result']}"] += int(value)
    shown = ", ".join(f"{n} {status}" for status, n in sorted(depth.items()))
    print(f"outbox after the load: {shown}")
    print(f"deliveries: {', '.join(f'{n} {k}' for k, n in sorted(deliveries.items()))}")
    if depth.get("dead"):
        problems.append(f"{depth['dead']} outbox dead letters")
    if depth.get("pending"):
        problems.append(f"{depth['pending']} outbox messages still pending after the load")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="load duration (default 10)")
    parser.add_argument(
        "--speed", type=float, default=1800.0, help="simulated seconds per real second"
    )
    parser.add_argument(
        "--sample-seconds", type=float, default=5.0, help="RSS sample period (default 5)"
    )
    parser.add_argument("--keep", type=Path, help="keep the logs and database in this folder")
    args = parser.parse_args()
    if args.minutes <= 0 or args.speed <= 0 or args.sample_seconds <= 0:
        parser.error("--minutes, --speed and --sample-seconds must be positive")
    print(describe(), flush=True)
    print(
        f"soak: {args.minutes:g} min, speed {args.speed:g} "
        f"(a simulated quarter hour every {900 / args.speed:.2f} s per simulator)",
        flush=True,
    )
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        sys.exit(report(asyncio.run(run(args, args.keep.resolve()))))
    with tempfile.TemporaryDirectory() as folder:
        sys.exit(report(asyncio.run(run(args, Path(folder)))))


if __name__ == "__main__":
    main()
