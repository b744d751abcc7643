"""Congestion points: where a DSO trades flexibility (`flexbridge uftp congestion-point add`).

A congestion point is a FlexibilityArea entity named by its EA1 entity address, so that
every protocol can set and read its series (its MaxCapacity through the CP-API, say, by the
platform key printed here). Its connections (EAN addresses) are Meter resources connected
to it; the AGRs active at it carry its address in their peer state, and a flex message of an
AGR not active at its congestion point is Rejected "Invalid CongestionPoint". A new
congestion point, or a new connection of one, is registered with the tenant's CRO, if it
has one, in the same transaction (portfolio.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.peer_state import edit
from protocols.uftp.v3_1.identity import identity_of
from protocols.uftp.v3_1.market import Market
from protocols.uftp.v3_1.point_address import address_of
from protocols.uftp.v3_1.portfolio import cro_peers, send_portfolio_update
from protocols.uftp.v3_1.transport import PROTOCOL
from store.addresses import EA1Address
from store.catalogue import AssetSubType, AssetType, ConnectorType
from store.db import Database
from store.entities import Entity, add_connector, create_entity
from store.errors import NotFound, ValidationError
from store.peers import find_peer
from store.references import add_reference, find, parse_address
from store.tenants import Tenant, get_tenant
from store.timeutil import utcnow

__all__ = ["NewCongestionPoint", "add_congestion_point", "address_of"]


@dataclass(frozen=True, slots=True)
class NewCongestionPoint:
    tenant: str
    address: str  # EA1
    connections: Sequence[str] = ()  # EAN addresses, ean.<12-34 digits>
    agrs: Sequence[str] = ()  # domains of uftp peers of role AGR


async def add_congestion_point(
    db: Database, new: NewCongestionPoint, market: Market | None = None
) -> Entity:
    """The congestion point, made (or found, when its address names one already) with its
    connections and AGRs added; when it or a connection is new, a DSOPortfolioUpdate of it
    is queued for each CRO of the tenant (`market` names our identity and zone for it: a
    caller without one may not add to a tenant with a CRO)."""
    address = parse_address(new.address, "--ea")
    if not isinstance(address, EA1Address):
        raise ValidationError("--ea", "a congestion point is named by an EA1 address")
    eans = [parse_address(text, "--connection") for text in new.connections]
    async with db.transaction() as tx:
        tenant = await get_tenant(tx, new.tenant)
        point = await find(tx, tenant, address)
        changed = point is None
        if point is None:
            point = await create_entity(
                tx, tenant, AssetType.AREA, AssetSubType.FLEXIBILITY_AREA, {"Name": str(address)}
            )
            await add_reference(tx, tenant, point, address)
        for ean in eans:
            if await find(tx, tenant, ean) is None:
                meter = await create_entity(
                    tx, tenant, AssetType.RESOURCE, AssetSubType.METER, {"Name": str(ean)}
                )
                await add_reference(tx, tenant, meter, ean)
                await add_connector(tx, tenant, point, meter, ConnectorType.FLEXIBILITY)
                changed = True
        for domain in new.agrs:
            peer = await find_peer(tx, tenant, PROTOCOL, domain)
            if peer is None:
                raise NotFound("uftp peer", domain)
            async with edit(tx, peer) as state:
                if state.role != "AGR":
                    raise ValidationError("--agr", f"{domain} is a {state.role}, not an AGR")
                if str(address) not in state.congestion_points:
                    state.congestion_points.append(str(address))
        if changed:
            await _register(tx, tenant, point, str(address), market)
        return point


async def _register(
    tx: AsyncConnection, tenant: Tenant, point: Entity, address: str, market: Market | None
) -> None:
    if not await cro_peers(tx, tenant):
        return
    if market is None:
        raise ValueError("a tenant with a CRO: the DSOPortfolioUpdate needs the market")
    identity = await identity_of(tx, tenant, market.domain)
    await send_portfolio_update(tx, tenant, market, identity, [(point, address)], utcnow())
