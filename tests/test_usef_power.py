"""The USEF API's meter data and prognoses over real HTTP (A.1, A.2, A.4): posting and
reading back in every version, belief timing per value, upsampling, sources, the checks
and their catalogue statuses, and one store shared with the CP-API.

Rules quoted are from shared/specs/wave2-requirements.md part A.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from adapter.app import create_app
from adapter.auth import encode_basic_auth
from adapter.keys import DB
from adapter.settings import Settings
from store.accounts import Role, add_account
from store.catalogue import AssetSubType, AssetType
from store.entities import create_entity
from store.references import ExternalRef, add_reference
from store.series import ensure_series, find_series
from store.series_types import SeriesType
from store.tables import sources, values
from store.tenants import add_tenant
from store.values import Point, write_values

CS1 = "ea1.2026-12.example.flexbridge:1:1"
CS2 = "ea1.2026-12.example.flexbridge:1:2"
PV = "ea1.2026-12.example.flexbridge:1:3"
HOURLY = "ea1.2026-12.example.flexbridge:1:4"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
Q = timedelta(minutes=15)
VERSIONS = ["v1", "v1_1", "v1_2", "v1_3", "v2_0"]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class Client:
    def __init__(self, http: Any, app: Any, tenant: Any, key: str) -> None:
        self.http, self.app, self.tenant, self.key = http, app, tenant, key
        self.tokens: dict[str, str] = {}
        self.entities: dict[str, Any] = {}

    async def login(self, email: str) -> str:
        if email not in self.tokens:
            answer = await self.http.post(
                "/api/requestAuthToken", json={"email": email, "password": "pw-123"}
            )
            self.tokens[email] = (await answer.json())["auth_token"]
        return self.tokens[email]

    async def post(self, path: str, body: dict[str, Any], who: str = "mdc@example.com") -> Any:
        headers = {"Authorization": await self.login(who)}
        answer = await self.http.post(f"/api{path}", json=body, headers=headers)
        return answer.status, await answer.json()

    async def get(self, path: str, fields: dict[str, Any], who: str = "mdc@example.com") -> Any:
        query = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        headers = {"Authorization": await self.login(who)}
        answer = await self.http.get(f"/api{path}", params=query, headers=headers)
        return answer.status, await answer.json()


def meter(values: list[Any], start: datetime = T0, duration: str = "PT1H", **more: Any) -> dict:  # type: ignore[type-arg]
    body = {
        "type": "PostMeterDataRequest",
        "connection": CS1,
        "values": values,
        "start": _iso(start),
        "duration": duration,
        "unit": "MW",
        "horizon": "PT0H",
    }
    return {**body, **more}


def query(kind: str = "GetMeterDataRequest", duration: str = "PT1H", **more: Any) -> dict:  # type: ignore[type-arg]
    return {
        "type": kind,
        "connection": CS1,
        "start": _iso(T0),
        "duration": duration,
        "unit": "MW",
        **more,
    }


@pytest.fixture
async def usef(db, database_url, aiohttp_client):  # type: ignore[no-untyped-def]
    app = create_app(replace(Settings(), database_url=database_url, admin_password="admin-pw"))
    http = await aiohttp_client(app)
    async with app[DB].transaction() as tx:
        grid, key = await add_tenant(tx, "grid")
        other, _ = await add_tenant(tx, "other")
        client = Client(http, app, grid, key)
        for name, roles in (("mdc", ["MDC"]), ("agg", ["Aggregator"]), ("dso", ["DSO"])):
            await add_account(
                tx,
                grid,
                name,
                Role.PARTICIPANT,
                "pw-123",
                email=f"{name}@example.com",
                usef_roles=roles,
            )
        await add_account(tx, grid, "pilot", Role.PARTICIPANT, "pw-123")
        await add_account(
            tx,
            other,
            "them",
            Role.PARTICIPANT,
            "pw-123",
            email="them@example.com",
            usef_roles=["MDC"],
        )
        for address, subtype, name in (
            (CS1, AssetSubType.CHARGING, "CS 1"),
            (CS2, AssetSubType.CHARGING, "CS 2"),
            (PV, AssetSubType.GENERATION, "PV"),
            (HOURLY, AssetSubType.LOAD, "Hourly"),
        ):
            entity = await create_entity(tx, grid, AssetType.RESOURCE, subtype, {"Name": name})
            await add_reference(tx, grid, entity, ExternalRef("usef", "ea1", address))
            client.entities[address] = entity
        await ensure_series(
            tx,
            grid,
            client.entities[HOURLY],
            SeriesType.NET_INSTANT_POWER,
            resolution=timedelta(hours=1),
        )
    return client


async def _stored(usef: Client, address: str) -> list[tuple[datetime, float, datetime, str]]:
    """(start, kW, belief, source) of every stored value of a connection's power."""
    async with usef.app[DB].read() as tx:
        series = await find_series(
            tx, usef.tenant, usef.entities[address], SeriesType.NET_INSTANT_POWER
        )
        assert series is not None
        rows = await tx.execute(
            select(values.c.start, values.c.value, values.c.belief, sources.c.name)
            .join(sources, sources.c.id == values.c.source_id)
            .where(values.c.series_id == series.id)
            .order_by(values.c.start, sources.c.name)
        )
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return [
            (epoch + timedelta(microseconds=s), v, epoch + timedelta(microseconds=b), n)
            for s, v, b, n in rows
        ]


