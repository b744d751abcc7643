"""OSCP 2.0 over real HTTP: flexbridge as the CO (and CP host), a second aiohttp app as the FP.

Spec sentences quoted in docstrings are from shared/specs/oscp-2.0-and-ocmp-notes.md.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp import web

from adapter import peer_admin
from adapter.app import create_app
from adapter.keys import BACKGROUND, DB
from adapter.settings import Settings
from hub.peer_state import UnknownIds, state_of
from protocols.common.context import HUB
from protocols.cpapi.v1.outbound import configure_endpoint
from protocols.oscp.v2_0 import clock
from protocols.oscp.v2_0.codec import timestamp
from store.catalogue import AssetSubType, AssetType, ConnectorType
from store.entities import add_connector, connectors_of, create_entity
from store.errors import ValidationError
from store.messages import recent_messages
from store.outbox import list_outbox
from store.peers import OutboundAuth, find_peer
from store.references import ProtocolId, add_reference, find
from store.series import find_series
from store.series_types import SeriesType
from store.tenants import add_tenant
from store.values import read_values

Q = timedelta(minutes=15)
WAIT = 10.0  # seconds any expected message may take; a failure, never a pause
TOKEN_A = "token-A-out-of-band"
TOKEN_B = "token-B-for-the-fp"
CO = "/oscp/co/2.0"
CP = "/oscp/cp/2.0"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _next_quarter() -> datetime:
    now = datetime.now(UTC)
    return now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0) + Q


class Fp:
    """The FP's OSCP endpoint: one queue per message, every request flexbridge sends it."""

    def __init__(self) -> None:
        self.inbox: dict[str, asyncio.Queue[tuple[dict[str, str], Any]]] = defaultdict(
            asyncio.Queue
        )

    async def receive(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = orjson.loads(raw) if raw else None
        await self.inbox[request.match_info["message"]].put((dict(request.headers), body))
        return web.Response(status=204)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/fp/oscp/2.0/{message}", self.receive)
        return app

    async def next(self, message: str) -> tuple[dict[str, str], Any]:
        return await asyncio.wait_for(self.inbox[message].get(), WAIT)


class Session:
    def __init__(self, client: Any, app: web.Application, tenant: Any, fp_url: str) -> None:
        self.client, self.app, self.tenant, self.fp_url = client, app, tenant, fp_url
        self.token = TOKEN_A

    async def send(
        self,
        message: str,
        body: Any,
        *,
        prefix: str = CO,
        token: str | None = "",
        request_id: str | None = "",
        method: str = "POST",
        raw: bytes | None = None,
        **headers: str,
    ) -> tuple[int, Any, Any]:
        """(status, JSON body or None, headers); token "" = the session's, None = none."""
        sent = dict(headers)
        if token is not None:
            sent["Authorization"] = f"Token {token or self.token}"
        if request_id is not None:
            sent["X-Request-ID"] = request_id or str(uuid.uuid4())
        data = raw if raw is not None else None if body is None else orjson.dumps(body)
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        response = await self.client.request(method, f"{prefix}/{message}", data=data, headers=sent)
        text = await response.read()
        return response.status, orjson.loads(text) if text else None, response.headers

    async def peer(self) -> Any:
        async with self.app[DB].read() as tx:
            return await find_peer(tx, self.tenant, "oscp", "cpo")


@pytest.fixture
async def oscp(db, database_url, aiohttp_client, aiohttp_server):  # type: ignore[no-untyped-def]
    return await _setup(db, database_url, aiohttp_client, aiohttp_server)


async def _setup(db, database_url, aiohttp_client, aiohttp_server, unknown_ids=UnknownIds.STRICT):  # type: ignore[no-untyped-def]
    fp = Fp()
    fp_server = await aiohttp_server(fp.app())
    settings = replace(
        Settings(),
        database_url=database_url,
        admin_password="admin-pw",
        peer_clock_seconds=0.05,
        outbox_poll_seconds=0.05,
        resend_minutes=0.0,
        public_url="https://flexbridge.example",
    )
    app = create_app(settings)
    client = await aiohttp_client(app)
    async with db.transaction() as tx:
        tenant, _ = await add_tenant(tx, "pilot")
    await peer_admin.add(
        app[DB],
        peer_admin.NewPeer("pilot", "oscp", "cpo", None, token=TOKEN_A, unknown_ids=unknown_ids),
    )
    async with db.transaction() as tx:
        site = await create_entity(
            tx, tenant, AssetType.AREA, AssetSubType.SITE, {"Name": "Site 1", "PhaseCount": 3}
        )
        await add_reference(tx, tenant, site, ProtocolId("oscp", "cpo", "group", "site-1"))
        charger = await create_entity(
            tx, tenant, AssetType.RESOURCE, AssetSubType.CHARGING, {"Name": "EVSE 1"}
        )
        await add_reference(tx, tenant, charger, ProtocolId("oscp", "cpo", "asset", "evse-1"))
        await add_connector(tx, tenant, site, charger, ConnectorType.SITE)
    session = Session(client, app, tenant, str(fp_server.make_url("/fp/oscp/2.0")))
    session.site, session.charger = site, charger  # type: ignore[attr-defined]
    return session, fp


def _register_body(session: Session, token: str = TOKEN_B) -> dict[str, Any]:
    return {
        "token": token,
        "version_url": [
            {"version": "1.0", "base_url": "https://old.example/oscp/fp/1.0"},
            {"version": "2.0", "base_url": session.fp_url},
        ],
    }


async def _register(session: Session, fp: Fp) -> str:
    """FP-initiated registration; returns token C (now the session's token)."""
    status, _, _ = await session.send("register", _register_body(session), request_id="reg-1")
    assert status == 204
    _, ours = await fp.next("register")
    session.token = ours["token"]
    return ours["token"]


async def _handshake(session: Session, fp: Fp, interval: int = 60) -> None:
    body = {
        "required_behaviour": {
            "heartbeat_interval": interval,
            "measurement_configuration": ["CONTINUOUS"],
        }
    }
    assert (await session.send("handshake", body))[0] == 204
    await fp.next("handshake_acknowledge")


def _forecast(
    capacities: list[float], start: datetime, kind: str = "CONSUMPTION", unit: str = "KW"
) -> dict[str, Any]:
    return {
        "group_id": "site-1",
        "type": kind,
        "forecasted_blocks": [
            {
                "capacity": c,
                "phase": "ALL",
                "unit": unit,
                "start_time": _iso(start + i * Q),
                "end_time": _iso(start + (i + 1) * Q),
            }
            for i, c in enumerate(capacities)
        ],
    }


async def _series(session: Session, entity: Any, series_type: SeriesType, start, end):  # type: ignore[no-untyped-def]
    async with session.app[DB].read() as tx:
        series = await find_series(tx, session.tenant, entity, series_type)
        if series is None:
            return None
        return [p.value for p in await read_values(tx, session.tenant, series, start, end)]


# ---------------------------------------------------------------------------------------------
# A whole session


async def test_a_full_session_register_handshake_heartbeats_forecast_measurements(oscp):
    """Register: "initiator POSTs /register with the out-of-band token A, body carries token B
    ... Receiver answers 204 FIRST, then POSTs its own Register to the chosen base_url with
    `Authorization: Token B`, body token C + the selected version, `X-Correlation-ID` =
    initiator's request id. Token C replaces A." """
    session, fp = oscp
    status, body, headers = await session.send(
        "register", _register_body(session), request_id="reg-1"
    )
    assert (status, body) == (204, None)
    assert headers["X-Correlation-ID"] == "reg-1"

    headers, ours = await fp.next("register")
    assert headers["Authorization"] == f"Token {TOKEN_B}"
    assert headers["X-Correlation-ID"] == "reg-1"
    assert headers["X-Request-ID"] and headers["X-Request-ID"] != "reg-1"
    token_c = ours["token"]
    assert len(token_c) >= 32 and token_c not in (TOKEN_A, TOKEN_B)
    assert ours["version_url"] == [
        {"version": "2.0", "base_url": "https://flexbridge.example/oscp/co/2.0"}
    ]
    beat = {"offline_mode_at": _iso(datetime.now(UTC) + timedelta(minutes=30))}
    # A is revoked, C works.
    assert (await session.send("heartbeat", beat, token=TOKEN_A))[0] == 403
    session.token = token_c

    # Handshake -> HandshakeAcknowledge with our required behaviour, as a reply.
    handshake = {
        "required_behaviour": {
            "heartbeat_interval": 60,
            "measurement_configuration": ["CONTINUOUS"],
        }
    }
    status, _, _ = await session.send("handshake", handshake, request_id="hs-1")
    assert status == 204
    headers, ack = await fp.next("handshake_acknowledge")
    assert ack == {"required_behaviour": {"heartbeat_interval": 900}}
    assert headers["X-Correlation-ID"] == "hs-1"
    assert headers["Authorization"] == f"Token {TOKEN_B}"

    # Our heartbeat: due at once, vouching for three of the FP's intervals, in UTC 'Z'.
    _, ours = await fp.next("heartbeat")
    assert ours["offline_mode_at"].endswith("Z")
    ahead = timestamp(ours["offline_mode_at"], "t") - datetime.now(UTC)
    assert timedelta(seconds=170) < ahead <= timedelta(seconds=180)
    assert (await session.send("heartbeat", beat))[0] == 204
    peer = await session.peer()
    assert state_of(peer).online is True and state_of(peer).heartbeat_interval == 60
    assert state_of(peer).registered_at and state_of(peer).handshaken_at
    assert "registered,handshaken,online" in await peer_admin.describe(session.app[DB], "pilot")

    # CONSUMPTION in -> OPTIMUM out (nothing else behind the group: the whole capacity).
    start = _next_quarter()
    capacities = [123.456, 234.567, 345.678, 456.789]
    assert (await session.send("update_group_capacity_forecast", _forecast(capacities, start)))[
        0
    ] == 204
    headers, optimum = await fp.next("update_group_capacity_forecast")
    assert headers["Authorization"] == f"Token {TOKEN_B}"
    assert optimum["group_id"] == "site-1" and optimum["type"] == "OPTIMUM"
    blocks = optimum["forecasted_blocks"]
    assert [b["capacity"] for b in blocks] == capacities
    assert {(b["unit"], b["phase"]) for b in blocks} == {("KW", "ALL")}
    assert blocks[0]["start_time"] == _iso(start) and blocks[-1]["end_time"] == _iso(start + 4 * Q)
    assert await _series(
        session, session.site, SeriesType.MAX_CAPACITY, start, start + 4 * Q
    ) == pytest.approx(capacities)  # type: ignore[attr-defined]

    # Measurements in -> readings, derived energy, and the OPTIMUM re-sent by the clock.
    t0 = start - 4 * Q
    for i in range(3):
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
                    "instantaneous_measurement": {
                        "value": 16,
                        "phase": "ALL",
                        "unit": "A",
                        "measure_time": _iso(t0 + i * Q),
                    },
                }
            ],
        }
        assert (await session.send("update_asset_measurements", measurement))[0] == 204
    charger = session.charger  # type: ignore[attr-defined]
    assert await _series(session, charger, SeriesType.CONSUMPTION, t0, t0 + 2 * Q) == [2.5, 2.5]
    assert await _series(
        session, charger, SeriesType.CONSUMPTION_INSTANT_POWER, t0, t0 + Q
    ) == pytest.approx([16 * 0.69])
    _, again = await fp.next("update_group_capacity_forecast")
    assert again["group_id"] == "site-1" and again["type"] == "OPTIMUM"


