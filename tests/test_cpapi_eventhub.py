"""CP-API section 5: event-hub ingestion with a SharedAccessSignature per gateway."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapter.app import create_app
from adapter.auth import encode_basic_auth
from adapter.keys import DB
from adapter.settings import Settings
from protocols.cpapi.v1 import sas
from store.accounts import Role, add_account, record_token
from store.catalogue import AssetSubType, AssetType
from store.entities import create_entity
from store.references import ExternalRef, add_reference
from store.series import find_series
from store.series_types import SeriesType
from store.tenants import add_tenant
from store.timeutil import utcnow
from store.values import read_values

T0 = datetime(2026, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)
PATH = "/iotexternaleh/publishers/{}/messages"


async def _gateway(db, tenant, gateway_id, *, expiry=None, resource_gateway=None):  # type: ignore[no-untyped-def]
    expiry = expiry or utcnow() + timedelta(days=1)
    resource = f"https://hub.example/iotexternaleh/publishers/{resource_gateway or gateway_id}"
    token = sas.make_token(resource, expiry, key_name=gateway_id)
    async with db.transaction() as tx:
        account, _ = await add_account(tx, tenant, gateway_id, Role.GATEWAY)
        await record_token(tx, account, sas.parse_token(token).signature, expiry)
    return token


@pytest.fixture
async def hub(aiohttp_client, db, database_url):  # type: ignore[no-untyped-def]
    """The `db` fixture empties the tables first (PostgreSQL keeps one database per run)."""
    app = create_app(replace(Settings(), database_url=database_url, admin_password="pw"))
    client = await aiohttp_client(app)
    db = app[DB]
    async with db.transaction() as tx:
        tenant, _ = await add_tenant(tx, "pilot")
        other, _ = await add_tenant(tx, "other")
        meter = await create_entity(
            tx,
            tenant,
            AssetType.RESOURCE,
            AssetSubType.METER,
            {"Name": "Main meter", "DeviceId": "dev-1"},
        )
        charger = await create_entity(
            tx, tenant, AssetType.RESOURCE, AssetSubType.CHARGING, {"Name": "Charger"}
        )
        await add_reference(tx, tenant, charger, ExternalRef("eventhub", "DeviceId", "cp-7"))
    tokens = {
        "gw1": await _gateway(db, tenant, "gw1"),
        "other": await _gateway(db, other, "gw-other"),
    }
    return client, db, tenant, meter, charger, tokens


def _reading(device="dev-1", **changes):  # type: ignore[no-untyped-def]
    body = {
        "deviceid": device,
        "property": "Consumption Meter Reading",
        "format": "1.0",
        "unit": "kWh",
        "values": [
            {"starttime": "2026-03-01T00:00:00Z", "value": 100.5},
            {"starttime": "2026-03-01T00:10:00Z", "value": 101.25},
        ],
    }
    return {**body, **changes}


async def _stored(db, tenant, entity, series_type):  # type: ignore[no-untyped-def]
    async with db.read() as tx:
        series = await find_series(tx, tenant, entity, series_type)
        if series is None:
            return []
        return [
            (p.start, p.end, p.value)
            for p in await read_values(
                tx, tenant, series, T0 - timedelta(days=1), T0 + timedelta(days=1)
            )
        ]


async def test_a_message_is_stored_and_answered_201(hub):
    """CP-API 5.3.2.1: "201 Success"; 5.3.2.3: "If the request is successful, the body is empty"."""
    client, db, tenant, meter, _, tokens = hub
    response = await client.post(
        PATH.format("gw1"),
        json=_reading(),
        headers={
            "Authorization": tokens["gw1"],
            "Content-Type": "application/atom+xml;type=entry;charset=utf-8",
        },
    )
    assert response.status == 201 and await response.read() == b""
    assert await _stored(db, tenant, meter, SeriesType.CONSUMPTION_METER_READING) == [
        (T0, T0, 100.5),
        (T0 + timedelta(minutes=10), T0 + timedelta(minutes=10), 101.25),
    ]


async def test_a_device_can_be_named_by_cross_reference_and_blocks_have_an_end(hub):
    client, db, tenant, _, charger, tokens = hub
    body = {
        "deviceid": "cp-7",
        "property": "chargingpower",
        "unit": "W",
        "values": [
            {"starttime": "2026-03-01T00:00:00", "endtime": "2026-03-01T00:15:00", "value": 7400}
        ],
    }
    response = await client.post(
        PATH.format("gw1"), json=body, headers={"Authorization": tokens["gw1"]}
    )
    assert response.status == 201
    assert await _stored(db, tenant, charger, SeriesType.CHARGING_POWER) == [
        (T0, T0 + timedelta(minutes=15), 7.4)
    ]


async def test_times_without_offset_are_in_the_message_time_zone(hub):
    """CP-API 5.3.3.2: "If no time zone is given UTC is assumed"; the message's timezone applies."""
    client, db, tenant, meter, _, tokens = hub
    body = _reading(
        timezone="Europe/Oslo", values=[{"starttime": "2026-03-01T01:00:00", "value": 5.0}]
    )
    assert (
        await client.post(PATH.format("gw1"), json=body, headers={"Authorization": tokens["gw1"]})
    ).status == 201
    assert await _stored(db, tenant, meter, SeriesType.CONSUMPTION_METER_READING) == [(T0, T0, 5.0)]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"property": None}, "property"),
        ({"values": []}, "values"),
        ({"values": [{"starttime": "2026-03-01T00:00:00Z", "value": "high"}]}, "values[0].value"),
        ({"property": "Sunshine"}, "property"),
        ({"unit": "furlongs"}, "unit"),
        ({"unit": "A"}, "unit"),
        ({"deviceid": "nobody"}, "deviceid"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"values": [{"starttime": "yesterday", "value": 1}]}, "values[0].starttime"),
        (
            {"values": [{"starttime": "0001-01-01T00:00:00+05:00", "value": 1}]},
            "values[0].starttime",
        ),
        (
            {
                "timezone": "America/New_York",
                "values": [{"starttime": "9999-12-31T23:00:00", "value": 1}],
            },
            "values[0].starttime",
        ),
        ({"values": [{"starttime": "2026-03-01T00:00:00Z"}]}, "values[0].value"),
    ],
)
async def test_bad_messages_get_400_with_field_and_nothing_is_stored(hub, change, field):
    """CP-API 5.3.2.3: "If the request is not successful, the body contains an error code and
    error message"."""
    client, db, tenant, meter, _, tokens = hub
    body = {k: v for k, v in {**_reading(), **change}.items() if v is not None}
    response = await client.post(
        PATH.format("gw1"), json=body, headers={"Authorization": tokens["gw1"]}
    )
    answer = await response.json()
    assert response.status == 400
    assert answer["ErrorCode"] == "invalid" and answer["Message"]
    assert field in {e["Field"] for e in answer.get("Errors", [])}
    assert await _stored(db, tenant, meter, SeriesType.CONSUMPTION_METER_READING) == []