@pytest.mark.parametrize("version", VERSIONS)
async def test_meter_data_posted_reads_back_in_mw_in_every_version(usef, version):
    """A.4 postMeterData / getMeterData: MW, average power per interval, consumption +;
    A.1: the timeseries shorthand, and values coarser than the asset's PT15M repeated."""
    status, body = await usef.post(f"/{version}/postMeterData", meter([1.5, -2.0]))
    assert (status, body["status"]) == (200, "PROCESSED"), body
    status, body = await usef.get(f"/{version}/getMeterData", query(duration="PT90M"))
    assert status == 200, body
    assert body["type"] == "GetMeterDataResponse" and body["connection"] == CS1
    assert body["values"] == [1.5, 1.5, -2.0, -2.0, None, None]  # 30-min values on PT15M
    assert (body["start"], body["duration"], body["unit"]) == (
        "2026-01-01T00:00:00Z",
        "PT1H30M",
        "MW",
    )
    stored = await _stored(usef, CS1)
    assert [v for _, v, _, _ in stored] == [1500.0, 1500.0, -2000.0, -2000.0]  # kW
    assert {n for *_, n in stored} == {"usef:mdc"}


async def test_v1_also_takes_get_meter_data_as_a_post(usef):
    """A.6: getMeterData is GET+POST in v1, GET only later."""
    await usef.post("/v1/postMeterData", meter([1, 2, 3, 4]))
    status, body = await usef.post("/v1/getMeterData", query())
    assert status == 200 and body["values"] == [1.0, 2.0, 3.0, 4.0]
    status, body = await usef.post("/v1_1/getMeterData", query())
    assert (status, body["status"]) == (405, "INVALID_METHOD")


async def test_a_rolling_horizon_gives_each_value_its_own_belief_time(usef):
    """A.2 v1-v1_3: "`R/H` = rolling: every value has horizon H"; belief = interval end - H."""
    await usef.post(
        "/v1_1/postPrognosis",
        {**meter([1, 2, 3, 4]), "type": "PostPrognosisRequest", "horizon": "R/PT6H"},
    )
    beliefs = [b for _, _, b, _ in await _stored(usef, CS1)]
    assert beliefs == [T0 + (n + 1) * Q - timedelta(hours=6) for n in range(4)]