async def test_fallback_consumption_applies_while_the_sender_is_offline(oscp):
    """ "While a peer is offline, FALLBACK_* capacity forecasts apply"; it is offline after
    its `offline_mode_at` passes without a new heartbeat."""
    session, fp = oscp
    await _register(session, fp)
    await _handshake(session, fp)
    until = datetime.now(UTC) + timedelta(minutes=5)
    assert (await session.send("heartbeat", {"offline_mode_at": _iso(until)}))[0] == 204
    start = _next_quarter()
    end = start + 2 * Q
    await session.send("update_group_capacity_forecast", _forecast([100.0, 100.0], start))
    _, optimum = await fp.next("update_group_capacity_forecast")
    assert [b["capacity"] for b in optimum["forecasted_blocks"]] == [100.0, 100.0]

    # Online: a fallback is kept aside, the forecast still holds.
    fallback = _forecast([20.0, 30.0], start, kind="FALLBACK_CONSUMPTION")
    assert (await session.send("update_group_capacity_forecast", fallback))[0] == 204
    assert await _series(session, session.site, SeriesType.MAX_CAPACITY, start, end) == [  # type: ignore[attr-defined]
        100.0,
        100.0,
    ]

    # The clock, run at a moment past offline_mode_at: offline, the fallback applies.
    db, hub = session.app[DB], session.app[HUB]
    await clock.tick(db, hub, until + timedelta(seconds=1))
    await session.app[BACKGROUND].planner.drain()  # the plans it asked for
    assert state_of(await session.peer()).online is False
    assert await _series(session, session.site, SeriesType.MAX_CAPACITY, start, end) == [  # type: ignore[attr-defined]
        20.0,
        30.0,
    ]
    _, optimum = await fp.next("update_group_capacity_forecast")
    assert [b["capacity"] for b in optimum["forecasted_blocks"]] == [20.0, 30.0]

    # Back online: the FP's own forecast holds again and the OPTIMUM follows it.
    later = datetime.now(UTC) + timedelta(minutes=30)
    assert (await session.send("heartbeat", {"offline_mode_at": _iso(later)}))[0] == 204
    assert await _series(session, session.site, SeriesType.MAX_CAPACITY, start, end) == [  # type: ignore[attr-defined]
        100.0,
        100.0,
    ]
    _, optimum = await fp.next("update_group_capacity_forecast")
    assert [b["capacity"] for b in optimum["forecasted_blocks"][:2]] == [100.0, 100.0]


