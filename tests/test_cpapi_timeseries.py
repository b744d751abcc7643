"""CP-API 4.3, the Time Series Management API, over HTTP on SQLite and PostgreSQL.

The example bodies printed in section 4.3 are copied below as data and posted as printed.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapter.app import create_app
from adapter.auth import encode_basic_auth
from adapter.keys import DB
from adapter.settings import Settings
from store.accounts import Role, add_account
from store.catalogue import AssetSubType, AssetType
from store.db import Database
from store.entities import Entity, create_entity
from store.messages import recent_messages
from store.references import ExternalRef, add_reference
from store.series import find_series
from store.series_types import SeriesType
from store.tenants import Tenant, add_tenant
from store.values import read_values

T0 = datetime(2026, 3, 1, tzinfo=UTC)
Q = timedelta(minutes=15)
H = timedelta(hours=1)

# ---------------------------------------------------------------------------------------------
# Section 4.3 examples, as printed

# 4.3.1.3 Example 1: TimeSeriesV1 (the body of the 4.3.4 and, as an array, 4.3.5 example calls).
# The printed text is not JSON: "...repeated until..." stands for the 15-minute values between.
EXAMPLE_1_PRINTED = """\
{
  "EntityKey": {
    "SystemIdentifier": "System xyz",
    "ExternalEntityReferenceType": "Resource",
    "ExternalKey": "3",
    "FriendlyName": "Battery"
  },
  "TimeSeriesType": "Energy Level",
  "FromDateTime": "2018-02-22T00:00:00Z",
  "ToDateTime": "2018-02-28T00:00:00Z",
  "Resolution": "FifteenMinutes",
  "TimeSeriesValueList": [
    {
      "ValueTime": "2018-02-22T00:00:00Z",
      "Value": 100.1234
    },
    ...repeated until...
    {
      "ValueTime": "2018-02-27T23:45:00Z",
      "Value": 120.145234
    }
  ]
}
"""
ELLIPSIS = "    ...repeated until...\n"

# 4.3.2 Example Call body (TimeSeriesRequestV1).
GET_EXAMPLE = """\
{
  "externalEntityReference": {
    "SystemIdentifier": "System 123",
    "ExternalEntityReferenceType": "Resource",
    "ExternalKey": "1234567675",
    "FriendlyName": "Battery"
  },
  "TimeSeriesType": "Energy Level",
  "FromDateTime": "2018-02-22T00:00:00Z",
  "ToDateTime": "2018-02-28T00:00:00Z"
}
"""

# 4.3.3 Example Call body (printed under the heading "TimeSeriesRequestV1").
GET_LIST_EXAMPLE = """\
{
  "ExternalEntityReference": {
    "SystemIdentifier": "System 123",
    "ExternalEntityReferenceType": "Resource",
    "ExternalKey": "1234567675",
    "FriendlyName": "Battery"
  },
  "RetrieveAllTimeSeriesType": false,
  "TimeSeriesTypeList": ["Energy Level", "Charging Energy", "Discharging Energy"],
  "FromDateTime": "2018-02-22T00:00:00Z",
  "ToDateTime": "2018-02-28T00:00:00Z"
}
"""

# 4.3.4 Example Response (its EntityKey writes "ExternalEntityType"; the type's table and
# every other example write "ExternalEntityReferenceType").
SAVE_RESPONSE_EXAMPLE = """\
{
  "EntityKey": {
    "SystemIdentifier": "System xyz",
    "ExternalEntityType": "Resource",
    "ExternalKey": "3",
    "FriendlyName": "Battery"
  },
  "TimeSeriesType": "Energy Level",
  "Success": true,
  "Key": "7911910D-ABBE-457C-AE53-B26D1A6EF47B"
}
"""

# 4.3.5 Example Response, printed in two broken fragments; joined here.
SAVE_LIST_RESPONSE_EXAMPLE = """\
[
  {
    "EntityKey": {
      "SystemIdentifier": "System xyz",
      "ExternalEntityReferenceType": "Resource",
      "ExternalKey": "3",
      "FriendlyName": "Battery"
    },
    "TimeSeriesType": "Energy Level",
    "Success": true,
    "Key": "7911910D-ABBE-457C-AE53-B26D1A6EF47B"
  },
  {
    "EntityKey": {
      "SystemIdentifier": "System xyz",
      "ExternalEntityReferenceType": "Resource",
      "ExternalKey": "3",
      "FriendlyName": "Battery"
    },
    "TimeSeriesType": "Charging Energy",
    "Success": true,
    "Key": "7911910D-ABBE-457C-AE53-B26D1A6EF47B"
  },
    {
      "EntityKey": {
        "SystemIdentifier": "System xyz",
        "ExternalEntityReferenceType": "Resource",
        "ExternalKey": "3",
        "FriendlyName": "Battery"
      },
      "TimeSeriesType": "Discharging Energy",
      "Success": false,
      "Key": "7911910D-ABBE-457C-AE53-B26D1A6EF47B",
      "ErrorMessage": "Entity with the supplied key could not be found"
    }
  ]
