"""UpdateGroupMeasurements at the CP (FP -> CP, for DSO users of flexbridge).

    POST {prefix}/update_group_measurements   204

Registers of energy_type TOTAL (the default) become the group's readings (readings.py);
FLEXIBLE and NONFLEXIBLE registers are parts of the group with no series of their own in the
model, so they are kept in the message log only.
"""

from __future__ import annotations

from aiohttp import web

from hub import replan
from hub.ids import GROUP, resolve_id
from hub.limits import derived_budget
from protocols.common.context import limits_of, open_message
from protocols.oscp.v2_0 import codec
from protocols.oscp.v2_0.readings import check_span, reading_of, store_readings
from store.errors import FieldIssue, ValidationError

routes = web.RouteTableDef()


@routes.post("/update_group_measurements")
async def update_group_measurements(request: web.Request) -> web.Response:
    message_id = codec.request_id(request)
    body = await codec.read(request, "update_group_measurements")
    readings = []
    issues: list[FieldIssue] = []
    for index, item in enumerate(body["measurements"]):
        where = f"measurements[{index}]"
        try:
            reading = reading_of(item, where)
            if "initial_measure_time" in item:
                codec.timestamp(item["initial_measure_time"], f"{where}.initial_measure_time")
        except ValidationError as exc:
            issues.extend(exc.issues)
            continue
        if item.get("energy_type", "TOTAL") == "TOTAL":
            readings.append(reading)
    if not issues:
        try:
            check_span(limits_of(request), [r.at for r in readings], "measurements")
        except ValidationError as exc:
            issues.extend(exc.issues)
    if issues:
        raise ValidationError(issues=issues)
    kind = "UpdateGroupMeasurements"
    async with open_message(request, codec.PROTOCOL, kind, message_id=message_id) as message:
        if message.repeated:
            return codec.no_content(request)
        tx, peer = message.tx, message.from_peer()
        group_id = body["group_id"]
        group = (await resolve_id(tx, peer, GROUP, group_id, "group_id")).entity
        if readings:
            budget = derived_budget(limits_of(request))
            changed = await store_readings(tx, peer.tenant, group, readings, peer.name, budget)
            await replan.inputs_changed(tx, peer.tenant, [(group, t) for t in changed])
    return codec.no_content(request)
