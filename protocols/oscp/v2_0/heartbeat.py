"""OSCP 2.0 Heartbeat: `offline_mode_at`, after which the sender is to be taken as offline.

    POST {prefix}/heartbeat   204

Kept with protocols.common.peer_link.record_heartbeat; the clock marks the peer offline once
that moment passes without a new heartbeat, and its fallback forecasts then apply. A heartbeat
from a peer marked offline brings it back: its own forecasts hold again (fallback.restore).
Our heartbeats to the peer are sent by the clock (clock.py).
"""

from __future__ import annotations

from aiohttp import web

from protocols.common.context import caller_of, database_of, hub_of
from protocols.common.peer_link import record_heartbeat
from protocols.oscp.v2_0 import fallback
from protocols.oscp.v2_0.link import first_time, no_content, peer_of, read, request_id
from protocols.oscp.v2_0.times import timestamp

routes = web.RouteTableDef()


@routes.post("/heartbeat")
async def heartbeat(request: web.Request) -> web.Response:
    request_id(request)
    body = await read(request, "heartbeat")
    offline_at = timestamp(body["offline_mode_at"], "offline_mode_at")
    ledger, account = hub_of(request).heartbeats, caller_of(request).account
    if ledger.covers(account.id, offline_at):  # written less than a second ago
        return no_content(request)
    async with database_of(request).transaction() as tx:
        peer = await peer_of(tx, request)
        if not await first_time(tx, request, peer, "Heartbeat"):
            return no_content(request)
        was_offline = fallback.is_offline(peer)
        peer = await record_heartbeat(tx, peer.tenant, peer, offline_at)
        if was_offline and not fallback.is_offline(peer):
            await fallback.restore(tx, peer)
    ledger.note(account.id, offline_at)
    return no_content(request)