"""
EXAMPLE_KEY = uuid.UUID("7911910D-ABBE-457C-AE53-B26D1A6EF47B")


def example_1(*, full: bool = False) -> dict[str, Any]:
    """Example 1 as printed, the ellipsis dropped (the two printed values) or, with `full`,
    replaced by every 15-minute value between (the Note: "in the real message there would be
    one entry for each 15 minute interval"), valued 100 + k / 10 for the k-th quarter hour."""
    filler = ""
    if full:
        first = datetime(2018, 2, 22, tzinfo=UTC)
        filler = "".join(
            f'    {{"ValueTime": "{_iso(first + k * Q)}", "Value": {100 + k / 10}}},\n'
            for k in range(1, 6 * 96 - 1)
        )
    return json.loads(EXAMPLE_1_PRINTED.replace(ELLIPSIS, filler))


# ---------------------------------------------------------------------------------------------
# Harness


@dataclass
class Api:
    client: Any
    db: Database
    tenant: Tenant
    headers: dict[str, str]
    other_headers: dict[str, str]
    key: str
    other_key: str
    battery: Entity  # System xyz / Resource / 3, platform key EXAMPLE_KEY
    battery_123: Entity  # System 123 / Resource / 1234567675
    meter: Entity  # System xyz / Resource / meter-1

    async def post(self, method: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        return await self.client.post(
            f"/api/TimeSeries/{method}",
            json=body,
            headers=self.headers if headers is None else headers,
        )

    async def call(self, method: str, body: Any, status: int = 200) -> Any:
        response = await self.post(method, body)
        answer = await response.json()
        assert response.status == status, answer
        return answer


@pytest.fixture
async def api(aiohttp_client, db, database_url) -> Api:  # type: ignore[no-untyped-def]
    """The `db` fixture empties the tables first (PostgreSQL keeps one database per run)."""
    app = create_app(replace(Settings(), database_url=database_url, admin_password="admin-pw"))
    client = await aiohttp_client(app)
    db = app[DB]
    async with db.transaction() as tx:
        tenant, key = await add_tenant(tx, "pilot")
        other, other_key = await add_tenant(tx, "other")
        await add_account(tx, tenant, "cpo", Role.PARTICIPANT, "pw")
        await add_account(tx, tenant, "viewer", Role.READER, "pw")
        await add_account(tx, other, "intruder", Role.PARTICIPANT, "pw")
        battery = await create_entity(
            tx, tenant, AssetType.RESOURCE, AssetSubType.STORAGE, {"Name": "Battery"}, EXAMPLE_KEY
        )
        await add_reference(tx, tenant, battery, ExternalRef("System xyz", "Resource", "3"))
        battery_123 = await create_entity(
            tx, tenant, AssetType.RESOURCE, AssetSubType.STORAGE, {"Name": "Battery"}
        )
        await add_reference(
            tx, tenant, battery_123, ExternalRef("System 123", "Resource", "1234567675")
        )
        meter = await create_entity(
            tx, tenant, AssetType.RESOURCE, AssetSubType.METER, {"Name": "Main meter"}
        )
        await add_reference(tx, tenant, meter, ExternalRef("System xyz", "Resource", "meter-1"))
        # The other tenant names its own entity with the very same cross-reference.
        theirs = await create_entity(
            tx, other, AssetType.RESOURCE, AssetSubType.METER, {"Name": "Their meter"}
        )
        await add_reference(tx, other, theirs, ExternalRef("System xyz", "Resource", "meter-1"))
    return Api(
        client,
        db,
        tenant,
        {"Authorization": encode_basic_auth("cpo", "pw"), "X-Tenant-Key": key},
        {"Authorization": encode_basic_auth("intruder", "pw"), "X-Tenant-Key": other_key},
        key,
        other_key,
        battery,
        battery_123,
        meter,
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


METER = {
    "SystemIdentifier": "System xyz",
    "ExternalEntityReferenceType": "Resource",
    "ExternalKey": "meter-1",
}


def _values(start: datetime, numbers: list[Any], step: timedelta = Q) -> list[dict[str, Any]]:
    return [{"ValueTime": _iso(start + i * step), "Value": v} for i, v in enumerate(numbers)]


def _series(
    series_type: str,
    values: list[dict[str, Any]],
    resolution: str | None = "FifteenMinutes",
    entity: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "EntityKey": entity or METER,
        "TimeSeriesType": series_type,
        "TimeSeriesValueList": values,
        **extra,
    }
    if resolution is not None:
        body["Resolution"] = resolution
    return body


def _request(
    series_type: str,
    start: datetime = T0,
    end: datetime | None = T0 + H,
    resolution: str | None = None,
    entity: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ExternalEntityReference": entity or METER,
        "TimeSeriesType": series_type,
        "FromDateTime": _iso(start),
        **extra,
    }
    if end is not None:
        body["ToDateTime"] = _iso(end)
    if resolution is not None:
        body["Resolution"] = resolution
    return body


def _pairs(series: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(v["ValueTime"], v["Value"]) for v in series["TimeSeriesValueList"]]


def _fields(answer: dict[str, Any]) -> set[str]:
    return {e["Field"] for e in answer.get("Errors", [])}


async def _stored(api: Api, entity: Entity, series_type: SeriesType, *, phase=None, sources=None):  # type: ignore[no-untyped-def]
    async with api.db.read() as tx:
        series = await find_series(tx, api.tenant, entity, series_type, phase=phase)
        if series is None:
            return None
        points = await read_values(
            tx,
            api.tenant,
            series,
            T0 - timedelta(days=3000),
            T0 + timedelta(days=30),
            sources=sources,
        )
        return [(p.start, p.value) for p in points]


# ---------------------------------------------------------------------------------------------
# The printed examples


async def test_example_1_saved_as_printed_gets_the_4_3_4_example_response(api):
    """CP-API 4.3.4: "this method saves the time series (and values) and returns a response
    message with the details of whether the save was a success, the platform internal key and
    any error details"; SaveTimeSeriesResponseV1 "includes the original EntityKey"."""
    body = example_1()
    answer = await api.call("SaveTimeSeriesV1", body)
    expected = json.loads(SAVE_RESPONSE_EXAMPLE)
    assert set(answer) == set(expected)
    assert answer["EntityKey"] == body["EntityKey"]  # the original, as sent
    assert answer["TimeSeriesType"] == expected["TimeSeriesType"] == "Energy Level"
    assert answer["Success"] is True
    assert uuid.UUID(answer["Key"]) == uuid.UUID(expected["Key"])
    assert await _stored(api, api.battery, SeriesType.ENERGY_LEVEL) == [
        (datetime(2018, 2, 22, tzinfo=UTC), 100.1234),
        (datetime(2018, 2, 27, 23, 45, tzinfo=UTC), 120.145234),
    ]


async def test_the_4_3_2_example_call_answers_example_1(api):
    """CP-API 4.3.2: "this method returns the time series with its associated values over the
    required date range of the request"; Example Response: "See ... Example 1"."""
    saved = example_1(full=True)
    saved["EntityKey"] = {
        **saved["EntityKey"],
        "SystemIdentifier": "System 123",
        "ExternalKey": "1234567675",
    }
    assert (await api.call("SaveTimeSeriesV1", saved))["Success"] is True
    answer = await api.call("GetTimeSeriesV1", json.loads(GET_EXAMPLE))
    assert set(saved) - {"TimeZone"} <= set(answer)
    assert answer["EntityKey"] == {
        "SystemIdentifier": "System 123",
        "ExternalEntityReferenceType": "Resource",
        "Key": str(api.battery_123.key),
        "ExternalKey": "1234567675",
        "FriendlyName": "Battery",
    }
    assert answer["TimeSeriesType"] == "EnergyLevel"  # Table 2: "exported will be pascalcase"
    assert answer["FromDateTime"] == "2018-02-22T00:00:00Z"
    assert answer["ToDateTime"] == "2018-02-28T00:00:00Z"
    assert answer["Resolution"] == "FifteenMinutes" and answer["Unit"] == "kWh"
    assert answer["TimeSeriesValueList"] == saved["TimeSeriesValueList"]
    assert len(answer["TimeSeriesValueList"]) == 576


async def test_the_4_3_3_example_call_answers_one_series_per_listed_type(api):
    """CP-API 4.3.3: "The response will be an array of these items, related to the
    TimeSeriesTypeList requested (all, or as specified)"."""
    entity = {
        "SystemIdentifier": "System 123",
        "ExternalEntityReferenceType": "Resource",
        "ExternalKey": "1234567675",
    }
    day = datetime(2018, 2, 22, tzinfo=UTC)
    for series_type, numbers in (("Energy Level", [50.0, 51.0]), ("Charging Energy", [1.0, 1.0])):
        body = _series(series_type, _values(day, numbers), entity=entity)
        assert (await api.call("SaveTimeSeriesV1", body))["Success"] is True
    answer = await api.call("GetTimeSeriesListForEntityV1", json.loads(GET_LIST_EXAMPLE))
    assert [a["TimeSeriesType"] for a in answer] == [
        "EnergyLevel",
        "ChargingEnergy",
        "DischargingEnergy",
    ]
    assert _pairs(answer[0]) == [("2018-02-22T00:00:00Z", 50.0), ("2018-02-22T00:15:00Z", 51.0)]
    assert _pairs(answer[1]) == [("2018-02-22T00:00:00Z", 1.0), ("2018-02-22T00:15:00Z", 1.0)]
    assert answer[2]["TimeSeriesValueList"] == [] and answer[2]["Unit"] == "kWh"


async def test_the_4_3_5_example_response_including_the_entity_that_could_not_be_found(api):
    """CP-API 4.3.5: "returns a list of response message (corresponding to the supplied list of
    time series)", example ErrorMessage "Entity with the supplied key could not be found".

    The example answers one EntityKey both ways; to be refused, the third item names the
    same external key with a platform key that does not exist (4.1.2: the Key "if supplied
    will be used as preference over the ExternalKey")."""
    items = [example_1(), example_1(), example_1()]
    items[1]["TimeSeriesType"] = "Charging Energy"
    items[2]["TimeSeriesType"] = "Discharging Energy"
    items[2]["EntityKey"]["Key"] = str(uuid.uuid4())
    answer = await api.call("SaveTimeSeriesListForEntitiesV1", items)
    expected = json.loads(SAVE_LIST_RESPONSE_EXAMPLE)
    assert len(answer) == len(expected) == 3
    for got, want in zip(answer[:2], expected[:2], strict=True):
        assert set(got) == set(want)
        assert got["EntityKey"] == want["EntityKey"]
        assert got["TimeSeriesType"] == want["TimeSeriesType"] and got["Success"] is True
        assert uuid.UUID(got["Key"]) == uuid.UUID(want["Key"])
    assert answer[2]["Success"] is False
    assert answer[2]["TimeSeriesType"] == "Discharging Energy"
    assert answer[2]["ErrorMessage"] == expected[2]["ErrorMessage"]
    assert answer[2]["Key"] is None  # the example's Key cannot be known for a missing entity
    assert await _stored(api, api.battery, SeriesType.CHARGING_ENERGY) is not None
    assert await _stored(api, api.battery, SeriesType.DISCHARGING_ENERGY) is None


# ---------------------------------------------------------------------------------------------
# Save, get, merge, resample


async def test_save_then_get_round_trip_with_status(api):
    """CP-API 4.3.1.1 TimeSeriesValue.Status: "indicates the status of the associated value"."""
    values = _values(T0, [1.5, 2.0, 0.25])
    values[1]["Status"] = "EstimatedUncertain"
    values[2]["Status"] = "OK"
    assert (await api.call("SaveTimeSeriesV1", _series("Consumption", values)))["Success"]
    answer = await api.call("GetTimeSeriesV1", _request("consumption"))
    assert answer["TimeSeriesValueList"] == [
        {"ValueTime": "2026-03-01T00:00:00Z", "Value": 1.5},
        {"ValueTime": "2026-03-01T00:15:00Z", "Value": 2.0, "Status": "EstimatedUncertain"},
        {"ValueTime": "2026-03-01T00:30:00Z", "Value": 0.25, "Status": "OK"},
    ]
    assert answer["Unit"] == "kWh" and answer["Resolution"] == "FifteenMinutes"
    assert answer["TimeZone"] == "UTC"


async def test_written_values_have_the_callers_account_as_source(api):
    await api.call("SaveTimeSeriesV1", _series("Max Capacity", _values(T0, [11.0])))
    assert await _stored(api, api.meter, SeriesType.MAX_CAPACITY, sources=["cpo"]) == [(T0, 11.0)]
    assert await _stored(api, api.meter, SeriesType.MAX_CAPACITY, sources=["derived"]) == []


async def test_value_time_is_the_period_start(api):
    """CP-API 4.3.1.2: "the value for the period should be provided based on the period start
    time, e.g for the last 15 minute reading of a day it would be 23:45"."""
    last = T0 + timedelta(hours=23, minutes=45)
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(T0 + 23 * H, [1, 2, 3, 4])))
    tail = await api.call("GetTimeSeriesV1", _request("Consumption", last, T0 + 24 * H))
    assert _pairs(tail) == [("2026-03-01T23:45:00Z", 4.0)]
    hourly = await api.call(
        "GetTimeSeriesV1", _request("Consumption", T0 + 23 * H, T0 + 24 * H, "Hour")
    )
    assert _pairs(hourly) == [("2026-03-01T23:00:00Z", 10.0)]  # 23:00 + 23:15 + 23:30 + 23:45


async def test_get_resamples_energy_by_summing_and_power_by_averaging(api):
    """DESIGN.md 4: "Extensive quantities (energy, kWh) sum when coarsened and divide when
    refined; intensive ones (power, price, temperature, capacity) average when coarsened"."""
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(T0, [1.0, 2.0, 3.0, 4.0])))
    await api.call("SaveTimeSeriesV1", _series("MaxCapacity", _values(T0, [10, 20, 30, 40])))
    await api.call(
        "SaveTimeSeriesV1", _series("Net Energy", _values(T0, [8.0], H), resolution="Hour")
    )
    energy = await api.call("GetTimeSeriesV1", _request("Consumption", resolution="Hour"))
    power = await api.call("GetTimeSeriesV1", _request("Max Capacity", resolution="HalfHour"))
    finer = await api.call("GetTimeSeriesV1", _request("NetEnergy", resolution="FifteenMinutes"))
    assert energy["Resolution"] == "Hour" and _pairs(energy) == [("2026-03-01T00:00:00Z", 10.0)]
    assert _pairs(power) == [("2026-03-01T00:00:00Z", 15.0), ("2026-03-01T00:30:00Z", 35.0)]
    assert [v for _, v in _pairs(finer)] == [2.0, 2.0, 2.0, 2.0]


