"""OCMP 1.0 over real HTTP: flexbridge as the CMO, a second aiohttp app as the CPO."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp import web
from sqlalchemy import select

from adapter import peer_admin
from adapter.app import create_app
from adapter.auth import encode_basic_auth
from adapter.keys import BACKGROUND, DB, METRICS
from adapter.settings import Settings, load_settings
from hub.inbound import REFUSED_EXCERPT
from hub.peer_state import UnknownIds, state_of
from protocols.common.context import HUB
from protocols.ocmp.v1_0 import clock
from store.accounts import Role, add_account
from store.catalogue import AssetSubType, AssetType, ConnectorType
from store.entities import add_connector, create_entity, update_entity
from store.messages import recent_messages
from store.outbox import list_outbox
from store.peers import add_peer, find_peer
from store.references import ExternalRef, ProtocolId, add_reference, find
from store.series import ensure_series, find_series
from store.series_types import SeriesType
from store.tables import messages
from store.tenants import add_tenant
from store.values import Point, read_values, write_values

Q = timedelta(minutes=15)
WAIT = 10.0  # seconds any expected message may take; a failure, never a pause


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _next_quarter() -> datetime:
    now = datetime.now(UTC)
    return now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0) + Q


class Cpo:
    """The CPO's OCMP endpoint: records every message flexbridge sends it."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[tuple[str, dict[str, str], Any]] = asyncio.Queue()

    async def receive(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        await self.inbox.put((request.match_info["message"], dict(request.headers), body))
        return web.Response(status=204)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/cpo/ocmp/{message}", self.receive)
        return app

    async def next(self, message: str) -> tuple[dict[str, str], Any]:
        """The next message of this kind (others sent meanwhile are skipped)."""
        while True:
            name, headers, body = await asyncio.wait_for(self.inbox.get(), WAIT)
            if name == message:
                return headers, body


class Session:
    def __init__(self, client: Any, app: web.Application, tenant: Any, login: dict[str, str]):
        self.client, self.app, self.tenant, self.login = client, app, tenant, login

    async def post(self, message: str, body: Any, **headers: str) -> tuple[int, Any]:
        response = await self.client.post(
            f"/ocmp/1.0/{message}", json=body, headers={**self.login, **headers}
        )
        text = await response.read()
        return response.status, orjson.loads(text) if text else None


async def _setup(
    db, database_url, aiohttp_client, aiohttp_server, unknown_ids=UnknownIds.STRICT, **changes
):  # type: ignore[no-untyped-def]
    cpo = Cpo()
    cpo_server = await aiohttp_server(cpo.app())
    settings = replace(
        Settings(),
        database_url=database_url,
        admin_password="admin-pw",
        peer_clock_seconds=0.05,
        outbox_poll_seconds=0.05,
        resend_minutes=0.0,
    )
    app = create_app(replace(settings, **changes))
    client = await aiohttp_client(app)
    async with db.transaction() as tx:
        tenant, key = await add_tenant(tx, "pilot")
    await peer_admin.add(
        app[DB],
        peer_admin.NewPeer(
            "pilot", "ocmp", "greenflux", None, "gf", "gf-pw", unknown_ids=unknown_ids
        ),
    )
    async with db.transaction() as tx:
        site = await create_entity(
            tx, tenant, AssetType.AREA, AssetSubType.SITE, {"Name": "Site 1", "PhaseCount": 3}
        )
        await add_reference(tx, tenant, site, ProtocolId("ocmp", "greenflux", "group", "site-1"))
        charger = await create_entity(
            tx, tenant, AssetType.RESOURCE, AssetSubType.CHARGING, {"Name": "CP 1"}
        )
        await add_reference(tx, tenant, charger, ProtocolId("ocmp", "greenflux", "asset", "cp-1"))
        await add_connector(tx, tenant, site, charger, ConnectorType.SITE)
    login = {"Authorization": encode_basic_auth("gf", "gf-pw"), "X-Tenant-Key": key}
    session = Session(client, app, tenant, login)
    session.base = str(cpo_server.make_url("/cpo/ocmp"))  # type: ignore[attr-defined]
    session.site, session.charger = site, charger  # type: ignore[attr-defined]
    return session, cpo


@pytest.fixture
async def ocmp(db, database_url, aiohttp_client, aiohttp_server):  # type: ignore[no-untyped-def]
    return await _setup(db, database_url, aiohttp_client, aiohttp_server)


async def _handshake(session: Session, cpo: Cpo, interval: float = 60) -> None:
    body = {
        "base_url": session.base,  # type: ignore[attr-defined]
        "username": "cmo",
        "password": "cmo-pw",
        "heartbeat_interval": interval,
    }
    assert (await session.post("handshake", body)) == (204, None)


def _forecast(amps: list[float], start: datetime, group: str = "site-1") -> dict[str, Any]:
    return {
        "group_id": group,
        "forecasted_blocks": [
            {
                "capacity": a,
                "phase": "ALL",
                "unit": "A",
                "start_time": _iso(start + i * Q),
                "end_time": _iso(start + (i + 1) * Q),
            }
            for i, a in enumerate(amps)
        ],
    }


async def test_a_cpo_session_handshake_heartbeats_forecast_and_optimal_forecast(ocmp):
    session, cpo = ocmp
    await _handshake(session, cpo, interval=60)
    headers, ours = await cpo.next("handshake")
    assert ours == {
        "base_url": f"{session.app[HUB].public_url}/ocmp/1.0",
        "heartbeat_interval": 900.0,
    }
    # Basic authentication with the credentials from the CPO's handshake.
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"cmo:cmo-pw").decode()
    # Our first heartbeat is due at once; it vouches for three of the CPO's intervals.
    _, beat = await cpo.next("heartbeat")
    offline_at = datetime.fromisoformat(beat["offline_mode_at"])
    assert timedelta(seconds=170) < offline_at - datetime.now(UTC) <= timedelta(seconds=180)

    until = datetime.now(UTC) + timedelta(minutes=30)
    assert (await session.post("heartbeat", {"offline_mode_at": _iso(until)})) == (204, None)

    start = _next_quarter()
    assert (
        await session.post("update_group_maximum_capacity_forecast", _forecast([16.0] * 96, start))
    ) == (204, None)
    headers, optimal = await cpo.next("update_group_optimal_capacity_forecast")
    assert headers["X-Request-ID"]
    assert optimal["group_id"] == "site-1"
    blocks = optimal["forecasted_blocks"]
    assert len(blocks) == 96 and {b["unit"] for b in blocks} == {"A"}
    assert blocks[0]["start_time"] == _iso(start) and blocks[-1]["end_time"] == _iso(start + 96 * Q)
    # Nothing else behind the connection: the whole maximum is the CPO's (16 A -> 16 A).
    assert {b["capacity"] for b in blocks} == {16.0}
    async with session.app[DB].read() as tx:
        stored = await find_series(tx, session.tenant, session.site, SeriesType.MAX_CAPACITY)  # type: ignore[attr-defined]
        limits = await read_values(tx, session.tenant, stored, start, start + Q)
    assert limits[0].value == pytest.approx(16 * 230 * 3 / 1000)  # kW on the group


