"""OCMP 1.0 messages, flexbridge in the CMO role (docs/protocols/ocmp-1.0.md).

    POST {prefix}/handshake                               204, then our Handshake back
    POST {prefix}/heartbeat                               204
    POST {prefix}/update_group_maximum_capacity_forecast  204, then the optimal forecast
    POST {prefix}/update_detailed_metering_data           204

A message whose every item is good is answered 204. Otherwise one 400 reply lists every
error (code, message, path) and says how many items were kept: a forecast block or a meter
value that is fine is stored even when its neighbours are not; an error in the message
itself (no group_id, an unknown group) keeps nothing. A repeated X-Request-ID from the same
peer changes nothing and is answered 204 again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from protocols.common.capacity import (
    BLOCK,
    Block,
    from_kw,
    plan_group,
    quarter,
    quarter_hours,
    resolve_id,
    store_capacity,
    to_kw,
)
from protocols.common.context import Hub, caller_of, database_of, hub_of
from protocols.common.jsonschemas import check, violations
from protocols.common.peer_link import iso, record_heartbeat, record_interval
from protocols.common.surface import ProtocolError
from protocols.common.wire import read_json
from protocols.ocmp.v1_0.errors import error_reply
from store.entities import Entity, connectors_of
from store.errors import FieldIssue, ValidationError
from store.messages import claim_message
from store.outbox import enqueue
from store.peers import OutboundAuth, Peer, get_peer, peer_for_account, update_peer
from store.references import references_of
from store.series import ensure_series
from store.series_types import SeriesType
from store.tenants import Tenant
from store.timeutil import in_range
from store.values import Point, derive_energy, write_values

PROTOCOL = "ocmp"
SCHEMAS = "schemas.ocmp"
HORIZON = timedelta(hours=24)  # section 7: "rolling 24-hour basis at 15-minute data level"

routes = web.RouteTableDef()


# ---------------------------------------------------------------------------------------------
# Reading a message


@dataclass
class Checked:
    """A message after its schema: the body, the items that passed, the issues found."""

    body: dict[str, Any]
    good: list[tuple[int, dict[str, Any]]]
    issues: list[FieldIssue]


def _check_whole(body: Any, schema: str) -> dict[str, Any]:
    check(body, SCHEMAS, f"1.0/{schema}.json")
    return body


def _check(body: Any, schema: str, items: str) -> Checked:
    """Schema-check a message whose `items` array may be partly bad: an error inside an item
    drops that item; any other error refuses the message."""
    found = violations(body, SCHEMAS, f"1.0/{schema}.json", limit=200)
    whole = [issue for path, issue in found if len(path) < 2 or path[0] != items]
    if whole:
        raise ValidationError(issues=whole)
    bad = {path[1] for path, _ in found}
    good = [(i, item) for i, item in enumerate(body[items]) if i not in bad]
    return Checked(body, good, [issue for _, issue in found])


def timestamp(text: str, where: str) -> datetime:
    """RFC 3339 with 'Z' or an offset, fractional seconds optional; naive times refused."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(where, f"{text!r} is not an RFC 3339 date-time") from None
    if moment.tzinfo is None:
        raise ValidationError(where, f"{text!r} has no UTC offset; add 'Z' or +hh:mm")
    utc = in_range(moment)
    if utc is None:
        raise ValidationError(where, f"{text!r} is outside the years 1900-8999")
    return utc


async def _peer(tx: AsyncConnection, request: web.Request) -> Peer:
    """The OCMP peer the caller's account belongs to (`flexbridge peer add`), its row locked
    for the state changes the message makes."""
    caller = caller_of(request)
    peer = await peer_for_account(tx, caller.tenant, PROTOCOL, caller.account.id, for_update=True)
    if peer is None:
        raise ProtocolError(
            403, "forbidden", f"account {caller.account.username!r} is no OCMP peer"
        )
    return peer


async def _first_time(tx: AsyncConnection, request: web.Request, peer: Peer, kind: str) -> bool:
    """False when this peer sent this X-Request-ID before (it was applied then)."""
    message_id = request.headers.get("X-Request-ID")
    if not message_id:
        return True
    return await claim_message(
        tx,
        peer.tenant,
        protocol=PROTOCOL,
        peer=peer.name,
        message_id=message_id[:200],
        message_type=kind,
        payload=await request.read(),
        peer_id=peer.id,
    )