async def test_a_plain_horizon_is_anchored_at_the_end_of_the_series(usef):
    """A.2 v1-v1_3: plain H: h_j = H - (series_end - slot_end_j), so every value was known
    H before the series' end."""
    await usef.post(
        "/v1_3/postPrognosis",
        {**meter([1, 2, 3, 4]), "type": "PostPrognosisRequest", "horizon": "PT6H"},
    )
    beliefs = {b for _, _, b, _ in await _stored(usef, CS1)}
    assert beliefs == {T0 + timedelta(hours=1) - timedelta(hours=6)}


async def test_v2_0_horizons_roll_and_prior_wins_when_earlier(usef):
    """A.2 v2_0: rolling per interval end; prior the belief time of the message; both
    given: the earliest belief time."""
    prognosis = {**meter([1, 2, 3, 4]), "type": "PostPrognosisRequest"}
    del prognosis["horizon"]
    prior = T0 - timedelta(hours=5, minutes=50)  # between the two rolling beliefs
    await usef.post("/v2_0/postPrognosis", {**prognosis, "horizon": "PT6H", "prior": _iso(prior)})
    beliefs = [b for _, _, b, _ in await _stored(usef, CS1)]
    rolling = [T0 + (n + 1) * Q - timedelta(hours=6) for n in range(4)]
    assert beliefs == [min(r, prior) for r in rolling]
    assert beliefs[0] < prior < beliefs[-1] or beliefs[-1] == prior


@pytest.mark.parametrize(
    ("version", "change", "message"),
    [
        (
            "v1_2",
            {"horizon": None},
            "Missing horizons are no longer accepted for API versions below v2.0.",
        ),
        ("v2_0", {"horizon": "R/PT0H"}, "R/P1D should be replaced by P1D."),
        ("v1", {"horizon": "PT1H"}, "Meter data must have a zero or negative horizon"),
        ("v1", {"horizon": "soon"}, "could not be parsed"),
        # A belief time past the year 9999 is no time (a 500 before this was tested).
        ("v1", {"horizon": "-P36500D", "start": "9990-01-01T00:00:00Z"}, "past the calendar"),
        (
            "v2_0",
            {"horizon": None, "prior": "2026-01-01T00:30:00Z"},
            "Meter data can only be observed after the fact.",
        ),
    ],
)
async def test_belief_timing_that_breaks_a_rule_is_invalid_horizon(usef, version, change, message):
    body = {k: v for k, v in {**meter([1, 2, 3, 4]), **change}.items() if v is not None}
    status, answer = await usef.post(f"/{version}/postMeterData", body)
    assert (status, answer["status"], answer["result"]) == (400, "INVALID_HORIZON", "Rejected")
    assert message in answer["message"]
    assert await _stored(usef, CS1) == [] if await _has_series(usef, CS1) else True


async def _has_series(usef: Client, address: str) -> bool:
    async with usef.app[DB].read() as tx:
        found = await find_series(
            tx, usef.tenant, usef.entities[address], SeriesType.NET_INSTANT_POWER
        )
    return found is not None


@pytest.mark.parametrize(
    ("change", "status_code"),
    [
        ({"unit": "kW"}, "INVALID_UNIT"),
        ({"unit": None}, "INVALID_UNIT"),
        ({"start": "2026-01-01T00:00:00"}, "INVALID_TIMEZONE"),
        ({"start": "yesterday"}, "INVALID_PERIOD"),
        ({"duration": "-PT1H"}, "INVALID_PERIOD"),
        ({"values": [1, None, 3, 4]}, "PTUS_INCOMPLETE"),
        ({"values": [1, "2", 3, 4]}, "PTUS_INCOMPLETE"),
        ({"values": [1, 2, 3, 4, 5, 6, 7, 8]}, "INVALID_RESOLUTION"),  # 7.5 minutes
        ({"connection": "CS 1"}, "INVALID_DOMAIN"),  # a plain name (A.8.6)
        ({"connection": "eal.2026-12.example.flexbridge:1:1"}, "INVALID_DOMAIN"),  # A.8.5
        ({"connection": "ea1.2026-12.example.flexbridge:9:9"}, "UNRECOGNIZED_ASSET"),
        ({"type": "PostPrognosisRequest"}, "INVALID_MESSAGE_TYPE"),
        ({"type": None}, "NO_MESSAGE_TYPE"),
    ],
)
async def test_a_bad_meter_data_post_names_its_status_and_writes_nothing(usef, change, status_code):
    body = {k: v for k, v in {**meter([1, 2, 3, 4]), **change}.items() if v is not None}
    status, answer = await usef.post("/v1_3/postMeterData", body)
    assert (status, answer["status"]) == (400, status_code), answer
    assert answer["type"] == "PostMeterDataResponse" and answer["result"] == "Rejected"
    assert not await _has_series(usef, CS1)


