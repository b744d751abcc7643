"""OCMP 1.0 UpdateDetailedMeteringData (section 7: "one message for each asset at the Site.
Unit for metering data will be accumulated kWh").

    POST {prefix}/update_detailed_metering_data   204

The readings are stored as the asset's ConsumptionMeterReading; the interval energy follows
by the hub's one Table 2 rule (hub.derivations); the groups the asset belongs to are
re-planned at the clock's next re-send (hub.replan). A meter value that is fine is stored
even when its neighbours are not; an error in the message itself (no asset_id, an unknown
asset) keeps nothing, and the reply lists it with every meter value's error.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from hub import derivations, replan
from hub.ids import ASSET, resolve_id
from protocols.common.context import open_message
from protocols.ocmp.v1_0 import codec
from protocols.ocmp.v1_0.errors import MessageRefused, items_reply
from store.entities import Entity
from store.errors import ValidationError
from store.peers import Peer
from store.series import ensure_series
from store.series_types import SeriesType
from store.values import Point, write_values

routes = web.RouteTableDef()


def _readings(checked: codec.Checked) -> list[Point]:
    readings = []
    for index, item in checked.good:
        try:
            at = codec.timestamp(item["measure_time"], f"meter_values[{index}].measure_time")
        except ValidationError as exc:
            checked.issues.extend(exc.issues)
            continue
        readings.append(Point(at, at, float(item["value"])))
    return readings


async def _asset(tx: AsyncConnection, peer: Peer, checked: codec.Checked) -> Entity | None:
    """The asset the message names; None (and the message refused) when it names none."""
    if not checked.well_formed("asset_id"):
        return None
    try:
        resolved = await resolve_id(tx, peer, ASSET, checked.body["asset_id"], "asset_id")
    except ValidationError as exc:
        checked.refuse(exc.issues)
        return None
    return resolved.entity


@routes.post("/update_detailed_metering_data")
async def update_detailed_metering_data(request: web.Request) -> web.Response:
    checked = await codec.read_items(request, "update_detailed_metering_data", "meter_values")
    readings = _readings(checked)
    message_id = codec.message_id(request)
    kind = "UpdateDetailedMeteringData"
    try:
        async with open_message(request, codec.PROTOCOL, kind, message_id=message_id) as message:
            if message.repeated and not checked.refusals:
                return web.Response(status=204)
            tx, peer = message.tx, message.from_peer()
            asset = await _asset(tx, peer, checked)
            if asset is None or checked.refusals:
                raise MessageRefused(issues=checked.every_issue())  # rolls back: keeps nothing
            if readings:
                series_type = SeriesType.CONSUMPTION_METER_READING
                series = await ensure_series(tx, peer.tenant, asset, series_type)
                await write_values(tx, peer.tenant, series, readings, source=peer.name)
                derived = await derivations.derive(tx, peer.tenant, asset, series, readings)
                await replan.inputs_changed(tx, peer.tenant, [(asset, t) for t in derived])
            if checked.issues:
                message.outcome("partial" if readings else "refused", f"{len(readings)} kept")
    except MessageRefused as refused:
        return items_reply(request, refused.issues, 0)
    return items_reply(request, checked.issues, len(readings))