async def test_get_widens_a_window_that_is_off_the_grid(api):
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(T0, [1.0] * 8)))
    answer = await api.call(
        "GetTimeSeriesV1",
        _request("Consumption", T0 + timedelta(minutes=20), T0 + timedelta(minutes=70), "Hour"),
    )
    # Both hours overlap [00:20, 01:10); each holds four known quarter hours.
    assert _pairs(answer) == [("2026-03-01T00:00:00Z", 4.0), ("2026-03-01T01:00:00Z", 4.0)]


async def test_get_without_to_date_returns_everything_from_the_start(api):
    """CP-API 4.3.2: ToDateTime "(string, optional)"."""
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(T0, [1.0, 2.0, 3.0, 4.0])))
    raw = await api.call("GetTimeSeriesV1", _request("Consumption", T0 + Q, None))
    hourly = await api.call("GetTimeSeriesV1", _request("Consumption", T0, None, "Hour"))
    assert [v for _, v in _pairs(raw)] == [2.0, 3.0, 4.0]
    assert raw["ToDateTime"] == "2026-03-01T01:00:00Z"
    assert _pairs(hourly) == [("2026-03-01T00:00:00Z", 10.0)]


async def test_readings_read_at_a_resolution_are_interpolated(api):
    """DESIGN.md 4: "accumulated readings interpolate"."""
    readings = [
        {"ValueTime": "2026-03-01T00:10:00Z", "Value": 101.0},
        {"ValueTime": "2026-03-01T00:40:00Z", "Value": 104.0},
    ]
    await api.call("SaveTimeSeriesV1", _series("Consumption Meter Reading", readings, None))
    raw = await api.call("GetTimeSeriesV1", _request("ConsumptionMeterReading"))
    grid = await api.call(
        "GetTimeSeriesV1", _request("ConsumptionMeterReading", resolution="FifteenMinutes")
    )
    assert raw["Resolution"] == "Frequent" and [v for _, v in _pairs(raw)] == [101.0, 104.0]
    # 00:15 = 101 + 5/30 * 3 = 101.5; 00:30 = 101 + 20/30 * 3 = 103; none outside the readings.
    assert _pairs(grid) == [("2026-03-01T00:15:00Z", 101.5), ("2026-03-01T00:30:00Z", 103.0)]


async def test_a_second_save_merges_into_the_first(api):
    """CP-API 4.3.4: "If Data already exists for the period of supplied values, then the values
    are always merged into the existing list"."""
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(T0, [1.0, 2.0, 3.0, 4.0])))
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(T0 + Q, [20.0, 30.0])))
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(T0 + H, [5.0])))
    answer = await api.call("GetTimeSeriesV1", _request("Consumption", T0, T0 + 2 * H))
    assert [v for _, v in _pairs(answer)] == [1.0, 20.0, 30.0, 4.0, 5.0]


async def test_list_get_with_retrieve_all_returns_every_series_of_the_entity(api):
    """CP-API 4.3.3: "RetrieveAllTimeSeriesTypes (boolean, optional)"; TimeSeriesTypeList is
    "ignored if RetrieveAllTimeSeriesTypes = true"."""
    await api.call("SaveTimeSeriesV1", _series("Max Capacity", _values(T0, [1.0])))
    await api.call("SaveTimeSeriesV1", _series("Consumption Phase 2", _values(T0, [2.0])))
    body = {**_request("x"), "RetrieveAllTimeSeriesTypes": True, "TimeSeriesTypeList": ["Nope"]}
    del body["TimeSeriesType"]
    answer = await api.call("GetTimeSeriesListForEntityV1", body)
    assert [a["TimeSeriesType"] for a in answer] == ["MaxCapacity", "ConsumptionPhase2"]
    assert [_pairs(a) for a in answer] == [
        [("2026-03-01T00:00:00Z", 1.0)],
        [("2026-03-01T00:00:00Z", 2.0)],
    ]


# ---------------------------------------------------------------------------------------------
# The list save


async def test_list_save_keeps_the_good_items_when_one_is_bad(api):
    """DESIGN.md 2.3: "batch messages report per item (CP-API lists ...) and keep the good
    items"; CP-API 4.3.5: "Each response includes details of whether the time series was saved
    successfully ... and any error details"."""
    bad_value = _series("Consumption", _values(T0, [1.0, -2.0, 3.0]))
    items = [
        _series("Max Capacity", _values(T0, [7.0])),
        _series("Net Energy", _values(T0, [1.0]), Unit="W"),
        bad_value,
        {"EntityKey": METER, "TimeSeriesValueList": []},
        "not a time series",
        _series("Production", _values(T0, [4.0])),
    ]
    answer = await api.call("SaveTimeSeriesListForEntitiesV1", items)
    assert [a["Success"] for a in answer] == [True, False, False, False, False, True]
    assert answer[1]["ErrorMessage"].startswith("Unit: 'W' is not accepted")
    assert answer[1]["Key"] == str(api.meter.key) and answer[1]["TimeSeriesType"] == "Net Energy"
    assert answer[2]["ErrorMessage"].startswith("TimeSeriesValueList[1].Value: ")
    assert "unsigned" in answer[2]["ErrorMessage"]
    assert answer[3]["ErrorMessage"].startswith("TimeSeriesType: ")
    assert answer[4]["ErrorMessage"].startswith("body: expected a JSON object")
    assert answer[4]["EntityKey"] is None
    assert await _stored(api, api.meter, SeriesType.MAX_CAPACITY) == [(T0, 7.0)]
    assert await _stored(api, api.meter, SeriesType.PRODUCTION) == [(T0, 4.0)]
    # Nothing of a refused item: not its good values, not its series, not its derivations.
    assert await _stored(api, api.meter, SeriesType.CONSUMPTION) is None
    assert await _stored(api, api.meter, SeriesType.NET_ENERGY) is None
    async with api.db.read() as tx:
        logged = await recent_messages(tx, api.tenant)
    assert logged[0].message_type == "SaveTimeSeriesListForEntitiesV1"
    assert logged[0].status == "partial" and logged[0].detail == "2 of 6 time series saved"


async def test_list_save_applies_items_in_order_within_one_request(api):
    """Items of one list apply as if saved one after the other: a later item for the same
    series and start wins, and an item that derives sees the values queued before it."""
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(T0 - H, [1.0])))
    items = [
        _series("Consumption", _values(T0, [2.0, 2.0])),  # a plain merge, queued
        _series("Consumption", _values(T0 + Q, [3.0])),  # the same series again: wins at 00:15
        # Phases derive their sum: each one runs the full path, after the queue is written.
        _series("Consumption Phase 1", _values(T0, [1.0])),
        _series("Consumption Phase 2", _values(T0, [1.0])),
        _series("Consumption Phase 3", _values(T0, [1.0])),
    ]
    answer = await api.call("SaveTimeSeriesListForEntitiesV1", items)
    assert [a["Success"] for a in answer] == [True] * 5
    assert await _stored(api, api.meter, SeriesType.CONSUMPTION, sources=["cpo"]) == [
        (T0 - H, 1.0),
        (T0, 2.0),
        (T0 + Q, 3.0),
    ]
    # The peer supplied 00:00 in the same request, before the phases: the sum does not replace it.
    assert await _derived(api, SeriesType.CONSUMPTION) == []


async def test_list_save_refuses_another_resolution_for_a_stored_series(api):
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(T0, [1.0])))
    items = [
        _series("Consumption", _values(T0, [5.0, 5.0, 5.0, 5.0]), "Hour"),
        _series("Consumption", _values(T0 + Q, [6.0])),
    ]
    answer = await api.call("SaveTimeSeriesListForEntitiesV1", items)
    assert [a["Success"] for a in answer] == [False, True]
    assert "stored at 0:15:00" in answer[0]["ErrorMessage"]
    assert await _stored(api, api.meter, SeriesType.CONSUMPTION) == [(T0, 1.0), (T0 + Q, 6.0)]


async def test_list_save_answers_an_unknown_entity_per_item(api):
    unknown = {**METER, "ExternalKey": "nobody"}
    items = [
        _series("Consumption", _values(T0, [1.0]), entity=unknown),
        _series("Consumption", _values(T0, [1.0]), entity={"Key": "not-a-uuid"}),
        _series("Consumption", _values(T0, [1.0])),
    ]
    answer = await api.call("SaveTimeSeriesListForEntitiesV1", items)
    assert [a["Success"] for a in answer] == [False, False, True]
    assert answer[0]["ErrorMessage"] == "Entity with the supplied key could not be found"
    assert answer[0]["Key"] is None
    assert "EntityKey.Key" in answer[1]["ErrorMessage"]


async def test_list_save_must_be_an_array(api):
    answer = await api.call("SaveTimeSeriesListForEntitiesV1", example_1(), status=400)
    assert _fields(answer) == {"body"}


# ---------------------------------------------------------------------------------------------
# Refusals of a single save and of gets


async def test_single_save_refusal_carries_the_error_and_the_save_response(api):
    body = _series("Consumption", _values(T0, [1.0, "2"]))
    answer = await api.call("SaveTimeSeriesV1", body, status=400)
    assert _fields(answer) == {"TimeSeriesValueList[1].Value"}
    assert answer["Success"] is False and answer["EntityKey"] == METER
    assert answer["ErrorMessage"] == "TimeSeriesValueList[1].Value: expected a number, got str"
    assert answer["RequestId"] and answer["ErrorCode"] == "invalid"
    assert await _stored(api, api.meter, SeriesType.CONSUMPTION) is None