async def test_v1_takes_only_quarter_hours(usef):
    """A.1 "Notation for v1": start on the hour or a multiple of 15 min after it."""
    status, answer = await usef.post(
        "/v1/postMeterData", meter([1], start=T0 + timedelta(minutes=5), duration="PT15M")
    )
    assert (status, answer["status"]) == (400, "INVALID_PERIOD")
    status, _ = await usef.post(
        "/v1_1/postMeterData", meter([1], start=T0 + timedelta(minutes=5), duration="PT15M")
    )
    assert status == 400  # v1_1 takes it, but the asset's PT15M grid does not


async def test_assets_of_different_resolutions_in_one_request_are_invalid_resolution(usef):
    """A.1: "Requested assets do not have matching resolutions." """
    status, answer = await usef.post(
        "/v2_0/postMeterData",
        {
            **meter([1]),
            "connections": [CS1, HOURLY],
            "connection": None,
            "horizon": None,
            "prior": "2026-01-01T02:00:00Z",
        },
    )
    assert (status, answer["status"]) == (400, "INVALID_RESOLUTION")
    assert answer["message"] == "Requested assets do not have matching resolutions."


async def test_pure_producers_and_consumers_get_a_sign_check(usef):
    """A.1 Signs: + consumption, - production; a pure producer or consumer is checked."""
    status, answer = await usef.post("/v1/postMeterData", {**meter([1, 1, 1, 1]), "connection": PV})
    assert (status, answer["status"]) == (400, "POWER_VALUE_TOO_BIG")
    status, answer = await usef.post("/v1/postMeterData", {**meter([-1]), "connection": HOURLY})
    assert (status, answer["status"]) == (400, "POWER_VALUE_TOO_SMALL")
    status, _ = await usef.post("/v1/postMeterData", {**meter([-1, -1, -1, -1]), "connection": PV})
    assert status == 200


async def test_groups_post_several_connections_and_identical_answers_collapse(usef):
    """A.1 Groups: groups [{connection(s), value(s)}] inherit start, duration, unit; A.4:
    getMeterData answers groups, those with identical values collapsed."""
    body = meter([])
    del body["values"], body["connection"]
    body["groups"] = [
        {"connections": [CS1, CS2], "values": [1, 2, 3, 4]},
    ]
    status, answer = await usef.post("/v1_1/postMeterData", body)
    assert status == 200, answer
    ask = {k: v for k, v in query().items() if k != "connection"}
    status, answer = await usef.get("/v1_1/getMeterData", {**ask, "connections": [CS1, CS2]})
    assert status == 200, answer
    assert answer["groups"] == [{"connections": [CS1, CS2], "values": [1.0, 2.0, 3.0, 4.0]}]


async def test_meter_data_and_prognoses_of_one_sender_do_not_overwrite_each_other(usef):
    """Issue item 4: "Meter data and prognoses of one sender must not overwrite each other."
    (A.7: separate sources.)"""
    await usef.post(
        "/v1_1/postPrognosis",
        {**meter([9, 9, 9, 9]), "type": "PostPrognosisRequest", "horizon": "R/PT6H"},
    )
    await usef.post("/v1_1/postMeterData", meter([1, 2, 3, 4]))
    _, measured = await usef.get("/v1_1/getMeterData", query())
    _, forecast = await usef.get("/v1_1/getPrognosis", query("GetPrognosisRequest"))
    assert measured["values"] == [1.0, 2.0, 3.0, 4.0]
    assert forecast["values"] == [9.0, 9.0, 9.0, 9.0]