async def test_signatures_are_checked(hub):
    """CP-API 5.2.1: "Only devices that present valid credentials can send data"; "A device
    cannot impersonate another device"."""
    client, db, tenant, _, _, tokens = hub
    expired = await _gateway(db, tenant, "gw-old", expiry=utcnow() - timedelta(seconds=1))
    stolen = tokens["gw1"].replace("sig=", "sig=X")
    cases = {
        "none": (PATH.format("gw1"), None),
        "expired": (PATH.format("gw-old"), expired),
        "forged": (PATH.format("gw1"), stolen),
        "other publisher": (PATH.format("gw-old"), tokens["gw1"]),
        "bearer": (PATH.format("gw1"), "Bearer abc"),
    }
    for name, (path, token) in cases.items():
        headers = {"Authorization": token} if token else {}
        response = await client.post(path, json=_reading(), headers=headers)
        assert response.status == 401, name
        assert response.headers["WWW-Authenticate"].startswith("SharedAccessSignature"), name


async def test_a_gateway_reaches_only_its_own_tenants_devices(hub):
    client, db, tenant, meter, _, tokens = hub
    response = await client.post(
        PATH.format("gw-other"), json=_reading(), headers={"Authorization": tokens["other"]}
    )
    assert response.status == 400
    assert "dev-1" in (await response.json())["Errors"][0]["Reason"]
    assert await _stored(db, tenant, meter, SeriesType.CONSUMPTION_METER_READING) == []


