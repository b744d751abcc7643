"""D-Prognosis (AGR -> DSO): the AGR's expected average power per ISP at a congestion point
for a Period, in whole watts, positive for consumption.

Checked after the generic rules (messages.py), in the specification's order:
ISP-Duration ("ISP duration rejected"), TimeZone ("TimeZone rejected"), the ISPs ("ISPs out
of bounds", "ISP conflict", "Lacking ISPs": a D-Prognosis covers every ISP of its Period),
the Period (not before today in its TimeZone: "Period out of bounds"), the congestion point
("Invalid CongestionPoint": unknown, or the AGR is not active there), the Revision ("Subordinate
sequence number": lower than one already accepted).

Stored as the congestion point's NetEnergy (kWh per ISP, from the watts: average power over
the ISP; an energy series keeps the extensive meaning when resampled, an instant-power one
would not), source `uftp:<AGR domain>`, so that each AGR's prognosis is one source beside
the others and every protocol can read the sum.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from hub.peer_state import state_of
from protocols.uftp.v3_1.clock import at_once
from protocols.uftp.v3_1.codec import spans_of
from protocols.uftp.v3_1.days import day_of
from protocols.uftp.v3_1.errors import Rejected
from protocols.uftp.v3_1.flex_requests import check_congestion
from protocols.uftp.v3_1.handling import Accepted, Received
from protocols.uftp.v3_1.isp import check_spans
from protocols.uftp.v3_1.sources import source_of
from store.entities import Entity
from store.errors import StoreError
from store.references import find, parse_address
from store.series import ensure_series
from store.series_types import SeriesType
from store.timeutil import utcnow
from store.uftp import keep_prognosis, prognosis_revision
from store.values import Point, write_values

_HOUR = timedelta(hours=1)


async def congestion_point(received: Received, address: str) -> Entity:
    """The congestion point the message names, where its sender is active."""
    if address not in state_of(received.peer).congestion_points:
        raise Rejected("Invalid CongestionPoint")
    try:
        point = await find(received.tx, received.tenant, parse_address(address, "CongestionPoint"))
    except StoreError:
        point = None
    if point is None:
        raise Rejected("Invalid CongestionPoint")
    return point


async def d_prognosis(received: Received) -> Accepted:
    day = day_of(received)
    isps = spans_of(received.inner.root.iter("ISP"))
    check_spans((span for span, _ in isps), day, complete=True)
    if day.end <= utcnow():
        raise Rejected("Period out of bounds")
    point = await congestion_point(received, received.inner.attr("CongestionPoint") or "")
    revision = int(received.inner.attr("Revision") or 0)
    kept = await prognosis_revision(received.tx, received.peer, point, day.period)
    if kept is not None and revision < kept:
        raise Rejected("Subordinate sequence number")
    hours = day.isp / _HOUR
    points = []
    for span, element in isps:
        kwh = int(element.attrib["Power"]) / 1000 * hours
        for n in range(span.start, span.last + 1):
            start, end = day.interval(n)
            points.append(Point(start, end, kwh))
    series = await ensure_series(
        received.tx, received.tenant, point, SeriesType.NET_ENERGY, resolution=day.isp
    )
    await write_values(
        received.tx,
        received.tenant,
        series,
        points,
        source=source_of(received.peer.name),
        belief=received.inner.header.timestamp,
    )
    await keep_prognosis(
        received.tx,
        received.tenant,
        received.peer,
        point,
        day.period,
        revision=revision,
        message_id=received.inner.header.message_id,
        replaces=kept is not None,
    )
    address = received.inner.attr("CongestionPoint") or ""
    return Accepted(then=partial(at_once, check_congestion, received, point, address, day.period))
