"""The DSO's portfolio at the common reference operator (docs/protocols/uftp-3.1.md, "The
CRO"): "The DSOPortfolioUpdate is used by the DSO to indicate on which congestion points it
wants to engage in flexibility trading", and "DSOPortfolioQuery is used by DSOs to discover
which AGRs represent connections on its registered congestion point(s)".

Both go, signed and through the outbox, to every uftp peer of role CRO of the tenant, each
a new conversation, recorded as an exchange (store/uftp_exchanges.py) that the response
answers (portfolio_answers.py). A tenant without a CRO sends neither.

What a congestion point is registered with: each of its Meters connected now (or later),
StartPeriod the local date its connector begins (today for one open from the start),
EndPeriod the local date of its last instant when it ends; the congestion point from the
earliest of its connections' StartPeriods, open-ended. MutexOffersSupported="true" (the
options of one offer are taken as mutually exclusive), DayAheadRedispatchBy and
IntradayRedispatchBy "DSO" (flexbridge requests and orders flex for the day ahead and within
the day). A congestion point without a connection is left out: the schema wants one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.peer_state import state_of
from protocols.uftp.v3_1.codec import Node
from protocols.uftp.v3_1.identity import Identity
from protocols.uftp.v3_1.market import Market
from protocols.uftp.v3_1.point_address import address_of
from protocols.uftp.v3_1.replies import VERSION, metadata, send_signed
from protocols.uftp.v3_1.transport import PROTOCOL
from store.catalogue import AssetSubType, AssetType, ConnectorType, EntityStatus
from store.entities import Connector, Entity, connectors_of, list_entities
from store.errors import NotFound
from store.peers import Peer, list_peers
from store.references import USEF_SYSTEM, references_of
from store.tenants import Tenant
from store.uftp_exchanges import Exchange, add_exchange

UPDATE, QUERY = "DSOPortfolioUpdate", "DSOPortfolioQuery"
REDISPATCH_BY = "DSO"


async def cro_peers(tx: AsyncConnection, tenant: Tenant) -> list[Peer]:
    """The tenant's uftp peers of role CRO."""
    return [p for p in await list_peers(tx, tenant, PROTOCOL) if state_of(p).role == "CRO"]


async def congestion_points(tx: AsyncConnection, tenant: Tenant) -> list[tuple[Entity, str]]:
    """Every congestion point of the tenant (a FlexibilityArea named by an EA1 address),
    with its address."""
    found = []
    areas = await list_entities(tx, tenant, AssetType.AREA, AssetSubType.FLEXIBILITY_AREA)
    for area in areas:
        try:
            found.append((area, await address_of(tx, tenant, area)))
        except NotFound:  # a FlexibilityArea of another protocol, not a congestion point
            continue
    return found


async def _ean_of(tx: AsyncConnection, tenant: Tenant, meter: Entity) -> str | None:
    for reference in await references_of(tx, tenant, meter, USEF_SYSTEM):
        if reference.reference_type == "ean":
            return reference.external_key
    return None


def _period(moment: datetime | None, market: Market, today: date) -> date:
    return today if moment is None else max(moment.astimezone(market.time_zone).date(), today)


def _last_period(moment: datetime | None, market: Market) -> date | None:
    """The local date of a connector's last instant (its end is exclusive)."""
    if moment is None:
        return None
    return (moment - timedelta(microseconds=1)).astimezone(market.time_zone).date()


async def connections_of(
    tx: AsyncConnection, tenant: Tenant, point: Entity, now: datetime
) -> list[tuple[Connector, str]]:
    """The congestion point's active connections that have not ended, with their EANs."""
    found = []
    links = await connectors_of(
        tx, tenant, point, direction="child", connector_type=ConnectorType.FLEXIBILITY
    )
    for link in links:
        if link.status is not EntityStatus.ACTIVE or (
            link.valid_to is not None and link.valid_to <= now
        ):
            continue
        ean = await _ean_of(tx, tenant, link.child)
        if ean is not None:
            found.append((link, ean))
    return found


async def registered(
    tx: AsyncConnection, tenant: Tenant, point: Entity, address: str, market: Market, now: datetime
) -> Node | None:
    """The congestion point as a DSOPortfolioUpdate lists it; None without a connection."""
    today = now.astimezone(market.time_zone).date()
    connections = []
    starts = []
    for link, ean in await connections_of(tx, tenant, point, now):
        start = _period(link.valid_from, market, today)
        starts.append(start)
        attributes = {"EntityAddress": ean, "StartPeriod": start.isoformat()}
        end = _last_period(link.valid_to, market)
        if end is not None:
            attributes["EndPeriod"] = end.isoformat()
        connections.append(Node("Connection", attributes))
    if not connections:
        return None
    attributes = {
        "EntityAddress": address,
        "StartPeriod": min(starts).isoformat(),
        "MutexOffersSupported": "true",
        "DayAheadRedispatchBy": REDISPATCH_BY,
        "IntradayRedispatchBy": REDISPATCH_BY,
    }
    return Node("CongestionPoint", attributes, connections)


async def _send(
    tx: AsyncConnection,
    tenant: Tenant,
    peer: Peer,
    identity: Identity,
    message: Node,
    request: dict[str, Any],
) -> Exchange:
    message_id = await send_signed(tx, peer, identity, message)
    return await add_exchange(
        tx,
        tenant,
        peer,
        message.tag,
        message_id=message_id,
        conversation_id=message.attributes["ConversationID"],
        request=request,
    )


async def send_portfolio_update(
    tx: AsyncConnection,
    tenant: Tenant,
    market: Market,
    identity: Identity,
    points: Sequence[tuple[Entity, str]],
    now: datetime,
) -> list[Exchange]:
    """Queue a DSOPortfolioUpdate of these congestion points for every CRO of the tenant;
    the exchanges (none without a CRO, or when no point has a connection)."""
    cros = await cro_peers(tx, tenant)
    if not cros:
        return []
    nodes = [
        node
        for point, address in points
        if (node := await registered(tx, tenant, point, address, market, now)) is not None
    ]
    if not nodes:
        return []
    request = {
        "congestion_points": [
            {
                "address": n.attributes["EntityAddress"],
                "connections": [c.attributes["EntityAddress"] for c in n.children],
            }
            for n in nodes
        ]
    }
    sent = []
    for peer in cros:
        attributes = metadata(identity, peer, conversation=str(uuid.uuid4()), version=VERSION)
        attributes["TimeZone"] = market.time_zone.key
        message = Node(UPDATE, attributes, nodes)
        sent.append(await _send(tx, tenant, peer, identity, message, request))
    return sent


async def send_portfolio_query(
    tx: AsyncConnection,
    tenant: Tenant,
    market: Market,
    identity: Identity,
    address: str,
    period: date,
) -> list[Exchange]:
    """Queue a DSOPortfolioQuery of one congestion point and Period for every CRO of the
    tenant; the exchanges (none without a CRO)."""
    sent = []
    for peer in await cro_peers(tx, tenant):
        attributes = metadata(identity, peer, conversation=str(uuid.uuid4()), version=VERSION)
        attributes.update(
            {
                "TimeZone": market.time_zone.key,
                "Period": period.isoformat(),
                "EntityAddress": address,
            }
        )
        request = {"congestion_point": address, "period": period.isoformat()}
        sent.append(await _send(tx, tenant, peer, identity, Node(QUERY, attributes), request))
    return sent