async def test_a_fallback_sent_while_offline_applies_at_once(oscp):
    session, fp = oscp
    await _register(session, fp)
    until = datetime.now(UTC) + timedelta(minutes=5)
    await session.send("heartbeat", {"offline_mode_at": _iso(until)})
    await clock.tick(session.app[DB], session.app[HUB], until + timedelta(seconds=1))
    await session.app[BACKGROUND].planner.drain()  # the plans it asked for
    start = _next_quarter()
    fallback = _forecast([8.0], start, kind="FALLBACK_CONSUMPTION", unit="A")
    assert (await session.send("update_group_capacity_forecast", fallback))[0] == 204
    _, optimum = await fp.next("update_group_capacity_forecast")
    assert [(b["capacity"], b["unit"]) for b in optimum["forecasted_blocks"]] == [(8.0, "A")]


async def test_a_fallback_plan_reaches_every_protocols_plan_hooks(oscp):
    """A fallback plan is a plan like any other: planned by the hub, so the CP-API endpoint
    gets its section 6 ControlRegulationMessage too (it was planned beside the hub before)."""
    session, fp = oscp
    async with session.app[DB].transaction() as tx:
        await configure_endpoint(
            tx,
            session.tenant,
            url=session.fp_url + "/cpapi",
            username="iip",
            password="pw",
            system=None,
        )
    await _register(session, fp)
    until = datetime.now(UTC) + timedelta(minutes=5)
    await session.send("heartbeat", {"offline_mode_at": _iso(until)})
    start = _next_quarter()
    fallback = _forecast([20.0, 30.0], start, kind="FALLBACK_CONSUMPTION")
    assert (await session.send("update_group_capacity_forecast", fallback))[0] == 204
    await clock.tick(session.app[DB], session.app[HUB], until + timedelta(seconds=1))
    await session.app[BACKGROUND].planner.drain()  # the plans it asked for
    _, optimum = await fp.next("update_group_capacity_forecast")
    assert [b["capacity"] for b in optimum["forecasted_blocks"]] == [20.0, 30.0]
    _, control = await fp.next("cpapi")
    series = control["TimeSeries"]
    assert (control["MessageName"], series["TimeSeriesType"]) == (
        "ControlRegulationMessage",
        "OptimalCapacityRegulation",
    )
    assert [v["Value"] for v in series["TimeSeriesValueList"]] == [20.0, 30.0]
    assert series["EntityKey"]["Key"] == str(session.site.key)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Registration


