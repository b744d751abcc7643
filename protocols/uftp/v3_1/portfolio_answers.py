"""What a CRO answers the DSO (docs/protocols/uftp-3.1.md, "The CRO"):
DSOPortfolioUpdateResponse and DSOPortfolioQueryResponse, each naming our message.

A response is never answered. One that names no unanswered message of ours to that CRO
("Unknown ... reference"), or a query answer about another congestion point or Period than
was asked, is refused in the message log with that reason and changes nothing (the handler
runs in a savepoint). Only a CRO may send them: an AGR's is "Invalid SenderRole" before it
gets here (messages.py).

A DSOPortfolioQueryResponse names, per connection, "the AGR that represents the prosumer
connected on this Connection, if applicable". Such an AGR is made active at the congestion
point (its offers and prognoses there are then taken) when it is one of the tenant's uftp
peers of role AGR and the connection is one of ours at that congestion point: the CRO names
who represents our connections, it cannot add connections of its own. Every connection is
kept in the exchange's answer, with whether its AGR was linked.
"""

from __future__ import annotations

from typing import Any

from hub.peer_state import edit, state_of
from protocols.uftp.v3_1.errors import Rejected
from protocols.uftp.v3_1.handling import Accepted, Received
from protocols.uftp.v3_1.portfolio import QUERY, UPDATE, connections_of
from protocols.uftp.v3_1.transport import PROTOCOL
from store.errors import StoreError
from store.peers import find_peer
from store.references import find, parse_address
from store.timeutil import utcnow
from store.uftp_exchanges import Exchange, ExchangeStatus, find_exchange, record_answer

# The attribute of each response that names our message (DSOPortfolioUpdateResponse's is
# named "...ResponseMessageID" in 3.x, sic).
_REFERENCE = {UPDATE: "DSOPortfolioUpdateResponseMessageID", QUERY: "DSOPortfolioQueryMessageID"}


async def _ours(received: Received, kind: str) -> Exchange:
    attribute = _REFERENCE[kind]
    reference = received.inner.attr(attribute) or ""
    exchange = await find_exchange(received.tx, received.peer, kind, message_id=reference)
    if exchange is None:
        raise Rejected(f"Unknown {attribute} reference")
    return exchange


async def _rejected(received: Received, exchange: Exchange) -> bool:
    """Record a Rejected result; whether it was one."""
    if received.inner.attr("Result") == "Accepted":
        return False
    reason = received.inner.attr("RejectionReason") or ""
    await record_answer(received.tx, exchange, ExchangeStatus.REJECTED, reason=reason)
    return True


async def portfolio_update_answered(received: Received) -> Accepted:
    """DSOPortfolioUpdateResponse: our update accepted, or rejected with the CRO's reason."""
    exchange = await _ours(received, UPDATE)
    if not await _rejected(received, exchange):
        await record_answer(received.tx, exchange, ExchangeStatus.ACCEPTED)
    return Accepted()


async def portfolio_query_answered(received: Received) -> Accepted:
    """DSOPortfolioQueryResponse: the connections of the congestion point asked about, and
    the AGR of each, recorded; known AGRs on our connections linked to the point."""
    exchange = await _ours(received, QUERY)
    if await _rejected(received, exchange):
        return Accepted()
    asked = exchange.request
    if received.inner.attr("Period") != asked["period"]:
        raise Rejected("Reference Period mismatch")
    point = received.inner.root.find("CongestionPoint")
    if (
        point is not None
        and (point.attrib.get("EntityAddress") or "").strip() != (asked["congestion_point"])
    ):
        raise Rejected("Invalid CongestionPoint")
    named = [] if point is None else point.findall("Connection")
    connections = [
        {
            "ean": (c.attrib.get("EntityAddress") or "").strip(),
            "agr": (c.attrib.get("AGR-Domain") or "").strip() or None,
        }
        for c in named
    ]
    await _link(received, asked["congestion_point"], connections)
    answer = {"congestion_point": asked["congestion_point"], "connections": connections}
    await record_answer(received.tx, exchange, ExchangeStatus.ACCEPTED, answer=answer)
    return Accepted()


async def _link(received: Received, address: str, connections: list[dict[str, Any]]) -> None:
    """Make each known AGR named on one of our connections active at the congestion point;
    mark every connection `linked` or not."""
    tx, tenant = received.tx, received.tenant
    try:
        point = await find(tx, tenant, parse_address(address, "EntityAddress"))
    except StoreError:
        point = None
    ours = set()
    if point is not None:
        ours = {ean for _, ean in await connections_of(tx, tenant, point, utcnow())}
    for connection in connections:
        connection["linked"] = False
        if connection["agr"] is None or connection["ean"] not in ours:
            continue
        peer = await find_peer(tx, tenant, PROTOCOL, connection["agr"])
        if peer is None or state_of(peer).role != "AGR":
            continue
        async with edit(tx, peer) as state:
            if address not in state.congestion_points:
                state.congestion_points.append(address)
        connection["linked"] = True
