"""OSCP 2.0 Handshake and HandshakeAcknowledge: each side states what it requires of the
other (`required_behaviour`: heartbeat_interval, measurement_configuration).

    POST {prefix}/handshake                  204, then our HandshakeAcknowledge to the peer's
                                             /handshake_acknowledge with our heartbeat interval
    POST {prefix}/handshake_acknowledge      204; `{}` accepted (many peers send that)
    POST {prefix}/handshake_acknowledgment   the same (the spelling pyoscp posts to)

The heartbeat_interval the peer requires is kept (protocols.common.peer_link.record_interval)
and the clock sends our heartbeats at it; its measurement_configuration is kept in the
peer's state.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from protocols.common.context import database_of, hub_of
from protocols.common.peer_link import record_interval
from protocols.common.surface import ProtocolError
from protocols.oscp.v2_0.link import (
    answered_first,
    first_time,
    no_content,
    peer_of,
    read,
    registered,
    request_id,
    seconds,
    send,
)
from store.peers import Peer, update_peer

routes = web.RouteTableDef()  # hosted by the CO (an FP's Handshake)
ack_routes = web.RouteTableDef()  # hosted by the CO and the CP


async def _keep_behaviour(tx: AsyncConnection, peer: Peer, body: dict[str, Any]) -> Peer:
    behaviour = body.get("required_behaviour") or {}
    peer = await record_interval(tx, peer.tenant, peer, behaviour.get("heartbeat_interval"))
    if "measurement_configuration" in behaviour:
        peer = await update_peer(
            tx,
            peer.tenant,
            peer,
            state={"measurement_configuration": behaviour["measurement_configuration"]},
        )
    return peer


@routes.post("/handshake")
async def handshake(request: web.Request) -> web.StreamResponse:
    """FP -> CO: the peer's required behaviour; our HandshakeAcknowledge states ours."""
    answering = request_id(request)
    body = await read(request, "handshake")
    hub = hub_of(request)
    async with database_of(request).transaction() as tx:
        peer = await peer_of(tx, request)
        if not await first_time(tx, request, peer, "Handshake"):
            return no_content(request)
        if not registered(peer):
            raise ProtocolError(
                400, "invalid", "no registration yet: POST /register before the handshake"
            )
        peer = await _keep_behaviour(tx, peer, body)
        ack = {"required_behaviour": {"heartbeat_interval": seconds(hub.heartbeat_seconds)}}
        await send(
            tx, peer, "HandshakeAcknowledge", "/handshake_acknowledge", ack, correlation=answering
        )
    response = await answered_first(request)
    hub.wake_outbox()
    return response


@ack_routes.post("/handshake_acknowledge")
@ack_routes.post("/handshake_acknowledgment")
async def handshake_acknowledge(request: web.Request) -> web.Response:
    """The answer to a Handshake: what the peer requires of us (often nothing: `{}`)."""
    request_id(request)
    body = await read(request, "handshake_acknowledge")
    async with database_of(request).transaction() as tx:
        peer = await peer_of(tx, request)
        if await first_time(tx, request, peer, "HandshakeAcknowledge"):
            await _keep_behaviour(tx, peer, body)
    return no_content(request)
