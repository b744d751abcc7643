"""Bounded work per request on every surface (docs/operations.md, "Limits"), seeded.

A real `flexbridge serve` process runs with small limits set through the environment. Each
case asks for more than one limit allows, by a random margin (FLEXBRIDGE_LIMITS_SEED makes a
failure reproducible): it must be a 400 in the surface's own envelope naming the setting, and
the domain tables must be exactly as before. One request just under each limit is answered
with success, so that the limit, not something else, is what refused the others.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from live_server import LiveServer, free_port
from sqlalchemy import func, select

from adapter.auth import encode_basic_auth
from hub.peer_state import UnknownIds
from hub.provisioning import NewPeer, provision_peer
from protocols.cpapi.v1 import sas
from store.accounts import Role, add_account, record_token
from store.catalogue import AssetSubType, AssetType, ConnectorType
from store.entities import add_connector, create_entity
from store.references import ExternalRef, ProtocolId, add_reference
from store.series import ensure_series
from store.series_types import SeriesType
from store.tables import connectors, entities, entity_references, outbox, series, values
from store.tenants import add_tenant
from store.timeutil import utcnow
from store.values import Point, write_values

SEED = int(os.environ.get("FLEXBRIDGE_LIMITS_SEED", "20261208"))
CASES = int(os.environ.get("FLEXBRIDGE_LIMITS_CASES", "60"))
DOMAIN = (entities, entity_references, connectors, series, values, outbox)
TOKEN = "limits-token"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
Q = timedelta(minutes=15)
BLOCKS, DERIVED, ANSWER, ITEMS, SPAN_DAYS = 2000, 2000, 2000, 20, 2
SITE = {"SystemIdentifier": "scada", "ExternalEntityReferenceType": "Site", "ExternalKey": "S1"}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Ask:
    """One request and the setting that must refuse it (None: it must succeed)."""

    path: str
    body: Any
    headers: dict[str, str]
    setting: str | None


@dataclass(frozen=True)
class Headers:
    basic: dict[str, str]
    ocmp: dict[str, str]
    oscp: dict[str, str]
    hub: dict[str, str]


@pytest.fixture
async def server(db, database_url, tmp_path):  # type: ignore[no-untyped-def]
    port = free_port()
    async with db.transaction() as tx:
        tenant, key = await add_tenant(tx, "limits")
        await add_account(tx, tenant, "pilot", Role.PARTICIPANT, "pilot-pw")
        site = await create_entity(tx, tenant, AssetType.AREA, AssetSubType.SITE, {"Name": "S"})
        await create_entity(
            tx, tenant, AssetType.RESOURCE, AssetSubType.METER, {"Name": "M", "DeviceId": "dev-1"}
        )
        charger = await create_entity(
            tx, tenant, AssetType.RESOURCE, AssetSubType.CHARGING, {"Name": "C"}
        )
        await add_connector(tx, tenant, site, charger, ConnectorType.SITE)
        await add_reference(tx, tenant, site, ExternalRef("scada", "Site", "S1"))
        for kind in (SeriesType.MAX_CAPACITY, SeriesType.CONSUMPTION):  # for the Gets to read
            stored = await ensure_series(tx, tenant, site, kind, resolution=Q)
            await write_values(tx, tenant, stored, [Point(T0, T0 + Q, 1.0)], source="setup")
        for protocol, peer in (("ocmp", "cpo"), ("oscp", "fp")):
            await add_reference(tx, tenant, site, ProtocolId(protocol, peer, "group", "site-1"))
            await add_reference(tx, tenant, charger, ProtocolId(protocol, peer, "asset", "cp-1"))
        gateway, _ = await add_account(tx, tenant, "gw-1", Role.GATEWAY)
        resource = f"http://127.0.0.1:{port}/iotexternaleh/publishers/gw-1"
        expiry = utcnow() + timedelta(days=1)
        sas_token = sas.make_token(resource, expiry, key_name="gw-1")
        await record_token(tx, gateway, sas.parse_token(sas_token).signature, expiry)
    await provision_peer(db, NewPeer("limits", "ocmp", "cpo", None, "cpo", "cpo-pw"))
    await provision_peer(
        db, NewPeer("limits", "oscp", "fp", None, token=TOKEN, unknown_ids=UnknownIds.STRICT)
    )
    live = LiveServer(
        database_url,
        port,
        tmp_path / "serve.log",
        {
            "FLEXBRIDGE_MAX_BLOCKS_PER_REQUEST": str(BLOCKS),
            "FLEXBRIDGE_MAX_DERIVED_BLOCKS_PER_REQUEST": str(DERIVED),
            "FLEXBRIDGE_MAX_VALUES_PER_ANSWER": str(ANSWER),
            "FLEXBRIDGE_MAX_LIST_ITEMS": str(ITEMS),
            "FLEXBRIDGE_MAX_MESSAGE_SPAN_DAYS": str(SPAN_DAYS),
            "FLEXBRIDGE_PEER_CLOCK_SECONDS": "3600",
            "FLEXBRIDGE_OUTBOX_POLL_SECONDS": "3600",
        },
    )
    await live.start()
    headers = Headers(
        {"Authorization": encode_basic_auth("pilot", "pilot-pw"), "X-Tenant-Key": key},
        {"Authorization": encode_basic_auth("cpo", "cpo-pw"), "X-Tenant-Key": key},
        {"Authorization": f"Token {TOKEN}"},
        {"Authorization": sas_token},
    )
    try:
        yield live, headers
    finally:
        live.stop()


# Each maker: (rng, headers, over) -> a request; `over` False asks for just under the limit.


def _band(rng: random.Random, h: Headers, over: bool) -> Ask:
    blocks = BLOCKS + rng.randint(1, 10**7) if over else BLOCKS
    body = {
        "EntityKey": SITE,
        "TimeSeriesType": "Max Capacity",
        "Resolution": "FifteenMinutes",
        "TimeSeriesValueList": [
            {
                "ValueTime": _iso(T0),
                "ValueToTime": _iso(T0 + min(blocks, 2_000_000) * Q),
                "Value": 5,
            }
        ],
    }
    return Ask("/api/TimeSeries/SaveTimeSeriesV1", body, h.basic, over and "max_blocks_per_request")


def _readings(rng: random.Random, h: Headers, over: bool) -> Ask:
    """Two readings far apart: the energy between them is derived block by block."""
    days = rng.randint(DERIVED // 96 + 1, 3000) if over else DERIVED // 96 - 1
    body = {
        "EntityKey": SITE,
        "TimeSeriesType": "Consumption Meter Reading",
        "TimeSeriesValueList": [
            {"ValueTime": _iso(T0), "Value": 10},
            {"ValueTime": _iso(T0 + timedelta(days=days)), "Value": 20},
        ],
    }
    setting = over and "max_derived_blocks_per_request"
    return Ask("/api/TimeSeries/SaveTimeSeriesV1", body, h.basic, setting)


def _series_list(rng: random.Random, h: Headers, over: bool) -> Ask:
    count = rng.randint(ITEMS + 1, 200) if over else ITEMS
    item = {
        "EntityKey": SITE,
        "TimeSeriesType": "Max Capacity",
        "Resolution": "FifteenMinutes",
        "TimeSeriesValueList": [{"ValueTime": _iso(T0), "Value": 5}],
    }
    path = "/api/TimeSeries/SaveTimeSeriesListForEntitiesV1"
    return Ask(path, [item] * count, h.basic, over and "max_list_items")


def _asset_list(rng: random.Random, h: Headers, over: bool) -> Ask:
    count = rng.randint(ITEMS + 1, 200) if over else ITEMS
    assets = [
        {
            "AssetKey": {**SITE, "ExternalKey": f"A{n}"},
            "AssetProperties": {
                "ListOption": "PartialList",
                "AssetPropertyList": [
                    {"PropertyName": "AssetType", "PropertyValue": "Area"},
                    {"PropertyName": "AssetSubType", "PropertyValue": "Site"},
                    {"PropertyName": "Name", "PropertyValue": f"Site {n}"},
                ],
            },
        }
        for n in range(count)
    ]
    return Ask("/api/Asset/SaveAssetListV1", assets, h.basic, over and "max_list_items")


def _get(rng: random.Random, h: Headers, over: bool) -> Ask:
    """Half hours of two stored quarter-hour series: each lays out its quarter hours."""
    halves = ANSWER // 4 + rng.randint(1, 10**6) if over else ANSWER // 4 - 1
    body = {
        "ExternalEntityReference": SITE,
        "TimeSeriesTypeList": ["Max Capacity", "Consumption", "Spot Price"],
        "Resolution": "HalfHour",
        "FromDateTime": _iso(T0),
        "ToDateTime": _iso(T0 + halves * 2 * Q),
    }
    path = "/api/TimeSeries/GetTimeSeriesListForEntityV1"
    return Ask(path, body, h.basic, over and "max_values_per_answer")


def _event(rng: random.Random, h: Headers, over: bool) -> Ask:
    blocks = BLOCKS + rng.randint(1, 10**7) if over else BLOCKS
    end = T0 + min(blocks, 2_000_000) * Q
    body = {
        "deviceid": "dev-1",
        "property": "Consumption",
        "values": [{"starttime": _iso(T0), "endtime": _iso(end), "value": 1.0}],
    }
    path = "/iotexternaleh/publishers/gw-1/messages"
    return Ask(path, body, h.hub, over and "max_blocks_per_request")


def _span(rng: random.Random, over: bool) -> datetime:
    return T0 + (timedelta(days=SPAN_DAYS, seconds=rng.randint(1, 10**9)) if over else Q)


def _metering(rng: random.Random, h: Headers, over: bool) -> Ask:
    body = {
        "asset_id": "cp-1",
        "meter_values": [
            {"value": 1.0, "unit": "KWH", "measure_time": _iso(T0)},
            {"value": 2.0, "unit": "KWH", "measure_time": _iso(_span(rng, over))},
        ],
    }
    path = "/ocmp/1.0/update_detailed_metering_data"
    return Ask(path, body, h.ocmp, over and "max_message_span_days")


def _measurements(rng: random.Random, h: Headers, over: bool) -> Ask:
    def energy(at: datetime, kwh: float) -> dict[str, Any]:
        reading = {"value": kwh, "phase": "ALL", "unit": "KWH", "direction": "IMPORT"}
        return {
            "asset_id": "cp-1",
            "asset_category": "CHARGING",
            "energy_measurement": {**reading, "measure_time": _iso(at)},
        }

    body = {"group_id": "site-1", "measurements": [energy(T0, 1.0), energy(_span(rng, over), 2.0)]}
    headers = {**h.oscp, "X-Request-ID": f"limits-{rng.random()}"}
    path = "/oscp/co/2.0/update_asset_measurements"
    return Ask(path, body, headers, over and "max_message_span_days")


MAKERS: tuple[Callable[[random.Random, Headers, bool], Ask], ...] = (
    _band,
    _readings,
    _series_list,
    _asset_list,
    _get,
    _event,
    _metering,
    _measurements,
)


async def _fingerprint(db: Any) -> tuple[int, ...]:
    async with db.read() as tx:
        return tuple(
            [(await tx.execute(select(func.count()).select_from(t))).scalar_one() for t in DOMAIN]
        )


async def _send(client: aiohttp.ClientSession, ask: Ask) -> tuple[int, str]:
    async with client.post(ask.path, json=ask.body, headers=ask.headers) as got:
        return got.status, await got.text()


async def test_every_limit_refuses_naming_its_setting_and_writes_nothing(db, server):
    live, headers = server
    rng = random.Random(SEED)
    async with aiohttp.ClientSession(live.base) as client:
        for n in range(CASES):
            maker = MAKERS[n % len(MAKERS)]
            ask = maker(rng, headers, True)
            before = await _fingerprint(db)
            status, text = await _send(client, ask)
            where = f"case {n} (seed {SEED}) {maker.__name__}: {text[:600]}"
            assert status == 400, where
            assert ask.setting and ask.setting in text, where
            assert await _fingerprint(db) == before, f"a refused request wrote: {where}"
        for maker in MAKERS:  # each limit, not something else, refused the cases above
            status, text = await _send(client, maker(rng, headers, False))
            assert status < 300, f"{maker.__name__}: {status} {text[:600]}"
            assert 'Success":false' not in text.replace(" ", ""), f"{maker.__name__}: {text}"
    log = live.output()
    assert "Traceback" not in log and "unexpected error" not in log, log[-4000:]


async def test_a_list_save_shares_one_block_budget_and_refuses_the_item_past_it(db, server):
    """CP-API 4.3.5 answers per item: the items keep their order, so the first band is saved
    and the one that passes the request's block budget is refused naming the setting."""
    live, headers = server
    band = {
        "EntityKey": SITE,
        "TimeSeriesType": "Max Capacity",
        "Resolution": "FifteenMinutes",
        "TimeSeriesValueList": [
            {"ValueTime": _iso(T0), "ValueToTime": _iso(T0 + 1500 * Q), "Value": 7}
        ],
    }
    ask = Ask("/api/TimeSeries/SaveTimeSeriesListForEntitiesV1", [band, band], headers.basic, None)
    async with aiohttp.ClientSession(live.base) as client:
        status, text = await _send(client, ask)
    assert status == 200, text
    first, second = json.loads(text)
    assert first["Success"] and not second["Success"]
    assert "max_blocks_per_request" in second["ErrorMessage"]
