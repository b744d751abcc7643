"""Metering (AGR -> DSO): what was metered at one connection over a Period, one or more
profiles of ISP values; answered with a MeteringResponse (docs/protocols/uftp-3.1.md,
Metering).

Checked after the generic rules (messages.py), first failure wins:

    each profile's Unit is its type's; one profile per type   "Invalid Message: ..."
    ISP-Duration is the market's                              "ISP duration rejected"
    TimeZone keeps the market's UTC offsets                   "TimeZone rejected"
    each profile's ISPs lie in the Period (Start is           "ISPs out of bounds",
      xs:integer), none twice                                 "ISP conflict"
    the Period has begun (nothing is metered ahead)           "Period out of bounds"
    the EAN is a connection of a congestion point where       "Invalid Message: EAN ..."
      the AGR is active
    Revision not lower than one accepted for the EAN and      "Subordinate sequence number"
      Period

"kW must be used with Power profile values", "kWh must be used with energy profile values
(ImportEnergy, ExportEnergy, ImportMeterReading, ExportMeterReading)" (UFTP-metering.xsd).

The EAN (`E` + 16 or 18 digits) names the Meter that `flexbridge uftp congestion-point add
--connection ean.<the same digits>` made. Stored on that meter, source `uftp:<AGR domain>`,
belief the message's TimeStamp:

    Power (kW, average over the ISP)        NetEnergy, kWh per ISP = kW x ISP hours
    ImportEnergy (kWh, during the ISP)      Consumption
    ExportEnergy (kWh, during the ISP)      Production
    ImportMeterReading (kWh, cumulative)    ConsumptionMeterReading, at the ISP's end
    ExportMeterReading (kWh, cumulative)    ProductionMeterReading, at the ISP's end

and then what the hub's Table 2 rules derive from them (hub.derivations: energy from the
readings, Consumption and Production from NetEnergy), never over a supplied value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from xml.etree.ElementTree import Element

from hub import derivations, replan
from hub.peer_state import state_of
from protocols.uftp.v3_1.days import day_of
from protocols.uftp.v3_1.errors import Rejected
from protocols.uftp.v3_1.handling import Accepted, Received
from protocols.uftp.v3_1.isp import Day, Span, check_spans
from protocols.uftp.v3_1.sources import source_of
from store.addresses import EANAddress
from store.catalogue import ConnectorType
from store.entities import Entity, connectors_of
from store.errors import StoreError, ValidationError
from store.references import find, parse_address
from store.series import Series, ensure_series
from store.series_types import SeriesType
from store.timeutil import utcnow
from store.uftp import keep_metering, metering_revision
from store.values import Point, write_values

_HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Kind:
    """What one ProfileType is, and where it is stored."""

    series_type: SeriesType
    unit: str  # the Unit the profile must carry
    reading: bool = False  # a cumulative reading at the ISP's end, not a value over the ISP


# In this order the series are written and derived from: a derivation never replaces a
# supplied value, so every supplied series is written before any derivation runs, and the
# readings' energy (what was metered) derives after NetEnergy's split (an estimate).
KINDS: dict[str, Kind] = {
    "ImportEnergy": Kind(SeriesType.CONSUMPTION, "kWh"),
    "ExportEnergy": Kind(SeriesType.PRODUCTION, "kWh"),
    "Power": Kind(SeriesType.NET_ENERGY, "kW"),
    "ImportMeterReading": Kind(SeriesType.CONSUMPTION_METER_READING, "kWh", reading=True),
    "ExportMeterReading": Kind(SeriesType.PRODUCTION_METER_READING, "kWh", reading=True),
}


def _profiles(received: Received) -> dict[str, Element]:
    """The message's profiles by ProfileType, each in its type's unit."""
    profiles: dict[str, Element] = {}
    for profile in received.inner.root.iter("Profile"):
        kind, unit = profile.attrib["ProfileType"].strip(), profile.attrib["Unit"].strip()
        if unit != KINDS[kind].unit:
            raise Rejected(
                f"Invalid Message: a {kind} profile is in {KINDS[kind].unit}, not {unit}"
            )
        if kind in profiles:
            raise Rejected(f"Invalid Message: more than one {kind} profile")
        profiles[kind] = profile
    return profiles


def _values(profile: Element) -> list[tuple[int, float]]:
    """(ISP number, value) of each ISP element: one ISP each, Metering has no Duration."""
    return [
        (int(e.attrib["Start"]), float(Decimal(e.attrib["Value"]))) for e in profile.iter("ISP")
    ]


async def connection(received: Received, ean: str, day: Day) -> Entity:
    """The Meter the EAN names, connected (at the Period's start) to a congestion point
    where the sender is active. Unknown, and known but elsewhere, get one reason: an AGR
    learns nothing of connections that are not its own."""
    refused = Rejected(
        f"Invalid Message: EAN {ean} is not a connection at a congestion point of "
        f"{received.peer.name}"
    )
    tx, tenant = received.tx, received.tenant
    try:
        meter = await find(tx, tenant, EANAddress(ean[1:]))
    except StoreError:
        meter = None
    if meter is None:
        raise refused
    links = await connectors_of(
        tx,
        tenant,
        meter,
        direction="parent",
        connector_type=ConnectorType.FLEXIBILITY,
        at=day.start,
    )
    parents = {link.parent.id for link in links}
    for address in state_of(received.peer).congestion_points:
        point = await find(tx, tenant, parse_address(address, "CongestionPoint"))
        if point is not None and point.id in parents:
            return meter
    raise refused


def _points(kind: Kind, values: list[tuple[int, float]], day: Day) -> list[Point]:
    hours = day.isp / _HOUR
    points = []
    for n, value in values:
        start, end = day.interval(n)
        if kind.reading:
            points.append(Point(end, end, value))
        elif kind.series_type is SeriesType.NET_ENERGY:
            points.append(Point(start, end, value * hours))
        else:
            points.append(Point(start, end, value))
    return points


async def _store(
    received: Received, meter: Entity, day: Day, profiles: dict[str, list[tuple[int, float]]]
) -> list[SeriesType]:
    """Write every profile, then derive; the series types changed."""
    tx, tenant = received.tx, received.tenant
    written: list[tuple[Series, list[Point]]] = []
    for name, kind in KINDS.items():
        if name not in profiles:
            continue
        resolution = None if kind.reading else day.isp  # readings are instants (as OCMP's)
        series = await ensure_series(tx, tenant, meter, kind.series_type, resolution=resolution)
        points = _points(kind, profiles[name], day)
        await write_values(
            tx,
            tenant,
            series,
            points,
            source=source_of(received.peer.name),
            belief=received.inner.header.timestamp,
        )
        written.append((series, points))
    changed = [series.series_type for series, _ in written]
    for series, points in written:
        changed += await derivations.derive(tx, tenant, meter, series, points, field="Profile")
    return changed


async def metering(received: Received) -> Accepted:
    profiles = _profiles(received)
    day = day_of(received)
    values = {kind: _values(profile) for kind, profile in profiles.items()}
    for isps in values.values():
        check_spans((Span(n) for n, _ in isps), day)
    if day.start > utcnow():
        raise Rejected("Period out of bounds")
    meter = await connection(received, received.inner.attr("EAN") or "", day)
    revision = int(received.inner.attr("Revision") or 0)
    kept = await metering_revision(received.tx, received.peer, meter, day.period)
    if kept is not None and revision < kept:
        raise Rejected("Subordinate sequence number")
    try:
        changed = await _store(received, meter, day, values)
    except ValidationError as exc:  # a value the series cannot hold (a negative energy, say)
        raise Rejected(f"Invalid Message: {exc}") from exc
    await replan.inputs_changed(received.tx, received.tenant, [(meter, t) for t in changed])
    await keep_metering(
        received.tx,
        received.tenant,
        received.peer,
        meter,
        day.period,
        revision=revision,
        message_id=received.inner.header.message_id,
        replaces=kept is not None,
    )
    return Accepted()
