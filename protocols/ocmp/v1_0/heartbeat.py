"""OCMP 1.0 Heartbeat: `offline_mode_at`, until when the sender is to be taken as online.

    POST {prefix}/heartbeat   204

Kept with hub.peer_link.record_heartbeat; the clock marks the peer offline once that moment
passes without a new heartbeat. Our heartbeats to the peer are sent by the clock.
"""

from __future__ import annotations

from aiohttp import web

from hub.peer_link import record_heartbeat
from protocols.common.context import caller_of, hub_of, open_message
from protocols.ocmp.v1_0 import codec

routes = web.RouteTableDef()


@routes.post("/heartbeat")
async def heartbeat(request: web.Request) -> web.Response:
    body = await codec.read_whole(request, "heartbeat")
    offline_at = codec.timestamp(body["offline_mode_at"], "offline_mode_at")
    ledger, account = hub_of(request).heartbeats, caller_of(request).account
    if ledger.covers(account.id, offline_at):  # written less than a second ago
        return web.Response(status=204)
    message_id = codec.message_id(request)
    async with open_message(request, codec.PROTOCOL, "Heartbeat", message_id=message_id) as message:
        if not message.repeated:
            await record_heartbeat(message.tx, message.from_peer(), offline_at)
    ledger.note(account.id, offline_at)
    return web.Response(status=204)
