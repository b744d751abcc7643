"""Event-hub ingestion (CP-API section 5): one time series message per device and property.

    POST /{eventHubPath}/publishers/{gatewayId}/messages
    Authorization: SharedAccessSignature ...

The body is checked against the message schema of 5.3.3.3 (as amended by Tables 6 and 7),
then: `deviceid` names a resource through its DeviceId property, or else through the
cross-reference (system `eventhub`, type `DeviceId`, the device id); `property` is a Table 2
series type; times without an offset are in `timezone` (UTC when absent, 5.3.3.2: "If no time
zone is given UTC is assumed"); a value with an `endtime` covers [starttime, endtime), one
without is an instant reading; a value without `starttime` is an instantaneous value at
receipt. What Table 2 derives from the values follows (hub.derivations), and plans that read
them are re-sent (hub.replan). The whole message is stored or nothing is (201, or 400 naming
the field).
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from hub import derivations, replan
from protocols.common.context import caller_of, open_message
from protocols.common.jsonschemas import check
from protocols.common.wire import read_json
from store.entities import Entity, find_by_property
from store.errors import FieldIssue, ValidationError
from store.references import ExternalRef, find
from store.series import ensure_series
from store.series_types import parse_series_name
from store.tenants import Tenant
from store.timeutil import in_range, utcnow
from store.units import parse_unit
from store.values import Point, write_values

PROTOCOL = "cpapi-eventhub"
DEVICE_SYSTEM, DEVICE_REFERENCE = "eventhub", "DeviceId"
_UTC_NAMES = frozenset({"", "utc", "z", "gmt", "etc/utc"})

routes = web.RouteTableDef()


def _zone(name: str | None) -> tzinfo:
    if name is None or name.strip().lower() in _UTC_NAMES:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            "timezone", f"unknown time zone {name!r} (an IANA name or UTC)"
        ) from None


def _moment(text: str, zone: tzinfo, field: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValidationError(field, f"{text!r} is not an ISO 8601 date-time") from None
    utc = in_range(moment.replace(tzinfo=zone) if moment.tzinfo is None else moment)
    if utc is None:
        raise ValidationError(field, f"{text!r} is outside the years 1900-8999")
    return utc


def _points(values: list[dict[str, Any]], zone: tzinfo) -> tuple[list[Point], timedelta | None]:
    """Points and their common block length (None: instants)."""
    points, lengths, issues = [], set(), []
    received = utcnow()
    for index, item in enumerate(values):
        where = f"values[{index}]"
        if "value" not in item:
            if "message" not in item:
                issues.append(FieldIssue(f"{where}.value", "either value or message is required"))
            continue  # a text message carries no value to store
        start = (
            _moment(item["starttime"], zone, f"{where}.starttime")
            if "starttime" in item
            else received
        )
        end = _moment(item["endtime"], zone, f"{where}.endtime") if "endtime" in item else start
        lengths.add(end - start)
        points.append(Point(start, end, item["value"]))
    if len(lengths) > 1:
        issues.append(FieldIssue("values", "every value must cover the same length of time"))
    if issues:
        raise ValidationError(issues=issues)
    length = next(iter(lengths), timedelta(0))
    return points, (length or None)


async def _device(tx: Any, tenant: Tenant, device_id: str) -> Entity:
    entity = await find_by_property(tx, tenant, "DeviceId", device_id)
    if entity is None:
        entity = await find(tx, tenant, ExternalRef(DEVICE_SYSTEM, DEVICE_REFERENCE, device_id))
    if entity is None:
        # A bad message, not a missing page: 400 like every refusal the spec's 5.3.2 allows.
        raise ValidationError(
            "deviceid", f"no resource has DeviceId {device_id!r} or is cross-referenced by it"
        )
    return entity


@routes.post("/publishers/{gateway_id}/messages")
async def send_event(request: web.Request) -> web.Response:
    body = await read_json(request)
    check(body, "schemas.cpapi.v1", "eventhub-timeseries-message.schema.json")
    series_type, phase = parse_series_name(body["property"], field="property")
    unit = parse_unit(body["unit"], field="unit") if body.get("unit") else None
    points, resolution = _points(body["values"], _zone(body.get("timezone")))
    caller = caller_of(request)
    async with open_message(
        request, PROTOCOL, "TimeSeriesMessage", message_id=None, from_peer=False
    ) as message:
        tx, tenant = message.tx, message.tenant
        entity = await _device(tx, tenant, body["deviceid"])
        series = await ensure_series(
            tx, tenant, entity, series_type, phase=phase, resolution=resolution
        )
        # A unit other than the series' is converted on write; an incompatible one is refused.
        written = await write_values(
            tx, tenant, series, points, source=caller.account.username, unit=unit
        )
        derived = await derivations.derive(tx, tenant, entity, series, points)
        changed = [(entity, t) for t in (series.series_type, *derived)]
        await replan.inputs_changed(tx, tenant, changed)
        message.outcome("applied", f"{written} values of {series_type} for {body['deviceid']}")
    return web.Response(status=201)
