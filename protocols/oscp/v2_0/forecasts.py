"""UpdateGroupCapacityForecast at the CO: the peer's capacity for a group in, our OPTIMUM out.

    POST {prefix}/update_group_capacity_forecast   204, then (CONSUMPTION) the OPTIMUM

by type:
    CONSUMPTION            the group's MaxCapacity; the group is planned over the forecast's
                           blocks and the OPTIMUM sent to the peer's
                           /update_group_capacity_forecast (same group_id, unit A when the
                           peer spoke A else KW, the peer's phase)
    GENERATION             the group's generation limit (hub.capacity.Limit)
    FALLBACK_CONSUMPTION   kept aside, applied while the peer is offline (hub.fallbacks)
    FALLBACK_GENERATION    likewise, as the generation limit
    OPTIMUM                refused: it is what a CO sends, not what it is sent
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from hub import fallbacks
from hub.capacity import Limit, store_limit
from hub.ids import GROUP, resolve_id
from hub.optimum import Optimum, request_optimum, track
from protocols.common.context import hub_of, open_message
from protocols.oscp.v2_0 import codec
from store.errors import ValidationError

# The clock re-plans dirty groups over this much time from now (OSCP fixes no horizon; a
# day-ahead forecast made late in the day reaches almost 48 hours out).
HORIZON = timedelta(hours=48)
PATH = "/update_group_capacity_forecast"
FALLBACKS = {"FALLBACK_CONSUMPTION": Limit.CONSUMPTION, "FALLBACK_GENERATION": Limit.GENERATION}

routes = web.RouteTableDef()


async def send_optimum_forecast(tx: AsyncConnection, optimum: Optimum) -> bool:
    """Queue the OPTIMUM (hub.optimum.SendOptimum), spoken as the peer's last forecast."""
    link = optimum.link
    body = codec.optimum(
        optimum.group, optimum.group_id, link.unit or "KW", link.phase or "ALL", optimum.blocks
    )
    return await codec.send(
        tx, optimum.peer, "UpdateGroupCapacityForecast", PATH, body, topic=optimum.topic
    )


@routes.post("/update_group_capacity_forecast")
async def update_group_capacity_forecast(request: web.Request) -> web.StreamResponse:
    message_id = codec.request_id(request)
    body = await codec.read(request, "update_group_capacity_forecast")
    kind, group_id, items = body["type"], body["group_id"], body["forecasted_blocks"]
    if kind == "OPTIMUM":
        raise ValidationError(
            "type", "OPTIMUM is what the CO sends; send CONSUMPTION, GENERATION or FALLBACK_*"
        )
    hub = hub_of(request)
    async with open_message(
        request, codec.PROTOCOL, "UpdateGroupCapacityForecast", message_id=message_id
    ) as message:
        if message.repeated:
            return codec.no_content(request)
        tx, peer = message.tx, message.from_peer()
        group = (await resolve_id(tx, peer, GROUP, group_id, "group_id")).entity
        blocks = codec.blocks_of(group, items)
        unit, phase = codec.reply_unit(items), codec.reply_phase(items)
        if kind in FALLBACKS:
            await fallbacks.keep(tx, peer, group, group_id, FALLBACKS[kind], blocks, unit, phase)
        elif kind == Limit.GENERATION:
            await store_limit(tx, peer.tenant, group, Limit.GENERATION, blocks, peer.name)
        else:
            await store_limit(tx, peer.tenant, group, Limit.CONSUMPTION, blocks, peer.name)
            await track(tx, peer, group_id, unit=unit, phase=phase)
            start, end = blocks[0].start, blocks[-1].end
            await request_optimum(tx, peer, group, group_id, start, end)
    response = await codec.answered_first(request)
    hub.wake_planner()
    return response