# ---------------------------------------------------------------------------------------------
# A series' resolution is not decided by one odd value; bounded work per message

Q = timedelta(minutes=15)


@dataclass
class World:
    client: Any
    db: Any
    tenant: Any
    meter: Any
    token: str
    basic: dict[str, str]  # a CP-API participant of the same tenant

    async def event(self, *values: dict[str, Any], prop: str = "Consumption") -> Any:
        body = {"deviceid": "dev-1", "property": prop, "unit": "kWh", "values": list(values)}
        response = await self.client.post(
            PATH.format("gw1"), json=body, headers={"Authorization": self.token}
        )
        return response.status, (await response.read()) and await response.json()

    async def save(self, values: list[dict[str, Any]], resolution: str | None) -> Any:
        body: dict[str, Any] = {
            "EntityKey": {
                "SystemIdentifier": "System xyz",
                "ExternalEntityReferenceType": "Resource",
                "ExternalKey": "meter-1",
            },
            "TimeSeriesType": "Consumption",
            "TimeSeriesValueList": values,
        }
        if resolution:
            body["Resolution"] = resolution
        response = await self.client.post(
            "/api/TimeSeries/SaveTimeSeriesV1", json=body, headers=self.basic
        )
        return response.status, await response.json()

    async def series(self) -> Any:
        async with self.db.read() as tx:
            return await find_series(tx, self.tenant, self.meter, SeriesType.CONSUMPTION)


async def _world(aiohttp_client, database_url, **changes):  # type: ignore[no-untyped-def]
    settings = replace(Settings(), database_url=database_url, admin_password="pw", **changes)
    app = create_app(settings)
    client = await aiohttp_client(app)
    db = app[DB]
    async with db.transaction() as tx:
        tenant, key = await add_tenant(tx, "pilot")
        meter = await create_entity(
            tx, tenant, AssetType.RESOURCE, AssetSubType.METER, {"Name": "M", "DeviceId": "dev-1"}
        )
        await add_reference(tx, tenant, meter, ExternalRef("System xyz", "Resource", "meter-1"))
        await add_account(tx, tenant, "cpo", Role.PARTICIPANT, "pw")
    token = await _gateway(db, tenant, "gw1")
    basic = {"Authorization": encode_basic_auth("cpo", "pw"), "X-Tenant-Key": key}
    return World(client, db, tenant, meter, token, basic)


@pytest.fixture
async def world(aiohttp_client, db, database_url):  # type: ignore[no-untyped-def]
    return await _world(aiohttp_client, database_url)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _quarter(k: int, value: float) -> dict[str, Any]:
    start = T0 + k * Q
    return {"starttime": _iso(start), "endtime": _iso(start + Q), "value": value}


async def test_a_value_of_266_days_is_a_band_of_quarter_hours_not_a_resolution(world):
    """5.3.3.2 endtime: a value "that applies for a duration of time". A new Consumption series
    is made at Table 2's "e.g. 15 minute", the long value shared over its quarter hours, so
    later 15-minute values from the event hub and from SaveTimeSeriesV1 join it."""
    days = 266
    band = {"starttime": _iso(T0), "endtime": _iso(T0 + timedelta(days=days)), "value": 2553.6}
    assert (await world.event(band))[0] == 201
    series = await world.series()
    assert series.resolution == Q
    async with world.db.read() as tx:
        stored = await read_values(tx, world.tenant, series, T0, T0 + timedelta(days=days))
    assert len(stored) == days * 96 and {round(p.value, 9) for p in stored} == {0.1}
    assert (await world.event(_quarter(0, 1.5)))[0] == 201
    status, answer = await world.save([{"ValueTime": _iso(T0 + Q), "Value": 2.5}], "FifteenMinutes")
    assert status == 200 and answer["Success"], answer
    async with world.db.read() as tx:
        first = await read_values(tx, world.tenant, series, T0, T0 + 2 * Q)
    assert [p.value for p in first] == [1.5, 2.5]