async def test_an_unknown_entity_is_not_found_in_the_specs_words(api):
    """CP-API 4.3.5 example: "Entity with the supplied key could not be found"."""
    nobody = {**METER, "ExternalKey": "nobody"}
    saved = await api.call("SaveTimeSeriesV1", _series("Consumption", [], entity=nobody), 404)
    got = await api.call("GetTimeSeriesV1", _request("Consumption", entity=nobody), 404)
    assert (
        saved["ErrorMessage"]
        == saved["Message"]
        == "Entity with the supplied key could not be found"
    )
    assert saved["Success"] is False and saved["Key"] is None
    assert got["Message"] == "Entity with the supplied key could not be found"
    assert _fields(saved) == {"EntityKey"} and _fields(got) == {"ExternalEntityReference"}


async def test_a_platform_key_names_the_entity_and_wins_over_the_external_key(api):
    """CP-API 4.2.1.1 ExternalEntityReference.Key: "Platform Key, if supplied will be used as
    preference over the ExternalKey if also supplied"."""
    both = {**METER, "ExternalKey": "3", "Key": str(api.meter.key).upper()}
    await api.call("SaveTimeSeriesV1", _series("Max Capacity", _values(T0, [3.0]), entity=both))
    assert await _stored(api, api.meter, SeriesType.MAX_CAPACITY) == [(T0, 3.0)]
    assert await _stored(api, api.battery, SeriesType.MAX_CAPACITY) is None
    answer = await api.call(
        "SaveTimeSeriesV1", _series("Max Capacity", [], entity={"Key": "x"}), 400
    )
    assert _fields(answer) == {"EntityKey.Key"}


# ---------------------------------------------------------------------------------------------
# Units (3.3.1)


@pytest.mark.parametrize(
    ("series_type", "unit", "reason"),
    [
        ("Consumption", "W", "is not accepted"),
        ("Consumption", "MWh", "is not accepted"),
        ("Consumption", "Wh", "is not accepted"),
        ("Spot Price", "EUR/kWh", "is not accepted"),
        ("Consumption", "furlongs", "unknown unit"),
        ("Energy Level", "kW", "is not a unit of EnergyLevel"),
        ("Charging Current", "kW", "is not a unit of ChargingCurrent"),
    ],
)
async def test_units_other_than_those_of_3_3_1_are_refused_naming_unit(
    api, series_type, unit, reason
):
    """CP-API 3.3.1: "the following units will be expected for data input and display, no
    other units will be accepted" (kWh, kW, A, C, %)."""
    body = _series(series_type, _values(T0, [1.0]), Unit=unit)
    answer = await api.call("SaveTimeSeriesV1", body, status=400)
    assert _fields(answer) == {"Unit"}
    assert reason in answer["Errors"][0]["Reason"]


@pytest.mark.parametrize(
    ("series_type", "unit", "shown"),
    [
        ("Consumption", "kWh", "kWh"),
        ("Consumption", None, "kWh"),
        ("Net Instant Power", "KW", "kW"),
        ("Charging Current", "A", "A"),
        ("Actual Temperature", "C", "C"),
        ("Forecasted Cloudiness", "%", "%"),
        ("Spot Price", "EUR/MWh", "EUR/MWh"),
        ("Spot Price", "NOK/MWh", "NOK/MWh"),
    ],
)
async def test_the_units_of_3_3_1_are_accepted_and_shown(api, series_type, unit, shown):
    """CP-API 3.3.1 Table 3: Energy kWh, Power kW, Current A, Temperature "C Celsius",
    Cloudiness "% 0-100"; Table 2: Spot Price "e.g. Euro/MWh". No Unit: the type's own."""
    extra = {} if unit is None else {"Unit": unit}
    await api.call("SaveTimeSeriesV1", _series(series_type, _values(T0, [1.0]), "Hour", **extra))
    answer = await api.call("GetTimeSeriesV1", _request(series_type))
    assert answer["Unit"] == shown and _pairs(answer) == [("2026-03-01T00:00:00Z", 1.0)]


async def test_a_price_series_keeps_its_currency(api):
    await api.call(
        "SaveTimeSeriesV1", _series("SpotPrice", _values(T0, [40.0], H), "Hour", Unit="EUR/MWh")
    )
    answer = await api.call(
        "SaveTimeSeriesV1",
        _series("SpotPrice", _values(T0, [40.0], H), "Hour", Unit="GBP/MWh"),
        status=400,
    )
    assert _fields(answer) == {"Unit"} and "exchange rates" in answer["Errors"][0]["Reason"]


# ---------------------------------------------------------------------------------------------
# Series type names (Table 2)


@pytest.mark.parametrize(
    ("sent", "exported"),
    [
        ("Energy Level", "EnergyLevel"),
        ("energylevel", "EnergyLevel"),
        ("ENERGY LEVEL", "EnergyLevel"),
        ("Consumption Phase 2", "ConsumptionPhase2"),
        ("consumption meter reading phase 3", "ConsumptionMeterReadingPhase3"),
        ("DischargingCurr ent", "DischargingCurrent"),
    ],
)
async def test_type_names_in_any_case_and_spacing_are_exported_in_pascal_case(api, sent, exported):
    """CP-API Table 2 note: "for time series, names can be supplied in any lower/upper case
    combination, when exported will be pascalcase"."""
    saved = await api.call("SaveTimeSeriesV1", _series(sent, _values(T0, [1.0]), "Frequent"))
    answer = await api.call("GetTimeSeriesV1", _request(sent))
    assert saved["TimeSeriesType"] == sent  # the response echoes the item as sent
    assert answer["TimeSeriesType"] == exported


@pytest.mark.parametrize(
    ("sent", "exported"),
    [
        ("ChargingOnOffPowerRegulation", "ChargingPowerOnOffRegulation"),
        ("discharging on off power regulation", "DischargingPowerOnOffRegulation"),
    ],
)
async def test_table_8_names_are_saved_and_read_as_their_table_2_types(api, sent, exported):
    """CP-API 6.1.2 Table 8 names "ChargingOnOffPowerRegulation" and
    "DischargingOnOffPowerRegulation" among the time series types sent out; a pilot saving
    them under those names reaches the same series as under Table 2's name."""
    await api.call("SaveTimeSeriesV1", _series(sent, _values(T0, [1, 0])))
    answer = await api.call("GetTimeSeriesV1", _request(exported))
    assert answer["TimeSeriesType"] == exported
    assert _pairs(answer) == [("2026-03-01T00:00:00Z", 1), ("2026-03-01T00:15:00Z", 0)]


@pytest.mark.parametrize(
    "series_type", ["Energy Levl", "Max Capacity Phase 1", "Consumption Phase 4", ""]
)
async def test_unknown_types_are_refused_naming_the_type(api, series_type):
    saved = await api.call("SaveTimeSeriesV1", _series(series_type, _values(T0, [1.0])), status=400)
    got = await api.call("GetTimeSeriesV1", _request(series_type), status=400)
    assert _fields(saved) == _fields(got) == {"TimeSeriesType"}


async def test_unknown_types_in_the_list_request_are_named_by_position(api):
    body = {**_request("x"), "TimeSeriesTypeList": ["Consumption", "Sunshine"]}
    answer = await api.call("GetTimeSeriesListForEntityV1", body, status=400)
    assert _fields(answer) == {"TimeSeriesTypeList[1]"}


# ---------------------------------------------------------------------------------------------
# Dates (3.3.2.2) and resolutions


async def test_timestamps_without_an_offset_are_refused(api):
    """CP-API 3.3.2.2: "All Dates should be supplied in UTC in the ISO 8601 string format e.g.
    "2018-02-23T13:55:05.455Z"". A date without offset is refused, not guessed to be UTC."""
    values = [{"ValueTime": "2026-03-01T00:00:00", "Value": 1.0}]
    saved = await api.call("SaveTimeSeriesV1", _series("Consumption", values), status=400)
    request = {**_request("Consumption"), "FromDateTime": "2026-03-01T00:00:00"}
    got = await api.call("GetTimeSeriesV1", request, status=400)
    assert _fields(saved) == {"TimeSeriesValueList[0].ValueTime"}
    assert _fields(got) == {"FromDateTime"}
    assert "3.3.2.2" in saved["Errors"][0]["Reason"]
    assert await _stored(api, api.meter, SeriesType.CONSUMPTION) is None


async def test_explicit_offsets_and_fractions_are_converted_to_utc(api):
    values = [
        {"ValueTime": "2026-03-01T01:15:00.000+01:00", "Value": 1.0},
        {"ValueTime": "2026-03-01T00:30:00.0000000Z", "Value": 2.0},
    ]
    await api.call("SaveTimeSeriesV1", _series("Consumption", values))
    assert await _stored(api, api.meter, SeriesType.CONSUMPTION) == [
        (T0 + Q, 1.0),
        (T0 + 2 * Q, 2.0),
    ]


@pytest.mark.parametrize("resolution", ["None", "Frequent", "Rarely", "Occasionally"])
async def test_irregular_resolutions_store_instants(api, resolution):
    """CP-API Table 2 note: "*Frequent* is used on time series types where exact frequency can
    vary. An example of this is meter readings"."""
    readings = [
        {"ValueTime": "2026-03-01T00:07:13Z", "Value": 5.0},
        {"ValueTime": "2026-03-01T00:09:00Z", "Value": 6.0},
    ]
    body = _series("Energy Level Meter Reading", readings, resolution)
    await api.call("SaveTimeSeriesV1", body)
    answer = await api.call("GetTimeSeriesV1", _request("EnergyLevelMeterReading"))
    assert answer["Resolution"] == "Frequent"
    assert _pairs(answer) == [("2026-03-01T00:07:13Z", 5.0), ("2026-03-01T00:09:00Z", 6.0)]


async def test_resolution_names_are_checked(api):
    answer = await api.call(
        "GetTimeSeriesV1", _request("Consumption", resolution="Fortnight"), status=400
    )
    assert _fields(answer) == {"Resolution"}
    ok = await api.call("SaveTimeSeriesV1", _series("Consumption", [], "fifteenminutes"))
    assert ok["Success"] is True