def _answer(request: web.Request, issues: Sequence[FieldIssue], accepted: int) -> web.Response:
    if not issues:
        return web.Response(status=204)
    return error_reply(
        400, "invalid", "see errors", request.headers.get("X-Request-ID"), issues, None, accepted
    )


# ---------------------------------------------------------------------------------------------
# Handshake and heartbeat


@routes.post("/handshake")
async def handshake(request: web.Request) -> web.Response:
    """Section 7: "Used to pass end point details to the counterpart and to specify heartbeat
    frequency". We keep the endpoint, answer 204 and send our own Handshake back."""
    body = _check_whole(await read_json(request), "handshake")
    hub = hub_of(request)
    async with database_of(request).transaction() as tx:
        peer = await _peer(tx, request)
        if not await _first_time(tx, request, peer, "Handshake"):
            return web.Response(status=204)
        has_login = "username" in body
        peer = await update_peer(
            tx,
            peer.tenant,
            peer,
            base_url=body["base_url"],
            auth=OutboundAuth.BASIC if has_login else OutboundAuth.NONE,
            username=body.get("username"),
            secret=body.get("password"),
        )
        peer = await record_interval(tx, peer.tenant, peer, body.get("heartbeat_interval"))
        ours = {
            "base_url": hub.public_url + request.path.rsplit("/", 1)[0],
            "heartbeat_interval": hub.heartbeat_seconds,
        }
        await _send(tx, peer, "Handshake", "/handshake", ours)
    hub.wake_outbox()
    return web.Response(status=204)


@routes.post("/heartbeat")
async def heartbeat(request: web.Request) -> web.Response:
    body = _check_whole(await read_json(request), "heartbeat")
    offline_at = timestamp(body["offline_mode_at"], "offline_mode_at")
    ledger, account = hub_of(request).heartbeats, caller_of(request).account
    if ledger.covers(account.id, offline_at):
        return web.Response(status=204)
    async with database_of(request).transaction() as tx:
        peer = await _peer(tx, request)
        await record_heartbeat(tx, peer.tenant, peer, offline_at)
    ledger.note(account.id, offline_at)
    return web.Response(status=204)


# ---------------------------------------------------------------------------------------------
# Capacity


def _blocks(group: Entity, checked: Checked) -> tuple[list[Block], int]:
    """The good forecast blocks in kW on the 15-minute grid, and how many were kept."""
    blocks: list[Block] = []
    kept = 0
    for index, item in checked.good:
        where = f"forecasted_blocks[{index}]"
        try:
            start = timestamp(item["start_time"], f"{where}.start_time")
            end = timestamp(item["end_time"], f"{where}.end_time")
            kw = to_kw(group, float(item["capacity"]), item["unit"])
            blocks.extend(quarter_hours(start, end, kw, where))
            kept += 1
        except ValidationError as exc:
            checked.issues.extend(exc.issues)
    return blocks, kept


@routes.post("/update_group_maximum_capacity_forecast")
async def update_group_maximum_capacity_forecast(request: web.Request) -> web.Response:
    """Section 7: stored on the group as MaxCapacity; "For each
    UpdateGroupMaximumCapacityForecast a UpdateGroupOptimalCapacityForecast will be produced
    at the same level"."""
    checked = _check(
        await read_json(request), "update_group_maximum_capacity_forecast", "forecasted_blocks"
    )
    group_id = checked.body["group_id"]
    async with database_of(request).transaction() as tx:
        peer = await _peer(tx, request)
        if not await _first_time(tx, request, peer, "UpdateGroupMaximumCapacityForecast"):
            return web.Response(status=204)
        group = (await resolve_id(tx, peer.tenant, peer, "group", group_id, "group_id")).entity
        blocks, kept = _blocks(group, checked)
        if blocks:
            await store_capacity(tx, peer.tenant, group, blocks, source=peer.name)
            await send_optimal(
                tx, hub_of(request), peer, group, group_id, blocks[0].start, blocks[-1].end
            )
    hub_of(request).wake_outbox()
    return _answer(request, checked.issues, kept)


