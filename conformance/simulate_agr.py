"""`simulate agr`: an aggregator (AGR) trading with a UFTP 3.1 DSO, printing what it sends
and what comes back. Like the other simulators it speaks the wire only, so it runs against
any DSO:

    simulate agr --target URL --credentials cf.json [--cycles N | --duration S]
                 [--interval S] [--congestion-point EA1] [--base-kw KW] [--peak-kw KW]

Every `--interval` seconds (one cycle) it sends a D-Prognosis for tomorrow (in the market's
zone) at the congestion point, Revision one higher each time (from the start in
milliseconds, so above any earlier run's): `--base-kw` all day and
`--peak-kw` from 17:00 to 20:00 local time, and a Metering of yesterday for its connection.
What the DSO sends it answers as an AGR does: a FlexRequest with a FlexRequestResponse
(Accepted) and a FlexOffer of exactly the requested reduction at `--price`, a FlexOrder with a
FlexOrderResponse (Accepted). Every message the DSO sends must verify with the DSO's public
key; every message of ours must be answered. After the last cycle it goes on answering for
up to `--settle` seconds, until its messages are answered and `--orders` FlexOrders came.

It needs an AGR identity the DSO knows: the `uftp` section of the credentials file
(conformance.provision writes one), or `--domain`, `--secret-key`, `--dso-domain`,
`--dso-public-key`. `--print-setup` makes a fresh key and prints the flexbridge commands
that make the DSO know it, then exits.

Exit status: 0 when every message got HTTP 200 and every response Accepted; 1 otherwise;
2 on a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import aiohttp

from conformance import uftp
from conformance.errors import UsageError
from conformance.peer import PeerEndpoint, Received
from protocols.uftp.v3_1.codec import Node, document
from protocols.uftp.v3_1.sealing import BadKey, SigningKey

PEAK_HOURS = (17, 20)  # local time: the evening peak of --peak-kw


def add_parser(kinds: Any) -> None:
    agr = kinds.add_parser("agr", help="an aggregator trading flexibility with a UFTP 3.1 DSO")
    agr.add_argument("--target", help="base URL of the DSO")
    agr.add_argument("--credentials", help="JSON credentials file with a uftp section")
    agr.add_argument("--mount", default="/shapeshifter/api/v3", help="the DSO's UFTP prefix")
    agr.add_argument("--domain", help="our AGR domain (else uftp.agr_domain)")
    agr.add_argument("--secret-key", help="our libsodium secret key, base64 (else uftp.*)")
    agr.add_argument("--dso-domain", help="the DSO's domain (else uftp.dso_domain)")
    agr.add_argument("--dso-public-key", help="the DSO's public key (else uftp.dso_public_key)")
    agr.add_argument("--congestion-point", help="EA1 address (else uftp.congestion_point)")
    agr.add_argument("--ean", help="the connection's EAN digits (else uftp.connection)")
    agr.add_argument("--time-zone", help="the market's zone (else uftp.time_zone, Amsterdam)")
    stop = agr.add_mutually_exclusive_group()
    stop.add_argument("--cycles", type=int, help="D-Prognoses to send (default 3)")
    stop.add_argument("--duration", type=float, help="real seconds to run")
    agr.add_argument("--interval", type=float, default=5.0, help="seconds between cycles")
    agr.add_argument("--base-kw", type=float, default=80.0, help="prognosed load, kW")
    agr.add_argument("--peak-kw", type=float, default=120.0, help="load 17-20 h local, kW")
    agr.add_argument("--price", default="10.00", help="price of each offer, EUR")
    agr.add_argument(
        "--orders",
        type=int,
        default=0,
        help="after the last cycle, go on answering until this many FlexOrders came",
    )
    agr.add_argument(
        "--settle",
        type=float,
        default=15.0,
        help="seconds after the last cycle for the answers (and --orders) to come",
    )
    agr.add_argument("--timeout", type=float, default=15.0, help="seconds per request")
    agr.add_argument("--peer-host", default="127.0.0.1", help="where our endpoint listens")
    agr.add_argument(
        "--peer-port", type=int, default=0, help="its port (default: uftp.receiver_url's)"
    )
    agr.add_argument("--peer-url", help="URL the DSO reaches our endpoint at")
    agr.add_argument(
        "--print-setup",
        action="store_true",
        help="make a key, print the commands that tell flexbridge about it, and exit",
    )


# ---------------------------------------------------------------------------------------------
# Who we are


def _section(args: argparse.Namespace) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if args.credentials:
        try:
            data = json.loads(Path(args.credentials).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsageError(f"--credentials: cannot read {args.credentials}: {exc}") from None
        found = dict(data.get("uftp") or {})
    for name, flag in (
        ("agr_domain", "domain"),
        ("agr_secret_key", "secret_key"),
        ("dso_domain", "dso_domain"),
        ("dso_public_key", "dso_public_key"),
        ("congestion_point", "congestion_point"),
        ("connection", "ean"),
        ("time_zone", "time_zone"),
    ):
        if getattr(args, flag):
            found[name] = getattr(args, flag)
    missing = [
        n for n in (*(need[5:] for need in uftp.NEEDS), "congestion_point") if not found.get(n)
    ]
    if missing:
        raise UsageError(
            f"uftp: no {', '.join(missing)} (give --credentials with a 'uftp' section, or the "
            "flags; --print-setup makes a key)"
        )
    return found


def _agr(section: dict[str, Any]) -> uftp.Agr:
    try:
        return uftp.Agr.from_section(section)
    except (BadKey, ValueError) as exc:
        raise UsageError(f"uftp: {exc}") from None


def print_setup(args: argparse.Namespace) -> int:
    """A fresh AGR key and the flexbridge commands that make the DSO know it."""
    key = SigningKey.generate()
    domain = args.domain or "agr-sim.example.com"
    receiver = (args.peer_url or f"http://{args.peer_host}:{args.peer_port or 8766}").rstrip("/")
    point = args.congestion_point or "ea1.2026-12.com.example.dso:cp-1"
    print(f"# our AGR domain {domain}; keep the secret key, pass it as --secret-key")
    print(f"secret key {key.secret}")
    print(f"public key {key.public}")
    print("# on the DSO (flexbridge), tenant T:")
    print("flexbridge uftp key --tenant T  # its domain and key: --dso-domain, --dso-public-key")
    print(
        f"flexbridge peer add --tenant T --protocol uftp --name {domain} --role AGR "
        f"--base-url {receiver}{uftp.RECEIVER_PATH} --public-key {key.public}"
    )
    connection = f" --connection ean.{args.ean}" if args.ean else ""
    print(
        f"flexbridge uftp congestion-point add --tenant T --ea {point}{connection} --agr {domain}"
    )
    return 0


# ---------------------------------------------------------------------------------------------
# The AGR's day


def _local_midnight(day: Any, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, clock_time(), zone).astimezone(UTC)


def prognosis_watts(day: Any, zone: ZoneInfo, base_kw: float, peak_kw: float) -> list[int]:
    """Per ISP of `day`: `base_kw`, and `peak_kw` in the evening peak (local time)."""
    start = _local_midnight(day, zone)
    powers = []
    for n in range(uftp.isps_of(day, zone)):
        hour = (start + n * uftp.ISP).astimezone(zone).hour
        kw = peak_kw if PEAK_HOURS[0] <= hour < PEAK_HOURS[1] else base_kw
        powers.append(round(kw * 1000))
    return powers


@dataclass
class Tally:
    sent: dict[str, int] = field(default_factory=dict)
    received: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)  # our MessageID -> its type
    offers: int = 0
    orders: int = 0

    def count(self, table: dict[str, int], name: str) -> None:
        table[name] = table.get(name, 0) + 1


class Simulator:
    def __init__(
        self,
        args: argparse.Namespace,
        agr: uftp.Agr,
        section: dict[str, Any],
        session: aiohttp.ClientSession,
        say: Callable[[str], None],
    ) -> None:
        self.args, self.agr, self.session, self.say = args, agr, session, say
        self.url = args.target.rstrip("/") + args.mount.rstrip("/") + uftp.MESSAGE_PATH
        self.point = section["congestion_point"]
        self.ean = section.get("connection")
        self.tally = Tally()
        self.inbox: asyncio.Queue[Received] = asyncio.Queue()
        # Revisions above any earlier run's: the start in milliseconds, + 1 per cycle.
        self.revision = int(time.time() * 1000)

    async def send(
        self, kind: str, attributes: dict[str, str], children: list[Node], what: str
    ) -> bool:
        metadata = self.agr.metadata(**attributes)
        body = self.agr.envelope(document(Node(kind, metadata, children)))
        started = time.perf_counter()
        try:
            async with self.session.post(
                self.url, data=body, headers={"Content-Type": uftp.CONTENT_TYPE}
            ) as answer:
                text = (await answer.read()).decode("utf-8", "replace")
                status = answer.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.tally.problems.append(f"{kind}: no answer ({type(exc).__name__}: {exc})")
            self.say(f"-> {what}: no answer ({type(exc).__name__}: {exc})")
            return False
        took = f"in {(time.perf_counter() - started) * 1000:.1f} ms"
        self.tally.count(self.tally.sent, kind)
        if status != 200:
            self.tally.problems.append(f"{kind}: HTTP {status} {text[:200]}")
            self.say(f"-> {what}: {status} {took} {text[:200]}")
            return False
        self.say(f"-> {what}: 200 {took}")
        if not kind.endswith("Response"):
            self.tally.waiting[metadata["MessageID"]] = kind
        return True

    def _flex(self, day: Any) -> dict[str, str]:
        return {
            "ISP-Duration": "PT15M",
            "TimeZone": self.agr.time_zone.key,
            "Period": day.isoformat(),
            "CongestionPoint": self.point,
        }

    async def cycle(self, k: int) -> None:
        zone = self.agr.time_zone
        today = datetime.now(zone).date()
        tomorrow = today + timedelta(days=1)
        watts = prognosis_watts(tomorrow, zone, self.args.base_kw, self.args.peak_kw)
        isps = [
            Node("ISP", {"Power": str(w), "Start": str(n + 1), "Duration": "1"})
            for n, w in enumerate(watts)
        ]
        revision = self.revision + k
        await self.send(
            "D-Prognosis",
            {**self._flex(tomorrow), "Revision": str(revision)},
            isps,
            f"D-Prognosis rev {revision} for {tomorrow} at {self.point}: {len(watts)} ISPs, "
            f"{min(watts) / 1000:.1f}..{max(watts) / 1000:.1f} kW",
        )
        if self.ean:
            await self._metering(today - timedelta(days=1), revision)

    async def _metering(self, day: Any, revision: int) -> None:
        zone = self.agr.time_zone
        watts = prognosis_watts(day, zone, self.args.base_kw / 100, self.args.peak_kw / 100)
        values = [
            Node("ISP", {"Start": str(n + 1), "Value": f"{w / 1000:.3f}"})
            for n, w in enumerate(watts)
        ]
        await self.send(
            "Metering",
            {
                "Revision": str(revision),
                "ISP-Duration": "PT15M",
                "TimeZone": zone.key,
                "Period": day.isoformat(),
                "EAN": f"E{self.ean}",
            },
            [Node("Profile", {"ProfileType": "Power", "Unit": "kW"}, values)],
            f"Metering rev {revision} of E{self.ean} for {day}: {len(values)} ISPs of Power",
        )

    # --- what the DSO sends -----------------------------------------------------------

    def heard(self, message: Received) -> None:
        # The endpoint may share its port with other peers' (the provisioned CP-API one).
        if message.path == uftp.RECEIVER_PATH:
            self.inbox.put_nowait(message)

    async def answer_all(self) -> None:
        while True:
            message = await self.inbox.get()
            try:
                await self.answer(message.body)
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                # A message its schema would refuse (another DSO's, say): say so, go on.
                problem = f"could not answer {message.describe()}: {type(exc).__name__}: {exc}"
                self.tally.problems.append(problem)
                self.say(f"<- {problem}")
            finally:
                self.inbox.task_done()

    async def answer(self, read: dict[str, Any]) -> None:
        if not read.get("verified"):
            self.tally.problems.append(f"a message that does not verify: {read.get('error')}")
            self.say(f"<- a message that does not verify: {read.get('error')}")
            return
        kind, attributes = read["type"], read["attributes"]
        self.tally.count(self.tally.received, kind)
        if kind.endswith("Response"):
            self._response(kind, attributes)
        elif kind == "FlexRequest":
            await self._flex_request(attributes, read["children"])
        elif kind == "FlexOrder":
            await self._flex_order(attributes, read["children"])
        else:
            self.say(f"<- {kind} {json.dumps(attributes)[:200]}")

    def _response(self, kind: str, attributes: dict[str, str]) -> None:
        sent = kind.removesuffix("Response")
        reference = attributes.get(f"{sent}MessageID", "")
        self.tally.waiting.pop(reference, None)
        result = attributes.get("Result", "(no Result)")
        reason = attributes.get("RejectionReason")
        self.say(f"<- {kind} {result}" + (f": {reason}" if reason else ""))
        if result == "Rejected":
            self.tally.problems.append(f"{kind}: Rejected {reason}")

    async def _flex_request(self, request: dict[str, str], children: list[dict]) -> None:
        requested = [
            c["attributes"] for c in children if c["attributes"].get("Disposition") == "Requested"
        ]
        first = min((int(i["Start"]) for i in requested), default=0)
        most = max((-int(i["MinPower"]) for i in requested), default=0)
        self.say(
            f"<- FlexRequest rev {request.get('Revision')} for {request.get('Period')}: "
            f"{sum(int(i.get('Duration', '1')) for i in requested)} ISPs requested from ISP "
            f"{first}, up to {most / 1000:.1f} kW less"
        )
        conversation = request["ConversationID"]
        await self.send(
            "FlexRequestResponse",
            {
                "ConversationID": conversation,
                "Result": "Accepted",
                "FlexRequestMessageID": request["MessageID"],
            },
            [],
            "FlexRequestResponse Accepted",
        )
        if not requested:
            return
        # Exactly the reduction asked for, on exactly the requested ISPs.
        isps = [
            Node(
                "ISP",
                {"Power": i["MinPower"], "Start": i["Start"], "Duration": i.get("Duration", "1")},
            )
            for i in requested
        ]
        option = Node(
            "OfferOption",
            {"OptionReference": "sim-1", "Price": self.args.price, "MinActivationFactor": "1.00"},
            isps,
        )
        self.tally.offers += 1
        await self.send(
            "FlexOffer",
            {
                "ConversationID": conversation,
                "ISP-Duration": request["ISP-Duration"],
                "TimeZone": request["TimeZone"],
                "Period": request["Period"],
                "CongestionPoint": request["CongestionPoint"],
                "ExpirationDateTime": request["ExpirationDateTime"],
                "FlexRequestMessageID": request["MessageID"],
                "Currency": "EUR",
            },
            [option],
            f"FlexOffer of {most / 1000:.1f} kW at {self.args.price} EUR",
        )

    async def _flex_order(self, order: dict[str, str], children: list[dict]) -> None:
        self.tally.orders += 1
        self.say(
            f"<- FlexOrder of offer {order.get('FlexOfferMessageID')} option "
            f"{order.get('OptionReference')}: {len(children)} ISP element(s) at "
            f"{order.get('Price')} x {order.get('ActivationFactor', '1.00')}"
        )
        await self.send(
            "FlexOrderResponse",
            {
                "ConversationID": order["ConversationID"],
                "Result": "Accepted",
                "FlexOrderMessageID": order["MessageID"],
            },
            [],
            "FlexOrderResponse Accepted",
        )


# ---------------------------------------------------------------------------------------------


def _printer() -> Callable[[str], None]:
    started = time.monotonic()

    def say(line: str) -> None:
        print(f"{time.monotonic() - started:7.2f}s {line}", flush=True)

    return say


def _peer(args: argparse.Namespace, section: dict[str, Any], agr: uftp.Agr) -> PeerEndpoint:
    port = args.peer_port or urlsplit(section.get("receiver_url") or "").port or 0
    peer = PeerEndpoint(args.peer_host, port, args.peer_url)
    peer.readers[uftp.RECEIVER_PATH] = lambda raw: uftp.read_signed(raw, agr.dso_key)
    peer.statuses[uftp.RECEIVER_PATH] = 200
    return peer


async def _settled(simulator: Simulator, orders: int, deadline: float) -> bool:
    """Every message of ours answered and `orders` FlexOrders come (or the deadline
    passed)."""
    while time.monotonic() < deadline:
        try:
            await asyncio.wait_for(simulator.inbox.join(), deadline - time.monotonic())
        except TimeoutError:
            return False
        if not simulator.tally.waiting and simulator.tally.orders >= orders:
            return True
        await asyncio.sleep(0.1)  # polling the tally with a deadline
    return False


async def _run(args: argparse.Namespace) -> int:
    if not args.target:
        raise UsageError("--target is required (unless --print-setup)")
    if args.interval <= 0 or (args.cycles is not None and args.cycles < 1):
        raise UsageError("--interval must be positive and --cycles at least 1")
    section = _section(args)
    agr = _agr(section)
    say = _printer()
    peer = _peer(args, section, agr)
    try:
        await peer.start()
    except OSError as exc:
        raise UsageError(
            f"--peer-port: cannot listen on {args.peer_host}:{peer.port}: {exc}"
        ) from None
    cycles = args.cycles if args.cycles is not None or args.duration is not None else 3
    say(
        f"simulated AGR {agr.domain} -> {args.target} (UFTP 3.1, DSO {agr.dso_domain}); "
        f"its endpoint {peer.url}{uftp.RECEIVER_PATH}"
    )
    try:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=args.timeout)
        ) as session:
            simulator = Simulator(args, agr, section, session, say)
            peer.listeners.append(simulator.heard)
            answering = asyncio.create_task(simulator.answer_all())
            try:
                started, k = time.monotonic(), 0
                while (
                    (k < cycles)
                    if cycles is not None
                    else (time.monotonic() - started < args.duration)
                ):
                    delay = started + k * args.interval - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)  # pacing the cycles, not synchronisation
                    await simulator.cycle(k)
                    k += 1
                deadline = time.monotonic() + args.settle
                settled = await _settled(simulator, args.orders, deadline)
            finally:
                answering.cancel()
    finally:
        await peer.stop()
    tally = simulator.tally
    if not settled:
        waiting = ", ".join(sorted(set(tally.waiting.values()))) or "none"
        tally.problems.append(
            f"not settled within {args.settle:g} s: unanswered {waiting}; "
            f"{tally.offers} offer(s), {tally.orders} of {args.orders} order(s) wanted"
        )
    sent = ", ".join(f"{n} {k}" for k, n in sorted(tally.sent.items())) or "nothing"
    got = ", ".join(f"{n} {k}" for k, n in sorted(tally.received.items())) or "nothing"
    say(f"sent: {sent}")
    say(f"received: {got}")
    for line in tally.problems[:10]:
        say(f"problem: {line}")
    return 1 if tally.problems else 0


def run(args: argparse.Namespace) -> int:
    if args.print_setup:
        return print_setup(args)
    return asyncio.run(_run(args))