async def test_a_series_keeps_its_resolution(api):
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(T0, [1.0])))
    answer = await api.call(
        "SaveTimeSeriesV1", _series("Consumption", _values(T0, [4.0], H), "Hour"), status=400
    )
    assert _fields(answer) == {"Resolution"}
    # No Resolution: the stored one.
    assert (await api.call("SaveTimeSeriesV1", _series("Consumption", _values(T0, [2.0]), None)))[
        "Success"
    ]
    assert await _stored(api, api.meter, SeriesType.CONSUMPTION) == [(T0, 2.0)]


@pytest.mark.parametrize(
    ("series_type", "resolution"),
    [
        ("Consumption", "FifteenMinutes"),
        ("Max Capacity", "FifteenMinutes"),
        ("Spot Price", "Hour"),
        ("Consumption Meter Reading", "Frequent"),
        ("Charging Power", "Frequent"),
    ],
)
async def test_a_new_series_saved_without_resolution_takes_table_2s(api, series_type, resolution):
    """CP-API Table 2 "Resolution /Interval": meter readings "Frequent", calculated series
    "e.g. 15 minute", Spot Price "Hourly", Charging Power "Frequent" for every asset type."""
    await api.call("SaveTimeSeriesV1", _series(series_type, _values(T0, [1.0]), None))
    answer = await api.call("GetTimeSeriesV1", _request(series_type))
    assert answer["Resolution"] == resolution


@pytest.mark.parametrize(
    ("series_type", "resolution", "saved_as", "field"),
    [
        ("Charging Power", "Hour", "Frequent", "Resolution"),  # irregular power: no grid
        ("Consumption", "TenMinutes", "FifteenMinutes", "Resolution"),  # 15 is not 10 * n
        ("Charging Power", "Month", "Frequent", "Resolution"),  # instants have no length
    ],
)
async def test_resolutions_a_series_cannot_be_read_at_are_refused(
    api, series_type, resolution, saved_as, field
):
    await api.call("SaveTimeSeriesV1", _series(series_type, _values(T0, [1.0]), saved_as))
    answer = await api.call(
        "GetTimeSeriesV1", _request(series_type, resolution=resolution), status=400
    )
    assert _fields(answer) == {field}


async def test_a_window_too_large_to_lay_out_is_refused(api):
    await api.call("SaveTimeSeriesV1", _series("Max Capacity", _values(T0, [1.0])))
    answer = await api.call(
        "GetTimeSeriesV1",
        _request("Max Capacity", T0, T0 + timedelta(days=4000), "Minute"),
        status=400,
    )
    assert _fields(answer) == {"ToDateTime"}


async def test_values_off_the_block_grid_are_refused_naming_the_value(api):
    values = [*_values(T0, [1.0]), {"ValueTime": "2026-03-01T00:20:00Z", "Value": 1.0}]
    answer = await api.call("SaveTimeSeriesV1", _series("Consumption", values), status=400)
    assert _fields(answer) == {"TimeSeriesValueList[1].ValueTime"}


# ---------------------------------------------------------------------------------------------
# Calendar periods: Day, Week, Month, Quarter and Year in the TimeZone (4.3.1.1, 4.3.2)

OSLO_MARCH = datetime(2026, 3, 27, 23, tzinfo=UTC)  # 2026-03-28 00:00 in Oslo (UTC+1)
OSLO_OCTOBER = datetime(2026, 10, 23, 22, tzinfo=UTC)  # 2026-10-24 00:00 in Oslo (UTC+2)


def _periods(answer: dict[str, Any]) -> list[tuple[str, str | None, Any]]:
    return [
        (v["ValueTime"], v.get("ValueToTime"), v["Value"]) for v in answer["TimeSeriesValueList"]
    ]


async def test_a_day_in_a_time_zone_is_a_local_day_of_23_hours_in_march(api):
    """CP-API 4.3.2 TimeZone: "all dates should be in UTC, however for resolution Daily and
    above the time zone should be specified to get the correct day alignment of values".
    Europe/Oslo's 2026-03-29 (the last Sunday of March) has 23 hours: 92 quarter hours."""
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(OSLO_MARCH, [1.0] * 286)))
    await api.call("SaveTimeSeriesV1", _series("Max Capacity", _values(OSLO_MARCH, [7.0] * 286)))
    request = _request("Consumption", OSLO_MARCH, OSLO_MARCH + 71 * H, "Day")
    energy = await api.call("GetTimeSeriesV1", {**request, "TimeZone": "Europe/Oslo"})
    power = await api.call(
        "GetTimeSeriesV1", {**request, "TimeSeriesType": "MaxCapacity", "TimeZone": "Europe/Oslo"}
    )
    assert energy["TimeZone"] == "Europe/Oslo" and energy["Resolution"] == "Day"
    # A day of 24 hours needs no ValueToTime; the 23-hour day carries its end.
    assert _periods(energy) == [
        ("2026-03-27T23:00:00Z", None, 96.0),
        ("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z", 92.0),
        ("2026-03-29T22:00:00Z", None, 96.0),
    ]
    assert [v for _, _, v in _periods(power)] == [7.0, 7.0, 7.0]


async def test_a_day_in_a_time_zone_is_a_local_day_of_25_hours_in_october(api):
    """Europe/Oslo's 2026-10-25 (the last Sunday of October) has 25 hours: 100 quarter hours."""
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(OSLO_OCTOBER, [1.0] * 292)))
    answer = await api.call(
        "GetTimeSeriesV1",
        _request("Consumption", OSLO_OCTOBER, OSLO_OCTOBER + 73 * H, "Day", TimeZone="Europe/Oslo"),
    )
    assert _periods(answer) == [
        ("2026-10-23T22:00:00Z", None, 96.0),
        ("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", 100.0),
        ("2026-10-25T23:00:00Z", None, 96.0),
    ]


async def test_days_are_utc_days_without_a_time_zone_and_unknown_zones_are_refused(api):
    """4.3.1.1: "TimeZone (string, optional): The time zone: default UTC"."""
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(T0, [1.0] * 96)))
    day = timedelta(days=1)
    utc = await api.call("GetTimeSeriesV1", _request("Consumption", T0, T0 + day, "Day"))
    nowhere = await api.call(
        "GetTimeSeriesV1", _request("Consumption", TimeZone="Mars/Olympus"), status=400
    )
    assert utc["TimeZone"] == "UTC" and _pairs(utc) == [("2026-03-01T00:00:00Z", 96.0)]
    assert _fields(nowhere) == {"TimeZone"}


async def test_week_month_quarter_and_year_are_calendar_periods_of_stored_blocks(api):
    """4.3.1.1 Resolution: "'Day', 'Week', 'Month', 'Year', 'Quarter'", read from hourly energy
    by summing: weeks from Monday (ISO 8601), months, quarters and years from local midnight
    of their first day; a period the stored values do not cover whole is unknown."""
    start = datetime(2025, 12, 31, 23, tzinfo=UTC)  # 2026-01-01 00:00 in Oslo
    hours = int((datetime(2026, 3, 31, 22, tzinfo=UTC) - start) / H)  # to 2026-04-01 local
    assert hours == 90 * 24 - 1  # the hour lost to summer time on 2026-03-29
    await api.call(
        "SaveTimeSeriesV1", _series("Consumption", _values(start, [1.0] * hours, H), "Hour")
    )

    async def read(resolution: str) -> list[tuple[str, str | None, Any]]:
        request = _request(
            "Consumption", start, start + hours * H, resolution, TimeZone="Europe/Oslo"
        )
        answer = await api.call("GetTimeSeriesV1", request)
        assert answer["Resolution"] == resolution
        return _periods(answer)

    assert await read("Month") == [
        ("2025-12-31T23:00:00Z", "2026-01-31T23:00:00Z", 744.0),
        ("2026-01-31T23:00:00Z", "2026-02-28T23:00:00Z", 672.0),
        ("2026-02-28T23:00:00Z", "2026-03-31T22:00:00Z", 743.0),
    ]
    assert await read("Quarter") == [("2025-12-31T23:00:00Z", "2026-03-31T22:00:00Z", 2159.0)]
    assert await read("Year") == []  # 2026 is not stored whole
    weeks = await read("Week")
    # 2025-12-29 (a Monday) began before the values; 2026-01-05 is the first whole week.
    assert weeks[0] == ("2026-01-04T23:00:00Z", None, 168.0)
    assert ("2026-03-22T23:00:00Z", "2026-03-29T22:00:00Z", 167.0) in weeks


async def test_a_value_saved_at_month_covers_its_calendar_month(api):
    """4.3.1.1 Resolution "Month", 4.3.1.2 ValueTime is the period start, and TimeSeriesV1's
    TimeZone ("default UTC") says whose months: a month of no fixed length is kept as one
    value from local midnight of its first day to that of the next month."""
    months = [
        {"ValueTime": "2025-12-31T23:00:00Z", "Value": 0.0},
        {"ValueTime": "2026-01-31T23:00:00Z", "Value": 90.0},
        {"ValueTime": "2026-02-28T23:00:00Z", "Value": 0.0},
    ]
    saved = await api.call(
        "SaveTimeSeriesV1", _series("Max Capacity", months, "Month", TimeZone="Europe/Oslo")
    )
    assert saved["Success"] is True
    start, end = datetime(2025, 12, 31, 23, tzinfo=UTC), datetime(2026, 3, 31, 22, tzinfo=UTC)
    stored = await api.call("GetTimeSeriesV1", _request("Max Capacity", start, end))
    assert _periods(stored) == [
        ("2025-12-31T23:00:00Z", "2026-01-31T23:00:00Z", 0.0),
        ("2026-01-31T23:00:00Z", "2026-02-28T23:00:00Z", 90.0),
        ("2026-02-28T23:00:00Z", "2026-03-31T22:00:00Z", 0.0),
    ]
    oslo = {"TimeZone": "Europe/Oslo"}
    monthly = await api.call(
        "GetTimeSeriesV1", _request("Max Capacity", start, end, "Month", **oslo)
    )
    quarter = await api.call(
        "GetTimeSeriesV1", _request("Max Capacity", start, end, "Quarter", **oslo)
    )
    day = await api.call(
        "GetTimeSeriesV1",
        _request("Max Capacity", start + 40 * 24 * H, start + 41 * 24 * H, "Day", **oslo),
    )
    assert _periods(monthly) == _periods(stored)
    # An intensive value averages weighted by duration: 90 kW for February's 672 hours of the
    # quarter's 2,159 (one lost to summer time) is 28.01 kW, not the mean of three months, 30.
    assert [v for _, _, v in _periods(quarter)] == [pytest.approx(90 * 672 / 2159)]
    assert _pairs(day) == [("2026-02-09T23:00:00Z", 90.0)]  # repeated onto each day


