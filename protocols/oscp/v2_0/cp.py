"""The messages a Capacity Provider hosts, for DSO users of flexbridge (FP -> CP).

    POST {prefix}/update_group_measurements        204; the group's energy registers as
                                                   readings on the group (readings.py)
    POST {prefix}/adjust_group_capacity_forecast   204; the FP's request, checked and kept
    POST {prefix}/group_capacity_compliance_error  204; the FP's complaint, logged and kept

UpdateGroupMeasurements: registers of energy_type TOTAL (the default) become the group's
readings; FLEXIBLE and NONFLEXIBLE registers are parts of the group with no series of their
own in the model, so they are kept in the message log only.

AdjustGroupCapacityForecast asks the CP for other capacity; the DSO decides, so nothing is
planned on it: its blocks are checked as a forecast's are (group known, times, units), the
whole message stays in the message log, and the peer's state `adjust_requests` keeps the
latest per group (type, request id, when, the span it covers) for the operator.

GroupCapacityComplianceError: the FP says it cannot keep to the capacity; it is logged as a
warning, stays in the message log, and the peer's state `compliance_error` keeps the latest.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiohttp import web

from protocols.common.capacity import resolve_id
from protocols.common.context import database_of
from protocols.oscp.v2_0.blocks import blocks_of
from protocols.oscp.v2_0.link import first_time, no_content, peer_of, read, request_id
from protocols.oscp.v2_0.readings import check_span, reading_of, store_readings
from protocols.oscp.v2_0.times import iso, timestamp
from store.errors import FieldIssue, ValidationError
from store.peers import get_peer, update_peer

log = logging.getLogger("flexbridge.oscp")

routes = web.RouteTableDef()


@routes.post("/update_group_measurements")
async def update_group_measurements(request: web.Request) -> web.Response:
    request_id(request)
    body = await read(request, "update_group_measurements")
    readings = []
    issues: list[FieldIssue] = []
    for index, item in enumerate(body["measurements"]):
        where = f"measurements[{index}]"
        try:
            reading = reading_of(item, where)
            if "initial_measure_time" in item:
                timestamp(item["initial_measure_time"], f"{where}.initial_measure_time")
        except ValidationError as exc:
            issues.extend(exc.issues)
            continue
        if item.get("energy_type", "TOTAL") == "TOTAL":
            readings.append(reading)
    if not issues:
        try:
            check_span([r.at for r in readings], "measurements")
        except ValidationError as exc:
            issues.extend(exc.issues)
    if issues:
        raise ValidationError(issues=issues)
    async with database_of(request).transaction() as tx:
        peer = await peer_of(tx, request)
        if not await first_time(tx, request, peer, "UpdateGroupMeasurements"):
            return no_content(request)
        group_id = body["group_id"]
        group = (await resolve_id(tx, peer.tenant, peer, "group", group_id, "group_id")).entity
        if readings:
            await store_readings(tx, peer.tenant, group, readings, peer.name)
    return no_content(request)


@routes.post("/adjust_group_capacity_forecast")
async def adjust_group_capacity_forecast(request: web.Request) -> web.Response:
    answering = request_id(request)
    body = await read(request, "adjust_group_capacity_forecast")
    group_id = body["group_id"]
    async with database_of(request).transaction() as tx:
        peer = await peer_of(tx, request)
        if not await first_time(tx, request, peer, "AdjustGroupCapacityForecast"):
            return no_content(request)
        group = (await resolve_id(tx, peer.tenant, peer, "group", group_id, "group_id")).entity
        blocks = blocks_of(group, body["forecasted_blocks"])
        current = await get_peer(tx, peer.tenant, peer.id, for_update=True)
        requests = dict(current.state.get("adjust_requests", {}))
        requests[group_id] = {
            "type": body["type"],
            "request_id": answering,
            "received_at": iso(datetime.now(UTC)),
            "start": iso(blocks[0].start),
            "end": iso(blocks[-1].end),
        }
        await update_peer(tx, peer.tenant, current, state={"adjust_requests": requests})
    log.info("oscp peer %r asks to adjust group %r (%s)", peer.name, group_id, body["type"])
    return no_content(request)


@routes.post("/group_capacity_compliance_error")
async def group_capacity_compliance_error(request: web.Request) -> web.Response:
    answering = request_id(request)
    body = await read(request, "group_capacity_compliance_error")
    issues: list[FieldIssue] = []
    for index, item in enumerate(body.get("forecasted_blocks") or []):
        for name in ("start_time", "end_time"):
            try:
                timestamp(item[name], f"forecasted_blocks[{index}].{name}")
            except ValidationError as exc:
                issues.extend(exc.issues)
    if issues:
        raise ValidationError(issues=issues)
    async with database_of(request).transaction() as tx:
        peer = await peer_of(tx, request)
        if not await first_time(tx, request, peer, "GroupCapacityComplianceError"):
            return no_content(request)
        error = {
            "message": body["message"][:1000],
            "request_id": answering,
            "received_at": iso(datetime.now(UTC)),
        }
        await update_peer(tx, peer.tenant, peer, state={"compliance_error": error})
    log.warning("oscp peer %r reports a compliance error: %s", peer.name, body["message"][:200])
    return no_content(request)
