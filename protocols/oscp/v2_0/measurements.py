"""UpdateAssetMeasurements at the CO (also spelt UpdateAssetMeasurement): per asset of a
group, its energy register and/or its instantaneous power (readings.py says where they go).

    POST {prefix}/update_asset_measurements   204
    POST {prefix}/update_asset_measurement    the same

The group and every asset_id are resolved per the peer's policy (strict: an unknown id is an
error naming it; lenient: a new entity, an asset connected to its group). The message is
stored whole or not at all. The groups the assets belong to, and the group named, get a new
OPTIMUM at the clock's next re-send (hub.replan).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub import replan
from hub.ids import ASSET, GROUP, resolve_id
from hub.limits import derived_budget
from hub.optimum import mark_dirty
from protocols.common.context import limits_of, open_message
from protocols.oscp.v2_0 import codec
from protocols.oscp.v2_0.readings import (
    Instant,
    Reading,
    check_span,
    instant_of,
    reading_of,
    store_instants,
    store_readings,
)
from store.catalogue import ConnectorType
from store.entities import Entity, add_connector
from store.errors import FieldIssue, ValidationError

routes = web.RouteTableDef()


def _parsed(
    asset: Entity, index: int, item: dict[str, Any], issues: list[FieldIssue]
) -> tuple[list[Reading], list[Instant]]:
    where = f"measurements[{index}]"
    readings: list[Reading] = []
    instants: list[Instant] = []
    if "energy_measurement" not in item and "instantaneous_measurement" not in item:
        issues.append(
            FieldIssue(where, "needs an energy_measurement or an instantaneous_measurement")
        )
    try:
        if "energy_measurement" in item:
            readings.append(reading_of(item["energy_measurement"], f"{where}.energy_measurement"))
    except ValidationError as exc:
        issues.extend(exc.issues)
    try:
        if "instantaneous_measurement" in item:
            instants.append(
                instant_of(
                    asset,
                    item["asset_category"],
                    item["instantaneous_measurement"],
                    f"{where}.instantaneous_measurement",
                )
            )
    except ValidationError as exc:
        issues.extend(exc.issues)
    return readings, instants


@routes.post("/update_asset_measurements")
@routes.post("/update_asset_measurement")
async def update_asset_measurements(request: web.Request) -> web.Response:
    message_id = codec.request_id(request)
    body = await codec.read(request, "update_asset_measurements")
    group_id = body["group_id"]
    kind = "UpdateAssetMeasurements"
    async with open_message(request, codec.PROTOCOL, kind, message_id=message_id) as message:
        if message.repeated:
            return codec.no_content(request)
        tx, peer = message.tx, message.from_peer()
        group = (await resolve_id(tx, peer, GROUP, group_id, "group_id")).entity
        issues: list[FieldIssue] = []
        per_asset: dict[int, tuple[Entity, list[Reading], list[Instant]]] = {}
        for index, item in enumerate(body["measurements"]):
            where = f"measurements[{index}].asset_id"
            try:
                found = await resolve_id(tx, peer, ASSET, item["asset_id"], where)
            except ValidationError as exc:
                issues.extend(exc.issues)
                continue
            asset = found.entity
            if found.created:
                await add_connector(tx, peer.tenant, group, asset, ConnectorType.SITE)
            readings, instants = _parsed(asset, index, item, issues)
            _, had_readings, had_instants = per_asset.get(asset.id, (asset, [], []))
            per_asset[asset.id] = (asset, had_readings + readings, had_instants + instants)
        moments = [r.at for _, rs, _ in per_asset.values() for r in rs]
        moments += [i.at for _, _, ins in per_asset.values() for i in ins]
        if not issues:
            try:
                check_span(limits_of(request), moments, "measurements")
            except ValidationError as exc:
                issues.extend(exc.issues)
        if issues:
            raise ValidationError(issues=issues)
        changed, budget = [], derived_budget(limits_of(request))  # the message's, all assets
        for asset, readings, instants in per_asset.values():
            if readings:
                derived = await store_readings(tx, peer.tenant, asset, readings, peer.name, budget)
                changed += [(asset, series_type) for series_type in derived]
            if instants:
                await store_instants(tx, peer.tenant, asset, instants, peer.name)
        await mark_dirty(tx, peer, [group_id])
        await replan.inputs_changed(tx, peer.tenant, changed)
    return codec.no_content(request)