async def test_no_common_version_is_501(oscp):
    """ "501 when Register offers no supported version"."""
    session, _ = oscp
    body = {"token": TOKEN_B, "version_url": [{"version": "2.1", "base_url": session.fp_url}]}
    status, reply, _ = await session.send("register", body)
    assert status == 501 and "2.1" in reply["message"] and "2.0" in reply["message"]
    assert (await session.peer()).auth is OutboundAuth.NONE
    # Nothing was swapped: token A still works.
    assert (await session.send("register", _register_body(session)))[0] == 204


async def test_a_register_with_correlation_id_is_an_answer_and_gets_none(oscp):
    """A Register that carries X-Correlation-ID answers one of ours: its token and base_url
    are kept and no Register goes back; token A stays."""
    session, _ = oscp
    status, _, _ = await session.send(
        "register", _register_body(session), **{"X-Correlation-ID": "ours-1"}
    )
    assert status == 204
    peer = await session.peer()
    assert (peer.auth, peer.secret, peer.base_url) == (
        OutboundAuth.TOKEN,
        TOKEN_B,
        session.fp_url,
    )
    async with session.app[DB].read() as tx:
        queued = await list_outbox(tx, session.tenant)
    assert [r.message_type for r in queued] == []
    assert (await session.send("heartbeat", {"offline_mode_at": _iso(_next_quarter())}))[0] == 204


async def test_put_register_updates_the_endpoint_and_delete_unregisters(oscp):
    session, fp = oscp
    token_c = await _register(session, fp)
    moved = {
        "token": "token-B2",
        "version_url": [{"version": "2.0", "base_url": "https://fp2.example/x"}],
    }
    assert (await session.send("register", moved, method="PUT"))[0] == 204
    peer = await session.peer()
    assert (peer.secret, peer.base_url) == ("token-B2", "https://fp2.example/x")
    assert (await session.send("register", None, method="DELETE"))[0] == 204
    peer = await session.peer()
    assert peer.auth is OutboundAuth.NONE and not peer.secret
    assert not state_of(peer).registered_at and state_of(peer).unregistered_at
    # Our token C still admits it, so it can register again.
    assert session.token == token_c
    assert (await session.send("register", _register_body(session)))[0] == 204


async def test_a_handshake_before_registration_is_refused(oscp):
    session, _ = oscp
    status, reply, _ = await session.send("handshake", {"required_behaviour": {}})
    assert status == 400 and "register" in reply["message"]


# ---------------------------------------------------------------------------------------------
# Headers and authentication


