"""The Period a message is about, as a Day of ISPs, after the first two rules of every
message with ISPs (D-Prognosis, the flex messages, Metering): "ISP duration rejected" (an
ISP-Duration other than the market's) and "TimeZone rejected" (a TimeZone whose UTC offset
differs from the market's, isp.same_clock).

It reads the three attributes by name, so it serves Metering too, which is no flex message
(it has an EAN where they have a CongestionPoint).
"""

from __future__ import annotations

from datetime import date

import isodate

from protocols.uftp.v3_1.errors import Rejected
from protocols.uftp.v3_1.handling import Received
from protocols.uftp.v3_1.isp import Day, same_clock, zone_named


def day_of(received: Received) -> Day:
    inner = received.inner
    isp = isodate.parse_duration(inner.attr("ISP-Duration") or "")
    if isp != received.market.isp:
        raise Rejected("ISP duration rejected")
    zone = zone_named(inner.attr("TimeZone") or "")
    period = date.fromisoformat(inner.attr("Period") or "")
    if not same_clock(zone, received.market.time_zone, period):
        raise Rejected("TimeZone rejected")
    return Day(period, zone, isp)
