"""UpdateGroupCapacityForecast at the CO: the peer's capacity for a group in, our OPTIMUM out.

    POST {prefix}/update_group_capacity_forecast   204, then (CONSUMPTION) the OPTIMUM

by type:
    CONSUMPTION            the group's MaxCapacity; the group is planned over the forecast's
                           blocks and the OPTIMUM sent to the peer's
                           /update_group_capacity_forecast (same group_id, unit A when the
                           peer spoke A else KW, the peer's phase)
    GENERATION             the group's generation limit (protocols/oscp/v2_0/limits.py)
    FALLBACK_CONSUMPTION   kept aside, applied while the peer is offline (fallback.py)
    FALLBACK_GENERATION    likewise, as the generation limit
    OPTIMUM                refused: it is what a CO sends, not what it is sent
"""

from __future__ import annotations

from aiohttp import web

from protocols.common.capacity import resolve_id
from protocols.common.context import database_of, hub_of
from protocols.oscp.v2_0 import fallback
from protocols.oscp.v2_0.blocks import blocks_of, reply_phase, reply_unit
from protocols.oscp.v2_0.limits import CONSUMPTION, GENERATION, store_limit
from protocols.oscp.v2_0.link import (
    answered_first,
    first_time,
    no_content,
    peer_of,
    read,
    request_id,
)
from protocols.oscp.v2_0.optimum import remember_group, send_optimum
from store.errors import ValidationError

routes = web.RouteTableDef()


@routes.post("/update_group_capacity_forecast")
async def update_group_capacity_forecast(request: web.Request) -> web.StreamResponse:
    request_id(request)
    body = await read(request, "update_group_capacity_forecast")
    kind, group_id, items = body["type"], body["group_id"], body["forecasted_blocks"]
    if kind == "OPTIMUM":
        raise ValidationError(
            "type", "OPTIMUM is what the CO sends; send CONSUMPTION, GENERATION or FALLBACK_*"
        )
    async with database_of(request).transaction() as tx:
        peer = await peer_of(tx, request)
        if not await first_time(tx, request, peer, "UpdateGroupCapacityForecast"):
            return no_content(request)
        group = (await resolve_id(tx, peer.tenant, peer, "group", group_id, "group_id")).entity
        blocks = blocks_of(group, items)
        if kind in fallback.KINDS:
            await fallback.keep(
                tx, peer, group, group_id, kind, blocks, reply_unit(items), reply_phase(items)
            )
        elif kind == GENERATION:
            await store_limit(tx, peer.tenant, group, GENERATION, blocks, peer.name)
        else:
            await store_limit(tx, peer.tenant, group, CONSUMPTION, blocks, peer.name)
            await remember_group(
                tx, peer, group_id, unit=reply_unit(items), phase=reply_phase(items)
            )
            await send_optimum(
                tx, peer, group, group_id, blocks[0].start, blocks[-1].end, hub_of(request)
            )
    response = await answered_first(request)
    hub_of(request).wake_outbox()
    return response