async def test_missing_authorization_is_401_with_a_message(oscp):
    """ "401 no Authorization"."""
    session, _ = oscp
    status, reply, headers = await session.send("heartbeat", {}, token=None)
    assert status == 401 and reply["message"]
    assert headers["WWW-Authenticate"].startswith("Token")


async def test_an_unknown_token_is_403(oscp):
    """ "403 unknown token"."""
    session, _ = oscp
    status, reply, _ = await session.send("heartbeat", {}, token="who-knows")
    assert status == 403 and reply == {"message": "unknown token"}


async def test_the_token_scheme_is_case_insensitive(oscp):
    """ "`Authorization: Token <token>` (scheme case-insensitive)"."""
    session, _ = oscp
    beat = {"offline_mode_at": _iso(_next_quarter())}
    status, _, _ = await session.send(
        "heartbeat", beat, token=None, Authorization=f"tOKEN {TOKEN_A}"
    )
    assert status == 204


async def test_a_missing_request_id_is_400(oscp):
    """ "`X-Request-ID` (required on every request)"."""
    session, _ = oscp
    beat = {"offline_mode_at": _iso(_next_quarter())}
    status, reply, _ = await session.send("heartbeat", beat, request_id=None)
    assert status == 400 and "X-Request-ID" in reply["message"]
    status, _, _ = await session.send("heartbeat", beat, prefix=CP, request_id=None)
    assert status == 400


async def test_a_repeated_request_id_is_applied_once(oscp):
    """DESIGN.md: "a repeated MessageId / X-Request-ID is not applied twice"."""
    session, fp = oscp
    await _register(session, fp)
    body = _forecast([50.0], _next_quarter())
    for _ in range(2):
        status, _, headers = await session.send(
            "update_group_capacity_forecast", body, request_id="m-1"
        )
        assert status == 204 and headers["X-Correlation-ID"] == "m-1"
    await session.app[BACKGROUND].planner.drain()  # the plan the forecast asked for
    async with session.app[DB].read() as tx:
        logged = await recent_messages(tx, session.tenant)
        queued = await list_outbox(tx, session.tenant)
    assert len([m for m in logged if m.message_id == "m-1"]) == 1
    assert [r.message_type for r in queued].count("UpdateGroupCapacityForecast") == 1


# ---------------------------------------------------------------------------------------------
# Handshake acknowledgements