async def test_an_instant_of_consumption_is_refused_naming_endtime_and_makes_no_series(world):
    """5.3.3.2: endtime "would normally not be included for instantaneous values"; energy of
    a block type has no instant to be, so such a value is refused and fixes nothing."""
    status, answer = await world.event({"starttime": _iso(T0), "value": 3.0})
    assert status == 400
    [issue] = answer["Errors"]
    assert issue["Field"] == "values[0].endtime" and "blocks of FifteenMinutes" in issue["Reason"]
    assert await world.series() is None
    status, answer = await world.save([{"ValueTime": _iso(T0), "Value": 2.5}], "FifteenMinutes")
    assert status == 200 and answer["Success"], answer
    assert (await world.series()).resolution == Q


async def test_values_of_one_cp_api_resolution_make_the_series_at_it(world):
    """5.3.3.2 endtime's example, "metered consumption for an hour": hourly values make an
    hourly series, which a save without Resolution then joins, as a web-API save at Hour
    would have made it."""
    hours = [
        {"starttime": _iso(T0 + k * H), "endtime": _iso(T0 + (k + 1) * H), "value": 4.0}
        for k in range(3)
    ]
    assert (await world.event(*hours))[0] == 201
    assert (await world.series()).resolution == H
    status, answer = await world.save([{"ValueTime": _iso(T0 + 3 * H), "Value": 1.0}], None)
    assert status == 200 and answer["Success"], answer
    status, answer = await world.save([{"ValueTime": _iso(T0), "Value": 1.0}], "FifteenMinutes")
    assert status == 400 and answer["Errors"][0]["Field"] == "Resolution"


async def test_a_value_of_part_of_a_block_is_refused_naming_its_endtime(world):
    assert (await world.event(_quarter(0, 1.0)))[0] == 201
    odd = {"starttime": _iso(T0 + Q), "endtime": _iso(T0 + Q + timedelta(minutes=7)), "value": 1}
    status, answer = await world.event(odd)
    assert status == 400 and answer["Errors"][0]["Field"] == "values[0].endtime"
    off_grid = {
        "starttime": _iso(T0 + timedelta(minutes=5)),
        "endtime": _iso(T0 + timedelta(minutes=20)),
        "value": 1,
    }
    status, answer = await world.event(_quarter(4, 1.0), off_grid)
    assert status == 400 and answer["Errors"][0]["Field"] == "values[1].starttime", answer
    async with world.db.read() as tx:
        stored = await read_values(tx, world.tenant, await world.series(), T0, T0 + 8 * Q)
    assert [(p.start, p.value) for p in stored] == [(T0, 1.0)]


async def test_a_band_past_the_block_limit_is_refused_naming_the_setting(
    aiohttp_client, db, database_url
):
    """Bounded work per message (docs/operations.md, Limits): the blocks a message's values
    become are counted before they are made."""
    world = await _world(aiohttp_client, database_url, max_blocks_per_request=1000)
    band = {"starttime": _iso(T0), "endtime": _iso(T0 + timedelta(days=11)), "value": 1.0}
    status, answer = await world.event(_quarter(0, 1.0), band)
    assert status == 400
    [issue] = answer["Errors"]
    assert issue["Field"] == "values[1].endtime" and "max_blocks_per_request" in issue["Reason"]
    assert await world.series() is None
    ten_days = {"starttime": _iso(T0), "endtime": _iso(T0 + timedelta(days=10)), "value": 1.0}
    assert (await world.event(ten_days))[0] == 201