async def test_energy_saved_at_month_is_shared_over_its_days_by_time(api):
    """DESIGN.md 4: energy "divide[s] when refined": January's 310 kWh is 10 kWh a day. A
    ValueToTime spanning two months gives each its share by length (590 kWh over 59 days)."""
    values = [
        {"ValueTime": "2026-01-01T00:00:00Z", "Value": 310.0},
        {"ValueTime": "2026-02-01T00:00:00Z", "ValueToTime": "2026-04-01T00:00:00Z", "Value": 590},
    ]
    await api.call("SaveTimeSeriesV1", _series("Consumption", values, "Month"))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    days = await api.call(
        "GetTimeSeriesV1", _request("Consumption", start, start + 3 * 24 * H, "Day")
    )
    months = await api.call(
        "GetTimeSeriesV1", _request("Consumption", start, datetime(2026, 4, 1, tzinfo=UTC), "Month")
    )
    assert [v for _, v in _pairs(days)] == [10.0, 10.0, 10.0]
    assert [v for _, v in _pairs(months)] == [310.0, 280.0, 310.0]


async def test_a_list_save_takes_calendar_periods_item_by_item(api):
    """4.3.5: each item of the list is saved as SaveTimeSeriesV1 saves it: a month item is
    checked and kept as its month, and a bad one is refused alone."""
    month = [{"ValueTime": "2026-03-01T00:00:00Z", "Value": 310.0}]
    bad = [{"ValueTime": "2026-03-02T00:00:00Z", "Value": 1.0}]
    answers = await api.call(
        "SaveTimeSeriesListForEntitiesV1",
        [
            _series("Consumption", month, "Month"),
            _series("Production", bad, "Month"),
            _series("Max Capacity", _values(T0, [5.0])),
        ],
    )
    assert [a["Success"] for a in answers] == [True, False, True]
    assert "TimeSeriesValueList[0].ValueTime" in answers[1]["ErrorMessage"]
    stored = await api.call("GetTimeSeriesV1", _request("Consumption", T0, T0 + 31 * 24 * H))
    assert _periods(stored) == [("2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z", 310.0)]


async def test_readings_at_a_month_are_the_readings_at_each_month_start(api):
    """DESIGN.md 4: "accumulated readings interpolate": the counter at local midnight."""
    readings = [
        {"ValueTime": "2026-01-31T11:00:00Z", "Value": 1000.0},
        {"ValueTime": "2026-02-01T11:00:00Z", "Value": 1024.0},  # 24 kWh in 24 hours
    ]
    await api.call("SaveTimeSeriesV1", _series("Consumption Meter Reading", readings, None))
    answer = await api.call(
        "GetTimeSeriesV1",
        _request(
            "ConsumptionMeterReading",
            datetime(2026, 1, 31, 23, tzinfo=UTC),
            datetime(2026, 2, 2, tzinfo=UTC),
            "Month",
            TimeZone="Europe/Oslo",
        ),
    )
    assert _periods(answer) == [("2026-01-31T23:00:00Z", None, 1012.0)]


@pytest.mark.parametrize(
    ("resolution", "zone", "value", "field"),
    [
        ("Month", "Europe/Oslo", {"ValueTime": "2026-02-01T00:00:00Z"}, "ValueTime"),  # 01:00
        ("Quarter", None, {"ValueTime": "2026-02-01T00:00:00Z"}, "ValueTime"),
        ("Week", None, {"ValueTime": "2026-03-05T00:00:00Z"}, "ValueTime"),  # a Thursday
        ("Day", None, {"ValueTime": "2026-03-05T06:00:00Z"}, "ValueTime"),
        (
            "Month",
            None,
            {"ValueTime": "2026-02-01T00:00:00Z", "ValueToTime": "2026-02-15T00:00:00Z"},
            "ValueToTime",
        ),
        ("Year", None, {"ValueTime": "9000-01-01T00:00:00Z"}, "ValueTime"),
    ],
)
async def test_a_calendar_value_must_cover_whole_periods(api, resolution, zone, value, field):
    """4.3.1.2: ValueTime is the period start; a value that does not begin (or end) where its
    period does is refused naming it, and nothing is stored."""
    extra = {"TimeZone": zone} if zone else {}
    body = _series("Consumption", [{**value, "Value": 1.0}], resolution, **extra)
    answer = await api.call("SaveTimeSeriesV1", body, status=400)
    assert _fields(answer) == {f"TimeSeriesValueList[0].{field}"}
    assert await _stored(api, api.meter, SeriesType.CONSUMPTION) is None


async def test_day_and_week_saved_in_utc_stay_blocks_and_in_a_zone_become_periods(api):
    """A UTC day is always 24 hours, so Day saved in UTC is a regular series that answers
    Resolution Day; Oslo's 23-hour day is a period of its own, kept with its end."""
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(T0, [24.0], 24 * H), "Day"))
    utc = await api.call("GetTimeSeriesV1", _request("Consumption", T0, T0 + 24 * H))
    assert utc["Resolution"] == "Day" and _periods(utc) == [("2026-03-01T00:00:00Z", None, 24.0)]
    days = _values(OSLO_MARCH, [24.0, 23.0, 24.0], 24 * H)
    days[2]["ValueTime"] = "2026-03-29T22:00:00Z"  # after the 23-hour day
    saved = await api.call(
        "SaveTimeSeriesV1",
        _series("Production", days, "Day", TimeZone="Europe/Oslo"),
    )
    assert saved["Success"] is True
    stored = await api.call(
        "GetTimeSeriesV1", _request("Production", OSLO_MARCH, OSLO_MARCH + 71 * H)
    )
    assert _periods(stored) == [
        ("2026-03-27T23:00:00Z", "2026-03-28T23:00:00Z", 24.0),
        ("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z", 23.0),
        ("2026-03-29T22:00:00Z", "2026-03-30T22:00:00Z", 24.0),
    ]


async def test_a_month_series_is_not_mixed_with_blocks(api):
    """A series keeps its form: a saved month cannot join a series of 15-minute blocks."""
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(T0, [1.0])))
    answer = await api.call(
        "SaveTimeSeriesV1", _series("Consumption", _values(T0, [1.0]), "Month"), status=400
    )
    assert _fields(answer) == {"Resolution"}


@pytest.mark.parametrize(
    ("saved_as", "resolution"),
    [("FifteenMinutes", "Month"), ("Hour", "Year"), ("Month", "Day")],
)
async def test_a_calendar_read_over_millennia_is_refused_not_tried(api, saved_as, resolution):
    """Every request's work is bounded: 7,099 years of quarter hours (249 million blocks), of
    hours (62 million) or of days (2.6 million) is more than a Get lays out (1,000,000)."""
    first = "2026-03-01T00:00:00Z"
    await api.call(
        "SaveTimeSeriesV1",
        _series("Consumption", [{"ValueTime": first, "Value": 1.0}], saved_as),
    )
    far = _request(
        "Consumption",
        datetime(1900, 1, 1, tzinfo=UTC),
        datetime(8999, 1, 1, tzinfo=UTC),
        resolution,
        TimeZone="Europe/Oslo",
    )
    answer = await api.call("GetTimeSeriesV1", far, status=400)
    assert _fields(answer) == {"ToDateTime"}


async def test_months_over_millennia_of_stored_months_are_answered(api):
    """85,000 months, or 370,000 weeks, are within the bound: the stored ones are answered."""
    values = [{"ValueTime": "2026-03-01T00:00:00Z", "Value": 31.0}]
    await api.call("SaveTimeSeriesV1", _series("Consumption", values, "Month"))
    far = _request(
        "Consumption", datetime(1900, 1, 1, tzinfo=UTC), datetime(8999, 1, 1, tzinfo=UTC), "Month"
    )
    answer = await api.call("GetTimeSeriesV1", far)
    weeks = await api.call("GetTimeSeriesV1", {**far, "Resolution": "Week"})
    assert _pairs(answer) == [("2026-03-01T00:00:00Z", 31.0)]
    # March 2026's weeks that lie wholly in it, at 1 kWh a day: 7 kWh each.
    assert [v for _, v in _pairs(weeks)] == [pytest.approx(7.0)] * 4


# ---------------------------------------------------------------------------------------------
# ValueToTime bands


async def test_a_band_of_an_intensive_value_is_repeated_on_every_block(api):
    """CP-API 4.3.1.1 ValueToTime: "To Date Time of the Value, generally not set if implicit from
    resolution": a value to a later time holds for every block of the band."""
    band = [
        {
            "ValueTime": "2026-03-01T00:00:00Z",
            "ValueToTime": "2026-03-01T01:00:00Z",
            "Value": 50.0,
            "Status": "OK",
        }
    ]
    await api.call("SaveTimeSeriesV1", _series("Max Capacity", band))
    answer = await api.call("GetTimeSeriesV1", _request("MaxCapacity"))
    assert [(v["Value"], v.get("Status")) for v in answer["TimeSeriesValueList"]] == [
        (50.0, "OK")
    ] * 4
    assert "ValueToTime" not in answer["TimeSeriesValueList"][0]  # implicit again


