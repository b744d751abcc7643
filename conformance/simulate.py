"""Peer simulators: `simulate cpo` (a charge point operator over OCMP 1.0, or an OSCP 2.0
flexibility provider) and `simulate scada` (a SCADA/EMS over the CP-API), on a compressed
clock (`simulate agr`, a UFTP 3.1 aggregator, is in conformance/simulate_agr.py), printing
what they send and what comes back. Like the conformance runner they speak HTTP only, so
they run against any server.

    simulate cpo   --target URL --credentials cf.json [--protocol ocmp|oscp] [--cycles N]
    simulate scada --target URL --credentials cf.json [--cycles N]

One cycle is one simulated quarter hour; `--speed` simulated seconds pass per real second
(900: a quarter hour a second). The CPO hands its endpoint over (OCMP handshake, or OSCP
register + handshake), then every cycle sends a heartbeat, a maximum (OSCP: CONSUMPTION)
capacity forecast for the next 24 hours at 15 minutes and the charger's meter reading from a
synthetic charging profile; it prints every message the server sends back (handshake,
heartbeats, optimal forecasts / OPTIMUM). The SCADA saves a site with a main meter, PV and a
battery, then every cycle the meter and PV registers, the battery's energy level and the
site's maximum capacity; at the end it reads the derived interval energy back.

Exit status: 0 when every request was accepted (and, for the CPO, an optimal forecast came
back); 1 otherwise; 2 on a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from conformance import simulate_agr
from conformance.errors import UsageError
from conformance.peer import PeerEndpoint, Received
from conformance.runner import DEFAULT_MOUNTS
from conformance.template import iso

Q = timedelta(minutes=15)
DAY_BLOCKS = 96


def add_parser(subparsers: Any) -> None:
    simulate = subparsers.add_parser(
        "simulate",
        help="simulate a peer (CPO, SCADA, AGR) against any server",
        description="Simulated peers on a compressed clock; they print what they send and what "
        "comes back.",
    )
    kinds = simulate.add_subparsers(dest="action", required=True, metavar="PEER")
    cpo = kinds.add_parser(
        "cpo", help="a charge point operator: OCMP 1.0 (or OSCP 2.0 as flexibility provider)"
    )
    scada = kinds.add_parser("scada", help="a SCADA/EMS: CP-API assets and time series")
    simulate_agr.add_parser(kinds)
    for command in (cpo, scada):
        command.add_argument("--target", required=True, help="base URL of the server")
        command.add_argument("--credentials", help="JSON credentials file (docs/conformance.md)")
        command.add_argument("--username", help="basic login (else from --credentials)")
        command.add_argument("--password", help="basic password (else from --credentials)")
        command.add_argument("--tenant-key", help="tenant key (else from --credentials)")
        command.add_argument(
            "--speed", type=float, default=900.0, help="simulated seconds per real second"
        )
        stop = command.add_mutually_exclusive_group()
        stop.add_argument("--cycles", type=int, help="simulated quarter hours (default 8)")
        stop.add_argument("--duration", type=float, help="real seconds to run")
        command.add_argument("--timeout", type=float, default=15.0, help="seconds per request")
        command.add_argument(
            "--start",
            type=_start_time,
            help="simulated start, RFC 3339 (default: CPO next 17:00 UTC, SCADA today 10:00 UTC)",
        )
    cpo.add_argument("--protocol", choices=("ocmp", "oscp"), default="ocmp")
    cpo.add_argument("--token", help="OSCP: the out-of-band token (else from --credentials)")
    cpo.add_argument("--group", default="site-1", help="group_id of the site (default site-1)")
    cpo.add_argument("--asset", help="asset_id of the charger (default cp-1, OSCP evse-1)")
    cpo.add_argument("--amps", type=float, default=32.0, help="the group's maximum, in A")
    cpo.add_argument("--heartbeat", type=int, default=900, help="heartbeat interval asked, s")
    cpo.add_argument("--peer-host", default="127.0.0.1", help="where the CPO endpoint listens")
    cpo.add_argument("--peer-port", type=int, default=0, help="its port (default: a free one)")
    cpo.add_argument("--peer-url", help="URL the server reaches the CPO endpoint at")
    scada.add_argument(
        "--system", default="scada-sim", help="SystemIdentifier of the simulated assets"
    )
    scada.add_argument("--prefix", default="sim", help="prefix of the assets' ExternalKeys")


def _credentials(args: argparse.Namespace, section: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if args.credentials:
        try:
            data = json.loads(Path(args.credentials).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsageError(f"--credentials: cannot read {args.credentials}: {exc}") from None
    found = dict(data.get(section) or {})
    for name, flag in (("username", "username"), ("password", "password")):
        if getattr(args, flag, None):
            found[name] = getattr(args, flag)
    if getattr(args, "tenant_key", None):
        found["tenant_key"] = args.tenant_key
    if getattr(args, "token", None):
        found["token"] = args.token
    needed = ("token",) if section == "oscp" else ("username", "password", "tenant_key")
    missing = [n for n in needed if not found.get(n)]
    if missing:
        raise UsageError(
            f"{section}: no {', '.join(missing)} (give --credentials with a {section!r} "
            f"section, or --{missing[0].replace('_', '-')})"
        )
    found["mounts"] = {**DEFAULT_MOUNTS, **(data.get("mounts") or {})}
    return found


def _target(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--target: {text!r} is not an http(s) URL")
    return text.rstrip("/")


def _start_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset")
    return _quarter(moment.astimezone(UTC))


def _default_start(hour: int, upcoming: bool) -> datetime:
    """Today's `hour`:00 UTC, or (upcoming) the next one from now."""
    now = datetime.now(UTC)
    at = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    return at + timedelta(days=1) if upcoming and at < now else at


