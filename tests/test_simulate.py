"""Issue 6: the peer simulators against a real `flexbridge serve` process - what they print,
and what the server stored from them (read back from its database)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from conformance import cli
from conformance.provision import (
    OCMP_PEER,
    OSCP_PEER,
    TENANT,
    UFTP_AGR,
    UFTP_POINT,
    Running,
    running_flexbridge,
)
from conformance.simulate import household_kw
from conformance.simulate_agr import prognosis_watts
from conformance.uftp import isps_of
from store.db import open_database
from store.peers import find_peer
from store.references import ExternalRef, ProtocolId, find, parse_address
from store.series import ensure_series, find_series
from store.series_types import SeriesType
from store.tables import uftp_flex_offers, uftp_flex_orders, uftp_prognoses
from store.tenants import get_tenant
from store.values import Point, read_values, write_values

Q = timedelta(minutes=15)


@pytest.fixture(scope="module")
def flexbridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running_flexbridge(tmp_path_factory.mktemp("simulate")) as server:
        yield server


def _stored(server: Running, ref, series_type: SeriesType, start: datetime, end: datetime):  # type: ignore[no-untyped-def]
    """(start, value) of a series of the entity `ref` names, as the server stored it."""

    async def read() -> list[tuple[datetime, float | None]]:
        db = open_database(server.database_url)
        try:
            async with db.read() as tx:
                tenant = await get_tenant(tx, TENANT)
                entity = await find(tx, tenant, ref)
                assert entity is not None, ref
                series = await find_series(tx, tenant, entity, series_type)
                if series is None:
                    return []
                return [
                    (p.start, p.value) for p in await read_values(tx, tenant, series, start, end)
                ]
        finally:
            await db.close()

    return asyncio.run(read())


def _simulate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["simulate", *args])
    return code, capsys.readouterr().out


def test_simulated_ocmp_cpo(flexbridge: Running, capsys) -> None:
    """Handshake, heartbeats and maximum forecasts on a compressed clock, metering from a
    synthetic charging profile (11 kW from 18:00), and what comes back."""
    start = datetime(2030, 6, 3, 18, 0, tzinfo=UTC)
    code, out = _simulate(
        capsys,
        "cpo",
        "--target",
        flexbridge.url,
        "--credentials",
        str(flexbridge.credentials),
        "--cycles",
        "3",
        "--speed",
        "3600",
        "--start",
        "2030-06-03T18:00:00Z",
    )
    assert code == 0, out
    assert "-> handshake: 204" in out and "<- handshake {" in out
    assert "sent: 1 handshake, 3 heartbeat, 3 maximum, 3 metering" in out
    assert out.count("<- update_group_optimal_capacity_forecast site-1: 96 blocks") >= 3
    assert "-> metering cp-1 5.50 kWh at 2030-06-03T18:30:00Z: 204" in out
    # The maximum: 16 A in the evening peak (17-21 h), 32 A after, stored in kW on the group.
    limits = dict(
        _stored(
            flexbridge,
            ProtocolId("ocmp", OCMP_PEER, "group", "site-1"),
            SeriesType.MAX_CAPACITY,
            start,
            start + timedelta(hours=4),
        )
    )
    assert limits[start] == pytest.approx(16 * 0.69)
    assert limits[start + timedelta(hours=3)] == pytest.approx(32 * 0.69)
    # The readings 0, 2.75, 5.5 kWh: 2.75 kWh charged in each quarter hour.
    energy = _stored(
        flexbridge,
        ProtocolId("ocmp", OCMP_PEER, "asset", "cp-1"),
        SeriesType.CONSUMPTION,
        start,
        start + 2 * Q,
    )
    assert energy == [(start, pytest.approx(2.75)), (start + Q, pytest.approx(2.75))]


def test_simulated_oscp_flexibility_provider(flexbridge: Running, capsys) -> None:
    """The same CPO as an OSCP 2.0 FP: it registers (token swap), handshakes, and gets an
    OPTIMUM for each CONSUMPTION forecast."""
    start = datetime(2030, 6, 4, 18, 0, tzinfo=UTC)
    code, out = _simulate(
        capsys,
        "cpo",
        "--protocol",
        "oscp",
        "--target",
        flexbridge.url,
        "--credentials",
        str(flexbridge.credentials),
        "--cycles",
        "2",
        "--speed",
        "3600",
        "--start",
        "2030-06-04T18:00:00Z",
    )
    assert code == 0, out
    assert "-> register: 204" in out and "<- register {" in out
    assert "(now using the token the server sent in its Register: " in out
    assert "<- handshake_acknowledge" in out
    assert out.count("<- update_group_capacity_forecast OPTIMUM site-1: 96 blocks") >= 2
    assert "sent: 2 forecast, 1 handshake, 2 heartbeat, 2 measurements, 1 register" in out
    readings = _stored(
        flexbridge,
        ProtocolId("oscp", OSCP_PEER, "asset", "evse-1"),
        SeriesType.CONSUMPTION_METER_READING,
        start,
        start + 2 * Q,
    )
    assert readings == [(start, 0.0), (start + Q, pytest.approx(2.75))]


def test_simulated_scada(flexbridge: Running, capsys) -> None:
    """CP-API assets (site, main meter, PV, battery) and their time series; the interval
    energy the server derives from the meter readings comes back."""
    start = datetime(2030, 6, 5, 10, 0, tzinfo=UTC)
    code, out = _simulate(
        capsys,
        "scada",
        "--target",
        flexbridge.url,
        "--credentials",
        str(flexbridge.credentials),
        "--cycles",
        "4",
        "--speed",
        "3600",
        "--start",
        "2030-06-05T10:00:00Z",
        "--prefix",
        "t1",
    )
    assert code == 0, out
    assert out.count("-> SaveTimeSeriesListForEntitiesV1 4 series: 200") == 4
    for name in ("t1-site", "t1-meter", "t1-pv", "t1-battery"):
        assert f"<- {name}: key " in out
    assert "<- Consumption of the meter (kWh, derived): 10:00 " in out
    assert "received: 3 Consumption values, 3 Production values" in out
    meter = ExternalRef("scada-sim", "Resource", "t1-meter")
    derived = _stored(flexbridge, meter, SeriesType.CONSUMPTION, start, start + 3 * Q)
    assert [t for t, _ in derived] == [start, start + Q, start + 2 * Q]
    for t, value in derived:
        assert value == pytest.approx(household_kw(t) * 0.25, abs=2e-3)
    site = ExternalRef("scada-sim", "Site", "t1-site")
    assert _stored(flexbridge, site, SeriesType.MAX_CAPACITY, start, start + Q) == [(start, 25.0)]


AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), AMSTERDAM).astimezone(UTC)


def _uftp(server: Running, work: Any) -> Any:
    """`work(tx, tenant, point, peer)` on the server's database: the UFTP congestion point
    and the AGR peer the provisioning made."""

    async def run() -> Any:
        db = open_database(server.database_url)
        try:
            async with db.transaction() as tx:
                tenant = await get_tenant(tx, TENANT)
                point = await find(tx, tenant, parse_address(UFTP_POINT, "point"))
                peer = await find_peer(tx, tenant, "uftp", UFTP_AGR)
                return await work(tx, tenant, point, peer)
        finally:
            await db.close()

    return asyncio.run(run())


def test_simulated_agr_prognoses_offers_on_the_flex_request_and_takes_the_order(
    flexbridge: Running, capsys
) -> None:
    """A UFTP AGR against a congestion point of 100 kW: its D-Prognoses (80 kW, 120 kW from
    17 to 20 h) overload it, flexbridge asks for the 20 kW, the AGR offers exactly that and
    flexbridge orders it at once; the Meterings of yesterday are accepted too."""
    tomorrow = datetime.now(AMSTERDAM).date() + timedelta(days=1)
    start = _midnight(tomorrow)

    async def capacity(tx: Any, tenant: Any, point: Any, peer: Any) -> None:
        series = await ensure_series(tx, tenant, point, SeriesType.MAX_CAPACITY, resolution=Q)
        points = [Point(start + n * Q, start + (n + 1) * Q, 100.0) for n in range(100)]
        await write_values(tx, tenant, series, points, source="cpapi")

    _uftp(flexbridge, capacity)
    code, out = _simulate(
        capsys,
        "agr",
        "--target",
        flexbridge.url,
        "--credentials",
        str(flexbridge.credentials),
        "--cycles",
        "2",
        "--interval",
        "0.2",
        "--orders",
        "1",
    )
    assert code == 0, out
    count = isps_of(tomorrow, AMSTERDAM)
    line = rf"-> D-Prognosis rev (\d+) for {tomorrow} at {UFTP_POINT}: {count} ISPs"
    sent = re.findall(line, out)
    assert len(sent) == 2 and int(sent[1]) == int(sent[0]) + 1
    assert out.count("<- D-PrognosisResponse Accepted") == 2
    assert out.count("<- MeteringResponse Accepted") == 2
    assert f"<- FlexRequest rev 1 for {tomorrow}: 12 ISPs requested" in out
    assert "up to 20.0 kW less" in out
    assert "-> FlexOffer of 20.0 kW at 10.00 EUR: 200" in out
    assert "<- FlexOfferResponse Accepted" in out
    assert "option sim-1: 12 ISP element(s) at 10.0000 x 1.00" in out
    assert "sent: 2 D-Prognosis, 1 FlexOffer, 1 FlexOrderResponse, 1 FlexRequestResponse" in out

    async def stored(tx: Any, tenant: Any, point: Any, peer: Any) -> Any:
        revisions = (
            await tx.execute(
                select(uftp_prognoses.c.revision).where(
                    uftp_prognoses.c.peer_id == peer.id,
                    uftp_prognoses.c.period == tomorrow.isoformat(),
                )
            )
        ).all()
        offers = (
            await tx.execute(
                select(uftp_flex_offers.c.status, uftp_flex_offers.c.options).where(
                    uftp_flex_offers.c.peer_id == peer.id
                )
            )
        ).all()
        orders = (
            await tx.execute(
                select(uftp_flex_orders.c.status).where(uftp_flex_orders.c.peer_id == peer.id)
            )
        ).all()
        series = await find_series(tx, tenant, point, SeriesType.NET_ENERGY)
        values = await read_values(tx, tenant, series, start, start + timedelta(days=1))
        return revisions, offers, orders, values

    revisions, offers, orders, values = _uftp(flexbridge, stored)
    assert revisions == [(int(sent[1]),)]
    [(status, options)] = offers
    assert status == "ordered"
    assert {i["power_w"] for i in options[0]["isps"]} == {-20_000}
    assert orders == [("accepted",)]
    # The prognosis as the congestion point's NetEnergy: kW x 0.25 h per ISP.
    watts = prognosis_watts(tomorrow, AMSTERDAM, 80.0, 120.0)
    assert [p.value for p in values] == pytest.approx([w / 1000 * 0.25 for w in watts])


def test_the_simulated_agr_prints_the_commands_that_provision_it(capsys) -> None:
    code, out = _simulate(capsys, "agr", "--print-setup", "--domain", "agr.example.net")
    assert code == 0
    public = next(line.split()[-1] for line in out.splitlines() if line.startswith("public key"))
    assert (
        "flexbridge peer add --tenant T --protocol uftp --name agr.example.net --role AGR "
        f"--base-url http://127.0.0.1:8766/uftp/message --public-key {public}"
    ) in out
    assert "flexbridge uftp congestion-point add --tenant T --ea " in out
    assert "flexbridge uftp key --tenant T" in out


def test_a_simulated_agr_without_an_identity_is_a_usage_error(capsys) -> None:
    code = cli.main(["simulate", "agr", "--target", "http://127.0.0.1:9"])
    assert code == 2
    assert "uftp: no agr_domain, agr_secret_key, dso_domain" in capsys.readouterr().err


def test_a_simulator_without_credentials_is_a_usage_error(capsys) -> None:
    code = cli.main(["simulate", "cpo", "--target", "http://127.0.0.1:9"])
    assert code == 2
    assert "ocmp: no username, password, tenant_key" in capsys.readouterr().err