async def send_optimal(
    tx: AsyncConnection,
    hub: Hub,
    peer: Peer,
    group: Entity,
    group_id: str,
    start: datetime,
    end: datetime,
) -> int:
    """Plan the group's capacity over [start, end) and queue the optimal forecast for the
    peer, in Amps, one block per quarter hour; returns how many blocks."""
    plan = await plan_group(
        tx, peer.tenant, group, start, end, solve=hub.solve, hooks=hub.plan_hooks
    )
    if plan:
        body = {
            "group_id": group_id,
            "forecasted_blocks": [
                {
                    "capacity": round(from_kw(group, b.kw, "A"), 3),
                    "phase": "ALL",
                    "unit": "A",
                    "start_time": iso(b.start),
                    "end_time": iso(b.end),
                }
                for b in plan
            ],
        }
        await _send(
            tx,
            peer,
            "UpdateGroupOptimalCapacityForecast",
            "/update_group_optimal_capacity_forecast",
            body,
        )
    await _remember_group(tx, peer, group_id, dirty=False)
    return len(plan)


async def _remember_group(tx: AsyncConnection, peer: Peer, group_id: str, *, dirty: bool) -> None:
    """Peer state `groups`: when each group's optimal forecast was last sent, and whether its
    inputs changed since (the clock re-sends those)."""
    current = await get_peer(tx, peer.tenant, peer.id, for_update=True)
    groups = dict(current.state.get("groups", {}))
    entry = dict(groups.get(group_id, {}))
    if dirty:
        entry["dirty"] = True
    else:
        entry |= {"dirty": False, "sent_at": iso(datetime.now(UTC))}
    groups[group_id] = entry
    await update_peer(tx, peer.tenant, current, state={"groups": groups})


async def _send(
    tx: AsyncConnection, peer: Peer, kind: str, path: str, body: dict[str, Any]
) -> None:
    if not peer.base_url:  # no handshake yet: nowhere to send; the data is kept
        return
    await enqueue(
        tx,
        peer.tenant,
        peer,
        protocol=PROTOCOL,
        message_type=kind,
        path=path,
        body=orjson.dumps(body),
        headers={"Content-Type": "application/json"},
    )


# ---------------------------------------------------------------------------------------------
# Metering


@routes.post("/update_detailed_metering_data")
async def update_detailed_metering_data(request: web.Request) -> web.Response:
    """Section 7: "one message for each asset at the Site. Unit for metering data will be
    accumulated kWh." Stored as ConsumptionMeterReading; interval energy is derived; the
    groups the asset belongs to are re-planned at the clock's next re-send."""
    checked = _check(await read_json(request), "update_detailed_metering_data", "meter_values")
    asset_id = checked.body["asset_id"]
    async with database_of(request).transaction() as tx:
        peer = await _peer(tx, request)
        if not await _first_time(tx, request, peer, "UpdateDetailedMeteringData"):
            return web.Response(status=204)
        asset = (await resolve_id(tx, peer.tenant, peer, "asset", asset_id, "asset_id")).entity
        readings = _readings(checked)
        if readings:
            await _store_readings(tx, peer.tenant, asset, readings, peer.name)
            await _mark_groups(tx, peer, asset)
    return _answer(request, checked.issues, len(readings))


def _readings(checked: Checked) -> list[Point]:
    readings = []
    for index, item in checked.good:
        try:
            at = timestamp(item["measure_time"], f"meter_values[{index}].measure_time")
        except ValidationError as exc:
            checked.issues.extend(exc.issues)
            continue
        readings.append(Point(at, at, float(item["value"])))
    return readings


async def _store_readings(
    tx: AsyncConnection, tenant: Tenant, asset: Entity, readings: list[Point], source: str
) -> None:
    series = await ensure_series(tx, tenant, asset, SeriesType.CONSUMPTION_METER_READING)
    await write_values(tx, tenant, series, readings, source=source)
    # The quarter hours from the one before the first reading to the one holding the last:
    # a new reading completes the block it ends as well as the ones it lies in.
    start = quarter(min(p.start for p in readings)) - BLOCK
    end = quarter(max(p.start for p in readings)) + BLOCK
    await derive_energy(tx, tenant, asset, series, start, end, BLOCK)


async def _mark_groups(tx: AsyncConnection, peer: Peer, asset: Entity) -> None:
    """The asset's parents that the peer sends forecasts for need a new optimal forecast."""
    known = peer.state.get("groups", {})
    for connector in await connectors_of(tx, peer.tenant, asset):
        if connector.child.id != asset.id:
            continue
        for ref in await references_of(
            tx, peer.tenant, connector.parent, system=f"{PROTOCOL}:{peer.name}"
        ):
            if ref.external_key in known:
                await _remember_group(tx, peer, ref.external_key, dirty=True)
