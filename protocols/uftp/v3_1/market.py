"""The market a DSO's UFTP messages belong to: our domain (by default), the ISP-Duration
and the time zone whose offsets every message's TimeZone must keep. Set by the adapter from
the settings `uftp_domain`, `uftp_time_zone`, `uftp_order_lead_seconds` and
`uftp_reservation_lead_seconds`; PT15M is the ISP of every Dutch market."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Market:
    domain: str  # the DSO domain a tenant's identity is made with (identity.py)
    time_zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Amsterdam"))
    isp: timedelta = timedelta(minutes=15)
    # Orders that do not cover a request in full wait for more offers until this long
    # before the earliest offer expires (flex_orders.py).
    order_lead: timedelta = timedelta(minutes=5)
    # A contract's FlexReservationUpdate for a Period goes out this long before the Period
    # begins (reservations.py).
    reservation_lead: timedelta = timedelta(hours=10)
    # How often the clock checks every congestion point and Period for congestion (a
    # D-Prognosis is checked as it arrives; this catches a MaxCapacity changed elsewhere).
    congestion_check: timedelta = timedelta(seconds=5)


MARKET = web.AppKey("uftp_market", Market)