async def test_a_band_of_energy_is_divided_over_its_blocks(api):
    """DESIGN.md 4: energy "divide[s] when refined"; repeating a kWh value onto finer blocks
    would multiply it. 8 kWh over an hour is 2 kWh per quarter hour."""
    band = [
        {"ValueTime": "2026-03-01T00:00:00Z", "ValueToTime": "2026-03-01T01:00:00Z", "Value": 8.0}
    ]
    await api.call("SaveTimeSeriesV1", _series("Consumption", band))
    assert [v for _, v in await _stored(api, api.meter, SeriesType.CONSUMPTION)] == [2.0] * 4


async def test_a_band_that_is_not_whole_blocks_is_refused(api):
    band = [
        *_values(T0, [1.0]),
        {"ValueTime": "2026-03-01T01:00:00Z", "ValueToTime": "2026-03-01T01:20:00Z", "Value": 1.0},
    ]
    answer = await api.call("SaveTimeSeriesV1", _series("Max Capacity", band), status=400)
    assert _fields(answer) == {"TimeSeriesValueList[1].ValueToTime"}


async def test_an_irregular_value_keeps_its_to_time(api):
    values = [
        {"ValueTime": "2026-03-01T00:00:00Z", "ValueToTime": "2026-04-01T00:00:00Z", "Value": 700.0}
    ]
    await api.call("SaveTimeSeriesV1", _series("Consumption", values, "Frequent"))
    answer = await api.call("GetTimeSeriesV1", _request("Consumption"))
    assert answer["TimeSeriesValueList"] == [
        {"ValueTime": "2026-03-01T00:00:00Z", "ValueToTime": "2026-04-01T00:00:00Z", "Value": 700.0}
    ]


# ---------------------------------------------------------------------------------------------
# Derivations (Table 2)


async def _derived(api: Api, series_type: SeriesType, phase=None):  # type: ignore[no-untyped-def]
    return await _stored(api, api.meter, series_type, phase=phase, sources=["derived"])


async def test_meter_readings_derive_interval_energy(api):
    """CP-API Table 2, Consumption: "Calculated from Consumption Meter Reading if supplied".

    Readings 00:00 100, 00:10 101, 00:40 104 -> at 00:15 101.5, at 00:30 103 (linear), so
    [00:00, 00:15) 1.5 kWh, [00:15, 00:30) 1.5 kWh; 00:45 lies after the last reading: unknown."""
    readings = [
        {"ValueTime": "2026-03-01T00:00:00Z", "Value": 100.0},
        {"ValueTime": "2026-03-01T00:10:00Z", "Value": 101.0},
        {"ValueTime": "2026-03-01T00:40:00Z", "Value": 104.0},
    ]
    await api.call("SaveTimeSeriesV1", _series("Consumption Meter Reading", readings, None))
    assert await _derived(api, SeriesType.CONSUMPTION) == [(T0, 1.5), (T0 + Q, 1.5)]
    answer = await api.call("GetTimeSeriesV1", _request("Consumption"))
    assert answer["Resolution"] == "FifteenMinutes"  # the derived resolution, by default


async def test_a_single_new_reading_completes_the_blocks_since_the_last_one(api):
    """CP-API 3.2: "it is preferred that energy data are interfaced from the accumulated
    readings in kWh. That way, if any messages or data is missed the actual
    consumption/production over a period can still be calculated/inferred".

    Stored 00:10 101, 00:40 104; then 01:00 106 alone: at 00:45 104 + 5/20 * 2 = 104.5, so
    [00:30, 00:45) 104.5 - 103 = 1.5 and [00:45, 01:00) 106 - 104.5 = 1.5."""
    first = [
        {"ValueTime": "2026-03-01T00:10:00Z", "Value": 101.0},
        {"ValueTime": "2026-03-01T00:40:00Z", "Value": 104.0},
    ]
    await api.call("SaveTimeSeriesV1", _series("ConsumptionMeterReading", first, None))
    assert await _derived(api, SeriesType.CONSUMPTION) == [(T0 + Q, 1.5)]
    later = [{"ValueTime": "2026-03-01T01:00:00Z", "Value": 106.0}]
    await api.call("SaveTimeSeriesV1", _series("ConsumptionMeterReading", later, None))
    assert await _derived(api, SeriesType.CONSUMPTION) == [
        (T0 + Q, 1.5),
        (T0 + 2 * Q, 1.5),
        (T0 + 3 * Q, 1.5),
    ]


async def test_derived_energy_follows_an_existing_series_resolution(api):
    await api.call("SaveTimeSeriesV1", _series("Production", [], "Hour"))
    readings = _values(T0, [10.0, 12.5, 16.0], timedelta(minutes=30))
    await api.call("SaveTimeSeriesV1", _series("Production Meter Reading", readings, None))
    assert await _derived(api, SeriesType.PRODUCTION) == [(T0, 6.0)]  # 16 - 10


async def test_phases_are_summed_into_the_total(api):
    """CP-API Table 2, Consumption: "Additionally for meters with phases there are 3 series
    types (Consumption Phase n where n = 1..3), then it is calculated from sum of all 3 phases".

    A block is summed once all three phases are known for it: 1 + 0.5 + 0.125 at 00:00;
    00:15 waits for phase 3, then is 2 + 0.25 + 4."""
    await api.call("SaveTimeSeriesV1", _series("Consumption Phase 3", _values(T0, [0.125])))
    await api.call("SaveTimeSeriesV1", _series("Consumption Phase 2", _values(T0, [0.5, 0.25])))
    assert await _stored(api, api.meter, SeriesType.CONSUMPTION) is None
    await api.call("SaveTimeSeriesV1", _series("Consumption Phase 1", _values(T0, [1.0, 2.0])))
    assert await _derived(api, SeriesType.CONSUMPTION) == [(T0, 1.625)]
    await api.call("SaveTimeSeriesV1", _series("Consumption Phase 3", _values(T0 + Q, [4.0])))
    assert await _derived(api, SeriesType.CONSUMPTION) == [(T0, 1.625), (T0 + Q, 6.25)]


async def test_phase_readings_cascade_into_the_total(api):
    """CP-API Table 2: "Production Meter Reading Phase n" -> "Production Phase n" -> their sum.

    Phase n reads 0, n, 3n at 00:00, 00:15, 00:30: phase energy n, 2n per block; total
    1 + 2 + 3 = 6 and 2 + 4 + 6 = 12."""
    items = [
        _series(f"Production Meter Reading Phase {n}", _values(T0, [0.0, n, 3.0 * n]), None)
        for n in (1, 2, 3)
    ]
    answer = await api.call("SaveTimeSeriesListForEntitiesV1", items)
    assert all(a["Success"] for a in answer)
    assert await _derived(api, SeriesType.PRODUCTION, phase=2) == [(T0, 2.0), (T0 + Q, 4.0)]
    assert await _derived(api, SeriesType.PRODUCTION) == [(T0, 6.0), (T0 + Q, 12.0)]


async def test_net_energy_is_split_into_consumption_and_production(api):
    """CP-API Table 2: Consumption "Alternatively Calculated from Net Energy is supplied (+ve
    values)"; Production "Alternatively Calculated from Net Energy is supplied (-ve values)"
    and "Unsigned values"."""
    await api.call("SaveTimeSeriesV1", _series("Net Energy", _values(T0, [2.0, -1.5, 0.0, 3.0])))
    assert await _derived(api, SeriesType.CONSUMPTION) == [
        (T0, 2.0),
        (T0 + Q, 0.0),
        (T0 + 2 * Q, 0.0),
        (T0 + 3 * Q, 3.0),
    ]
    assert await _derived(api, SeriesType.PRODUCTION) == [
        (T0, 0.0),
        (T0 + Q, 1.5),
        (T0 + 2 * Q, 0.0),
        (T0 + 3 * Q, 0.0),
    ]


async def test_net_energy_is_split_before_it_is_coarsened(api):
    """Hourly Consumption from quarter-hour net 2, -1.5, 0, 3 is 2 + 3 = 5 kWh (and Production
    1.5), not the net 3.5: consumption and production are not netted against each other."""
    await api.call("SaveTimeSeriesV1", _series("Consumption", [], "Hour"))
    await api.call("SaveTimeSeriesV1", _series("Net Energy", _values(T0, [2.0, -1.5, 0.0, 3.0])))
    assert await _derived(api, SeriesType.CONSUMPTION) == [(T0, 5.0)]
    assert await _derived(api, SeriesType.PRODUCTION) == [
        (T0, 0.0),
        (T0 + Q, 1.5),
        (T0 + 2 * Q, 0.0),
        (T0 + 3 * Q, 0.0),
    ]


async def test_a_derived_value_never_replaces_a_supplied_one(api):
    """CP-API Table 2, Consumption: "Supplied or calculated from Consumption Meter Reading";
    "Alternatively Calculated from Net Energy is supplied": the calculated value stands in
    for a missing one, it does not overrule what the peer supplied for the block."""
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(T0, [7.0])))
    await api.call("SaveTimeSeriesV1", _series("Net Energy", _values(T0, [2.0, 3.0])))
    assert await _stored(api, api.meter, SeriesType.CONSUMPTION) == [(T0, 7.0), (T0 + Q, 3.0)]
    # A newer net value changes the derived block, still not the supplied one.
    await api.call("SaveTimeSeriesV1", _series("Net Energy", _values(T0, [4.0, 5.0])))
    assert await _stored(api, api.meter, SeriesType.CONSUMPTION) == [(T0, 7.0), (T0 + Q, 5.0)]


async def test_net_readings_cascade_into_consumption_and_production(api):
    """CP-API Table 2: Net Energy "Calculated from Net Energy Meter Reading if supplied".

    Signed counter 10, 12, 11 at 00:00, 00:15, 00:30: net 2, -1; consumption 2, 0;
    production 0, 1."""
    await api.call(
        "SaveTimeSeriesV1",
        _series("Net Energy Meter Reading", _values(T0, [10.0, 12.0, 11.0]), None),
    )
    assert await _derived(api, SeriesType.NET_ENERGY) == [(T0, 2.0), (T0 + Q, -1.0)]
    assert await _derived(api, SeriesType.CONSUMPTION) == [(T0, 2.0), (T0 + Q, 0.0)]
    assert await _derived(api, SeriesType.PRODUCTION) == [(T0, 0.0), (T0 + Q, 1.0)]