async def test_the_optimal_capacity_leaves_room_for_the_non_flexible_load(ocmp):
    """The headroom rule: MaxCapacity - non-flexible load + PV, in Amps per phase."""
    session, cpo = ocmp
    await _handshake(session, cpo)
    start = _next_quarter()
    async with session.app[DB].transaction() as tx:
        load = await ensure_series(
            tx, session.tenant, session.site, SeriesType.CONSUMPTION, resolution=Q
        )  # type: ignore[attr-defined]
        await write_values(
            tx, session.tenant, load, [Point(start, start + Q, 1.0)], source="forecast"
        )
        pv = await ensure_series(
            tx, session.tenant, session.site, SeriesType.PRODUCTION, resolution=Q
        )  # type: ignore[attr-defined]
        await write_values(
            tx, session.tenant, pv, [Point(start + Q, start + 2 * Q, 0.5)], source="forecast"
        )
    await session.post(
        "update_group_maximum_capacity_forecast", _forecast([16.0, 16.0, 1.0], start)
    )
    _, optimal = await cpo.next("update_group_optimal_capacity_forecast")
    capacities = [b["capacity"] for b in optimal["forecasted_blocks"]]
    kw = 16 * 0.69  # 16 A x 230 V x 3 phases
    assert capacities[0] == pytest.approx((kw - 4.0) / 0.69, abs=1e-3)  # 1 kWh in 15 min: 4 kW
    assert capacities[1] == pytest.approx((kw + 2.0) / 0.69, abs=1e-3)  # PV adds 2 kW
    assert capacities[2] == 1.0


@pytest.mark.parametrize("phase", ["ONE", "UNKNOWN"])
async def test_a_one_phase_16_a_limit_is_never_planned_above_3_68_kw(ocmp, phase):
    """The schema's "Amps per phase": 16 A on phase ONE limits that one phase, so a group
    (three-phase here) may draw 16 A x 230 V x PF 1 = 3.68 kW, not 11.04 kW; an UNKNOWN phase
    may be any one of them, and is read alike. The charger asks for 8 kW; the plan and the
    optimal forecast (on the same phase, in Amps of that phase) stay at 3.68 kW."""
    session, cpo = ocmp
    await _handshake(session, cpo)
    start = _next_quarter()
    db, charger = session.app[DB], session.charger  # type: ignore[attr-defined]
    async with db.transaction() as tx:
        await update_entity(tx, session.tenant, charger, {"InstalledMaxCapacity": 11.0})
        demand = await ensure_series(
            tx, session.tenant, charger, SeriesType.CONSUMPTION, resolution=Q
        )
        await write_values(
            tx,
            session.tenant,
            demand,
            [Point(start + i * Q, start + (i + 1) * Q, 2.0) for i in range(4)],
            source="forecast",
        )
    body = _forecast([16.0] * 4, start)
    for block in body["forecasted_blocks"]:
        block["phase"] = phase
    assert (await session.post("update_group_maximum_capacity_forecast", body)) == (204, None)
    _, optimal = await cpo.next("update_group_optimal_capacity_forecast")
    async with db.read() as tx:
        site = session.site  # type: ignore[attr-defined]
        limit = await find_series(tx, session.tenant, site, SeriesType.MAX_CAPACITY)
        limits = await read_values(tx, session.tenant, limit, start, start + 4 * Q)
        plan = await find_series(tx, session.tenant, site, SeriesType.OPTIMAL_CAPACITY_REGULATION)
        planned = await read_values(tx, session.tenant, plan, start, start + 4 * Q)
    assert [p.value for p in limits] == pytest.approx([3.68] * 4)
    assert len(planned) == 4 and all(p.value <= 3.68 + 1e-6 for p in planned)
    blocks = optimal["forecasted_blocks"]
    assert {b["phase"] for b in blocks} == {phase} and {b["unit"] for b in blocks} == {"A"}
    assert all(b["capacity"] * 230 / 1000 <= 3.68 + 1e-3 for b in blocks)
    assert [b["capacity"] for b in blocks] == pytest.approx([16.0] * 4, abs=1e-3)