def _quarter(moment: datetime) -> datetime:
    return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


# ---------------------------------------------------------------------------------------------
# Synthetic profiles (deterministic: the same simulated time gives the same value)


def dso_limit_amps(moment: datetime, amps: float) -> float:
    """The DSO's maximum for the group: the full `amps`, half of it in the evening peak."""
    return amps / 2 if 17 <= moment.hour < 21 else amps


def charging_kw(moment: datetime) -> float:
    """An EV charging at 11 kW from 18:00 for 4 hours, and 7.4 kW from 07:00 for 2 hours."""
    hour = moment.hour + moment.minute / 60
    if 18 <= hour < 22:
        return 11.0
    if 7 <= hour < 9:
        return 7.4
    return 0.0


def household_kw(moment: datetime) -> float:
    hour = moment.hour + moment.minute / 60
    return round(
        0.4 + 0.8 * math.exp(-((hour - 19) ** 2) / 6) + 0.5 * math.exp(-((hour - 8) ** 2) / 3), 3
    )


def pv_kw(moment: datetime, peak: float = 5.0) -> float:
    hour = moment.hour + moment.minute / 60
    return round(
        max(0.0, peak * math.sin(math.pi * (hour - 6) / 14)) if 6 <= hour <= 20 else 0.0, 3
    )


# ---------------------------------------------------------------------------------------------
# Plumbing shared by both simulators


@dataclass
class Tally:
    sent: dict[str, int] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    received: dict[str, int] = field(default_factory=dict)

    def count(self, table: dict[str, int], name: str) -> None:
        table[name] = table.get(name, 0) + 1


