"""OCMP 1.0 UpdateDetailedMeteringData (section 7: "one message for each asset at the Site.
Unit for metering data will be accumulated kWh").

    POST {prefix}/update_detailed_metering_data   204

Section 7 speaks of "various types of meter values": each value names its register by
`direction` (docs/protocols/ocmp-1.0.md, Metering), and is stored as the asset's

    IMPORT (or no direction)  ConsumptionMeterReading  -> Consumption
    EXPORT                    ProductionMeterReading   -> Production

the interval energy following by the hub's one Table 2 rule (hub.derivations); the groups
the asset belongs to are
re-planned at the clock's next re-send (hub.replan). A meter value that is fine is stored
even when its neighbours are not; an error in the message itself (no asset_id, an unknown
asset) keeps nothing, and the reply lists it with every meter value's error.
"""

from __future__ import annotations

from aiohttp import web

from hub import derivations, replan
from hub.ids import ASSET
from hub.limits import Limits, check_span, derived_budget
from protocols.common.context import limits_of, open_message
from protocols.ocmp.v1_0 import codec
from protocols.ocmp.v1_0.capacity import named
from protocols.ocmp.v1_0.errors import MessageRefused, items_reply
from store.errors import ValidationError
from store.series import ensure_series
from store.series_types import SeriesType
from store.values import Point, write_values

routes = web.RouteTableDef()


# The register a meter value reads, by its `direction`; absent is IMPORT, as every value
# was before the field existed.
REGISTERS = {
    "IMPORT": SeriesType.CONSUMPTION_METER_READING,
    "EXPORT": SeriesType.PRODUCTION_METER_READING,
}


def _readings(checked: codec.Checked, limits: Limits) -> dict[SeriesType, list[Point]]:
    """The good meter values, per register series type, in the order sent; readings lying
    further apart than one message may span (hub.limits) are a refusal of the list."""
    readings: dict[SeriesType, list[Point]] = {}
    for index, item in checked.good:
        try:
            at = codec.timestamp(item["measure_time"], f"meter_values[{index}].measure_time")
        except ValidationError as exc:
            checked.issues.extend(exc.issues)
            continue
        register = REGISTERS[item.get("direction", "IMPORT")]
        readings.setdefault(register, []).append(Point(at, at, float(item["value"])))
    moments = [p.start for points in readings.values() for p in points]
    if moments:
        try:
            check_span(limits, min(moments), max(moments), "meter_values")
        except ValidationError as exc:
            checked.refuse(exc.issues)
    return readings


@routes.post("/update_detailed_metering_data")
async def update_detailed_metering_data(request: web.Request) -> web.Response:
    checked = await codec.read_items(request, "update_detailed_metering_data", "meter_values")
    limits = limits_of(request)
    readings = _readings(checked, limits)
    kept = sum(len(points) for points in readings.values())
    message_id = codec.message_id(request)
    kind = "UpdateDetailedMeteringData"
    try:
        async with open_message(request, codec.PROTOCOL, kind, message_id=message_id) as message:
            if message.repeated and not checked.refusals:
                return web.Response(status=204)
            tx, peer = message.tx, message.from_peer()
            asset = await named(tx, peer, checked, ASSET)
            if asset is None or checked.refusals:
                raise MessageRefused(issues=checked.every_issue())  # rolls back: keeps nothing
            derived: list[SeriesType] = []
            budget = derived_budget(limits)  # the message's, every register together
            for series_type, points in readings.items():
                series = await ensure_series(tx, peer.tenant, asset, series_type)
                await write_values(tx, peer.tenant, series, points, source=peer.name)
                derived += await derivations.derive(
                    tx, peer.tenant, asset, series, points, budget=budget, field="meter_values"
                )
            await replan.inputs_changed(tx, peer.tenant, [(asset, t) for t in derived])
            if checked.issues:
                message.outcome("partial" if kept else "refused", f"{kept} kept")
    except MessageRefused as refused:
        return items_reply(request, refused.issues, 0)
    return items_reply(request, checked.issues, kept)