async def test_blocks_on_several_phases_are_answered_on_all_and_the_least_holds(ocmp):
    """Blocks of one quarter hour on two phases (per-phase limits): the group's capacity is
    the least of them; the answer names ALL, in Amps per phase of the group's three phases,
    which is never more power than planned however the CPO reads it."""
    session, cpo = ocmp
    await _handshake(session, cpo)
    start = _next_quarter()
    body = _forecast([16.0, 10.0, 32.0], start)
    blocks = body["forecasted_blocks"]
    blocks[0]["phase"], blocks[1]["phase"], blocks[2]["phase"] = "ONE", "TWO", "ALL"
    blocks[1]["start_time"], blocks[1]["end_time"] = blocks[0]["start_time"], blocks[0]["end_time"]
    assert (await session.post("update_group_maximum_capacity_forecast", body)) == (204, None)
    _, optimal = await cpo.next("update_group_optimal_capacity_forecast")
    async with session.app[DB].read() as tx:
        site = session.site  # type: ignore[attr-defined]
        limit = await find_series(tx, session.tenant, site, SeriesType.MAX_CAPACITY)
        limits = await read_values(tx, session.tenant, limit, start, start + 3 * Q)
    # 10 A on one phase (2.3 kW) at the first quarter; nothing sent for the second; 32 A x 3.
    assert [(p.start, p.value) for p in limits] == [
        (start, pytest.approx(2.3)),
        (start + 2 * Q, pytest.approx(32 * 0.69)),
    ]
    answered = optimal["forecasted_blocks"]
    assert {b["phase"] for b in answered} == {"ALL"}
    assert answered[0]["capacity"] == pytest.approx(2.3 / 0.69, abs=1e-3)


