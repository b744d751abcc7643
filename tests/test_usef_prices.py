"""The USEF API's postPriceData (A.4): a market's prices into its SpotPrice series, in the
market's own unit, with belief timing; the catalogue statuses it answers.

Rules quoted are from shared/specs/wave2-requirements.md part A.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapter.app import create_app
from adapter.keys import DB
from adapter.settings import Settings
from store.accounts import Role, add_account
from store.catalogue import AssetSubType, AssetType
from store.entities import create_entity
from store.series import find_series
from store.series_types import SeriesType
from store.tenants import add_tenant
from store.values import read_values

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EPEX = "ea1.2026-12.example.flexbridge:epex_da"
KPX = "ea1.2026-12.example.flexbridge:kpx_da"


def prices(values: list[Any], market: str = EPEX, **more: Any) -> dict[str, Any]:
    return {
        "type": "PostPriceDataRequest",
        "market": market,
        "values": values,
        "start": "2026-01-01T00:00:00Z",
        "duration": f"PT{len(values)}H",
        "unit": "EUR/MWh",
        "horizon": "PT35H",
        **more,
    }


@pytest.fixture
async def usef(db, database_url, aiohttp_client):  # type: ignore[no-untyped-def]
    app = create_app(replace(Settings(), database_url=database_url, admin_password="admin-pw"))
    http = await aiohttp_client(app)
    async with app[DB].transaction() as tx:
        tenant, _ = await add_tenant(tx, "grid")
        await add_account(
            tx,
            tenant,
            "sup",
            Role.PARTICIPANT,
            "pw-123",
            email="sup@example.com",
            usef_roles=["Supplier"],
        )
        markets = {
            name: await create_entity(
                tx, tenant, AssetType.AREA, AssetSubType.MARKET, {"Name": name, **props}
            )
            for name, props in (("epex_da", {}), ("kpx_da", {"PriceUnit": "KRW/kWh"}))
        }
    answer = await http.post(
        "/api/requestAuthToken", json={"email": "sup@example.com", "password": "pw-123"}
    )
    token = (await answer.json())["auth_token"]

    async def post(body: dict[str, Any], version: str = "v1_1") -> tuple[int, dict[str, Any]]:
        got = await http.post(
            f"/api/{version}/postPriceData", json=body, headers={"Authorization": token}
        )
        return got.status, await got.json()

    async def stored(name: str) -> Any:
        async with app[DB].read() as tx:
            series = await find_series(tx, tenant, markets[name], SeriesType.SPOT_PRICE)
            assert series is not None
            points = await read_values(tx, tenant, series, T0, T0 + timedelta(days=1))
        return series, points

    return post, stored


async def test_prices_are_kept_in_the_markets_unit_and_resolution(usef):
    """A.4 postPriceData: `market` (EA `...:<market_name>`), values, start, duration, unit
    equal to the market's; kept as the market's SpotPrice."""
    post, stored = usef
    status, body = await post(prices([52.5, 48.0, 51.25]))
    assert (status, body["type"], body["status"]) == (200, "PostPriceDataResponse", "PROCESSED")
    series, points = await stored("epex_da")
    assert str(series.unit) == "EUR/MWh" and series.resolution == timedelta(hours=1)
    assert [p.value for p in points] == [52.5, 48.0, 51.25]
    status, body = await post(prices([120.0], market=KPX, unit="KRW/kWh"))
    assert status == 200, body
    series, points = await stored("kpx_da")
    assert str(series.unit) == "KRW/kWh" and [p.value for p in points] == [120.0]


async def test_prices_coarser_than_the_market_are_repeated_onto_it(usef):
    post, stored = usef
    assert (await post(prices([50.0, 60.0])))[0] == 200  # hourly: the market's resolution
    body = prices([70.0], start="2026-01-01T02:00:00Z", duration="PT2H")
    assert (await post(body))[0] == 200
    _, points = await stored("epex_da")
    assert [p.value for p in points] == [50.0, 60.0, 70.0, 70.0]
    status, answer = await post(prices([1.0, 2.0], duration="PT1H"))  # half-hourly: finer
    assert (status, answer["status"]) == (400, "INVALID_RESOLUTION")


@pytest.mark.parametrize(
    ("change", "status_code", "message"),
    [
        ({"unit": "KRW/kWh"}, "INVALID_UNIT", "Prices of market epex_da are in EUR/MWh."),
        (
            {"unit": "EUR/kWh"},
            "INVALID_UNIT",
            "Data for price should be given in EUR/MWh or KRW/kWh.",
        ),
        ({"unit": None}, "INVALID_UNIT", "Data should be given a unit."),
        (
            {"market": "ea1.2026-12.example.flexbridge:nord_pool"},
            "UNRECOGNIZED_MARKET",
            "The requested market named nord_pool is not known.",
        ),
        ({"market": "epex_da"}, "INVALID_DOMAIN", None),
        ({"horizon": None}, "INVALID_HORIZON", "Missing horizons are no longer accepted"),
        ({"type": "PostMeterDataRequest"}, "INVALID_MESSAGE_TYPE", None),
    ],
)
async def test_a_bad_price_post_names_its_status(usef, change, status_code, message):
    post, _ = usef
    body = {k: v for k, v in {**prices([50.0]), **change}.items() if v is not None}
    status, answer = await post(body)
    assert (status, answer["status"], answer["result"]) == (400, status_code, "Rejected")
    if message is not None:
        assert message in answer["message"]


async def test_post_price_data_is_from_v1_1_on(usef):
    """A.6: postPriceData is v1_1 and later."""
    post, _ = usef
    status, answer = await post(prices([50.0]), version="v1")
    assert (status, answer["status"]) == (404, "UNRECOGNIZED_ENDPOINT")
    body = {k: v for k, v in prices([50.0]).items() if k != "horizon"}
    status, answer = await post({**body, "prior": "2025-12-30T12:00:00Z"}, version="v2_0")
    assert status == 200, answer  # v2_0: a prior instead of a horizon (A.2)
