"""OCMP 1.0 UpdateGroupMaximumCapacityForecast in, UpdateGroupOptimalCapacityForecast out.

    POST {prefix}/update_group_maximum_capacity_forecast   204, then the optimal forecast

Section 7: the maximum is stored on the group as MaxCapacity (kW, from Amps per phase with
the group's NominalVoltage and PowerFactor, over one phase for a block on one phase and over
the group's PhaseCount for ALL; the least block of a quarter hour holds: docs/protocols/
ocmp-1.0.md, Capacity); "For each
UpdateGroupMaximumCapacityForecast a UpdateGroupOptimalCapacityForecast will be produced at
the same level", planned by the hub over the forecast's blocks. A block that is fine is
stored even when its neighbours are not; an error in the message itself (no group_id, an
unknown group) keeps nothing, and the reply lists it with every block's error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from hub import outbound
from hub.capacity import Block, Limit, quarter_hours, store_limit, to_kw
from hub.ids import GROUP, resolve_id
from hub.optimum import Optimum, request_optimum, track
from protocols.common.context import hub_of, open_message
from protocols.ocmp.v1_0 import codec
from protocols.ocmp.v1_0.errors import MessageRefused, items_reply
from store.entities import Entity
from store.errors import ValidationError
from store.peers import Peer

HORIZON = timedelta(hours=24)  # section 7: "rolling 24-hour basis at 15-minute data level"
SPAN = timedelta(days=31)  # the most one message's blocks may cover, all together

routes = web.RouteTableDef()


@dataclass(frozen=True, slots=True)
class _Quarter:
    """A quarter hour of a good forecast block, as the CPO sent it."""

    start: datetime
    end: datetime
    amps: float
    phase: str


def _quarters(checked: codec.Checked) -> tuple[list[_Quarter], int]:
    """The good blocks laid onto the 15-minute grid, and how many blocks that is; checked
    whether or not the group is known, so that the reply names every bad block."""
    quarters: list[_Quarter] = []
    kept = 0
    covered = timedelta(0)
    for index, item in checked.good:
        where = f"forecasted_blocks[{index}]"
        try:
            start = codec.timestamp(item["start_time"], f"{where}.start_time")
            end = codec.timestamp(item["end_time"], f"{where}.end_time")
            covered += max(end - start, timedelta(0))
            if covered > SPAN:  # bounded work: each quarter hour is a stored row
                raise ValidationError(
                    f"{where}.end_time", f"the blocks cover more than {SPAN.days} days"
                )
            grid = quarter_hours(start, end, 0.0, where)
        except ValidationError as exc:
            checked.issues.extend(exc.issues)
            continue
        amps, phase = float(item["capacity"]), item.get("phase", codec.ALL_PHASES)
        quarters.extend(_Quarter(q.start, q.end, amps, phase) for q in grid)
        kept += 1
    return quarters, kept


def _in_kw(group: Entity, quarters: list[_Quarter]) -> list[Block]:
    """The group's capacity per quarter hour, in time order. Several blocks of one quarter
    hour (a limit per phase, say): the least holds, as each of them must."""
    least: dict[datetime, Block] = {}
    for q in quarters:
        kw = to_kw(group, q.amps, "A", phases=codec.phases_of(q.phase))
        if q.start not in least or kw < least[q.start].kw:
            least[q.start] = Block(q.start, q.end, kw)
    return sorted(least.values(), key=lambda b: b.start)


async def named(
    tx: AsyncConnection, peer: Peer, checked: codec.Checked, kind: str
) -> Entity | None:
    """The group or asset the message names by `<kind>_id`; None (and the message refused)
    when it names none the peer's policy accepts."""
    field = f"{kind}_id"
    if not checked.well_formed(field):
        return None
    try:
        resolved = await resolve_id(tx, peer, kind, checked.body[field], field)
    except ValidationError as exc:
        checked.refuse(exc.issues)
        return None
    return resolved.entity


async def send_optimal(tx: AsyncConnection, optimum: Optimum) -> bool:
    """Queue the optimal forecast (hub.optimum.SendOptimum); OCMP always speaks Amps, on the
    phase the CPO's last forecast for the group named."""
    queued = await outbound.send(
        tx,
        optimum.peer,
        protocol=codec.PROTOCOL,
        message_type="UpdateGroupOptimalCapacityForecast",
        path="/update_group_optimal_capacity_forecast",
        body=codec.optimal_forecast(
            optimum.group, optimum.group_id, optimum.blocks, optimum.link.phase
        ),
        topic=optimum.topic,
    )
    return queued is not None


@routes.post("/update_group_maximum_capacity_forecast")
async def update_group_maximum_capacity_forecast(request: web.Request) -> web.Response:
    checked = await codec.read_items(
        request, "update_group_maximum_capacity_forecast", "forecasted_blocks"
    )
    quarters, kept = _quarters(checked)
    hub, message_id = hub_of(request), codec.message_id(request)
    kind = "UpdateGroupMaximumCapacityForecast"
    try:
        async with open_message(request, codec.PROTOCOL, kind, message_id=message_id) as message:
            if message.repeated and not checked.refusals:
                return web.Response(status=204)
            tx, peer = message.tx, message.from_peer()
            group = await named(tx, peer, checked, GROUP)
            if group is None or checked.refusals:
                raise MessageRefused(issues=checked.every_issue())  # rolls back: keeps nothing
            group_id = checked.body["group_id"]
            blocks = _in_kw(group, quarters)
            if blocks:
                await store_limit(tx, peer.tenant, group, Limit.CONSUMPTION, blocks, peer.name)
                phase = codec.answer_phase([q.phase for q in quarters])
                await track(tx, peer, group_id, unit="A", phase=phase)
                start, end = blocks[0].start, blocks[-1].end
                await request_optimum(tx, peer, group, group_id, start, end)
            if checked.issues:
                message.outcome("partial" if kept else "refused", f"{kept} blocks kept")
    except MessageRefused as refused:
        return items_reply(request, refused.issues, 0)
    hub.wake_planner()
    return items_reply(request, checked.issues, kept)
