"""CP-API section 6: messages to the tenant's external endpoint, received by a second app."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import aiohttp
import orjson
import pytest
from aiohttp import web

from adapter.metrics import Metrics
from adapter.outbox import DeliveryWorker
from adapter.settings import Settings
from protocols.cpapi.v1.outbound import bands, configure_endpoint, emit
from store.catalogue import AssetSubType, AssetType
from store.entities import create_entity
from store.peers import find_peer
from store.references import ExternalRef, add_reference
from store.series import ensure_series
from store.series_types import SeriesType
from store.tenants import add_tenant
from store.values import Point, write_values

T0 = datetime(2018, 2, 28, 15, 0, tzinfo=UTC)
Q = timedelta(minutes=15)


class ExternalSystem:
    """The pilot's endpoint: records every message it is sent."""

    def __init__(self) -> None:
        self.messages: list[tuple[dict[str, str], dict]] = []
        self.arrived = asyncio.Event()

    async def receive(self, request: web.Request) -> web.Response:
        self.messages.append((dict(request.headers), orjson.loads(await request.read())))
        self.arrived.set()
        return web.Response(status=200)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/iip/messages", self.receive)
        return app


def _blocks(values: list[float], start: datetime = T0, step: timedelta = Q) -> list[Point]:
    return [Point(start + i * step, start + (i + 1) * step, v) for i, v in enumerate(values)]


@pytest.fixture
async def pilot(db, aiohttp_server):  # type: ignore[no-untyped-def]
    external = ExternalSystem()
    server = await aiohttp_server(external.app())
    async with db.transaction() as tx:
        tenant, key = await add_tenant(tx, "pilot")
        heater = await create_entity(
            tx, tenant, AssetType.RESOURCE, AssetSubType.LOAD, {"Name": "floor Heater"}
        )
        zone = await create_entity(
            tx, tenant, AssetType.AREA, AssetSubType.ZONE, {"Name": "zone K123"}
        )
        await add_reference(tx, tenant, heater, ExternalRef("System xyz", "Resource", "3"))
        await configure_endpoint(
            tx,
            tenant,
            url=str(server.make_url("/iip/messages")),
            username="iip",
            password="s3cret",
            system="System xyz",
        )
    return db, tenant, heater, zone, external, key


async def _send(db, tenant, entity, series_type, values, resolution=Q):  # type: ignore[no-untyped-def]
    async with db.transaction() as tx:
        series = await ensure_series(tx, tenant, entity, series_type, resolution=resolution)
        points = _blocks(values, step=resolution)
        await write_values(tx, tenant, series, points, source="optimizer")
        queued = await emit(tx, tenant, entity, series, points)
    async with aiohttp.ClientSession() as http:
        await DeliveryWorker(db, replace(Settings()), Metrics(), http).deliver_due()
    return queued


async def test_control_on_off_message_in_the_receivers_keys(pilot):
    """CP-API 6.1.4 Asset Control On/Off Message, and 6.1.1: "The external System Name, to use
    for cross referencing ... will also be set up as a configuration setting"."""
    db, tenant, heater, _, external, _ = pilot
    assert (
        len(await _send(db, tenant, heater, SeriesType.LOAD_ON_OFF_POWER_REGULATION, [0] * 5)) == 1
    )
    headers, message = external.messages[0]
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"iip:s3cret").decode()
    assert headers["X-Request-ID"] == message["MessageId"]
    assert (message["MessageName"], message["ActionType"]) == ("ControlOnOffMessage", "Set")
    series = message["TimeSeries"]
    assert series["EntityKey"] == {
        "SystemIdentifier": "System xyz",
        "ExternalEntityReferenceType": "Resource",
        "Key": str(heater.key),
        "ExternalKey": "3",
        "FriendlyName": "floor Heater",
    }
    assert series["TimeSeriesType"] == "LoadOnOffPowerRegulation"
    # "this should also be acceptable, where control signal is returned in one value"
    assert series["TimeSeriesValueList"] == [
        {"ValueTime": "2018-02-28T15:00:00Z", "ValueToTime": "2018-02-28T16:15:00Z", "Value": 0}
    ]
    assert (series["FromDateTime"], series["ToDateTime"]) == (
        "2018-02-28T15:00:00Z",
        "2018-02-28T16:15:00Z",
    )


@pytest.mark.parametrize(
    ("series_type", "sent_as"),
    [
        (SeriesType.CHARGING_POWER_ON_OFF_REGULATION, "ChargingPowerOnOffRegulation"),
        (SeriesType.DISCHARGING_POWER_ON_OFF_REGULATION, "DischargingPowerOnOffRegulation"),
    ],
)
async def test_table_8s_on_off_regulations_go_out_as_control_on_off_messages(
    pilot, series_type, sent_as
):
    """CP-API 6.1.2 Table 8: "ChargingOnOffPowerRegulation ControlOnOffMessage",
    "DischargingOnOffPowerRegulation ControlOnOffMessage"."""
    db, tenant, heater, _, external, _ = pilot
    assert len(await _send(db, tenant, heater, series_type, [1, 1])) == 1
    message = external.messages[0][1]
    assert (message["MessageName"], message["ActionType"]) == ("ControlOnOffMessage", "Set")
    assert message["TimeSeries"]["TimeSeriesType"] == sent_as


