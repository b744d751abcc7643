"""OCMP 1.0 Handshake (section 7: "Used to pass end point details to the counterpart and to
specify heartbeat frequency").

    POST {prefix}/handshake   204, then our Handshake back

We keep the peer's endpoint (and the basic login it wants us to use there) and the
heartbeat interval it asks of us, and send our own endpoint and interval back.
"""

from __future__ import annotations

from aiohttp import web

from hub import outbound
from hub.peer_link import record_interval
from protocols.common.context import hub_of, open_message
from protocols.ocmp.v1_0 import codec
from store.peers import OutboundAuth, update_peer

routes = web.RouteTableDef()


@routes.post("/handshake")
async def handshake(request: web.Request) -> web.Response:
    body = await codec.read_whole(request, "handshake")
    hub = hub_of(request)
    message_id = codec.message_id(request)
    async with open_message(request, codec.PROTOCOL, "Handshake", message_id=message_id) as message:
        if message.repeated:
            return web.Response(status=204)
        username, password = codec.login_of(body)
        peer = await update_peer(
            message.tx,
            message.tenant,
            message.from_peer(),
            base_url=body["base_url"],
            auth=OutboundAuth.BASIC if username else OutboundAuth.NONE,
            username=username,
            secret=password,
        )
        await record_interval(message.tx, peer, body.get("heartbeat_interval"))
        ours = codec.handshake(
            hub.public_url + request.path.rsplit("/", 1)[0], hub.heartbeat_seconds
        )
        await outbound.send(
            message.tx,
            peer,
            protocol=codec.PROTOCOL,
            message_type="Handshake",
            path="/handshake",
            body=ours,
        )
    hub.wake_outbox()
    return web.Response(status=204)