async def test_a_peer_in_the_pyoscp_dialect_gets_its_ack_path_and_zoneless_times(oscp):
    """The pyoscp-0.1 dialect: acknowledgements to /handshake_acknowledgment, heartbeat times
    as "YYYY-MM-DD HH:MM:SS" in UTC (docs/protocols/pyoscp-quirks.md, quirks 1 and 4)."""
    session, fp = oscp
    change = peer_admin.PeerChange("pilot", "oscp", "cpo", dialect="pyoscp-0.1")
    assert "dialect pyoscp-0.1" in await peer_admin.update(session.app[DB], change)
    await _register(session, fp)
    body = {"required_behaviour": {"heartbeat_interval": 60}}
    assert (await session.send("handshake", body))[0] == 204
    _, ack = await fp.next("handshake_acknowledgment")
    assert ack == {"required_behaviour": {"heartbeat_interval": 900}}
    await clock.tick(session.app[DB], session.app[HUB], datetime.now(UTC) + timedelta(seconds=1))
    await session.app[BACKGROUND].planner.drain()  # the plans it asked for
    _, beat = await fp.next("heartbeat")
    until = datetime.strptime(beat["offline_mode_at"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert timedelta(minutes=2) < until - datetime.now(UTC) <= timedelta(minutes=3, seconds=1)


async def test_an_unknown_dialect_is_refused_naming_the_known_ones(oscp):
    session, _ = oscp
    change = peer_admin.PeerChange("pilot", "oscp", "cpo", dialect="pyoscp-9")
    with pytest.raises(ValueError, match=r"oscp-2\.0, pyoscp-0\.1"):
        await peer_admin.update(session.app[DB], change)


@pytest.mark.parametrize("path", ["handshake_acknowledge", "handshake_acknowledgment"])
@pytest.mark.parametrize("prefix", [CO, CP])
async def test_acks_are_accepted_under_both_spellings(oscp, path, prefix):
    """ "One widely used Python implementation posts to `/handshake_acknowledgment`; accept it
    as an alias." """
    session, _ = oscp
    ack = {"required_behaviour": {"heartbeat_interval": 30}}
    assert (await session.send(path, ack, prefix=prefix))[0] == 204
    assert state_of(await session.peer()).heartbeat_interval == 30


async def test_an_empty_ack_is_accepted(oscp):
    """ "Acks are often sent as `{}`: accept leniently." """
    session, _ = oscp
    assert (await session.send("handshake_acknowledge", {}))[0] == 204
    assert state_of(await session.peer()).handshaken_at


# ---------------------------------------------------------------------------------------------
# Forecasts


async def test_a_lowercase_enum_is_refused(oscp):
    """ "Enums are case-sensitive upper case on the wire." """
    session, _ = oscp
    body = _forecast([10.0], _next_quarter(), kind="consumption")
    status, reply, _ = await session.send("update_group_capacity_forecast", body)
    assert status == 400 and reply["message"].startswith("type: 'consumption' is not one of")
    body = _forecast([10.0], _next_quarter(), unit="kW")
    status, reply, _ = await session.send("update_group_capacity_forecast", body)
    assert status == 400 and "forecasted_blocks[0].unit" in reply["message"]


async def test_generation_is_a_magnitude(oscp):
    """ "GENERATION is a magnitude (>= 0)." A negative one is refused; a good one is the
    group's generation limit (ProductionPowerRegulation)."""
    session, _ = oscp
    start = _next_quarter()
    status, reply, _ = await session.send(
        "update_group_capacity_forecast", _forecast([-5.0], start, kind="GENERATION")
    )
    assert status == 400 and "forecasted_blocks[0].capacity" in reply["message"]
    status, _, _ = await session.send(
        "update_group_capacity_forecast", _forecast([5.0], start, kind="GENERATION")
    )
    assert status == 204
    stored = await _series(
        session, session.site, SeriesType.PRODUCTION_POWER_REGULATION, start, start + Q
    )  # type: ignore[attr-defined]
    assert stored == [5.0]
    assert await _series(session, session.site, SeriesType.MAX_CAPACITY, start, start + Q) is None  # type: ignore[attr-defined]


async def test_energy_units_become_the_mean_power_of_the_block(oscp):
    session, _ = oscp
    start = _next_quarter()
    body = _forecast([1.0], start, unit="KWH")
    body["forecasted_blocks"].append(
        {
            "capacity": 2000.0,
            "phase": "ALL",
            "unit": "WH",
            "start_time": _iso(start + Q),
            "end_time": _iso(start + 5 * Q),
        }
    )
    assert (await session.send("update_group_capacity_forecast", body))[0] == 204
    stored = await _series(session, session.site, SeriesType.MAX_CAPACITY, start, start + 5 * Q)  # type: ignore[attr-defined]
    assert stored == pytest.approx([4.0, 2.0, 2.0, 2.0, 2.0])


async def test_an_optimum_sent_to_the_co_is_refused(oscp):
    session, _ = oscp
    status, reply, _ = await session.send(
        "update_group_capacity_forecast", _forecast([1.0], _next_quarter(), kind="OPTIMUM")
    )
    assert status == 400 and reply["message"].startswith("type: OPTIMUM is what the CO sends")


async def test_an_unknown_group_is_refused_under_the_strict_policy(oscp):
    session, _ = oscp
    body = {**_forecast([1.0], _next_quarter()), "group_id": "nowhere"}
    status, reply, _ = await session.send("update_group_capacity_forecast", body)
    assert status == 400 and reply["message"].startswith("group_id: unknown group 'nowhere'")


async def test_lenient_peers_get_new_groups_and_connected_assets(
    db, database_url, aiohttp_client, aiohttp_server
):
    session, _ = await _setup(
        db, database_url, aiohttp_client, aiohttp_server, unknown_ids=UnknownIds.LENIENT
    )
    measurement = {
        "group_id": "new-site",
        "measurements": [
            {
                "asset_id": "new-evse",
                "asset_category": "CHARGING",
                "instantaneous_measurement": {
                    "value": 7.4,
                    "phase": "ALL",
                    "unit": "KW",
                    "measure_time": _iso(datetime.now(UTC)),
                },
            }
        ],
    }
    assert (await session.send("update_asset_measurements", measurement))[0] == 204
    async with session.app[DB].read() as tx:
        group = await find(tx, session.tenant, ProtocolId("oscp", "cpo", "group", "new-site"))
        asset = await find(tx, session.tenant, ProtocolId("oscp", "cpo", "asset", "new-evse"))
        parents = await connectors_of(tx, session.tenant, asset, direction="parent")
    assert group is not None and group.asset_subtype is AssetSubType.SITE
    assert [c.parent.id for c in parents] == [group.id]


# ---------------------------------------------------------------------------------------------
# Timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-08-21T13:36:24.491Z", datetime(2022, 8, 21, 13, 36, 24, 491000, tzinfo=UTC)),
        ("2022-08-21T13:36:24Z", datetime(2022, 8, 21, 13, 36, 24, tzinfo=UTC)),
        ("2024-01-01T11:22:33.456+08:00", datetime(2024, 1, 1, 3, 22, 33, 456000, tzinfo=UTC)),
        ("2024-01-01t11:22:33-02:30", datetime(2024, 1, 1, 13, 52, 33, tzinfo=UTC)),
        ("2022-08-21T13:36:24.123456789Z", datetime(2022, 8, 21, 13, 36, 24, 123456, tzinfo=UTC)),
        # pyoscp's zone-less form, read as UTC
        ("2022-08-21 13:36:24", datetime(2022, 8, 21, 13, 36, 24, tzinfo=UTC)),
    ],
)
def test_timestamps_rfc3339_with_offsets_and_optional_fractions(text, expected):
    """ "RFC 3339 with `Z` or an offset; fractional seconds optional." """
    assert timestamp(text, "t") == expected


