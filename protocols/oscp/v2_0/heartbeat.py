"""OSCP 2.0 Heartbeat: `offline_mode_at`, after which the sender is to be taken as offline.

    POST {prefix}/heartbeat   204

Kept with hub.peer_link.record_heartbeat; the clock marks the peer offline once that moment
passes without a new heartbeat, and its fallback forecasts then apply. A heartbeat from a
peer marked offline brings it back: its own forecasts hold again (hub.fallbacks.restore).
Our heartbeats to the peer are sent by the clock (clock.py).
"""

from __future__ import annotations

from aiohttp import web

from hub import fallbacks
from hub.peer_link import is_offline, record_heartbeat
from protocols.common.context import caller_of, hub_of, open_message
from protocols.oscp.v2_0 import codec

routes = web.RouteTableDef()


@routes.post("/heartbeat")
async def heartbeat(request: web.Request) -> web.Response:
    message_id = codec.request_id(request)
    body = await codec.read(request, "heartbeat")
    offline_at = codec.timestamp(body["offline_mode_at"], "offline_mode_at")
    ledger, account = hub_of(request).heartbeats, caller_of(request).account
    if ledger.covers(account.id, offline_at):  # written less than a second ago
        return codec.no_content(request)
    async with open_message(request, codec.PROTOCOL, "Heartbeat", message_id=message_id) as message:
        if message.repeated:
            return codec.no_content(request)
        was_offline = is_offline(message.from_peer())
        peer = await record_heartbeat(message.tx, message.from_peer(), offline_at)
        if was_offline and not is_offline(peer):
            await fallbacks.restore(message.tx, peer)
    ledger.note(account.id, offline_at)
    return codec.no_content(request)
