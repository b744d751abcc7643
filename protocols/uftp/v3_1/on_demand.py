"""What the operator sends a peer when told to (`flexbridge uftp portfolio update|query`,
`flexbridge uftp test-message`; docs/protocols/uftp-3.1.md, "The CRO", "TestMessage"), and
waiting for the answers.

Each message is queued in the outbox in one transaction with its exchange; whichever
flexbridge process runs on this database delivers it and takes in the answer, which
`answers` reads back from the exchanges.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import date

from sqlalchemy.ext.asyncio import AsyncConnection

from protocols.uftp.v3_1.identity import identity_of
from protocols.uftp.v3_1.market import Market
from protocols.uftp.v3_1.portfolio import (
    congestion_points,
    cro_peers,
    send_portfolio_query,
    send_portfolio_update,
)
from protocols.uftp.v3_1.reachability import send_test_message
from protocols.uftp.v3_1.transport import PROTOCOL
from store.addresses import EA1Address
from store.db import Database
from store.entities import Entity
from store.errors import NotFound, ValidationError
from store.peers import find_peer, get_peer
from store.references import find, parse_address
from store.tenants import Tenant, get_tenant
from store.timeutil import utcnow
from store.uftp_exchanges import Exchange, ExchangeStatus, get_exchange

POLL_SECONDS = 0.2  # how often `answers` looks for an answer
MAX_WAIT_SECONDS = 3600.0


async def _points(
    tx: AsyncConnection, tenant: Tenant, address: str | None
) -> list[tuple[Entity, str]]:
    """The congestion point named (NotFound when it is none), or every one of the tenant."""
    if address is None:
        return await congestion_points(tx, tenant)
    parsed = parse_address(address, "--congestion-point")
    if not isinstance(parsed, EA1Address):
        raise ValidationError("--congestion-point", "a congestion point is named by an EA1 address")
    point = await find(tx, tenant, parsed)
    if point is None:
        raise NotFound("congestion point", str(parsed))
    return [(point, str(parsed))]


async def _require_cro(tx: AsyncConnection, tenant: Tenant) -> None:
    if not await cro_peers(tx, tenant):
        raise ValidationError(
            "--tenant",
            f"{tenant.name} has no uftp peer of role CRO (flexbridge peer add ... --role CRO)",
        )


async def portfolio_update(
    db: Database, tenant_name: str, market: Market, address: str | None = None
) -> list[Exchange]:
    """Queue a DSOPortfolioUpdate of one congestion point, or of all, for every CRO."""
    async with db.transaction() as tx:
        tenant = await get_tenant(tx, tenant_name)
        await _require_cro(tx, tenant)
        points = await _points(tx, tenant, address)
        identity = await identity_of(tx, tenant, market.domain)
        sent = await send_portfolio_update(tx, tenant, market, identity, points, utcnow())
        if not sent:
            raise ValidationError("--congestion-point", "no congestion point has a connection")
        return sent


async def portfolio_query(
    db: Database,
    tenant_name: str,
    market: Market,
    address: str | None = None,
    period: date | None = None,
) -> list[Exchange]:
    """Queue a DSOPortfolioQuery of one congestion point, or of each, for the Period
    (default today in the market's zone), for every CRO."""
    day = period or utcnow().astimezone(market.time_zone).date()
    async with db.transaction() as tx:
        tenant = await get_tenant(tx, tenant_name)
        await _require_cro(tx, tenant)
        points = await _points(tx, tenant, address)
        if not points:
            raise ValidationError("--congestion-point", f"{tenant_name} has no congestion point")
        identity = await identity_of(tx, tenant, market.domain)
        sent = []
        for _, named in points:
            sent += await send_portfolio_query(tx, tenant, market, identity, named, day)
        return sent


async def send_test(db: Database, tenant_name: str, market: Market, domain: str) -> Exchange:
    """Queue a TestMessage for the tenant's uftp peer `domain`."""
    async with db.transaction() as tx:
        tenant = await get_tenant(tx, tenant_name)
        peer = await find_peer(tx, tenant, PROTOCOL, domain)
        if peer is None:
            raise NotFound("uftp peer", domain)
        identity = await identity_of(tx, tenant, market.domain)
        return await send_test_message(tx, tenant, peer, identity)


async def peer_names(db: Database, tenant_name: str, sent: Sequence[Exchange]) -> dict[int, str]:
    """The domain of each exchange's peer, by peer id."""
    async with db.read() as tx:
        tenant = await get_tenant(tx, tenant_name)
        names: dict[int, str] = {}
        for exchange in sent:
            if exchange.peer_id not in names:
                names[exchange.peer_id] = (await get_peer(tx, tenant, exchange.peer_id)).name
        return names


def wait_seconds(text: str | None) -> float | None:
    """--wait S: seconds, more than 0 and at most an hour."""
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError as exc:
        raise ValidationError("--wait", f"{text!r} is not a number of seconds") from exc
    if not 0 < seconds <= MAX_WAIT_SECONDS:
        raise ValidationError("--wait", f"must be more than 0 and at most {MAX_WAIT_SECONDS:.0f}")
    return seconds


async def answers(db: Database, sent: Sequence[Exchange], seconds: float) -> list[Exchange]:
    """The exchanges as they stand once each is answered, or after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        async with db.read() as tx:
            now = [await get_exchange(tx, e.id) for e in sent]
        if all(e.status is not ExchangeStatus.SENT for e in now) or time.monotonic() > deadline:
            return now
        await asyncio.sleep(POLL_SECONDS)