async def test_get_horizon_keeps_the_beliefs_known_that_long_before_the_fact(usef):
    """A.2 GET horizon: "recorded at least <h> before the fact", measured from the
    interval end."""
    prognosis = {**meter([5, 5, 5, 5]), "type": "PostPrognosisRequest"}
    await usef.post("/v1_1/postPrognosis", {**prognosis, "horizon": "R/PT6H"})
    await usef.post(
        "/v1_1/postPrognosis",
        {**prognosis, "values": [7, 7, 7, 7], "horizon": "R/PT1H"},
        who="agg@example.com",
    )
    ask = query("GetPrognosisRequest")
    _, latest = await usef.get("/v1_1/getPrognosis", ask)
    _, early = await usef.get("/v1_1/getPrognosis", {**ask, "horizon": "PT6H"})
    _, later = await usef.get("/v1_1/getPrognosis", {**ask, "horizon": "PT6H1M"})
    assert latest["values"] == [7.0] * 4  # the newest belief
    assert early["values"] == [5.0] * 4  # only the one known 6 h before each interval end
    assert later["values"] == [None] * 4


async def test_sources_are_usef_roles_or_account_ids_and_the_callers_own(usef):
    """A.1 Sources: "`source` holds user ids or USEF role names ... The requester's own data
    is always included. Unknown source -> INVALID_SOURCE."""
    await usef.post("/v1/postMeterData", meter([1, 1, 1, 1]))  # by the MDC
    await usef.post(
        "/v1/postMeterData",
        meter([2, 2, 2, 2], start=T0 + timedelta(hours=1)),
        who="agg@example.com",
    )
    ask = query(duration="PT2H")
    _, by_mdc = await usef.get("/v1/getMeterData", {**ask, "source": "MDC"}, who="dso@example.com")
    assert by_mdc["values"] == [1.0] * 4 + [None] * 4
    async with usef.app[DB].read() as tx:
        from store.accounts import get_account

        agg = await get_account(tx, usef.tenant, "agg")
    _, by_id = await usef.get(
        "/v1/getMeterData", {**ask, "sources": [agg.id]}, who="dso@example.com"
    )
    assert by_id["values"] == [None] * 4 + [2.0] * 4
    _, own = await usef.get("/v1/getMeterData", {**ask, "source": "DSO"}, who="agg@example.com")
    assert own["values"] == [None] * 4 + [2.0] * 4  # no DSO data, but its own
    status, answer = await usef.get("/v1/getMeterData", {**ask, "source": "Plumber"})
    assert (status, answer["status"]) == (400, "INVALID_SOURCE")
    assert answer["message"] == "The data source is not found: Plumber"


async def test_another_tenants_connection_is_unrecognized(usef):
    """A.8.7: an unknown EA on GET is UNRECOGNIZED_CONNECTION_GROUP, on POST
    UNRECOGNIZED_ASSET; another tenant's asset is indistinguishable from an unknown one."""
    status, answer = await usef.get("/v1_1/getMeterData", query(), who="them@example.com")
    assert (status, answer["status"]) == (400, "UNRECOGNIZED_CONNECTION_GROUP")
    status, answer = await usef.post("/v1_1/postMeterData", meter([1]), who="them@example.com")
    assert (status, answer["status"]) == (400, "UNRECOGNIZED_ASSET")


async def test_get_resolution_is_the_assets_or_a_multiple_of_it(usef):
    """A.1 Resolution (GET): in the asset's resolution, or a multiple of it (averaged)."""
    await usef.post("/v1/postMeterData", meter([1, 2, 3, 4]))
    _, hourly = await usef.get("/v1_1/getMeterData", {**query(), "resolution": "PT1H"})
    assert hourly["values"] == [2.5]
    status, answer = await usef.get("/v1_1/getMeterData", {**query(), "resolution": "PT20M"})
    assert (status, answer["status"]) == (400, "INVALID_RESOLUTION")
    assert (
        answer["message"]
        == "Only the following resolutions are supported: PT15M or a multiple hereof."
    )
    status, answer = await usef.get("/v1_1/getMeterData", {**query(), "resolution": "often"})
    assert (status, answer["status"]) == (400, "INVALID_RESOLUTION")


