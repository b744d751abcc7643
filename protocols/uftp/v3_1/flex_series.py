"""The flex a DSO asks for and buys, as series on the congestion point, so that every
protocol sees it (docs/protocols/uftp-3.1.md, "Flex as series").

RequestedFlexibility: per ISP of the Period, the power our open FlexRequest asks for, in kW
signed as UFTP signs it (negative: less consumption), 0 where nothing is requested; written
when a request goes out and when requests are superseded (0 everywhere when none follows).
The same request goes to every AGR, so it is written once, not per AGR.
OrderedFlexibility: per ISP, the sum over the FlexOrders AGRs accepted (and settled since) of
each order's power x ActivationFactor, in kW, written when an order is accepted.

Both are written in the transaction that changes the messages' state, source `uftp:<our
domain>`, every ISP of the Period, so that a newer belief replaces the whole day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from protocols.uftp.v3_1.identity import Identity
from protocols.uftp.v3_1.isp import Day
from protocols.uftp.v3_1.sources import source_of
from store.entities import Entity
from store.series import ensure_series
from store.series_types import SeriesType
from store.tenants import Tenant
from store.timeutil import utcnow
from store.uftp import Trade, TradeStatus, trades_at
from store.values import Point, write_values

# Orders whose flex the AGR has taken on: accepted, and settled after that.
TAKEN = (TradeStatus.ACCEPTED, TradeStatus.SETTLED)


def requested_w(isps: Iterable[dict[str, Any]], count: int) -> list[float]:
    """Per ISP (1..count) the power a request's Requested ISPs ask for (W): the bound that is
    not 0, as the direction rule (never MinPower < 0 < MaxPower) leaves one."""
    watts = [0.0] * count
    for isp in isps:
        if isp["disposition"] == "Requested" and 1 <= isp["start"] <= count:
            watts[isp["start"] - 1] = float(isp["min_w"] if isp["min_w"] < 0 else isp["max_w"])
    return watts


def ordered_w(orders: Sequence[Trade], count: int) -> list[float]:
    """Per ISP (1..count) the summed power of the orders (W), each x its ActivationFactor."""
    watts = [0.0] * count
    for order in orders:
        factor = float(order.parts["activation_factor"])
        for isp in order.parts["isps"]:
            for n in range(isp["start"], isp["start"] + isp["duration"]):
                if 1 <= n <= count:
                    watts[n - 1] += isp["power_w"] * factor
    return watts


async def _write(
    tx: AsyncConnection,
    tenant: Tenant,
    point: Entity,
    day: Day,
    series_type: SeriesType,
    watts: list[float],
    identity: Identity,
) -> None:
    series = await ensure_series(tx, tenant, point, series_type, resolution=day.isp)
    points = [Point(*day.interval(n), w / 1000) for n, w in enumerate(watts, start=1)]
    await write_values(
        tx, tenant, series, points, source=source_of(identity.domain), belief=utcnow()
    )


async def write_requested(
    tx: AsyncConnection,
    tenant: Tenant,
    point: Entity,
    day: Day,
    isps: list[dict[str, Any]],
    identity: Identity,
) -> None:
    """The congestion point's RequestedFlexibility for the Period: what `isps` (a request's,
    as stored; empty: nothing requested any more) ask for."""
    watts = requested_w(isps, day.count)
    await _write(tx, tenant, point, day, SeriesType.REQUESTED_FLEXIBILITY, watts, identity)


async def write_ordered(
    tx: AsyncConnection, tenant: Tenant, point: Entity, day: Day, identity: Identity
) -> None:
    """The congestion point's OrderedFlexibility for the Period, from its taken orders."""
    orders = await trades_at(tx, "order", tenant, point, day.period, TAKEN)
    watts = ordered_w(orders, day.count)
    await _write(tx, tenant, point, day, SeriesType.ORDERED_FLEXIBILITY, watts, identity)