async def test_control_regulation_message_is_banded(pilot):
    """CP-API 6.1.5: "Message time series data can be returned either at a specific resolution
    or as banded values"."""
    db, tenant, heater, _, external, _ = pilot
    await _send(db, tenant, heater, SeriesType.LOAD_POWER_REGULATION, [20.1] * 5 + [20.5] * 8)
    message = external.messages[0][1]
    assert message["MessageName"] == "ControlRegulationMessage"
    assert message["TimeSeries"]["TimeSeriesValueList"] == [
        {"ValueTime": "2018-02-28T15:00:00Z", "ValueToTime": "2018-02-28T16:15:00Z", "Value": 20.1},
        {"ValueTime": "2018-02-28T16:15:00Z", "ValueToTime": "2018-02-28T18:15:00Z", "Value": 20.5},
    ]


async def test_flexibility_offer_and_capacity_use_the_platform_key_without_a_cross_reference(pilot):
    """CP-API 6.1.6: "The message name will be set as 'Flexibility Offer Message' ... Generally,
    it is for 'Flexibility Up' or 'Flexibility Down'"; 6.1.1: with no cross-referencing "data with
    only the IIPs (internal) key populated will be returned"."""
    db, tenant, _, zone, external, _ = pilot
    await _send(
        db, tenant, zone, SeriesType.FLEXIBILITY_UP, [10.4, 11.4], resolution=timedelta(hours=1)
    )
    await _send(db, tenant, zone, SeriesType.OPTIMAL_CAPACITY_REGULATION, [10.0, 10.0])
    offer, capacity = (m for _, m in external.messages)
    assert (offer["MessageName"], offer["ActionType"]) == ("FlexibilityOfferMessage", "Offer")
    assert offer["TimeSeries"]["EntityKey"] == {"Key": str(zone.key), "FriendlyName": "zone K123"}
    assert offer["TimeSeries"]["Resolution"] == "Hour" and offer["TimeSeries"]["Unit"] == "kW"
    assert [v["Value"] for v in offer["TimeSeries"]["TimeSeriesValueList"]] == [10.4, 11.4]
    assert capacity["TimeSeries"]["TimeSeriesType"] == "OptimalCapacityRegulation"
    assert capacity["MessageName"] == "ControlRegulationMessage"


async def test_only_the_configured_messages_and_types_are_sent(pilot):
    db, tenant, heater, _, external, _ = pilot
    async with db.transaction() as tx:
        endpoint = await find_peer(tx, tenant, "cpapi", "endpoint")
        assert endpoint is not None and endpoint.base_url
        await configure_endpoint(
            tx,
            tenant,
            url=endpoint.base_url,
            username="iip",
            password="s3cret",
            system="System xyz",
            messages=["FlexibilityOfferMessage"],
        )
    assert await _send(db, tenant, heater, SeriesType.LOAD_POWER_REGULATION, [1.0]) == []
    assert await _send(db, tenant, heater, SeriesType.CONSUMPTION, [1.0]) == []
    assert external.messages == []


def test_bands_merge_only_adjacent_equal_values():
    points = [
        *_blocks([1.0, 1.0]),
        Point(T0 + 3 * Q, T0 + 4 * Q, 1.0),
        *_blocks([None], T0 + 4 * Q),
    ]
    assert bands(points) == [
        {"ValueTime": "2018-02-28T15:00:00Z", "ValueToTime": "2018-02-28T15:30:00Z", "Value": 1.0},
        {"ValueTime": "2018-02-28T15:45:00Z", "ValueToTime": "2018-02-28T16:00:00Z", "Value": 1.0},
    ]


async def test_a_setpoint_saved_over_the_cp_api_reaches_the_endpoint(
    pilot, database_url, aiohttp_client
):
    """End to end: SaveTimeSeriesV1 of a Table 8 type -> outbox -> the pilot's endpoint."""
    from adapter.app import create_app
    from adapter.auth import encode_basic_auth
    from store.accounts import Role, add_account

    db, tenant, _, _, external, key = pilot
    app = create_app(
        replace(
            Settings(), database_url=database_url, admin_password="pw", outbox_poll_seconds=0.05
        )
    )
    client = await aiohttp_client(app)
    async with db.transaction() as tx:
        await add_account(tx, tenant, "pilot-user", Role.PARTICIPANT, "pw")
    body = {
        "EntityKey": {
            "SystemIdentifier": "System xyz",
            "ExternalEntityReferenceType": "Resource",
            "ExternalKey": "3",
        },
        "TimeSeriesType": "Load Power Regulation",
        "Resolution": "FifteenMinutes",
        "Unit": "kW",
        "TimeSeriesValueList": [
            {"ValueTime": "2018-02-28T15:00:00Z", "Value": 20.1},
            {"ValueTime": "2018-02-28T15:15:00Z", "Value": 20.1},
        ],
    }
    response = await client.post(
        "/api/TimeSeries/SaveTimeSeriesV1",
        json=body,
        headers={"Authorization": encode_basic_auth("pilot-user", "pw"), "X-Tenant-Key": key},
    )
    assert response.status == 200 and (await response.json())["Success"] is True
    await asyncio.wait_for(external.arrived.wait(), timeout=10)
    message = external.messages[0][1]
    assert message["MessageName"] == "ControlRegulationMessage"
    assert message["TimeSeries"]["EntityKey"]["ExternalKey"] == "3"
    assert message["TimeSeries"]["TimeSeriesValueList"] == [
        {"ValueTime": "2018-02-28T15:00:00Z", "ValueToTime": "2018-02-28T15:30:00Z", "Value": 20.1}
    ]
