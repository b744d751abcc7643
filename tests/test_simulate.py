"""Issue 6: the peer simulators against a real `flexbridge serve` process - what they print,
and what the server stored from them (read back from its database)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from conformance import cli
from conformance.provision import OCMP_PEER, OSCP_PEER, TENANT, Running, running_flexbridge
from conformance.simulate import household_kw
from store.db import open_database
from store.references import ExternalRef, ProtocolId, find
from store.series import find_series
from store.series_types import SeriesType
from store.tenants import get_tenant
from store.values import read_values

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


def test_a_simulator_without_credentials_is_a_usage_error(capsys) -> None:
    code = cli.main(["simulate", "cpo", "--target", "http://127.0.0.1:9"])
    assert code == 2
    assert "ocmp: no username, password, tenant_key" in capsys.readouterr().err