@pytest.mark.parametrize(
    "text", ["2022-08-21T13:36:24", "2022-08-21", "yesterday", "2022-13-01T00:00:00Z", 5]
)
def test_timestamps_that_name_no_instant_are_refused(text):
    with pytest.raises(ValidationError) as caught:
        timestamp(text, "offline_mode_at")
    assert caught.value.field == "offline_mode_at"


@pytest.mark.parametrize(
    "offline_mode_at",
    ["2099-08-21 13:36:24", "2099-08-21T13:36:24+08:00", "2099-08-21T13:36:24Z"],
)
async def test_heartbeats_accept_zoneless_offset_and_fractionless_times(oscp, offline_mode_at):
    """Known peers send offsets like `+08:00`, and one sends zone-less `YYYY-MM-DD HH:MM:SS`
    (read as UTC)."""
    session, _ = oscp
    assert (await session.send("heartbeat", {"offline_mode_at": offline_mode_at}))[0] == 204
    peer = await session.peer()
    assert state_of(peer).offline_mode_at == timestamp(offline_mode_at, "t")
    assert state_of(peer).online is True


# ---------------------------------------------------------------------------------------------
# Measurements


async def test_the_singular_spelling_update_asset_measurement_is_accepted(oscp):
    """ "The asset-measurement message is also spelled `UpdateAssetMeasurement`." """
    session, _ = oscp
    at = datetime(2024, 1, 1, 3, 22, 33, 456000, tzinfo=UTC)
    body = {
        "group_id": "site-1",
        "measurements": [
            {
                "asset_id": "evse-1",
                "asset_category": "CHARGING",
                "energy_measurement": {
                    "value": 123.456,
                    "phase": "ALL",
                    "unit": "KWH",
                    "direction": "IMPORT",
                    "measure_time": "2024-01-01T11:22:33.456+08:00",
                },
            }
        ],
    }
    assert (await session.send("update_asset_measurement", body))[0] == 204
    readings = await _series(
        session,
        session.charger,  # type: ignore[attr-defined]
        SeriesType.CONSUMPTION_METER_READING,
        at,
        at + Q,
    )
    assert readings == [123.456]


async def test_bad_measurements_are_refused_whole_naming_each_field(oscp):
    session, _ = oscp
    now = _iso(datetime.now(UTC))
    body = {
        "group_id": "site-1",
        "measurements": [
            {"asset_id": "evse-1", "asset_category": "CHARGING"},
            {
                "asset_id": "evse-1",
                "asset_category": "CHARGING",
                "instantaneous_measurement": {
                    "value": 1.0,
                    "phase": "ALL",
                    "unit": "KWH",
                    "measure_time": now,
                },
            },
            {
                "asset_id": "ghost",
                "asset_category": "CHARGING",
                "instantaneous_measurement": {
                    "value": 1,
                    "phase": "ALL",
                    "unit": "KW",
                    "measure_time": now,
                },
            },
        ],
    }
    status, reply, _ = await session.send("update_asset_measurements", body)
    assert status == 400
    assert "measurements[0]: needs an energy_measurement" in reply["message"]
    assert "measurements[1].instantaneous_measurement.unit: KWH is an energy" in reply["message"]
    assert "measurements[2].asset_id: unknown asset 'ghost'" in reply["message"]


# ---------------------------------------------------------------------------------------------
# CP endpoints


async def test_group_measurements_at_the_cp_become_readings_on_the_group(oscp):
    session, _ = oscp
    body = {
        "group_id": "site-1",
        "measurements": [
            {
                "value": 123.456,
                "phase": "ALL",
                "unit": "KWH",
                "direction": "IMPORT",
                "measure_time": "2024-01-01T11:22:33.456+08:00",
            },
            {
                "value": 7.0,
                "phase": "ALL",
                "unit": "KWH",
                "direction": "IMPORT",
                "energy_type": "FLEXIBLE",
                "measure_time": "2024-01-01T11:37:33+08:00",
            },
        ],
    }
    assert (await session.send("update_group_measurements", body, prefix=CP))[0] == 204
    at = datetime(2024, 1, 1, 3, 0, tzinfo=UTC)
    readings = await _series(
        session,
        session.site,  # type: ignore[attr-defined]
        SeriesType.CONSUMPTION_METER_READING,
        at,
        at + timedelta(hours=1),
    )
    assert readings == [123.456]  # the FLEXIBLE part register is not the group's total
    # The CP does not host the CO's messages.
    assert (await session.send("update_group_measurements", body))[0] == 404


