"""What an FP asks of the CP about capacity (FP -> CP, for DSO users of flexbridge).

    POST {prefix}/adjust_group_capacity_forecast   204; the FP's request, checked and kept
    POST {prefix}/group_capacity_compliance_error  204; the FP's complaint, logged and kept

AdjustGroupCapacityForecast asks the CP for other capacity; the DSO decides, so nothing is
planned on it: its blocks are checked as a forecast's are (group known, times, units), the
whole message stays in the message log, and the peer's state keeps the latest per group
(`PeerState.capacity_requests`: type, request id, when, the span it covers) for the operator.

GroupCapacityComplianceError: the FP says it cannot keep to the capacity; it is logged as a
warning, stays in the message log, and the peer's state keeps the latest
(`PeerState.complaint`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiohttp import web

from hub.ids import GROUP, resolve_id
from hub.peer_state import CapacityRequest, Complaint, edit
from protocols.common.context import open_message
from protocols.oscp.v2_0 import codec
from store.errors import FieldIssue, ValidationError

log = logging.getLogger("flexbridge.oscp")

routes = web.RouteTableDef()


@routes.post("/adjust_group_capacity_forecast")
async def adjust_group_capacity_forecast(request: web.Request) -> web.Response:
    answering = codec.request_id(request)
    body = await codec.read(request, "adjust_group_capacity_forecast")
    group_id = body["group_id"]
    kind = "AdjustGroupCapacityForecast"
    async with open_message(request, codec.PROTOCOL, kind, message_id=answering) as message:
        if message.repeated:
            return codec.no_content(request)
        tx, peer = message.tx, message.from_peer()
        group = (await resolve_id(tx, peer, GROUP, group_id, "group_id")).entity
        blocks = codec.blocks_of(group, body["forecasted_blocks"])
        async with edit(tx, peer) as state:
            state.capacity_requests[group_id] = CapacityRequest(
                body["type"], answering, datetime.now(UTC), blocks[0].start, blocks[-1].end
            )
    log.info("oscp peer %r asks to adjust group %r (%s)", peer.name, group_id, body["type"])
    return codec.no_content(request)


@routes.post("/group_capacity_compliance_error")
async def group_capacity_compliance_error(request: web.Request) -> web.Response:
    answering = codec.request_id(request)
    body = await codec.read(request, "group_capacity_compliance_error")
    issues: list[FieldIssue] = []
    for index, item in enumerate(body.get("forecasted_blocks") or []):
        for name in ("start_time", "end_time"):
            try:
                codec.timestamp(item[name], f"forecasted_blocks[{index}].{name}")
            except ValidationError as exc:
                issues.extend(exc.issues)
    if issues:
        raise ValidationError(issues=issues)
    kind = "GroupCapacityComplianceError"
    async with open_message(request, codec.PROTOCOL, kind, message_id=answering) as message:
        if message.repeated:
            return codec.no_content(request)
        peer = message.from_peer()
        async with edit(message.tx, peer) as state:
            state.complaint = Complaint(body["message"][:1000], answering, datetime.now(UTC))
    log.warning("oscp peer %r reports a compliance error: %s", peer.name, body["message"][:200])
    return codec.no_content(request)
