"""UFTP 3.1 Metering (AGR -> DSO) over real HTTP: flexbridge as the DSO, the AGR of
tests/uftp_agr.py (its `dso` fixture), answered by a signed MeteringResponse. Rules quoted from
shared/specs/wave2-requirements.md part B and uftp-3.1-notes.md sections 2.1, 6 and 7.4;
the profile meanings from the specification's UFTP-metering.xsd."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from uftp_agr import AMSTERDAM, CP
from uftp_agr import isps_of as _isps
from uftp_agr import valid_outbound as _valid_outbound

from adapter.keys import DB
from protocols.uftp.v3_1.codec import Node
from protocols.uftp.v3_1.congestion_points import NewCongestionPoint, add_congestion_point
from store.addresses import EANAddress
from store.references import find
from store.series import find_series
from store.series_types import SeriesType
from store.tables import uftp_meterings
from store.tables import values as values_table
from store.values import read_values

Q = timedelta(minutes=15)
DIGITS = "871685900012345678"  # the connection of the dso fixture, ean.<DIGITS>
SOURCE = "uftp:agr.example.com"


def _yesterday() -> date:
    return datetime.now(AMSTERDAM).date() - timedelta(days=1)


def _start(period: date) -> datetime:
    return datetime.combine(period, datetime.min.time(), AMSTERDAM).astimezone(UTC)


def _profile(kind: str, unit: str, values: list[float], first: int = 1) -> Node:
    isps = [
        Node("ISP", {"Start": str(first + n), "Value": f"{v:.3f}"}) for n, v in enumerate(values)
    ]
    return Node("Profile", {"ProfileType": kind, "Unit": unit}, isps)


def _attributes(period: date, **more: str) -> dict[str, str]:
    return {
        "Revision": "1",
        "ISP-Duration": "PT15M",
        "TimeZone": "Europe/Amsterdam",
        "Period": period.isoformat(),
        "EAN": f"E{DIGITS}",
        **more,
    }


async def _metering(dso: Any, profiles: list[Node], period: date, **more: str) -> Any:
    status, body = await dso.send("Metering", profiles, **_attributes(period, **more))
    assert (status, body) == (200, "")
    reply = await dso.agr.next("MeteringResponse")
    _valid_outbound(reply.inner)
    return reply


async def _stored(dso: Any, digits: str, series_type: SeriesType, period: date, **kw: Any) -> Any:
    start = _start(period)
    async with dso.app[DB].read() as tx:
        meter = await find(tx, dso.tenant, EANAddress(digits))
        series = await find_series(tx, dso.tenant, meter, series_type)
        if series is None:
            return None
        return await read_values(tx, dso.tenant, series, start, start + timedelta(days=1), **kw)


async def _nothing_stored(dso: Any) -> None:
    async with dso.app[DB].read() as tx:
        assert (await tx.execute(select(func.count()).select_from(values_table))).scalar() == 0
        assert (await tx.execute(select(func.count()).select_from(uftp_meterings))).scalar() == 0


async def test_a_metering_with_power_and_import_energy_is_accepted_and_stored_on_its_meter(dso):
    """ "Power: the average active power during ISP, Power=(ImportEnergy-ExportEnergy)*(60/
    ISP-Length-Minutes)"; "ImportEnergy: imported active energy, consumed during the ISP".
    Power is stored as NetEnergy (kWh per ISP), ImportEnergy as Consumption, on the meter of
    the connection, source uftp:<AGR domain>; the response names the Metering."""
    period = _yesterday()
    count = _isps(period)
    kw = [4.0 + n / 8 for n in range(count)]
    kwh = [round(p / 4 + 0.125, 3) for p in kw]  # not Power's quarter: supplied, not derived
    profiles = [_profile("Power", "kW", kw), _profile("ImportEnergy", "kWh", kwh)]
    sent = dso.agr.metadata(**_attributes(period))
    assert (await dso.post(dso.agr.signed(dso.agr.message("Metering", sent, profiles))))[0] == 200
    reply = await dso.agr.next("MeteringResponse")
    assert reply.attributes["Result"] == "Accepted", reply.attributes
    assert reply.attributes["MeteringMessageID"] == sent["MessageID"]
    assert reply.attributes["ConversationID"] == sent["ConversationID"]
    _valid_outbound(reply.inner)
    net = await _stored(dso, DIGITS, SeriesType.NET_ENERGY, period, sources=[SOURCE])
    assert [p.value for p in net] == pytest.approx([p / 4 for p in kw])
    assert [(p.start, p.end) for p in net[:2]] == [
        (_start(period), _start(period) + Q),
        (_start(period) + Q, _start(period) + 2 * Q),
    ]
    consumption = await _stored(dso, DIGITS, SeriesType.CONSUMPTION, period)
    assert [p.value for p in consumption] == pytest.approx(kwh)  # the supplied values win


async def test_meter_readings_are_instants_at_the_isp_end_and_derive_the_energy(dso):
    """ "ImportMeterReading: cumulative metered imported active energy reading, at the end of
    the ISP"; Table 2: the energy of a block is the reading at its end minus the reading at
    its start (hub.derivations), written with source "derived"."""
    period = _yesterday()
    readings = [100.0, 101.0, 103.0, 106.0]
    reply = await _metering(dso, [_profile("ImportMeterReading", "kWh", readings)], period)
    assert reply.attributes["Result"] == "Accepted", reply.attributes
    stored = await _stored(dso, DIGITS, SeriesType.CONSUMPTION_METER_READING, period)
    assert [(p.start, p.value) for p in stored] == [
        (_start(period) + (n + 1) * Q, v) for n, v in enumerate(readings)
    ]
    derived = await _stored(dso, DIGITS, SeriesType.CONSUMPTION, period, sources=["derived"])
    assert [(p.start, p.value) for p in derived] == [
        (_start(period) + n * Q, pytest.approx(kwh)) for n, kwh in ((1, 1.0), (2, 2.0), (3, 3.0))
    ]


@pytest.mark.parametrize("digits", ["8716859000123456", "871685900012345699"])
async def test_an_ean_of_16_or_18_digits_names_the_connection_added_as_ean_digits(dso, digits):
    """Metering EAN: "EANType [Ee][0-9]{16}" in the 3.1 XSD, "[Ee][0-9]{18}" in
    shapeshifter-uftp 2.3.2+: "Accept both". `E<digits>` is the connection added with
    `--connection ean.<digits>`."""
    await add_congestion_point(dso.app[DB], NewCongestionPoint("grid", CP, (f"ean.{digits}",)))
    period = _yesterday()
    reply = await _metering(dso, [_profile("Power", "kW", [2.0])], period, EAN=f"e{digits}")
    assert reply.attributes["Result"] == "Accepted", reply.attributes
    assert [p.value for p in await _stored(dso, digits, SeriesType.NET_ENERGY, period)] == [0.5]


async def test_an_ean_that_is_no_connection_where_the_agr_is_active_is_rejected(dso):
    """ "Metering for an EAN that is not a connection of it is Rejected" (issue 14): an
    unknown EAN, and one connected to a congestion point where the AGR is not active, get
    the same reason, and nothing is stored."""
    elsewhere = "871685900099999999"
    await add_congestion_point(
        dso.app[DB],
        NewCongestionPoint("grid", "ea1.2026-12.nl.example.dso:cp-2", (f"ean.{elsewhere}",)),
    )
    for digits in ("871685900011111111", elsewhere):
        reply = await _metering(
            dso, [_profile("Power", "kW", [1.0])], _yesterday(), EAN=f"E{digits}"
        )
        assert (reply.attributes["Result"], reply.attributes["RejectionReason"]) == (
            "Rejected",
            f"Invalid Message: EAN E{digits} is not a connection at a congestion point of "
            "agr.example.com",
        )
    await _nothing_stored(dso)


def _power(values: list[float], first: int = 1, unit: str = "kW") -> list[Node]:
    return [_profile("Power", unit, values, first)]


def _overlapping(count: int) -> list[Node]:
    isps = [Node("ISP", {"Start": "3", "Value": "1"}), Node("ISP", {"Start": "3", "Value": "2"})]
    return [Node("Profile", {"ProfileType": "Power", "Unit": "kW"}, isps)]


# (profiles for a day of `count` ISPs, attributes changed, the RejectionReason)
RULES = [
    pytest.param(
        lambda count: _power([1.0]),
        {"ISP-Duration": "PT30M"},
        "ISP duration rejected",
        id="isp-duration",
    ),
    pytest.param(
        lambda count: _power([1.0]),
        {"TimeZone": "America/New_York"},
        "TimeZone rejected",
        id="time-zone",
    ),
    pytest.param(_overlapping, {}, "ISP conflict", id="isp-conflict"),
    pytest.param(lambda count: _power([1.0], 0), {}, "ISPs out of bounds", id="isp-0"),
    pytest.param(
        lambda count: _power([1.0], count + 1), {}, "ISPs out of bounds", id="isp-past-the-day"
    ),
    pytest.param(
        lambda count: _power([1.0]),
        {"Period": (datetime.now(AMSTERDAM).date() + timedelta(days=1)).isoformat()},
        "Period out of bounds",
        id="period-ahead",
    ),
    pytest.param(
        lambda count: _power([1.0], unit="kWh"),
        {},
        "Invalid Message: a Power profile is in kW, not kWh",
        id="power-in-kwh",
    ),
    pytest.param(
        lambda count: [_profile("ImportMeterReading", "kW", [1.0])],
        {},
        "Invalid Message: a ImportMeterReading profile is in kWh, not kW",
        id="reading-in-kw",
    ),
    pytest.param(
        lambda count: _power([1.0]) + _power([2.0], 2),
        {},
        "Invalid Message: more than one Power profile",
        id="two-power-profiles",
    ),
]


@pytest.mark.parametrize(("profiles", "change", "reason"), RULES)
async def test_a_metering_breaking_a_rule_is_rejected_with_its_reason_and_not_stored(
    dso, profiles, change, reason
):
    """message-validation.md, Metering (M): "ISP duration rejected", "TimeZone rejected",
    "ISPs out of bounds" (Metering Start is xs:integer: "Enforce the bounds in code"), "ISP
    conflict", "Period out of bounds"; "kW must be used with Power profile values", "kWh
    must be used with energy profile values" (else "Invalid Message"). A rejected message
    changes nothing."""
    period = _yesterday()
    reply = await _metering(dso, profiles(_isps(period)), period, **change)
    assert (reply.attributes["Result"], reply.attributes["RejectionReason"]) == (
        "Rejected",
        reason,
    )
    await _nothing_stored(dso)


async def test_a_value_its_series_cannot_hold_is_an_invalid_message_and_not_stored(dso):
    """ "Invalid Message: schema-compliant but syntax/type/semantics unacceptable": energy
    imported during an ISP is not negative (Consumption is unsigned)."""
    profiles = [_profile("Power", "kW", [1.0]), _profile("ImportEnergy", "kWh", [-1.0])]
    reply = await _metering(dso, profiles, _yesterday())
    assert reply.attributes["Result"] == "Rejected"
    assert reply.attributes["RejectionReason"].startswith("Invalid Message: ")
    await _nothing_stored(dso)


async def test_a_lower_revision_is_a_subordinate_sequence_number(dso):
    """Revision: "a sequence number that must be incremented each time a new revision of a
    metering message is sent"; one lower than a revision accepted for the EAN and Period is
    Rejected "Subordinate sequence number" and changes nothing."""
    period = _yesterday()
    first = await _metering(dso, _power([5.0]), period, Revision="5")
    assert first.attributes["Result"] == "Accepted", first.attributes
    older = await _metering(dso, _power([9.0]), period, Revision="4")
    assert (older.attributes["Result"], older.attributes["RejectionReason"]) == (
        "Rejected",
        "Subordinate sequence number",
    )
    assert [p.value for p in await _stored(dso, DIGITS, SeriesType.NET_ENERGY, period)] == [1.25]
    async with dso.app[DB].read() as tx:
        kept = (await tx.execute(select(uftp_meterings.c.revision))).scalars().all()
    assert kept == [5]
    other_day = await _metering(dso, _power([9.0]), period - timedelta(days=1), Revision="4")
    assert other_day.attributes["Result"] == "Accepted"  # revisions count per Period