async def test_a_price_change_saved_through_the_cpapi_re_sends_the_optimal_forecast(ocmp):
    """The plan reads the group's prices, so new prices make the sent plan stale: the clock
    re-sends it, whichever protocol saved them (hub.replan)."""
    session, cpo = ocmp
    await _handshake(session, cpo)
    start = _next_quarter()
    await session.post("update_group_maximum_capacity_forecast", _forecast([16.0] * 4, start))
    await cpo.next("update_group_optimal_capacity_forecast")
    async with session.app[DB].transaction() as tx:
        await add_account(tx, session.tenant, "trader", Role.PARTICIPANT, "trader-pw")
    prices = {
        "EntityKey": {"Key": str(session.site.key)},  # type: ignore[attr-defined]
        "TimeSeriesType": "SpotPrice",
        "Resolution": "FifteenMinutes",
        "TimeSeriesValueList": [
            {"ValueTime": _iso(start + i * Q), "Value": 40.0 + i} for i in range(4)
        ],
    }
    headers = {
        "Authorization": encode_basic_auth("trader", "trader-pw"),
        "X-Tenant-Key": session.login["X-Tenant-Key"],
    }
    response = await session.client.post(
        "/api/TimeSeries/SaveTimeSeriesV1", json=prices, headers=headers
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["Success"] is True
    async with session.app[DB].read() as tx:
        peer = await find_peer(tx, session.tenant, "ocmp", "greenflux")
    assert peer is not None and state_of(peer).groups["site-1"].dirty is True
    _, again = await cpo.next("update_group_optimal_capacity_forecast")
    assert again["group_id"] == "site-1"


async def _optimal_forecasts_queued(session: Session) -> int:
    async with session.app[DB].read() as tx:
        queued = await list_outbox(tx, session.tenant, limit=1000)
    return sum(m.message_type == "UpdateGroupOptimalCapacityForecast" for m in queued)


async def _forecast_for_a_group_with_a_charger(
    session: Session, cpo: Cpo, rated: float | None
) -> None:
    await _handshake(session, cpo)
    start = _next_quarter()
    if rated is not None:  # a charger without a rated power is nothing the planner steers
        async with session.app[DB].transaction() as tx:
            charger = session.charger  # type: ignore[attr-defined]
            await update_entity(tx, session.tenant, charger, {"InstalledMaxCapacity": rated})
    body = _forecast([16.0] * 8, start)
    assert (await session.post("update_group_maximum_capacity_forecast", body)) == (204, None)
    await cpo.next("update_group_optimal_capacity_forecast")


async def test_a_group_with_flexible_assets_is_re_planned_on_the_schedule(ocmp):
    """Section 7: the optimal forecast "will generally be triggered on a schedule or event
    such as receipt of an UpdateGroupMaximumCapacityForecast": a group with a charger is
    re-planned and re-sent once its last optimum is `replan_minutes` (15) old, with no new
    input, and not before. The clock is driven with chosen times."""
    session, cpo = ocmp
    await _forecast_for_a_group_with_a_charger(session, cpo, 11.0)
    db, hub = session.app[DB], session.app[HUB]
    now = datetime.now(UTC)
    await clock.tick(db, hub, now + timedelta(minutes=14))
    await session.app[BACKGROUND].planner.drain()  # the plans it asked for
    assert await _optimal_forecasts_queued(session) == 1
    await clock.tick(db, hub, now + timedelta(minutes=15, seconds=1))
    await session.app[BACKGROUND].planner.drain()  # the plans it asked for
    assert await _optimal_forecasts_queued(session) == 2
    _, again = await cpo.next("update_group_optimal_capacity_forecast")
    assert again["group_id"] == "site-1" and len(again["forecasted_blocks"]) == 96


async def test_a_group_without_flexible_assets_is_not_re_planned_on_the_schedule(ocmp):
    """Only the headroom is planned there, and it changes only with the group's inputs (a
    charger without a rated power is nothing the planner can steer)."""
    session, cpo = ocmp
    await _forecast_for_a_group_with_a_charger(session, cpo, None)
    await clock.tick(session.app[DB], session.app[HUB], datetime.now(UTC) + timedelta(hours=1))
    await session.app[BACKGROUND].planner.drain()  # the plans it asked for
    assert await _optimal_forecasts_queued(session) == 1


async def test_replan_minutes_sets_the_schedule_and_0_turns_it_off(
    db, database_url, aiohttp_client, aiohttp_server
):
    session, cpo = await _setup(
        db, database_url, aiohttp_client, aiohttp_server, replan_minutes=0.0
    )
    assert session.app[HUB].replan_every is None
    await _forecast_for_a_group_with_a_charger(session, cpo, 11.0)
    await clock.tick(session.app[DB], session.app[HUB], datetime.now(UTC) + timedelta(days=1))
    await session.app[BACKGROUND].planner.drain()  # the plans it asked for
    assert await _optimal_forecasts_queued(session) == 1
    assert load_settings(environ={"FLEXBRIDGE_REPLAN_MINUTES": "30"}).replan_minutes == 30.0


async def test_metering_never_replaces_consumption_a_peer_supplied(ocmp):
    """One Table 2 rule for every protocol: a Consumption calculated from meter readings does
    not replace one supplied for the same block ("if supplied", "Alternatively")."""
    session, _ = ocmp
    t0 = _next_quarter() - 8 * Q
    async with session.app[DB].transaction() as tx:
        energy = await ensure_series(
            tx,
            session.tenant,
            session.charger,
            SeriesType.CONSUMPTION,
            resolution=Q,  # type: ignore[attr-defined]
        )
        await write_values(tx, session.tenant, energy, [Point(t0, t0 + Q, 9.0)], source="cpo")
    readings = {
        "asset_id": "cp-1",
        "meter_values": [
            {"value": 100.0 + 2.5 * i, "unit": "KWH", "measure_time": _iso(t0 + i * Q)}
            for i in range(4)
        ],
    }
    assert (await session.post("update_detailed_metering_data", readings)) == (204, None)
    async with session.app[DB].read() as tx:
        stored = await read_values(tx, session.tenant, energy, t0, t0 + 3 * Q)
    assert [p.value for p in stored] == [9.0, 2.5, 2.5]


async def test_metering_is_stored_as_readings_and_re_plans_the_group(ocmp):
    session, cpo = ocmp
    await _handshake(session, cpo)
    start = _next_quarter()
    await session.post("update_group_maximum_capacity_forecast", _forecast([16.0] * 4, start))
    await cpo.next("update_group_optimal_capacity_forecast")
    t0 = start - 4 * Q
    readings = {
        "asset_id": "cp-1",
        "meter_values": [
            {"value": 100.0 + 2.5 * i, "unit": "KWH", "measure_time": _iso(t0 + i * Q)}
            for i in range(4)
        ],
    }
    assert (await session.post("update_detailed_metering_data", readings)) == (204, None)
    async with session.app[DB].read() as tx:
        energy = await find_series(tx, session.tenant, session.charger, SeriesType.CONSUMPTION)  # type: ignore[attr-defined]
        derived = await read_values(tx, session.tenant, energy, t0, t0 + 3 * Q)
    assert [p.value for p in derived] == [2.5, 2.5, 2.5]
    # New inputs: the clock re-sends the group's optimal forecast (resend_minutes = 0 here).
    _, again = await cpo.next("update_group_optimal_capacity_forecast")
    assert again["group_id"] == "site-1"


async def test_export_register_readings_are_stored_as_production(ocmp):
    """Section 7: UpdateDetailedMeteringData "contains various types of meter values": a
    value with direction EXPORT is the asset's production register (ProductionMeterReading,
    its interval energy Production); IMPORT, or no direction as before, is consumption."""
    session, _ = ocmp
    t0 = _next_quarter() - 8 * Q
    async with session.app[DB].transaction() as tx:
        pv = await create_entity(
            tx, session.tenant, AssetType.RESOURCE, AssetSubType.GENERATION, {"Name": "PV 1"}
        )
        await add_reference(
            tx, session.tenant, pv, ProtocolId("ocmp", "greenflux", "asset", "pv-1")
        )
        await add_connector(tx, session.tenant, session.site, pv, ConnectorType.SITE)  # type: ignore[attr-defined]
    produced = {
        "asset_id": "pv-1",
        "meter_values": [
            {
                "value": 50.0 + 1.5 * i,
                "unit": "KWH",
                "measure_time": _iso(t0 + i * Q),
                "direction": "EXPORT",
            }
            for i in range(4)
        ],
    }
    assert (await session.post("update_detailed_metering_data", produced)) == (204, None)
    async with session.app[DB].read() as tx:
        register = await find_series(tx, session.tenant, pv, SeriesType.PRODUCTION_METER_READING)
        energy = await find_series(tx, session.tenant, pv, SeriesType.PRODUCTION)
        as_consumption = await find_series(
            tx, session.tenant, pv, SeriesType.CONSUMPTION_METER_READING
        )
        readings = await read_values(tx, session.tenant, register, t0, t0 + 4 * Q)
        derived = await read_values(tx, session.tenant, energy, t0, t0 + 3 * Q)
    assert as_consumption is None
    assert [p.value for p in readings] == [50.0, 51.5, 53.0, 54.5]
    assert [p.value for p in derived] == [1.5, 1.5, 1.5]


async def test_one_message_may_carry_both_registers_of_an_asset(ocmp):
    """A charger that also feeds back (V2G) reads two registers; an absent direction is
    IMPORT, so messages written before the field existed mean what they meant."""
    session, _ = ocmp
    t0 = _next_quarter() - 8 * Q
    values: list[dict[str, Any]] = []
    for i in range(3):
        at = _iso(t0 + i * Q)
        values.append({"value": 100.0 + 2.0 * i, "unit": "KWH", "measure_time": at})
        values.append(
            {"value": 10.0 + 0.5 * i, "unit": "KWH", "measure_time": at, "direction": "EXPORT"}
        )
    body = {"asset_id": "cp-1", "meter_values": values}
    assert (await session.post("update_detailed_metering_data", body)) == (204, None)
    charger = session.charger  # type: ignore[attr-defined]
    async with session.app[DB].read() as tx:
        consumed = await find_series(tx, session.tenant, charger, SeriesType.CONSUMPTION)
        produced = await find_series(tx, session.tenant, charger, SeriesType.PRODUCTION)
        imports = await read_values(tx, session.tenant, consumed, t0, t0 + 2 * Q)
        exports = await read_values(tx, session.tenant, produced, t0, t0 + 2 * Q)
    assert [p.value for p in imports] == [2.0, 2.0]
    assert [p.value for p in exports] == [0.5, 0.5]


async def test_a_direction_the_rendition_does_not_know_drops_that_meter_value(ocmp):
    session, _ = ocmp
    t0 = _next_quarter() - 8 * Q
    body = {
        "asset_id": "cp-1",
        "meter_values": [
            {"value": 1.0, "unit": "KWH", "measure_time": _iso(t0)},
            {"value": 2.0, "unit": "KWH", "measure_time": _iso(t0 + Q), "direction": "NET"},
        ],
    }
    status, reply = await session.post("update_detailed_metering_data", body)
    assert status == 400 and reply["accepted"] == 1
    assert [e["path"] for e in reply["errors"]] == ["meter_values[1].direction"]


async def test_a_peer_whose_offline_mode_at_passes_is_marked_offline(ocmp):
    session, cpo = ocmp
    await _handshake(session, cpo)
    until = datetime.now(UTC) + timedelta(minutes=5)
    await session.post("heartbeat", {"offline_mode_at": _iso(until)})
    db, hub = session.app[DB], session.app[HUB]
    await clock.tick(db, hub, until - timedelta(seconds=1))
    await session.app[BACKGROUND].planner.drain()  # the plans it asked for
    async with db.read() as tx:
        assert state_of(await find_peer(tx, session.tenant, "ocmp", "greenflux")).online is True
    await clock.tick(db, hub, until + timedelta(seconds=1))
    await session.app[BACKGROUND].planner.drain()  # the plans it asked for
    async with db.read() as tx:
        peer = await find_peer(tx, session.tenant, "ocmp", "greenflux")
        logged = await recent_messages(tx, session.tenant)
    assert state_of(peer).online is False
    assert any(m.message_type == "PeerOffline" and m.status == "offline" for m in logged)
    listing = await peer_admin.describe(db, "pilot")
    assert "greenflux" in listing and "handshaken,offline" in listing
    metrics = session.app[METRICS].render().decode()
    assert 'flexbridge_peers{protocol="ocmp",state="offline"}' in metrics


async def test_one_reply_lists_every_error_and_the_good_blocks_are_kept(ocmp):
    """Section 7: "The response contains a list of errors as some data may be ok whilst
    other data is erroneous"."""
    session, _cpo = ocmp
    start = _next_quarter()
    body = _forecast([10.0, -1.0, 12.0, 13.0], start)
    body["forecasted_blocks"][2]["start_time"] = _iso(start + 2 * Q + timedelta(minutes=5))
    body["forecasted_blocks"][3]["unit"] = "kW"
    status, reply = await session.post("update_group_maximum_capacity_forecast", body)
    assert status == 400 and reply["accepted"] == 1
    paths = {e["path"] for e in reply["errors"]}
    assert paths == {
        "forecasted_blocks[1].capacity",
        "forecasted_blocks[2].start_time",
        "forecasted_blocks[3].unit",
    }
    assert all(e["code"] == "invalid" and e["message"] for e in reply["errors"])
    async with session.app[DB].read() as tx:
        stored = await find_series(tx, session.tenant, session.site, SeriesType.MAX_CAPACITY)  # type: ignore[attr-defined]
        kept = await read_values(tx, session.tenant, stored, start, start + 4 * Q)
    assert [p.start for p in kept] == [start]


async def test_an_unknown_group_is_an_error_under_the_strict_policy(ocmp):
    session, _ = ocmp
    status, reply = await session.post(
        "update_group_maximum_capacity_forecast", _forecast([10.0], _next_quarter(), "nowhere")
    )
    assert status == 400 and reply["errors"][0]["path"] == "group_id"
    assert "nowhere" in reply["errors"][0]["message"]


@pytest.mark.parametrize(
    ("group_id", "named"),
    [("nowhere", "unknown group 'nowhere'"), (None, "'group_id' is a required property")],
)
async def test_a_missing_or_unknown_group_is_listed_with_every_block_error_and_nothing_is_kept(
    ocmp, group_id, named
):
    """Section 7: "A typical error may relate to an assetId not being found in the IIP ...
    The response contains a list of errors as some data may be ok whilst other data is
    erroneous": the group's error does not hide the blocks' errors; with no group to keep
    them on, no block is kept."""
    session, _ = ocmp
    start = _next_quarter()
    body = _forecast([10.0, -1.0, 12.0], start, group_id or "")
    if group_id is None:
        del body["group_id"]
    body["forecasted_blocks"][2]["start_time"] = _iso(start + 2 * Q + timedelta(minutes=5))
    status, reply = await session.post(
        "update_group_maximum_capacity_forecast", body, **{"X-Request-ID": "broken-1"}
    )
    assert status == 400 and reply["accepted"] == 0
    assert [e["path"] for e in reply["errors"]] == [
        "group_id",
        "forecasted_blocks[1].capacity",
        "forecasted_blocks[2].start_time",
    ]
    assert named in reply["errors"][0]["message"]
    async with session.app[DB].read() as tx:
        logged = await recent_messages(tx, session.tenant)
        queued = await list_outbox(tx, session.tenant)
    # Nothing kept: no message claimed (a corrected message may reuse its id), nothing sent.
    assert not [m for m in logged if m.message_id == "broken-1"] and not queued


@pytest.mark.parametrize(
    ("asset_id", "named"),
    [("nowhere", "unknown asset 'nowhere'"), (None, "'asset_id' is a required property")],
)
async def test_a_missing_or_unknown_asset_is_listed_with_every_meter_value_error(
    ocmp, asset_id, named
):
    """Section 7: "A typical error may relate to an assetId not being found in the IIP": the
    asset's error and every meter value's error in one reply; nothing is stored."""
    session, _ = ocmp
    t0 = _next_quarter() - 8 * Q
    body: dict[str, Any] = {
        "meter_values": [
            {"value": 10.0, "unit": "KWH", "measure_time": _iso(t0)},
            {"value": -1.0, "unit": "KWH", "measure_time": _iso(t0 + Q)},
            {"value": 11.0, "unit": "KWH", "measure_time": "2026-03-01T10:00:00"},
        ]
    }
    if asset_id is not None:
        body["asset_id"] = asset_id
    status, reply = await session.post("update_detailed_metering_data", body)
    assert status == 400 and reply["accepted"] == 0
    assert [e["path"] for e in reply["errors"]] == [
        "asset_id",
        "meter_values[1].value",
        "meter_values[2].measure_time",
    ]
    assert named in reply["errors"][0]["message"]
    charger = session.charger  # type: ignore[attr-defined]
    async with session.app[DB].read() as tx:
        readings = await find_series(
            tx, session.tenant, charger, SeriesType.CONSUMPTION_METER_READING
        )
    assert readings is None


async def test_an_unknown_group_becomes_a_site_under_the_lenient_policy(
    db, database_url, aiohttp_client, aiohttp_server
):
    session, _ = await _setup(db, database_url, aiohttp_client, aiohttp_server, UnknownIds.LENIENT)
    status, _ = await session.post(
        "update_group_maximum_capacity_forecast", _forecast([10.0], _next_quarter(), "new-site")
    )
    assert status == 204
    async with session.app[DB].read() as tx:
        made = await find(tx, session.tenant, ProtocolId("ocmp", "greenflux", "group", "new-site"))
    assert made is not None and made.asset_subtype is AssetSubType.SITE


async def test_a_repeated_request_id_is_applied_once(ocmp):
    session, cpo = ocmp
    await _handshake(session, cpo)
    body = _forecast([16.0], _next_quarter())
    for _ in range(2):
        assert (
            await session.post(
                "update_group_maximum_capacity_forecast", body, **{"X-Request-ID": "m-1"}
            )
        )[0] == 204
    await cpo.next("update_group_optimal_capacity_forecast")
    async with session.app[DB].read() as tx:
        logged = await recent_messages(tx, session.tenant)
    applied = [m for m in logged if m.message_id == "m-1"]
    assert len(applied) == 1


@pytest.mark.parametrize(
    ("login", "status"),
    [
        ({"Authorization": encode_basic_auth("gf", "wrong")}, 401),
        ({}, 401),
    ],
)
async def test_bad_credentials_are_refused_in_the_ocmp_error_shape(ocmp, login, status):
    session, _ = ocmp
    response = await session.client.post(
        "/ocmp/1.0/heartbeat", json={"offline_mode_at": _iso(datetime.now(UTC))}, headers=login
    )
    assert response.status == status
    assert (await response.json())["errors"][0]["code"]


async def test_a_cpo_sending_only_basic_authentication_is_served(ocmp):
    """Section 7: "Communication will be over HTTPS using basic authentication." The account
    names its tenant, so a CPO that sends no tenant key is served, and on that tenant."""
    session, _ = ocmp
    basic = {"Authorization": session.login["Authorization"]}
    until = _iso(datetime.now(UTC) + timedelta(minutes=30))
    beat = await session.client.post(
        "/ocmp/1.0/heartbeat", json={"offline_mode_at": until}, headers=basic
    )
    assert beat.status == 204
    start = _next_quarter()
    forecast = await session.client.post(
        "/ocmp/1.0/update_group_maximum_capacity_forecast",
        json=_forecast([16.0], start),
        headers=basic,
    )
    assert forecast.status == 204, await forecast.text()
    async with session.app[DB].read() as tx:
        site = session.site  # type: ignore[attr-defined]
        stored = await find_series(tx, session.tenant, site, SeriesType.MAX_CAPACITY)
    assert stored is not None


async def test_a_tenant_key_sent_to_ocmp_is_still_checked(ocmp):
    """The tenant key is optional on OCMP, not ignored: one that is not the account's tenant's
    is refused (403), also right after the same login was served (and cached) without one."""
    session, _ = ocmp
    async with session.app[DB].transaction() as tx:
        _, other_key = await add_tenant(tx, "other")
    basic = session.login["Authorization"]
    body = {"offline_mode_at": _iso(datetime.now(UTC) + timedelta(minutes=30))}

    async def status(**headers: str) -> int:
        response = await session.client.post(
            "/ocmp/1.0/heartbeat", json=body, headers={"Authorization": basic, **headers}
        )
        if response.status != 204:
            assert (await response.json())["errors"][0]["code"]
        return response.status

    assert await status() == 204
    assert await status(**{"X-Tenant-Key": other_key}) == 403
    assert await status(**{"X-Tenant-Key": "not-a-key"}) == 403
    assert await status(**{"X-Tenant-Key": session.login["X-Tenant-Key"]}) == 204
    wrong_password = encode_basic_auth("gf", "wrong")
    assert await status(Authorization=wrong_password) == 401  # the cached login is no pass


async def test_the_cpapi_still_requires_the_tenant_key(ocmp):
    """CP-API 4.1.3.4: "The tenant Key must be provided in the header to each API call.":
    the same login that OCMP serves without one is refused there."""
    session, _ = ocmp
    async with session.app[DB].transaction() as tx:
        await add_account(tx, session.tenant, "trader", Role.PARTICIPANT, "trader-pw")
    response = await session.client.post(
        "/api/Asset/GetAssetV1List",
        json={},
        headers={"Authorization": encode_basic_auth("trader", "trader-pw")},
    )
    assert response.status == 401


async def test_a_non_peer_account_may_not_speak_ocmp(ocmp):
    session, _ = ocmp
    admin = {**session.login, "Authorization": encode_basic_auth("admin", "admin-pw")}
    response = await session.client.post(
        "/ocmp/1.0/heartbeat", json={"offline_mode_at": _iso(datetime.now(UTC))}, headers=admin
    )
    assert response.status == 403


async def test_a_group_named_by_a_cp_api_cross_reference_of_the_peers_system_is_found(ocmp):
    """The operator maps CPO ids with ordinary cross-references (system "ocmp:<peer>")."""
    session, _ = ocmp
    async with session.app[DB].transaction() as tx:
        zone = await create_entity(
            tx, session.tenant, AssetType.AREA, AssetSubType.ZONE, {"Name": "Zone 2"}
        )
        await add_reference(tx, session.tenant, zone, ExternalRef("ocmp:greenflux", "Zone", "z-2"))
    start = _next_quarter()
    status, _ = await session.post(
        "update_group_maximum_capacity_forecast", _forecast([8.0], start, "z-2")
    )
    assert status == 204
    async with session.app[DB].read() as tx:
        stored = await find_series(tx, session.tenant, zone, SeriesType.MAX_CAPACITY)
    assert stored is not None


async def test_a_group_with_chargers_is_planned_by_the_optimizer_and_the_plan_goes_out(ocmp):
    """Issue 5 wiring: the group's charger and its demand forecast go to the optimizer (in
    its process pool); the optimal capacity is the planned charging, the setpoints and the
    flexibility are stored with source optimizer, and the CP-API endpoint receives them."""
    session, cpo = ocmp
    await _handshake(session, cpo)
    start = _next_quarter()
    db = session.app[DB]
    async with db.transaction() as tx:
        await update_entity(tx, session.tenant, session.charger, {"InstalledMaxCapacity": 11.0})  # type: ignore[attr-defined]
        demand = await ensure_series(
            tx, session.tenant, session.charger, SeriesType.CONSUMPTION, resolution=Q
        )  # type: ignore[attr-defined]
        await write_values(
            tx, session.tenant, demand, [Point(start, start + Q, 2.0)], source="forecast"
        )
        endpoint = await add_peer(
            tx, session.tenant, protocol="cpapi", name="endpoint", base_url="http://127.0.0.1:9/iip"
        )
    await session.post("update_group_maximum_capacity_forecast", _forecast([32.0, 32.0], start))
    _, optimal = await cpo.next("update_group_optimal_capacity_forecast")
    capacities = [b["capacity"] for b in optimal["forecasted_blocks"]]
    assert capacities == pytest.approx([8.0 / 0.69, 0.0], abs=1e-3)  # 2 kWh in 15 min = 8 kW
    async with db.read() as tx:
        charger = session.charger  # type: ignore[attr-defined]
        setpoints = await find_series(
            tx, session.tenant, charger, SeriesType.CHARGING_POWER_REGULATION
        )
        planned = await read_values(
            tx, session.tenant, setpoints, start, start + 2 * Q, sources=["optimizer"]
        )
        up = await find_series(tx, session.tenant, session.site, SeriesType.FLEXIBILITY_UP)  # type: ignore[attr-defined]
        headroom = await read_values(tx, session.tenant, up, start, start + 2 * Q)
        queued = await list_outbox(tx, session.tenant)
    assert [p.value for p in planned] == pytest.approx([8.0, 0.0])
    assert headroom[0].value == pytest.approx(32 * 0.69 - 8.0)
    sent = {m.message_type for m in queued if m.peer_id == endpoint.id}
    assert {"ControlRegulationMessage", "FlexibilityOfferMessage"} <= sent


async def test_readings_off_the_quarter_hour_are_stored_and_derive_energy(ocmp):
    session, _ = ocmp
    t0 = _next_quarter() - 8 * Q
    times = [t0 + timedelta(minutes=7), t0 + timedelta(minutes=37)]
    readings = {
        "asset_id": "cp-1",
        "meter_values": [
            {"value": 100.0 + 3.0 * i, "unit": "KWH", "measure_time": _iso(t)}
            for i, t in enumerate(times)
        ],
    }
    assert (await session.post("update_detailed_metering_data", readings)) == (204, None)
    async with session.app[DB].read() as tx:
        energy = await find_series(tx, session.tenant, session.charger, SeriesType.CONSUMPTION)  # type: ignore[attr-defined]
        derived = await read_values(tx, session.tenant, energy, t0, t0 + 4 * Q)
    # 3 kWh over 30 minutes: the quarter hour between the readings gets 1.5 kWh.
    assert [(p.start, p.value) for p in derived] == [(t0 + Q, pytest.approx(1.5))]


def test_the_heartbeat_ledger_skips_only_small_moves_within_a_second(monkeypatch):
    from hub import peer_link

    clock = [10.0]
    monkeypatch.setattr(peer_link.time, "monotonic", lambda: clock[0])
    ledger = peer_link.HeartbeatLedger()
    at = datetime(2026, 3, 1, tzinfo=UTC)
    assert not ledger.covers(7, at)  # nothing written yet
    ledger.note(7, at)
    assert ledger.covers(7, at + timedelta(milliseconds=500))
    assert not ledger.covers(7, at + timedelta(seconds=2))  # moves it too far: written
    assert not ledger.covers(7, at - timedelta(seconds=1))  # goes back: written
    assert not ledger.covers(8, at)  # another peer
    clock[0] += 1.5
    assert not ledger.covers(7, at)  # the second has passed


# ---------------------------------------------------------------------------------------------
# Bounded work per message


async def test_blocks_covering_more_than_31_days_are_refused_and_nothing_is_written(ocmp):
    """One block from 2000 to 2026 would be 2.7 million quarter hours of MaxCapacity."""
    session, _ = ocmp
    body = {
        "group_id": "site-1",
        "forecasted_blocks": [
            {
                "capacity": 16,
                "phase": "ALL",
                "unit": "A",
                "start_time": "2000-01-01T00:00:00Z",
                "end_time": "2026-01-01T00:00:00Z",
            }
        ],
    }
    status, reply = await session.post("update_group_maximum_capacity_forecast", body)
    assert status == 400
    assert reply["errors"][0]["path"] == "forecasted_blocks[0].end_time"
    assert "31 days" in reply["errors"][0]["message"]
    async with session.app[DB].read() as tx:
        site = session.site  # type: ignore[attr-defined]
        assert await find_series(tx, session.tenant, site, SeriesType.MAX_CAPACITY) is None


async def test_more_blocks_than_a_month_of_quarter_hours_are_refused_whole(ocmp):
    session, _ = ocmp
    status, reply = await session.post(
        "update_group_maximum_capacity_forecast", _forecast([16.0] * 2977, _next_quarter())
    )
    assert status == 400 and reply["accepted"] == 0
    assert any(e["path"] == "forecasted_blocks" for e in reply["errors"])


async def test_readings_millennia_apart_are_refused_not_derived(ocmp):
    """Interval energy between a reading in 2026 and one in 8999 would be seven millennia of
    quarter hours: the derivation refuses more than a million blocks (hub.derivations)."""
    session, _ = ocmp
    readings = {
        "asset_id": "cp-1",
        "meter_values": [
            {"value": 1.0, "unit": "KWH", "measure_time": "2026-01-01T00:00:00Z"},
            {"value": 2.0, "unit": "KWH", "measure_time": "8999-01-01T00:00:00Z"},
        ],
    }
    status, reply = await session.post("update_detailed_metering_data", readings)
    assert status == 400, reply
    async with session.app[DB].read() as tx:
        charger = session.charger  # type: ignore[attr-defined]
        kinds = (SeriesType.CONSUMPTION_METER_READING, SeriesType.CONSUMPTION)
        for kind in kinds:
            assert await find_series(tx, session.tenant, charger, kind) is None


async def test_a_refused_message_keeps_only_an_excerpt_of_its_body_in_the_log(ocmp):
    session, _ = ocmp
    async with session.app[DB].transaction() as tx:
        await add_account(tx, session.tenant, "bulk", Role.PARTICIPANT, "bulk-pw")
    headers = {
        "Authorization": encode_basic_auth("bulk", "bulk-pw"),
        "X-Tenant-Key": session.login["X-Tenant-Key"],
    }
    unknown = {"SystemIdentifier": "x", "ExternalEntityReferenceType": "Site", "ExternalKey": "y"}
    values = [{"ValueTime": "2026-03-01T00:00:00Z", "Value": n} for n in range(20_000)]
    body = {"EntityKey": unknown, "TimeSeriesType": "Max Capacity", "TimeSeriesValueList": values}
    response = await session.client.post(
        "/api/TimeSeries/SaveTimeSeriesV1", json=body, headers=headers
    )
    assert response.status == 404
    async with session.app[DB].read() as tx:
        rows = (
            await tx.execute(
                select(messages.c.payload).where(messages.c.message_type == "SaveTimeSeriesV1")
            )
        ).all()
    assert len(rows) == 1 and len(rows[0].payload) == REFUSED_EXCERPT < len(orjson.dumps(body))
