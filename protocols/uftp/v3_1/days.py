"""The Period a message is about, as a Day of ISPs, after the first two rules of every
message with ISPs (D-Prognosis, the flex messages, Metering): "ISP duration rejected" (an
ISP-Duration other than the market's) and "TimeZone rejected" (a TimeZone whose UTC offset
differs from the market's, isp.same_clock).

It reads the three attributes by name, so it serves Metering too, which is no flex message
(it has an EAN where they have a CongestionPoint).
"""

from __future__ import annotations

from datetime import date, timedelta

import isodate

from protocols.uftp.v3_1.errors import Rejected
from protocols.uftp.v3_1.handling import Received
from protocols.uftp.v3_1.isp import Day, same_clock, zone_named

# Periods whose day, seen from any zone, stays inside datetime's years.
_FIRST, _LAST = date(2, 1, 1), date(9998, 12, 31)


def _isp(text: str) -> timedelta:
    try:
        return isodate.parse_duration(text)
    except (isodate.ISO8601Error, ValueError, OverflowError) as exc:  # e.g. P1000000000D
        raise Rejected("ISP duration rejected") from exc


def _period(text: str) -> date:
    """xs:date allows a zone suffix and years beyond 9999; a UFTP Period is a plain local
    date, and one datetime cannot hold is out of bounds."""
    try:
        period = date.fromisoformat(text)
    except ValueError as exc:
        raise Rejected(f"Invalid Message: Period {text!r} is not YYYY-MM-DD") from exc
    if not _FIRST <= period <= _LAST:
        raise Rejected("Period out of bounds")
    return period


def day_of(received: Received) -> Day:
    inner = received.inner
    isp = _isp(inner.attr("ISP-Duration") or "")
    if isp != received.market.isp:
        raise Rejected("ISP duration rejected")
    zone = zone_named(inner.attr("TimeZone") or "")
    period = _period(inner.attr("Period") or "")
    if not same_clock(zone, received.market.time_zone, period):
        raise Rejected("TimeZone rejected")
    return Day(period, zone, isp)