async def test_one_store_usef_meter_data_reads_back_through_the_cp_api_and_back(usef):
    """Issue item 8: a meter value posted here reads back through the CP-API, and a CP-API
    series reads back here."""
    await usef.post("/v1/postMeterData", meter([1, 2, 3, 4]))
    entity = usef.entities[CS1]
    headers = {"Authorization": encode_basic_auth("pilot", "pw-123"), "X-Tenant-Key": usef.key}
    answer = await usef.http.post(
        "/api/TimeSeries/GetTimeSeriesV1",
        json={
            "ExternalEntityReference": {"Key": str(entity.key)},
            "TimeSeriesType": "Net Instant Power",
            "FromDateTime": _iso(T0),
            "ToDateTime": _iso(T0 + timedelta(hours=1)),
        },
        headers=headers,
    )
    read = await answer.json()
    assert answer.status == 200, read
    assert [v["Value"] for v in read["TimeSeriesValueList"]] == [1000, 2000, 3000, 4000]
    async with usef.app[DB].transaction() as tx:
        series = await find_series(
            tx, usef.tenant, usef.entities[CS2], SeriesType.NET_INSTANT_POWER
        )
        series = series or await ensure_series(
            tx, usef.tenant, usef.entities[CS2], SeriesType.NET_INSTANT_POWER, resolution=Q
        )
        await write_values(
            tx, usef.tenant, series, [Point(T0, T0 + Q, 750.0)], source="cpapi:pilot", belief=T0 + Q
        )
    _, back = await usef.get("/v1/getMeterData", {**query(), "connection": CS2})
    assert back["values"] == [0.75, None, None, None]


async def test_a_repeat_is_merged_and_an_older_belief_changes_nothing(usef):
    """A.8.8: a duplicate re-post is 200 PROCESSED (an idempotent merge); of one source, the
    newer belief is kept."""
    prognosis = {**meter([7, 7, 7, 7]), "type": "PostPrognosisRequest", "horizon": "R/PT1H"}
    for _ in range(2):
        status, _ = await usef.post("/v1_1/postPrognosis", prognosis)
        assert status == 200
    older = {**prognosis, "values": [5, 5, 5, 5], "horizon": "R/PT6H"}
    assert (await usef.post("/v1_1/postPrognosis", older))[0] == 200
    _, answer = await usef.get("/v1_1/getPrognosis", query("GetPrognosisRequest"))
    assert answer["values"] == [7.0] * 4
    assert len(await _stored(usef, CS1)) == 4


async def test_a_connection_named_twice_in_one_post_is_refused(usef):
    """Which of the values would it mean? Refused whole, whether by one address twice or
    (here) in two groups; nothing is written."""
    body = {k: v for k, v in meter([]).items() if k not in ("values", "connection")}
    body["groups"] = [
        {"connection": CS1, "values": [1, 2, 3, 4]},
        {"connections": [CS2, CS1], "values": [5, 6, 7, 8]},
    ]
    status, answer = await usef.post("/v1_1/postMeterData", body)
    assert (status, answer["status"]) == (400, "INVALID_REQUEST")
    assert "named twice" in answer["message"]
    assert not await _has_series(usef, CS1)


async def test_a_coarser_read_over_a_gap_answers_null_not_nan(usef):
    """A.8.16: missing values are null, also where a coarser resolution averages nothing."""
    await usef.post("/v1/postMeterData", meter([1, 2, 3, 4]))
    status, answer = await usef.get(
        "/v1_1/getMeterData", {**query(duration="PT2H"), "resolution": "PT1H"}
    )
    assert status == 200, answer
    assert answer["values"][0] == 2.5 and answer["values"][1] is None
