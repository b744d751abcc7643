"""postPriceData (v1_1 and later, A.4): prices of a market, stored as its SpotPrice series.

A market is addressed `<naming authority>:<market name>`: the Market entity (an area) of
the caller's tenant with that Name (UNRECOGNIZED_MARKET "The requested market named %s is
not known." when there is none). Its prices are in its PriceUnit property (EUR/MWh by
default; a flexbridge catalogue extension), and a message must use that unit, one of
EUR/MWh and KRW/kWh (INVALID_UNIT otherwise, as FlexMeasures 0.3 had it). A market's series
keeps the resolution of its first prices; later ones may be coarser by whole factors
(repeated onto it). Belief timing as every post (timing.py); prices are forecasts, so any
horizon is taken.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.limits import Budget, blocks_budget, check_items
from protocols.common.context import caller_of, database_of, limits_of
from protocols.usef.v1_v2_0.addresses import ea1_address
from protocols.usef.v1_v2_0.envelope import processed
from protocols.usef.v1_v2_0.errors import UsefError
from protocols.usef.v1_v2_0.fields import check_type, fields_of, version_of
from protocols.usef.v1_v2_0.groups import Group, groups_of
from protocols.usef.v1_v2_0.periods import Period, period_of, repeats, spread, value_ends
from protocols.usef.v1_v2_0.timing import beliefs
from store.catalogue import AssetSubType
from store.entities import Entity, find_named
from store.series import ensure_series, find_series
from store.series_types import SeriesType
from store.tenants import Tenant
from store.timeutil import utcnow
from store.units import parse_unit
from store.values import write_values

UNITS = ("EUR/MWh", "KRW/kWh")
DEFAULT_UNIT = "EUR/MWh"
SERIES = SeriesType.SPOT_PRICE


def _unit_of(fields: dict[str, object]) -> str:
    unit = fields.get("unit")
    if unit is None:
        raise UsefError("INVALID_UNIT", detail="Data should be given a unit.")
    if unit not in UNITS:
        raise UsefError(
            "INVALID_UNIT", detail="Data for price should be given in EUR/MWh or KRW/kWh."
        )
    return str(unit)


async def market_at(tx: AsyncConnection, tenant: Tenant, text: str) -> Entity:
    address = ea1_address(text, "market")
    market = await find_named(tx, tenant, AssetSubType.MARKET, address.local_part)
    if market is None:
        raise UsefError("UNRECOGNIZED_MARKET", name=address.local_part[:80])
    return market


@dataclass(frozen=True, slots=True)
class _Message:
    """What every market of one postPriceData shares."""

    fields: dict[str, object]
    version: str
    period: Period
    unit: str
    source: str  # the sender's: `usef:<username>`, as its meter data


async def _write(
    tx: AsyncConnection,
    tenant: Tenant,
    market: Entity,
    group: Group,
    message: _Message,
    budget: Budget,
) -> None:
    market_unit = str(market.properties.get("PriceUnit") or DEFAULT_UNIT)
    if message.unit != market_unit:
        raise UsefError(
            "INVALID_UNIT", detail=f"Prices of market {market.name} are in {market_unit}."
        )
    period = message.period
    series = await find_series(tx, tenant, market, SERIES)
    if series is None:
        first = period.duration / len(group.values)
        series = await ensure_series(
            tx, tenant, market, SERIES, resolution=first, unit=parse_unit(market_unit)
        )
    assert series.resolution is not None  # made per interval, here or by the CP-API
    k = repeats(period, len(group.values), series.resolution)
    budget.take(len(group.values) * k, "values", "intervals they become")
    points = spread(period, group.values, series.resolution, k)
    ends = value_ends(period, points, k)
    known = beliefs(message.fields, message.version, ends, utcnow(), observed=False)
    unit = parse_unit(message.unit)
    await write_values(tx, tenant, series, points, source=message.source, belief=known, unit=unit)


async def post_price_data(request: web.Request) -> web.Response:
    version = version_of(request)
    fields = await fields_of(request)
    check_type(fields, "postPriceData")
    unit = _unit_of(fields)
    period = period_of(fields, version)
    groups = groups_of(fields, "market", with_values=True)
    limits = limits_of(request)
    check_items(limits, sum(len(g.addresses) for g in groups), "markets", "markets")
    budget = blocks_budget(limits)
    caller = caller_of(request)
    message = _Message(fields, version, period, unit, f"usef:{caller.account.username}")
    async with database_of(request).transaction() as tx:
        for group in groups:
            for address in group.addresses:
                market = await market_at(tx, caller.tenant, address)
                await _write(tx, caller.tenant, market, group, message, budget)
    return processed("postPriceData")
