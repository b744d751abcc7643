"""OSCP 2.0 Handshake and HandshakeAcknowledge: each side states what it requires of the
other (`required_behaviour`: heartbeat_interval, measurement_configuration).

    POST {prefix}/handshake                  204, then our HandshakeAcknowledge to the peer's
                                             /handshake_acknowledge with our heartbeat interval
    POST {prefix}/handshake_acknowledge      204; `{}` accepted (many peers send that)
    POST {prefix}/handshake_acknowledgment   the same (the spelling pyoscp posts to)

The heartbeat_interval the peer requires is kept (hub.peer_link.record_interval) and the
clock sends our heartbeats at it; its measurement_configuration is kept in its state.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.peer_link import record_interval
from hub.peer_state import edit
from protocols.common.context import hub_of, open_message
from protocols.common.surface import ProtocolError
from protocols.oscp.v2_0 import codec
from protocols.oscp.v2_0.dialects import dialect_of
from store.peers import Peer

routes = web.RouteTableDef()  # hosted by the CO (an FP's Handshake)
ack_routes = web.RouteTableDef()  # hosted by the CO and the CP


async def _keep_behaviour(tx: AsyncConnection, peer: Peer, body: dict[str, Any]) -> None:
    behaviour = body.get("required_behaviour") or {}
    await record_interval(tx, peer, behaviour.get("heartbeat_interval"))
    if "measurement_configuration" in behaviour:
        async with edit(tx, peer) as state:
            state.measurement_configuration = behaviour["measurement_configuration"]


@routes.post("/handshake")
async def handshake(request: web.Request) -> web.StreamResponse:
    """FP -> CO: the peer's required behaviour; our HandshakeAcknowledge states ours."""
    answering = codec.request_id(request)
    body = await codec.read(request, "handshake")
    hub = hub_of(request)
    async with open_message(request, codec.PROTOCOL, "Handshake", message_id=answering) as message:
        if message.repeated:
            return codec.no_content(request)
        peer = message.from_peer()
        if not codec.registered(peer):
            raise ProtocolError(
                400, "invalid", "no registration yet: POST /register before the handshake"
            )
        await _keep_behaviour(message.tx, peer, body)
        ack = {"required_behaviour": {"heartbeat_interval": codec.seconds(hub.heartbeat_seconds)}}
        await codec.send(
            message.tx,
            peer,
            "HandshakeAcknowledge",
            dialect_of(peer).ack_path,
            ack,
            correlation=answering,
        )
    response = await codec.answered_first(request)
    hub.wake_outbox()
    return response


@ack_routes.post("/handshake_acknowledge")
@ack_routes.post("/handshake_acknowledgment")
async def handshake_acknowledge(request: web.Request) -> web.Response:
    """The answer to a Handshake: what the peer requires of us (often nothing: `{}`)."""
    message_id = codec.request_id(request)
    body = await codec.read(request, "handshake_acknowledge")
    async with open_message(
        request, codec.PROTOCOL, "HandshakeAcknowledge", message_id=message_id
    ) as message:
        if not message.repeated:
            await _keep_behaviour(message.tx, message.from_peer(), body)
    return codec.no_content(request)
