"""Every message flexbridge sends, checked against the JSON Schema shipped for it.

The server is driven only through its HTTP surfaces (OCMP, OSCP, CP-API) and set up with the
store's public functions; nothing under protocols/ is called. What is sent is taken where
the peer sees it: a second aiohttp app stands for every peer (the CPO, the FP, the CP-API
endpoint) and records each request. Each one is matched, by its X-Request-ID, with the outbox
row that queued it (store.outbox.list_outbox), so a message counts only when it was queued
by flexbridge and delivered; a test whose protocol queued none of its kind fails.

To cover a new message, add a row to SENT (what the outbox calls it, where the peer gets it,
its schema, and a change that must break it); to cover a new protocol, add a `Tour` that
makes it send its messages, and its rows.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import functools
import json
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

import orjson
import pytest
from aiohttp import web
from jsonschema.validators import validator_for

from adapter.app import create_app
from adapter.keys import BACKGROUND
from adapter.settings import Settings
from protocols.cpapi.v1.outbound import configure_endpoint
from store.accounts import Role, add_account, record_token
from store.catalogue import AssetSubType, AssetType, ConnectorType
from store.entities import Entity, add_connector, create_entity, update_entity
from store.outbox import OutboxRecord, list_outbox
from store.peers import Peer, add_peer
from store.references import ExternalRef, ProtocolId, add_reference
from store.series import ensure_series
from store.series_types import SeriesType
from store.tenants import Tenant, add_tenant
from store.values import Point, write_values

Q = timedelta(minutes=15)
WAIT = 10.0  # seconds a queued message may take to reach its peer; a failure, never a pause
TOKEN_A = "token-A-out-of-band"
TOKEN_B = "token-B-for-the-fp"
SYSTEM = "System xyz"  # the CP-API endpoint's cross-referencing system (6.1.1)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _next_quarter() -> datetime:
    now = datetime.now(UTC)
    return now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0) + Q


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# ---------------------------------------------------------------------------------------------
# The schemas and the table of what is sent


@functools.cache
def _validator(schema: str) -> Any:
    document = json.loads(files("schemas").joinpath(schema).read_text(encoding="utf-8"))
    cls = validator_for(document)
    cls.check_schema(document)
    return cls(document)


def schema_errors(schema: str, body: Any) -> list[str]:
    """Every way `body` misses `schema`, as 'path: reason' (empty when it validates)."""
    return sorted(f"{e.json_path}: {e.message}" for e in _validator(schema).iter_errors(body))


def assert_matches(schema: str, body: Any, what: str) -> None:
    errors = schema_errors(schema, body)
    assert not errors, f"{what} does not match {schema}:\n  " + "\n  ".join(errors)


def _set(path: str, value: Any) -> Callable[[Any], None]:
    """A change to a body: the field at dotted `path` (list indexes as numbers) := value."""

    def change(body: Any) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        for part in parents:
            body = body[part]
        body[last] = value

    return change


def _drop(name: str) -> Callable[[Any], None]:
    return lambda body: body.pop(name)


@dataclass(frozen=True, slots=True)
class Sent:
    """A message flexbridge sends: its outbox protocol and message_type, where the peer
    receives it (after the peer's base URL; "" for the URL itself), its schema under
    schemas/, and a change that makes a good body invalid (proof the schema can fail)."""

    protocol: str
    message_type: str
    path: str
    schema: str
    broken: Callable[[Any], None]
    at_least: int = 1  # bodies the protocol's tour makes flexbridge send

    @property
    def id(self) -> str:
        return f"{self.protocol}-{self.message_type}"


TIMESERIES_MESSAGE = "cpapi/v1/timeseries-message.schema.json"

SENT: tuple[Sent, ...] = (
    # OCMP 1.0, flexbridge as the CMO (docs/protocols/ocmp-1.0.md)
    Sent("ocmp", "Handshake", "handshake", "ocmp/1.0/handshake.json", _set("base_url", "ftp://x")),
    Sent("ocmp", "Heartbeat", "heartbeat", "ocmp/1.0/heartbeat.json", _drop("offline_mode_at")),
    Sent(
        "ocmp",
        "UpdateGroupOptimalCapacityForecast",
        "update_group_optimal_capacity_forecast",
        "ocmp/1.0/update_group_optimal_capacity_forecast.json",
        _set("forecasted_blocks.0.unit", "KW"),
        at_least=3,  # the answer to each of two forecasts, and the clock's re-send
    ),
    # OSCP 2.0, flexbridge as the CO and the CP host (docs/protocols/oscp-2.0.md)
    Sent(
        "oscp",
        "Register",
        "register",
        "oscp/2.0/register.json",
        _set("version_url", []),
        at_least=2,  # registration at the CO surface, then again at the CP surface
    ),
    Sent(
        "oscp",
        "HandshakeAcknowledge",
        "handshake_acknowledge",
        "oscp/2.0/handshake_acknowledge.json",
        _set("required_behaviour.heartbeat_interval", 0),
    ),
    Sent("oscp", "Heartbeat", "heartbeat", "oscp/2.0/heartbeat.json", _set("offline_mode_at", "")),
    Sent(
        "oscp",
        "UpdateGroupCapacityForecast",
        "update_group_capacity_forecast",
        "oscp/2.0/update_group_capacity_forecast.json",
        _set("type", "optimum"),
        at_least=3,  # OPTIMUM in KW, OPTIMUM in A, the clock's re-send after measurements
    ),
    # CP-API section 6: TimeSeriesMessageV1 to the tenant's external endpoint
    Sent(
        "cpapi",
        "ControlOnOffMessage",
        "",
        TIMESERIES_MESSAGE,
        _set("ActionType", "Offer"),
        at_least=3,  # load, production and charging on/off
    ),
    Sent(
        "cpapi",
        "ControlRegulationMessage",
        "",
        TIMESERIES_MESSAGE,
        _set("TimeSeries.TimeSeriesValueList.0.Value", "20.1"),
        # load, production, charging, discharging, a zone's capacity; the plan's charging and
        # the planned site's optimal capacity
        at_least=7,
    ),
    Sent(
        "cpapi",
        "FlexibilityOfferMessage",
        "",
        TIMESERIES_MESSAGE,
        _set("TimeSeries.EntityKey.Id", "3"),
        at_least=4,  # up and down of a zone, and of the planned site
    ),
)

PROTOCOLS = sorted({s.protocol for s in SENT})


# ---------------------------------------------------------------------------------------------
# The peers' side and the server


class Peers:
    """One aiohttp app standing for every peer: each request flexbridge makes, by path."""

    def __init__(self) -> None:
        self.inbox: dict[str, list[tuple[dict[str, str], Any]]] = defaultdict(list)
        self.arrived = asyncio.Event()  # set at every request
        self.base = ""

    async def receive(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = orjson.loads(raw) if raw else None
        self.inbox[request.path].append((dict(request.headers), body))
        self.arrived.set()
        return web.Response(status=204)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.receive)
        return app

    def url(self, protocol: str) -> str:
        return f"{self.base}/{protocol}"

    def received(self, sent: Sent) -> list[tuple[dict[str, str], Any]]:
        return list(self.inbox[f"/{sent.protocol}/{sent.path}".rstrip("/")])


@dataclass
class World:
    """flexbridge with an OCMP CPO, an OSCP FP and a CP-API endpoint of one tenant."""

    client: Any
    app: web.Application
    db: Any
    peers: Peers
    tenant: Tenant
    tenant_key: str
    peer: dict[str, Peer] = field(default_factory=dict)
    entity: dict[str, Entity] = field(default_factory=dict)
    oscp_token: str = TOKEN_A

    async def tick(self) -> None:
        """One run of the app's peer clock (heartbeats due, re-sends): what it does every
        peer_clock_seconds, here when the test says so."""
        background = self.app[BACKGROUND]
        await background.clock.tick()
        await self.planned()

    async def planned(self) -> None:
        """Every plan asked for so far is made (a peer waits for its answer)."""
        await self.app[BACKGROUND].planner.drain()

    async def ocmp(self, message: str, body: Any, **headers: str) -> tuple[int, Any]:
        login = {"Authorization": _basic("gf", "gf-pw"), "X-Tenant-Key": self.tenant_key}
        response = await self.client.post(
            f"/ocmp/1.0/{message}", json=body, headers={**login, **headers}
        )
        raw = await response.read()
        return response.status, orjson.loads(raw) if raw else None

    async def oscp(
        self, message: str, body: Any, *, prefix: str = "/oscp/co/2.0", **headers: str
    ) -> int:
        sent = {
            "Authorization": f"Token {self.oscp_token}",
            "X-Request-ID": str(uuid.uuid4()),
            **headers,
        }
        response = await self.client.post(f"{prefix}/{message}", json=body, headers=sent)
        await response.read()
        return response.status

    async def cpapi(self, body: Any) -> None:
        login = {"Authorization": _basic("pilot-user", "pw"), "X-Tenant-Key": self.tenant_key}
        response = await self.client.post(
            "/api/TimeSeries/SaveTimeSeriesV1", json=body, headers=login
        )
        answer = await response.json()
        assert response.status == 200 and answer["Success"] is True, answer

    async def queued(self, sent: Sent) -> list[OutboxRecord]:
        """The outbox rows of `sent`: its message type, for the peer of its protocol."""
        return [r for r in await self._queued_for(sent) if r.message_type == sent.message_type]

    async def _queued_for(self, sent: Sent) -> list[OutboxRecord]:
        async with self.db.read() as tx:
            rows = await list_outbox(tx, self.tenant, limit=1000)
        return [r for r in rows if r.peer_id == self.peer[sent.protocol].id]

    async def delivered(self, sent: Sent) -> list[Any]:
        """The bodies of `sent` its peer received, once every one queued has arrived. Each
        request is matched with its outbox row by X-Request-ID: whatever the peer received
        was queued for it, and no queued row of this type is missing."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            self.peers.arrived.clear()  # before looking: an arrival from now on wakes us
            rows = await self._queued_for(sent)
            got = {h["X-Request-ID"]: body for h, body in self.peers.received(sent)}
            strays = got.keys() - {r.message_id for r in rows}
            assert not strays, f"{sent.id}: the peer received messages never queued: {strays}"
            mine = [r.message_id for r in rows if r.message_type == sent.message_type]
            if mine and all(m in got for m in mine):
                return [got[m] for m in reversed(mine)]  # list_outbox is newest first
            if loop.time() > deadline:
                arrived = sum(m in got for m in mine)
                pytest.fail(f"{sent.id}: {len(mine)} queued, {arrived} delivered in {WAIT} s")
            with contextlib.suppress(TimeoutError):  # the next look fails, past the deadline
                await asyncio.wait_for(self.peers.arrived.wait(), deadline - loop.time())


async def _cpapi_endpoint(tx: Any, tenant: Tenant, url: str) -> Peer:
    """The tenant's CP-API endpoint (6.1.1), as `flexbridge cpapi endpoint` records it."""
    return await configure_endpoint(
        tx, tenant, url=url, username="iip", password="s3cret", system=SYSTEM
    )


async def _world(db, database_url, aiohttp_client, aiohttp_server, **settings: Any) -> World:  # type: ignore[no-untyped-def]
    peers = Peers()
    server = await aiohttp_server(peers.app())
    peers.base = str(server.make_url("")).rstrip("/")
    app = create_app(
        replace(
            Settings(),
            database_url=database_url,
            admin_password="admin-pw",
            public_url="https://flexbridge.example",
            outbox_poll_seconds=0.05,
            peer_clock_seconds=3600.0,  # the clock runs once at start, then when World.tick says
            resend_minutes=0.0,
            **settings,
        )
    )
    client = await aiohttp_client(app)
    async with db.transaction() as tx:
        tenant, key = await add_tenant(tx, "pilot")
        world = World(client, app, db, peers, tenant, key)
        await add_account(tx, tenant, "pilot-user", Role.PARTICIPANT, "pw")
        cpo, _ = await add_account(tx, tenant, "gf", Role.PEER, "gf-pw")
        world.peer["ocmp"] = await add_peer(
            tx, tenant, protocol="ocmp", name="greenflux", base_url=None, account_id=cpo.id
        )
        fp, _ = await add_account(tx, tenant, "fp", Role.PEER, "fp-pw")
        await record_token(tx, fp, TOKEN_A, None)
        world.peer["oscp"] = await add_peer(
            tx, tenant, protocol="oscp", name="cpo", base_url=None, account_id=fp.id
        )
        world.peer["cpapi"] = await _cpapi_endpoint(tx, tenant, peers.url("cpapi"))

        async def entity(name: str, kind: AssetType, sub: AssetSubType, **props: Any) -> Entity:
            made = await create_entity(tx, tenant, kind, sub, {"Name": name, **props})
            world.entity[name] = made
            return made

        site = await entity("Site 1", AssetType.AREA, AssetSubType.SITE, PhaseCount=3)
        await add_reference(tx, tenant, site, ProtocolId("ocmp", "greenflux", "group", "site-1"))
        await add_reference(tx, tenant, site, ProtocolId("oscp", "cpo", "group", "site-1"))
        charger = await entity("CP 1", AssetType.RESOURCE, AssetSubType.CHARGING)
        await add_reference(tx, tenant, charger, ProtocolId("ocmp", "greenflux", "asset", "cp-1"))
        await add_reference(tx, tenant, charger, ProtocolId("oscp", "cpo", "asset", "evse-1"))
        await add_reference(tx, tenant, charger, ExternalRef(SYSTEM, "Resource", "cp-1"))
        await add_connector(tx, tenant, site, charger, ConnectorType.SITE)
        heater = await entity("floor Heater", AssetType.RESOURCE, AssetSubType.LOAD)
        await add_reference(tx, tenant, heater, ExternalRef(SYSTEM, "Resource", "3"))
        pv = await entity("PV 1", AssetType.RESOURCE, AssetSubType.GENERATION)
        await add_reference(tx, tenant, pv, ExternalRef(SYSTEM, "Resource", "pv-1"))
        await entity("Battery 1", AssetType.RESOURCE, AssetSubType.STORAGE)  # platform key only
        await entity("zone K123", AssetType.AREA, AssetSubType.ZONE)  # platform key only
    return world


@pytest.fixture
async def world(db, database_url, aiohttp_client, aiohttp_server) -> World:  # type: ignore[no-untyped-def]
    return await _world(db, database_url, aiohttp_client, aiohttp_server)


# ---------------------------------------------------------------------------------------------
# Tours: one per protocol, making flexbridge send every message of that protocol


def _blocks(values: list[float], start: datetime, unit: str, **extra: Any) -> list[dict]:
    return [
        {
            "capacity": v,
            "phase": "ALL",
            "unit": unit,
            "start_time": _iso(start + i * Q),
            "end_time": _iso(start + (i + 1) * Q),
            **extra,
        }
        for i, v in enumerate(values)
    ]


async def ocmp_tour(world: World) -> None:
    """Handshake (ours back), a heartbeat on the clock, two maximum forecasts (the optimal
    forecast back for each), metering, and the clock's re-send of the optimal forecast."""
    handshake = {
        "base_url": world.peers.url("ocmp"),
        "username": "cmo",
        "password": "cmo-pw",
        "heartbeat_interval": 60,
    }
    assert await world.ocmp("handshake", handshake) == (204, None)
    await world.tick()  # our first heartbeat is due at once
    until = datetime.now(UTC) + timedelta(minutes=30)
    assert await world.ocmp("heartbeat", {"offline_mode_at": _iso(until)}) == (204, None)
    start = _next_quarter()
    for amps in ([16.0] * 96, [16.0, 8.5, 0.0]):
        forecast = {"group_id": "site-1", "forecasted_blocks": _blocks(amps, start, "A")}
        assert await world.ocmp("update_group_maximum_capacity_forecast", forecast) == (204, None)
        await world.planned()
    t0 = start - 4 * Q
    readings = {
        "asset_id": "cp-1",
        "meter_values": [
            {"value": 100.0 + 2.5 * i, "unit": "KWH", "measure_time": _iso(t0 + i * Q)}
            for i in range(4)
        ],
    }
    assert await world.ocmp("update_detailed_metering_data", readings) == (204, None)
    await world.tick()  # new inputs: the optimal forecast goes out again


async def oscp_tour(world: World) -> None:
    """Register at the CO (our Register back), Handshake (our acknowledgement), a heartbeat
    on the clock, CONSUMPTION forecasts in KW and A (an OPTIMUM back for each), measurements
    and the clock's re-send, then a registration at the CP surface (our Register again)."""
    fp = world.peers.url("oscp")
    register = {"token": TOKEN_B, "version_url": [{"version": "2.0", "base_url": fp}]}
    assert await world.oscp("register", register) == 204
    token_c = await _our_register_token(world)
    world.oscp_token = token_c
    handshake = {
        "required_behaviour": {
            "heartbeat_interval": 60,
            "measurement_configuration": ["CONTINUOUS"],
        }
    }
    assert await world.oscp("handshake", handshake) == 204
    await world.tick()  # our first heartbeat is due at once
    until = datetime.now(UTC) + timedelta(minutes=30)
    assert await world.oscp("heartbeat", {"offline_mode_at": _iso(until)}) == 204
    start = _next_quarter()
    for unit, values in (("KW", [123.456, 234.567]), ("A", [16.0, 32.0, 8.0])):
        forecast = {
            "group_id": "site-1",
            "type": "CONSUMPTION",
            "forecasted_blocks": _blocks(values, start, unit),
        }
        assert await world.oscp("update_group_capacity_forecast", forecast) == 204
        await world.planned()
    t0 = start - 4 * Q
    for i in range(2):
        measurement = {
            "group_id": "site-1",
            "measurements": [
                {
                    "asset_id": "evse-1",
                    "asset_category": "CHARGING",
                    "energy_measurement": {
                        "value": 1000.0 + 2500.0 * i,
                        "phase": "ALL",
                        "unit": "WH",
                        "direction": "IMPORT",
                        "measure_time": _iso(t0 + i * Q),
                    },
                }
            ],
        }
        assert await world.oscp("update_asset_measurements", measurement) == 204
    await world.tick()  # new inputs: the OPTIMUM goes out again
    again = {"token": TOKEN_B, "version_url": [{"version": "2.0", "base_url": fp}]}
    assert await world.oscp("register", again, prefix="/oscp/cp/2.0") == 204


async def _our_register_token(world: World) -> str:
    """Token C from our Register back (the FP uses it from then on)."""
    register = next(s for s in SENT if s.protocol == "oscp" and s.message_type == "Register")
    (body,) = await world.delivered(register)
    return body["token"]


def _values(values: list[float], start: datetime, step: timedelta) -> list[dict[str, Any]]:
    return [{"ValueTime": _iso(start + i * step), "Value": v} for i, v in enumerate(values)]


async def cpapi_tour(world: World) -> None:
    """Section 6: every Table 8 type (and 6.1.6's offers) saved over SaveTimeSeriesV1, to
    entities named by the endpoint's cross-references and by the platform key alone; then a
    group with a charger planned by the optimizer (an OCMP maximum forecast), whose plan goes
    to the endpoint too."""
    start = datetime(2018, 2, 28, 15, 0, tzinfo=UTC)

    def by_reference(key: str) -> dict[str, str]:
        return {
            "SystemIdentifier": SYSTEM,
            "ExternalEntityReferenceType": "Resource",
            "ExternalKey": key,
        }

    def by_key(name: str) -> dict[str, str]:
        return {"Key": str(world.entity[name].key)}

    saves = [
        (by_reference("3"), "LoadOnOffPowerRegulation", [0, 0, 0, 1, 1], Q),
        (by_reference("3"), "LoadPowerRegulation", [20.1] * 5 + [20.5] * 8, Q),
        (by_reference("pv-1"), "ProductionOnOffPowerRegulation", [1, 0], Q),
        (by_reference("pv-1"), "ProductionPowerRegulation", [3.5, 2.0], Q),
        (by_reference("cp-1"), "ChargingPowerOnOffRegulation", [1, 1], Q),
        (by_reference("cp-1"), "ChargingPowerRegulation", [7.4, 11.0], Q),
        (by_key("Battery 1"), "DischargingPowerRegulation", [2.0, 2.0], Q),
        (by_key("zone K123"), "OptimalCapacityRegulation", [10.0, 25.0], Q),
        (by_key("zone K123"), "FlexibilityUp", [10.4, 11.4], timedelta(hours=1)),
        (by_key("zone K123"), "FlexibilityDown", [1.5, 0.0], timedelta(hours=1)),
    ]
    resolutions = {Q: "FifteenMinutes", timedelta(hours=1): "Hour"}
    for key, series_type, values, step in saves:
        await world.cpapi(
            {
                "EntityKey": key,
                "TimeSeriesType": series_type,
                "Resolution": resolutions[step],
                "TimeSeriesValueList": _values(values, start, step),
            }
        )
    # The optimizer's plan of a group with a charger: setpoints, capacity and flexibility.
    begin = _next_quarter()
    charger = world.entity["CP 1"]
    async with world.db.transaction() as tx:
        await update_entity(tx, world.tenant, charger, {"InstalledMaxCapacity": 11.0})
        demand = await ensure_series(
            tx, world.tenant, charger, SeriesType.CONSUMPTION, resolution=Q
        )
        await write_values(
            tx, world.tenant, demand, [Point(begin, begin + Q, 2.0)], source="forecast"
        )
    forecast = {"group_id": "site-1", "forecasted_blocks": _blocks([32.0, 32.0], begin, "A")}
    assert await world.ocmp("update_group_maximum_capacity_forecast", forecast) == (204, None)
    await world.planned()


Tour = Callable[[World], Awaitable[None]]
TOURS: dict[str, Tour] = {"ocmp": ocmp_tour, "oscp": oscp_tour, "cpapi": cpapi_tour}


# ---------------------------------------------------------------------------------------------
# The tests


def test_every_protocol_in_the_table_has_a_tour_and_every_schema_is_valid_for_its_draft():
    assert set(PROTOCOLS) == set(TOURS)
    assert len({s.id for s in SENT}) == len(SENT)
    for sent in SENT:
        _validator(sent.schema)  # a valid schema of the draft it names


@pytest.mark.parametrize("sent", SENT, ids=lambda s: s.id)
async def test_every_message_we_send_matches_its_shipped_schema(world, sent):
    await TOURS[sent.protocol](world)
    bodies = await world.delivered(sent)
    assert len(bodies) >= sent.at_least, f"{sent.id}: {len(bodies)} sent"
    for index, body in enumerate(bodies):
        assert_matches(sent.schema, body, f"{sent.id} #{index}")
        broken = copy.deepcopy(body)
        sent.broken(broken)
        assert schema_errors(sent.schema, broken), f"{sent.schema} accepts a broken {sent.id}"


async def test_every_message_type_queued_on_a_full_tour_is_in_the_table(world):
    """All tours in one world: whatever flexbridge queued for a peer has a row (a schema),
    and every body that reached a peer matches the schema of its row."""
    for tour in TOURS.values():
        await tour(world)
    known = {(s.protocol, s.message_type) for s in SENT}
    protocol_of = {peer.id: protocol for protocol, peer in world.peer.items()}
    async with world.db.read() as tx:
        rows = await list_outbox(tx, world.tenant, limit=1000)
    queued = {(protocol_of[r.peer_id], r.message_type) for r in rows}
    assert queued == known, (
        f"queued but not in SENT: {queued - known}; never queued: {known - queued}"
    )
    counted = 0
    for sent in SENT:
        for index, body in enumerate(await world.delivered(sent)):
            assert_matches(sent.schema, body, f"{sent.id} #{index}")
            counted += 1
    assert counted == len(rows)


async def test_our_ocmp_heartbeat_is_sent_by_the_clock_not_by_the_handshake(world):
    heartbeat = next(s for s in SENT if s.id == "ocmp-Heartbeat")
    handshake = {"base_url": world.peers.url("ocmp"), "heartbeat_interval": 60}
    assert await world.ocmp("handshake", handshake) == (204, None)
    assert await world.queued(heartbeat) == []
    await world.tick()
    (body,) = await world.delivered(heartbeat)
    assert_matches(heartbeat.schema, body, heartbeat.id)
    ahead = datetime.fromisoformat(body["offline_mode_at"]) - datetime.now(UTC)
    assert timedelta(seconds=170) < ahead <= timedelta(seconds=180)  # three of the CPO's 60 s


# ---------------------------------------------------------------------------------------------
# OCMP error replies: every failure of the OCMP surface answers in error_reply.json's shape

ERROR_REPLY = "ocmp/1.0/error_reply.json"


@dataclass(frozen=True, slots=True)
class Refused:
    """A request the OCMP surface refuses, and the status it must answer with."""

    name: str
    status: int
    send: Callable[[World], Awaitable[Any]]
    settings: dict[str, Any] = field(default_factory=dict)
    marks: tuple[Any, ...] = ()


def _login(world: World, **changes: str | None) -> dict[str, str]:
    headers = {"Authorization": _basic("gf", "gf-pw"), "X-Tenant-Key": world.tenant_key}
    headers.update(changes)  # type: ignore[arg-type]
    return {k: v for k, v in headers.items() if v is not None}


def _post(path: str, *, login: dict[str, Any] | None = None, **kwargs: Any) -> Callable:
    async def send(world: World) -> Any:
        headers = _login(world, **(login or {}))
        return await world.client.post(f"/ocmp/1.0/{path}", headers=headers, **kwargs)

    return send


def _beat() -> dict[str, str]:
    return {"offline_mode_at": _iso(datetime.now(UTC) + timedelta(minutes=30))}


def _partly_bad_forecast() -> dict[str, Any]:
    body = {
        "group_id": "site-1",
        "forecasted_blocks": _blocks([10.0, -1.0, 12.0], _next_quarter(), "A"),
    }
    body["forecasted_blocks"][2]["unit"] = "kW"
    return body


async def _other_tenants_key(world: World) -> Any:
    async with world.db.transaction() as tx:
        _, key = await add_tenant(tx, "other")
    return await _post("heartbeat", login={"X-Tenant-Key": key}, json=_beat())(world)


async def _participant(world: World) -> Any:
    login = {"Authorization": _basic("pilot-user", "pw")}
    return await _post("heartbeat", login=login, json=_beat())(world)


async def _oscp_peer_speaking_ocmp(world: World) -> Any:
    login = {"Authorization": _basic("fp", "fp-pw")}
    return await _post("heartbeat", login=login, json=_beat())(world)


async def _beyond_the_rate(world: World) -> Any:
    first = await _post("heartbeat", json=_beat())(world)
    assert first.status == 204  # the budget of one request, spent
    return await _post("heartbeat", json=_beat())(world)


async def _wrong_method(world: World) -> Any:
    return await world.client.get("/ocmp/1.0/heartbeat", headers=_login(world))


async def _chunked_oversize(world: World) -> Any:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"offline_mode_at": "'
        yield b"x" * 4096
        yield b'"}'

    return await _post("heartbeat", data=chunks())(world)


REFUSED: tuple[Refused, ...] = (
    Refused(
        "schema: handshake without base_url",
        400,
        _post("handshake", json={"heartbeat_interval": 60}),
    ),
    Refused("schema: a body that is not JSON", 400, _post("heartbeat", data=b"{not json")),
    Refused("schema: an empty body", 400, _post("heartbeat", data=b"")),
    Refused(
        "schema: a heartbeat time without an offset",
        400,
        _post("heartbeat", json={"offline_mode_at": "2030-01-01T00:00:00"}),
    ),
    Refused(
        "schema: bad blocks beside good ones",
        400,
        lambda w: _post("update_group_maximum_capacity_forecast", json=_partly_bad_forecast())(w),
    ),
    Refused(
        "schema: metering with a negative reading",
        400,
        _post(
            "update_detailed_metering_data",
            json={
                "asset_id": "cp-1",
                "meter_values": [
                    {"value": -1.0, "unit": "KWH", "measure_time": "2030-01-01T00:00:00Z"}
                ],
            },
        ),
    ),
    Refused(
        "unknown group",
        400,
        lambda w: _post(
            "update_group_maximum_capacity_forecast",
            json={
                "group_id": "nowhere",
                "forecasted_blocks": _blocks([10.0], _next_quarter(), "A"),
            },
        )(w),
    ),
    Refused(
        "unknown asset",
        400,
        _post(
            "update_detailed_metering_data",
            json={
                "asset_id": "nowhere",
                "meter_values": [
                    {"value": 1.0, "unit": "KWH", "measure_time": "2030-01-01T00:00:00Z"}
                ],
            },
        ),
    ),
    Refused(
        "401: no Authorization", 401, _post("heartbeat", login={"Authorization": None}, json={})
    ),
    Refused(
        "401: a wrong password",
        401,
        _post("heartbeat", login={"Authorization": _basic("gf", "wrong")}, json={}),
    ),
    Refused(
        "403: a tenant key of no tenant",  # optional on OCMP, but checked when sent
        403,
        _post("heartbeat", login={"X-Tenant-Key": "not-a-key"}, json={}),
    ),
    Refused("403: another tenant's key", 403, _other_tenants_key),
    Refused("403: a participant account", 403, _participant),
    Refused("403: a peer that is no OCMP peer", 403, _oscp_peer_speaking_ocmp),
    Refused("404: an unknown message", 404, _post("update_nothing", json={})),
    Refused("405: GET on a message", 405, _wrong_method),
    Refused(
        "413: a chunked body over the limit",
        413,
        _chunked_oversize,
        settings={"max_body_bytes": 1024},
    ),
    Refused(
        "429: beyond the account's rate",
        429,
        _beyond_the_rate,
        settings={"rate_limit_per_second": 0.001, "rate_limit_burst": 1},
    ),
    Refused(
        "413: a declared body over the limit",
        413,
        _post("heartbeat", data=b"x" * 4096),
        settings={"max_body_bytes": 1024},
    ),
)


@pytest.mark.parametrize(
    "refused",
    [
        pytest.param(r, id=r.name.replace(": ", "-").replace(" ", "-"), marks=r.marks)
        for r in REFUSED
    ],
)
async def test_every_ocmp_error_reply_matches_error_reply_schema(
    refused, db, database_url, aiohttp_client, aiohttp_server
):
    world = await _world(db, database_url, aiohttp_client, aiohttp_server, **refused.settings)
    response = await refused.send(world)
    assert response.status == refused.status, await response.text()
    body = orjson.loads(await response.read())
    assert_matches(ERROR_REPLY, body, f"the OCMP {refused.status} reply")
    assert all(e["message"] for e in body["errors"])


async def test_an_ocmp_reply_that_keeps_some_blocks_counts_them_in_accepted(world):
    status, body = await world.ocmp(
        "update_group_maximum_capacity_forecast", _partly_bad_forecast()
    )
    assert status == 400
    assert_matches(ERROR_REPLY, body, "the OCMP partial-acceptance reply")
    assert body["accepted"] == 1
    assert {e["path"] for e in body["errors"]} == {
        "forecasted_blocks[1].capacity",
        "forecasted_blocks[2].unit",
    }