# ---------------------------------------------------------------------------------------------
# Tenants and authentication (4.1.3)


async def test_another_tenant_cannot_reach_the_entities_or_values(api):
    """CP-API 4.1.3.4: "Each tenant has its own data storage repositories so the data between
    the pilots is totally segregated"; 4.1.3.3: "API calls from a participant will only have
    access to its own data"."""
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(T0, [1.0])))
    by_key = {"Key": str(api.meter.key)}
    for method, body in (
        ("GetTimeSeriesV1", _request("Consumption", entity=by_key)),
        (
            "GetTimeSeriesListForEntityV1",
            {**_request("x", entity=by_key), "TimeSeriesTypeList": None},
        ),
        ("SaveTimeSeriesV1", _series("Consumption", _values(T0, [9.0]), entity=by_key)),
    ):
        response = await api.post(method, body, api.other_headers)
        assert response.status == 404, method
    # Their own entity of the same cross-reference is theirs alone, and starts empty.
    theirs = await api.post("GetTimeSeriesV1", _request("Consumption"), api.other_headers)
    assert (await theirs.json())["TimeSeriesValueList"] == []
    saved = await api.post(
        "SaveTimeSeriesListForEntitiesV1",
        [_series("Consumption", _values(T0, [5.0])), _series("Consumption", [], entity=by_key)],
        api.other_headers,
    )
    assert [a["Success"] for a in await saved.json()] == [True, False]
    assert await _stored(api, api.meter, SeriesType.CONSUMPTION) == [(T0, 1.0)]
    mine = await api.call("GetTimeSeriesV1", _request("Consumption"))
    assert _pairs(mine) == [("2026-03-01T00:00:00Z", 1.0)]


async def test_a_participant_is_its_tenant_so_its_accounts_share_its_series(api):
    """CP-API 4.1.3.3: "Each authenticated request is associated with an internal participant.
    API calls from a participant will only have access to its own data"; 4.1.3.4: "each user
    name is associated to one tenant key". The participant is the tenant: a second account of
    it reads and merges into the series the first saved (each value keeps who wrote it), and
    the other tenant's account reaches neither (test above)."""
    async with api.db.transaction() as tx:
        await add_account(tx, api.tenant, "trader", Role.PARTICIPANT, "pw-t")
    trader = {**api.headers, "Authorization": encode_basic_auth("trader", "pw-t")}
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(T0, [1.0, 2.0])))
    seen = await (await api.post("GetTimeSeriesV1", _request("Consumption"), trader)).json()
    assert _pairs(seen) == [("2026-03-01T00:00:00Z", 1.0), ("2026-03-01T00:15:00Z", 2.0)]
    merged = await api.post(
        "SaveTimeSeriesV1", _series("Consumption", _values(T0 + Q, [5.0])), trader
    )
    assert merged.status == 200
    mine = await api.call("GetTimeSeriesV1", _request("Consumption"))
    assert _pairs(mine) == [("2026-03-01T00:00:00Z", 1.0), ("2026-03-01T00:15:00Z", 5.0)]
    assert await _stored(api, api.meter, SeriesType.CONSUMPTION, sources=["trader"]) == [
        (T0 + Q, 5.0)
    ]
    theirs = await api.post("GetTimeSeriesV1", _request("Consumption"), api.other_headers)
    assert (await theirs.json())["TimeSeriesValueList"] == []


@pytest.mark.parametrize(
    "method",
    [
        "GetTimeSeriesV1",
        "GetTimeSeriesListForEntityV1",
        "SaveTimeSeriesV1",
        "SaveTimeSeriesListForEntitiesV1",
    ],
)
async def test_every_method_needs_basic_auth_and_this_tenants_key(api, method):
    """CP-API 4.1.3.2: "Each request must be authenticated using basic authentication";
    4.1.3.4: "The tenant Key must be provided in the header to each API call"."""
    body = [] if method.startswith("SaveTimeSeriesList") else example_1()
    cases = {
        "no credentials": ({}, 401),
        "wrong password": (
            {"Authorization": encode_basic_auth("cpo", "nope"), "X-Tenant-Key": api.key},
            401,
        ),
        "no tenant key": ({"Authorization": encode_basic_auth("cpo", "pw")}, 401),
        "another tenant's key": (
            {"Authorization": encode_basic_auth("cpo", "pw"), "X-Tenant-Key": api.other_key},
            403,
        ),
        "a role without CP-API": (
            {"Authorization": encode_basic_auth("viewer", "pw"), "X-Tenant-Key": api.key},
            403,
        ),
    }
    for name, (headers, status) in cases.items():
        response = await api.post(method, body, headers)
        answer = await response.json()
        assert response.status == status, name
        assert answer["ErrorCode"] in {"unauthorized", "forbidden"} and answer["Message"], name
    assert await _stored(api, api.battery, SeriesType.ENERGY_LEVEL) is None


async def test_saves_are_logged(api):
    """DESIGN.md 2.6: "Every inbound and outbound message is logged (message table)"."""
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(T0, [1.0])))
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(T0, [-1.0])), status=400)
    async with api.db.read() as tx:
        logged = await recent_messages(tx, api.tenant)
    assert [(m.message_type, m.status) for m in logged] == [
        ("SaveTimeSeriesV1", "refused"),
        ("SaveTimeSeriesV1", "applied"),
    ]
    assert logged[0].detail and "TimeSeriesValueList[0].Value" in logged[0].detail


def test_the_printed_example_copies_are_intact():
    """The copies above are the printed text: the ellipsis of Example 1 and both values."""
    assert EXAMPLE_1_PRINTED.count(ELLIPSIS) == 1
    assert [v["Value"] for v in example_1()["TimeSeriesValueList"]] == [100.1234, 120.145234]
    full = example_1(full=True)["TimeSeriesValueList"]
    assert len(full) == 576 and full[-1]["ValueTime"] == "2018-02-27T23:45:00Z"
    assert json.loads(GET_EXAMPLE)["externalEntityReference"]["ExternalKey"] == "1234567675"
    assert json.loads(GET_LIST_EXAMPLE)["RetrieveAllTimeSeriesType"] is False


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00+05:00"])
async def test_dates_outside_the_stored_years_are_refused_not_crashed(api, moment):
    """Found by fuzzing: the end of Python's date range gave a 500."""
    body = {
        "EntityKey": {
            "SystemIdentifier": "System xyz",
            "ExternalEntityReferenceType": "Resource",
            "ExternalKey": "3",
        },
        "TimeSeriesType": "Consumption",
        "Resolution": "FifteenMinutes",
        "TimeSeriesValueList": [{"ValueTime": moment, "Value": 1.0}],
    }
    single = await api.post("SaveTimeSeriesV1", body)
    listed = await api.post("SaveTimeSeriesListForEntitiesV1", [body])
    assert single.status == 400 and "1900-8999" in await single.text()
    assert listed.status in (200, 400) and "1900-8999" in await listed.text()


@pytest.mark.parametrize(
    ("resolution", "zone", "start", "end"),
    [
        ("Year", "Pacific/Kiritimati", "8999-12-31T23:00:00Z", "8999-12-31T23:59:59Z"),
        ("Year", "America/Los_Angeles", "1900-01-01T00:00:00Z", "1900-01-02T00:00:00Z"),
        ("Week", "Etc/GMT+12", "1900-01-01T00:00:00Z", "1900-01-09T00:00:00Z"),
        ("Quarter", "Pacific/Apia", "2011-12-01T00:00:00Z", "2012-01-31T00:00:00Z"),
        ("Day", "America/Havana", "2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z"),
    ],
)
async def test_calendar_periods_at_the_edges_of_the_calendar_are_answered(
    api, resolution, zone, start, end
):
    """Periods that reach past the stored years, a zone 14 hours ahead, a skipped day (Samoa,
    2011-12-30) and a clock change at midnight (Havana) are answered, never a 500."""
    await api.call("SaveTimeSeriesV1", _series("Consumption", _values(T0, [1.0])))
    request = {
        **_request("Consumption", resolution=resolution, TimeZone=zone),
        "FromDateTime": start,
        "ToDateTime": end,
    }
    answer = await api.call("GetTimeSeriesV1", request)
    assert answer["TimeSeriesValueList"] == [] and answer["TimeZone"] == zone


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"ValueTime": "8999-12-01T00:00:00Z"}, "ValueTime"),  # its month ends in year 9000
        (  # local midnights in Oslo: 2026-03-01, then 2026-02-01
            {"ValueTime": "2026-02-28T23:00:00Z", "ValueToTime": "2026-01-31T23:00:00Z"},
            "ValueToTime",
        ),
        (  # 1900-02-01 to 8999-02-01 in Oslo
            {"ValueTime": "1900-01-31T23:00:00Z", "ValueToTime": "8999-01-31T23:00:00Z"},
            "ValueToTime",
        ),
    ],
)
async def test_calendar_saves_beyond_the_stored_years_or_the_bound_are_refused(api, value, field):
    """A month that ends in year 9000, a band that ends before it starts, or 7,099 years of
    days (2.6 million periods, above the 1,000,000 a save expands into) is a 400 naming the
    value, and nothing is stored."""
    body = _series("Consumption", [{**value, "Value": 1.0}], "Day", TimeZone="Europe/Oslo")
    if field == "ValueTime":
        body["Resolution"] = "Month"
        body.pop("TimeZone")
    answer = await api.call("SaveTimeSeriesV1", body, status=400)
    assert _fields(answer) == {f"TimeSeriesValueList[0].{field}"}
    assert await _stored(api, api.meter, SeriesType.CONSUMPTION) is None