class Client:
    """One HTTP session, printing each request's outcome."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base: str,
        headers: dict[str, str],
        tally: Tally,
        say: Callable[[str], None],
    ) -> None:
        self.session, self.base, self.headers, self.tally, self.say = (
            session,
            base,
            headers,
            tally,
            say,
        )

    async def send(
        self, method: str, path: str, body: Any, label: str, **headers: str
    ) -> tuple[int, Any]:
        sent = {**self.headers, **headers, "X-Request-ID": secrets.token_hex(8)}
        started = time.perf_counter()
        try:
            async with self.session.request(
                method, self.base + path, json=body, headers=sent
            ) as answer:
                raw = await answer.read()
                status = answer.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.tally.refused.append(f"{label}: {type(exc).__name__}: {exc}")
            self.say(f"-> {label}: no answer ({type(exc).__name__}: {exc})")
            return 0, None
        # The round trip, printed with each answer (benchmarks/soak.py reads it back).
        took = f"in {(time.perf_counter() - started) * 1000:.1f} ms"
        try:
            reply = json.loads(raw) if raw.strip() else None
        except ValueError:
            reply = raw.decode("utf-8", "replace")
        self.tally.count(self.tally.sent, label.split(" ")[0])
        if status >= 300:
            self.tally.refused.append(f"{label}: {status} {reply}")
            self.say(f"-> {label}: {status} {took} {json.dumps(reply)[:300]}")
        else:
            self.say(f"-> {label}: {status} {took}")
        return status, reply


class Pacer:
    """The compressed clock: cycle k starts k x 900 / speed real seconds after the start."""

    def __init__(self, speed: float, cycles: int | None, duration: float | None) -> None:
        if speed <= 0:
            raise UsageError("--speed must be positive")
        if cycles is not None and cycles < 1:
            raise UsageError("--cycles must be at least 1")
        self.step = Q.total_seconds() / speed
        self.cycles = cycles if cycles is not None or duration is not None else 8
        self.duration = duration
        self.started = time.monotonic()

    def more(self, k: int) -> bool:
        if self.cycles is not None:
            return k < self.cycles
        return time.monotonic() - self.started < (self.duration or 0.0)

    async def wait_for(self, k: int) -> None:
        delay = self.started + k * self.step - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the simulated clock, not synchronisation


def _summary(tally: Tally, say: Callable[[str], None]) -> None:
    sent = ", ".join(f"{n} {name}" for name, n in sorted(tally.sent.items())) or "nothing"
    got = ", ".join(f"{n} {name}" for name, n in sorted(tally.received.items())) or "nothing"
    say(f"sent: {sent}")
    say(f"received: {got}")
    if tally.refused:
        say(f"refused: {len(tally.refused)}")
        for line in tally.refused[:10]:
            say(f"  {line}")


# ---------------------------------------------------------------------------------------------
# CPO


def _describe_received(message: Received) -> str:
    name = message.path.rstrip("/").rsplit("/", 1)[-1]
    body = message.body
    if (
        isinstance(body, dict)
        and isinstance(body.get("forecasted_blocks"), list)
        and body["forecasted_blocks"]
    ):
        blocks = body["forecasted_blocks"]
        capacities = [
            b.get("capacity") for b in blocks if isinstance(b.get("capacity"), int | float)
        ]
        span = f"{blocks[0].get('start_time')} .. {blocks[-1].get('end_time')}"
        low, high = (min(capacities), max(capacities)) if capacities else (None, None)
        unit = blocks[0].get("unit")
        kind = f" {body['type']}" if "type" in body else ""
        return (
            f"{name}{kind} {body.get('group_id')}: {len(blocks)} blocks {span}, "
            f"{low:.2f}..{high:.2f} {unit}"
            if capacities
            else f"{name}: {len(blocks)} blocks"
        )
    text = json.dumps(body) if body is not None else "(no body)"
    return f"{name} {text[:200]}"


async def _cpo(args: argparse.Namespace) -> int:
    target = _target(args.target)
    protocol = args.protocol
    creds = _credentials(args, protocol)
    asset = args.asset or ("cp-1" if protocol == "ocmp" else "evse-1")
    say = _printer()
    tally = Tally()
    pacer = Pacer(args.speed, args.cycles, args.duration)
    peer = PeerEndpoint(args.peer_host, args.peer_port, args.peer_url)
    expected_reply = (
        "update_group_optimal_capacity_forecast"
        if protocol == "ocmp"
        else "update_group_capacity_forecast"
    )

    def heard(message: Received) -> None:
        name = message.path.rstrip("/").rsplit("/", 1)[-1]
        tally.count(tally.received, name)
        say(f"<- {_describe_received(message)}")

    peer.listeners.append(heard)
    try:
        await peer.start()
    except OSError as exc:
        raise UsageError(
            f"--peer-port: cannot listen on {args.peer_host}:{args.peer_port}: {exc}"
        ) from None
    say(f"simulated {protocol.upper()} CPO -> {target}; its endpoint {peer.url}")
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            if protocol == "ocmp":
                pair = f"{creds['username']}:{creds['password']}".encode()
                header = creds.get("tenant_key_header") or "X-Tenant-Key"
                headers = {
                    "Authorization": "Basic " + base64.b64encode(pair).decode(),
                    header: creds["tenant_key"],
                }
                client = Client(session, target + creds["mounts"]["ocmp"], headers, tally, say)
                ok = await _ocmp_session(client, peer, args, asset, pacer, say)
            else:
                client = Client(
                    session,
                    target + creds["mounts"]["oscp.co"],
                    {"Authorization": f"Token {creds['token']}"},
                    tally,
                    say,
                )
                ok = await _oscp_session(client, peer, args, asset, pacer, say)
            # The last forecasts' answers may still be on their way: wait for them, with a deadline.
            sent = tally.sent.get("maximum" if protocol == "ocmp" else "forecast", 0)
            deadline = time.monotonic() + 15

            def answered() -> bool:
                return tally.received.get(expected_reply, 0) >= sent

            if not answered():
                await peer.wait_for(lambda _: answered(), peer.mark(), deadline)
    finally:
        await peer.stop()
    _summary(tally, say)
    if not tally.received.get(expected_reply):
        say(f"no {expected_reply} came back")
        return 1
    return 0 if ok and not tally.refused else 1


def _blocks(
    start: datetime, amps: float, unit: str, per_block: Callable[[datetime], float]
) -> list[dict[str, Any]]:
    return [
        {
            "capacity": round(per_block(start + i * Q), 3),
            "phase": "ALL",
            "unit": unit,
            "start_time": iso(start + i * Q),
            "end_time": iso(start + (i + 1) * Q),
        }
        for i in range(DAY_BLOCKS)
    ]


async def _ocmp_session(
    client: Client,
    peer: PeerEndpoint,
    args: argparse.Namespace,
    asset: str,
    pacer: Pacer,
    say: Callable[[str], None],
) -> bool:
    user, password = f"cpo-sim-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    status, _ = await client.send(
        "POST",
        "/handshake",
        {
            "base_url": f"{peer.url}/ocmp",
            "username": user,
            "password": password,
            "heartbeat_interval": args.heartbeat,
        },
        "handshake",
    )
    if status >= 300 or status == 0:
        return False
    start = args.start or _default_start(17, upcoming=True)
    register = 0.0
    k = 0
    while pacer.more(k):
        await pacer.wait_for(k)
        now = start + k * Q
        say(f"[sim {now:%Y-%m-%d %H:%M}Z]")
        await client.send(
            "POST",
            "/heartbeat",
            {"offline_mode_at": iso(datetime.now(UTC) + timedelta(seconds=3 * args.heartbeat))},
            "heartbeat",
        )
        blocks = _blocks(now, args.amps, "A", lambda t: dso_limit_amps(t, args.amps))
        await client.send(
            "POST",
            "/update_group_maximum_capacity_forecast",
            {"group_id": args.group, "forecasted_blocks": blocks},
            f"maximum forecast {args.group} 96 blocks from {iso(now)}",
        )
        if k:
            register += charging_kw(now - Q) * 0.25
        await client.send(
            "POST",
            "/update_detailed_metering_data",
            {
                "asset_id": asset,
                "meter_values": [
                    {"value": round(register, 3), "unit": "KWH", "measure_time": iso(now)}
                ],
            },
            f"metering {asset} {register:.2f} kWh at {iso(now)}",
        )
        k += 1
    return True


async def _oscp_session(
    client: Client,
    peer: PeerEndpoint,
    args: argparse.Namespace,
    asset: str,
    pacer: Pacer,
    say: Callable[[str], None],
) -> bool:
    token_b = f"fp-sim-{secrets.token_hex(8)}"
    base = f"{peer.url}/oscp/fp/2.0"
    mark = peer.mark()
    status, _ = await client.send(
        "POST",
        "/register",
        {"token": token_b, "version_url": [{"version": "2.0", "base_url": base}]},
        "register",
    )
    if status >= 300 or status == 0:
        return False
    reply = await peer.wait_for(lambda m: m.path.endswith("/register"), mark, time.monotonic() + 15)
    if reply is None or not isinstance(reply.body, dict) or not reply.body.get("token"):
        say("no Register came back: cannot go on without the server's token")
        return False
    client.headers["Authorization"] = f"Token {reply.body['token']}"
    say(f"   (now using the token the server sent in its Register: {reply.body['token']})")
    await client.send(
        "POST",
        "/handshake",
        {
            "required_behaviour": {
                "heartbeat_interval": args.heartbeat,
                "measurement_configuration": ["CONTINUOUS"],
            }
        },
        "handshake",
    )
    start = args.start or _default_start(17, upcoming=True)
    register_wh = 0.0
    kw_per_amp = 230 * 3 / 1000
    k = 0
    while pacer.more(k):
        await pacer.wait_for(k)
        now = start + k * Q
        say(f"[sim {now:%Y-%m-%d %H:%M}Z]")
        await client.send(
            "POST",
            "/heartbeat",
            {"offline_mode_at": iso(datetime.now(UTC) + timedelta(seconds=3 * args.heartbeat))},
            "heartbeat",
        )
        blocks = _blocks(now, args.amps, "KW", lambda t: dso_limit_amps(t, args.amps) * kw_per_amp)
        await client.send(
            "POST",
            "/update_group_capacity_forecast",
            {"group_id": args.group, "type": "CONSUMPTION", "forecasted_blocks": blocks},
            f"forecast CONSUMPTION {args.group} 96 blocks from {iso(now)}",
        )
        if k:
            register_wh += charging_kw(now - Q) * 250
        await client.send(
            "POST",
            "/update_asset_measurements",
            {
                "group_id": args.group,
                "measurements": [
                    {
                        "asset_id": asset,
                        "asset_category": "CHARGING",
                        "energy_measurement": {
                            "value": round(register_wh, 1),
                            "phase": "ALL",
                            "unit": "WH",
                            "direction": "IMPORT",
                            "measure_time": iso(now),
                        },
                    }
                ],
            },
            f"measurements {asset} {register_wh / 1000:.2f} kWh at {iso(now)}",
        )
        k += 1
    return True


# ---------------------------------------------------------------------------------------------
# SCADA


def _printer() -> Callable[[str], None]:
    started = time.monotonic()

    def say(line: str) -> None:
        print(f"{time.monotonic() - started:7.2f}s {line}", flush=True)

    return say


async def _scada(args: argparse.Namespace) -> int:
    target = _target(args.target)
    creds = _credentials(args, "cpapi")
    say = _printer()
    tally = Tally()
    pacer = Pacer(args.speed, args.cycles, args.duration)
    system, prefix = args.system, args.prefix

    def ref(kind: str, name: str) -> dict[str, str]:
        return {
            "SystemIdentifier": system,
            "ExternalEntityReferenceType": kind,
            "ExternalKey": f"{prefix}-{name}",
        }

    site, meter, pv, battery = (
        ref("Site", "site"),
        ref("Resource", "meter"),
        ref("Resource", "pv"),
        ref("Resource", "battery"),
    )

    def asset(
        key: dict[str, str],
        kind: str,
        sub: str,
        name: str,
        *props: tuple[str, Any],
        parent: dict | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "AssetKey": key,
            "AssetProperties": {
                "ListOption": "PartialList",
                "AssetPropertyList": [
                    {"PropertyName": n, "PropertyValue": v}
                    for n, v in (("AssetType", kind), ("AssetSubType", sub), ("Name", name), *props)
                ],
            },
        }
        if parent:
            body["AssetConnectors"] = {
                "ListOption": "PartialList",
                "AssetConnectorList": [
                    {"ReferenceDirection": "Parent", "AssetReferenceKey": parent}
                ],
            }
        return body

    pair = f"{creds['username']}:{creds['password']}".encode()
    header = creds.get("tenant_key_header") or "X-Tenant-Key"
    headers = {
        "Authorization": "Basic " + base64.b64encode(pair).decode(),
        header: creds["tenant_key"],
    }
    say(f"simulated SCADA -> {target} (CP-API), system {system!r}")
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = Client(session, target + creds["mounts"]["cpapi"], headers, tally, say)
        assets = [
            asset(site, "Area", "Site", "Simulated site"),
            asset(meter, "Resource", "Meter", "Main meter", ("IsMainMeter", True), parent=site),
            asset(
                pv,
                "Resource",
                "Generation",
                "Rooftop PV",
                ("GenerationType", "PV"),
                ("InstalledMaxCapacity", 5),
                parent=site,
            ),
            asset(
                battery,
                "Resource",
                "Storage",
                "Home battery",
                ("StorageType", "Battery"),
                ("InstalledMaxCapacity", 10),
                parent=site,
            ),
        ]
        status, saved = await client.send(
            "POST", "/Asset/SaveAssetV1List", assets, "SaveAssetV1List 4 assets"
        )
        if status != 200 or not isinstance(saved, list):
            _summary(tally, say)
            return 1
        for item in saved:
            key = item.get("AssetKey") or {}
            outcome = (
                f"key {item.get('Key')}"
                if item.get("Success")
                else f"refused: {item.get('ErrorMessage')}"
            )
            say(f"<- {key.get('ExternalKey')}: {outcome}")
            if not item.get("Success"):
                tally.refused.append(f"asset {key.get('ExternalKey')}: {item.get('ErrorMessage')}")
        start = args.start or _default_start(10, upcoming=False)
        meter_kwh, pv_kwh, soc = 1000.0, 200.0, 5.0
        k = 0
        while pacer.more(k):
            await pacer.wait_for(k)
            now = start + k * Q
            if k:
                meter_kwh += household_kw(now - Q) * 0.25
                pv_kwh += pv_kw(now - Q) * 0.25
                soc = min(
                    10.0, max(0.0, soc + (pv_kw(now - Q) - household_kw(now - Q)) * 0.25 * 0.5)
                )
            t = iso(now)
            series = [
                {
                    "EntityKey": meter,
                    "TimeSeriesType": "Consumption Meter Reading",
                    "Unit": "kWh",
                    "TimeSeriesValueList": [{"ValueTime": t, "Value": round(meter_kwh, 3)}],
                },
                {
                    "EntityKey": pv,
                    "TimeSeriesType": "Production Meter Reading",
                    "Unit": "kWh",
                    "TimeSeriesValueList": [{"ValueTime": t, "Value": round(pv_kwh, 3)}],
                },
                {
                    "EntityKey": battery,
                    "TimeSeriesType": "Energy Level",
                    "Unit": "kWh",
                    "Resolution": "FifteenMinutes",
                    "TimeSeriesValueList": [{"ValueTime": t, "Value": round(soc, 3)}],
                },
                {
                    "EntityKey": site,
                    "TimeSeriesType": "Max Capacity",
                    "Unit": "kW",
                    "Resolution": "FifteenMinutes",
                    "TimeSeriesValueList": [
                        {"ValueTime": t, "Value": 17.0 if 17 <= now.hour < 21 else 25.0}
                    ],
                },
            ]
            say(
                f"[sim {now:%Y-%m-%d %H:%M}Z] meter {meter_kwh:.2f} kWh, PV {pv_kwh:.2f} kWh, "
                f"battery {soc:.2f} kWh"
            )
            status, answers = await client.send(
                "POST",
                "/TimeSeries/SaveTimeSeriesListForEntitiesV1",
                series,
                "SaveTimeSeriesListForEntitiesV1 4 series",
            )
            for item in answers if isinstance(answers, list) else []:
                if not item.get("Success"):
                    tally.refused.append(
                        f"{item.get('TimeSeriesType')}: {item.get('ErrorMessage')}"
                    )
                    say(f"<- {item.get('TimeSeriesType')}: refused: {item.get('ErrorMessage')}")
            k += 1
        end = start + k * Q
        derived_ok = True
        for entity, kind, what in ((meter, "Consumption", "meter"), (pv, "Production", "PV")):
            status, answer = await client.send(
                "POST",
                "/TimeSeries/GetTimeSeriesV1",
                {
                    "ExternalEntityReference": entity,
                    "TimeSeriesType": kind,
                    "FromDateTime": iso(start),
                    "ToDateTime": iso(end),
                },
                f"GetTimeSeriesV1 {kind} of the {what}",
            )
            values = (answer or {}).get("TimeSeriesValueList") if isinstance(answer, dict) else None
            if not values:
                derived_ok = derived_ok and kind != "Consumption"
                say(f"<- {kind} of the {what}: no values")
                continue
            tally.received[f"{kind} values"] = len(values)
            shown = ", ".join(f"{v['ValueTime'][11:16]} {v['Value']:.3f}" for v in values[:8])
            more = f" (+{len(values) - 8} more)" if len(values) > 8 else ""
            say(
                f"<- {answer.get('TimeSeriesType')} of the {what} ({answer.get('Unit')}, "
                f"derived): {shown}{more}"
            )
    _summary(tally, say)
    if k > 1 and not derived_ok:
        say("no interval energy was derived from the meter readings")
        return 1
    return 0 if not tally.refused else 1


def run(args: argparse.Namespace) -> int:
    if args.action == "agr":
        return simulate_agr.run(args)
    if args.action == "cpo":
        return asyncio.run(_cpo(args))
    return asyncio.run(_scada(args))
