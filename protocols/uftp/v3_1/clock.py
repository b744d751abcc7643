"""The UFTP clock, run by the adapter's peer clock every `Market.congestion_check` (5 s;
a D-Prognosis and a FlexOffer are acted on as they arrive, so this sweep is what catches a
MaxCapacity changed through another protocol, and the orders due by time): for every
congestion point with a D-Prognosis for today or later, send the FlexRequests its overload
asks for (flex_requests.py) and place the FlexOrders its offers allow (flex_orders.py); and
for every contract whose Period is due, its FlexReservationUpdate (reservations.py).

Each congestion point and Period is handled in its own transaction, holding the congestion
point's lock (store.uftp.lock_forecast; skipped when another transaction holds it), so
processes sharing a database, and the messages acting as they arrive, do not both send.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.runtime import Hub
from protocols.uftp.v3_1.flex_orders import place_orders
from protocols.uftp.v3_1.flex_requests import check_congestion
from protocols.uftp.v3_1.handling import Received
from protocols.uftp.v3_1.identity import Identity, identity_of
from protocols.uftp.v3_1.market import Market
from protocols.uftp.v3_1.reservations import release_due
from store.db import Database
from store.entities import Entity, get_entity_by_id
from store.references import USEF_SYSTEM, references_of
from store.tenants import Tenant, list_tenants
from store.timeutil import utcnow
from store.uftp import Forecast, lock_forecast, periods_ahead

# A step of the clock for one congestion point and Period (check_congestion, place_orders):
# (tx, tenant, point, address, period, market, identity, now) -> messages sent.
Step = Callable[
    [AsyncConnection, Tenant, Entity, str, date, Market, Identity, datetime], Awaitable[int]
]


async def at_once(step: Step, received: Received, point: Entity, address: str, period: date) -> int:
    """A step run now, in the transaction of the message that calls for it (a D-Prognosis
    making an overload, an offer completing a cover), rather than at the next sweep. It
    waits for the congestion point's turn a concurrent message or sweep holds, and so sees
    what that one sent: nothing is requested or ordered twice."""
    r = received
    if not await lock_forecast(r.tx, Forecast(r.tenant.id, point.id, period), wait=True):
        return 0  # the congestion point is gone
    return await step(r.tx, r.tenant, point, address, period, r.market, r.identity, utcnow())


async def tick(db: Database, hub: Hub, now: datetime, market: Market) -> None:
    today = now.astimezone(market.time_zone).date()
    async with db.read() as tx:
        forecasts = await periods_ahead(tx, today - timedelta(days=1))
        tenants = {t.id: t for t in await list_tenants(tx)} if forecasts else {}
    sent = 0
    for forecast in forecasts:
        sent += await _handle(db, hub, forecast, tenants, market, now)
    sent += await release_due(db, now, market)
    if sent:
        hub.wake_outbox()


async def _handle(
    db: Database,
    hub: Hub,
    forecast: Forecast,
    tenants: dict[int, Tenant],
    market: Market,
    now: datetime,
) -> int:
    tenant = tenants.get(forecast.tenant_id)
    if tenant is None:
        return 0
    async with db.transaction() as tx:
        if not await lock_forecast(tx, forecast):
            return 0
        point = await get_entity_by_id(tx, tenant, forecast.entity_id)
        addresses = [
            r.external_key
            for r in await references_of(tx, tenant, point, USEF_SYSTEM)
            if r.reference_type == "ea1"
        ]
        if not addresses:
            return 0
        identity = await identity_of(tx, tenant, market.domain)
        args = (tx, tenant, point, addresses[0], forecast.period, market, identity, now)
        return await check_congestion(*args) + await place_orders(*args)
