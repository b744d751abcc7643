"""OCMP 1.0 UpdateGroupMaximumCapacityForecast in, UpdateGroupOptimalCapacityForecast out.

    POST {prefix}/update_group_maximum_capacity_forecast   204, then the optimal forecast

Section 7: the maximum is stored on the group as MaxCapacity (kW, from Amps per phase with
the group's NominalVoltage, PhaseCount and PowerFactor); "For each
UpdateGroupMaximumCapacityForecast a UpdateGroupOptimalCapacityForecast will be produced at
the same level", planned by the hub over the forecast's blocks. A block that is fine is
stored even when its neighbours are not; an error in the message itself (no group_id, an
unknown group) keeps nothing.
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from hub import outbound
from hub.capacity import Block, Limit, quarter_hours, store_limit, to_kw
from hub.ids import GROUP, resolve_id
from hub.optimum import Optimum, send_optimum, track
from protocols.common.context import hub_of, open_message
from protocols.ocmp.v1_0 import codec
from protocols.ocmp.v1_0.errors import items_reply
from store.entities import Entity
from store.errors import ValidationError

HORIZON = timedelta(hours=24)  # section 7: "rolling 24-hour basis at 15-minute data level"

routes = web.RouteTableDef()


def _blocks(group: Entity, checked: codec.Checked) -> tuple[list[Block], int]:
    """The good forecast blocks in kW on the 15-minute grid, and how many were kept."""
    blocks: list[Block] = []
    kept = 0
    for index, item in checked.good:
        where = f"forecasted_blocks[{index}]"
        try:
            start = codec.timestamp(item["start_time"], f"{where}.start_time")
            end = codec.timestamp(item["end_time"], f"{where}.end_time")
            kw = to_kw(group, float(item["capacity"]), item["unit"])
            blocks.extend(quarter_hours(start, end, kw, where))
            kept += 1
        except ValidationError as exc:
            checked.issues.extend(exc.issues)
    return blocks, kept


async def send_optimal(tx: AsyncConnection, optimum: Optimum) -> bool:
    """Queue the optimal forecast (hub.optimum.SendOptimum); OCMP always speaks Amps."""
    queued = await outbound.send(
        tx,
        optimum.peer,
        protocol=codec.PROTOCOL,
        message_type="UpdateGroupOptimalCapacityForecast",
        path="/update_group_optimal_capacity_forecast",
        body=codec.optimal_forecast(optimum.group, optimum.group_id, optimum.blocks),
    )
    return queued is not None


@routes.post("/update_group_maximum_capacity_forecast")
async def update_group_maximum_capacity_forecast(request: web.Request) -> web.Response:
    checked = await codec.read_items(
        request, "update_group_maximum_capacity_forecast", "forecasted_blocks"
    )
    group_id, hub = checked.body["group_id"], hub_of(request)
    message_id = codec.message_id(request)
    kind = "UpdateGroupMaximumCapacityForecast"
    async with open_message(request, codec.PROTOCOL, kind, message_id=message_id) as message:
        if message.repeated:
            return web.Response(status=204)
        tx, peer = message.tx, message.from_peer()
        group = (await resolve_id(tx, peer, GROUP, group_id, "group_id")).entity
        blocks, kept = _blocks(group, checked)
        if blocks:
            await store_limit(tx, peer.tenant, group, Limit.CONSUMPTION, blocks, peer.name)
            await track(tx, peer, group_id, unit="A", phase="ALL")
            start, end = blocks[0].start, blocks[-1].end
            await send_optimum(tx, hub, peer, group, group_id, start, end, send_optimal)
        if checked.issues:
            message.outcome("partial" if kept else "refused", f"{kept} blocks kept")
    hub.wake_outbox()
    return items_reply(request, checked.issues, kept)