async def test_adjust_and_compliance_error_are_kept_for_the_operator(oscp):
    session, _ = oscp
    adjust = _forecast([12.0], _next_quarter())
    status, _, _ = await session.send(
        "adjust_group_capacity_forecast", adjust, prefix=CP, request_id="adj-1"
    )
    assert status == 204
    complaint = {
        "message": "site-1 exceeded by 3 kW",
        "forecasted_blocks": adjust["forecasted_blocks"],
    }
    status, _, _ = await session.send(
        "group_capacity_compliance_error", complaint, prefix=CP, request_id="err-1"
    )
    assert status == 204
    state = state_of(await session.peer())
    assert state.capacity_requests["site-1"].request_id == "adj-1"
    assert state.complaint is not None and state.complaint.message == "site-1 exceeded by 3 kW"
    status, reply, _ = await session.send(
        "group_capacity_compliance_error", {"message": ""}, prefix=CP
    )
    assert status == 400 and reply["message"].startswith("message:")


# ---------------------------------------------------------------------------------------------
# Bad bodies


NOT_AN_OBJECT = [b"not json", b"", b"[1, 2]", b'"a string"', b"null", b"{", b"\xff\xfe"]
_BLOCK = '"phase": "ALL", "unit": "KW", "start_time": "2030-01-01T00:00:00Z"'
WRONG_TYPES = {
    "register": [b'{"token": 1, "version_url": {}}', b'{"token": "x y", "version_url": []}'],
    "handshake": [b'{"required_behaviour": {"heartbeat_interval": 0}}'],
    "handshake_acknowledge": [b'{"required_behaviour": {"measurement_configuration": "x"}}'],
    "heartbeat": [b'{"offline_mode_at": 17}', b'{"offline_mode_at": "soon"}', b"{}"],
    "update_group_capacity_forecast": [
        b'{"group_id": 5, "type": "CONSUMPTION", "forecasted_blocks": "many"}',
        b'{"group_id": "site-1", "type": "CONSUMPTION", "forecasted_blocks": [{"capacity": "1"}]}',
        # instants no UTC offset can hold, and a block whose energy is no finite power
        b'{"group_id": "site-1", "type": "CONSUMPTION", "forecasted_blocks": [{"capacity": 1, '
        b'"phase": "ALL", "unit": "KW", "start_time": "0001-01-01T00:00:00+05:00", '
        b'"end_time": "9999-12-31T23:59:59-05:00"}]}',
        b'{"group_id": "site-1", "type": "CONSUMPTION", "forecasted_blocks": [{"capacity": 1e308, '
        + _BLOCK.replace('"KW"', '"WH"').encode()
        + b', "end_time": "2030-01-01T00:00:00.000001Z"}]}',
        b'{"group_id": "site-1", "type": "CONSUMPTION", "forecasted_blocks": [{"capacity": 1, '
        + _BLOCK.encode()
        + b', "end_time": "2031-01-01T00:00:00Z"}]}',
    ],
    "update_asset_measurements": [
        b'{"group_id": "site-1", "measurements": [{"asset_id": [], "value": {}}]}',
        b'{"group_id": "site-1", "measurements": []}',
    ],
    "update_group_measurements": [
        b'{"group_id": "site-1", "measurements": [{"value": "1", "unit": "MWH"}]}',
    ],
    "adjust_group_capacity_forecast": [b'{"group_id": "site-1", "type": "X"}'],
    "group_capacity_compliance_error": [b'{"message": 5}', b'{"forecasted_blocks": []}'],
}
PATHS = [
    (CO, "register"),
    (CO, "handshake"),
    (CO, "handshake_acknowledge"),
    (CO, "heartbeat"),
    (CO, "update_group_capacity_forecast"),
    (CO, "update_asset_measurements"),
    (CP, "update_group_measurements"),
    (CP, "adjust_group_capacity_forecast"),
    (CP, "group_capacity_compliance_error"),
]


async def test_a_bad_body_is_a_400_with_a_message_never_a_500(oscp):
    session, fp = oscp
    await _register(session, fp)
    wrong = []
    for prefix, message in PATHS:
        for raw in NOT_AN_OBJECT + WRONG_TYPES[message]:
            status, reply, _ = await session.send(message, None, prefix=prefix, raw=raw)
            if status != 400 or not (isinstance(reply, dict) and reply.get("message")):
                wrong.append((prefix, message, raw, status, reply))
    assert not wrong, "\n".join(map(repr, wrong))
