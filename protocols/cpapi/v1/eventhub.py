"""Event-hub ingestion (CP-API section 5): one time series message per device and property.

    POST /{eventHubPath}/publishers/{gatewayId}/messages
    Authorization: SharedAccessSignature ...

The body is checked against the message schema of 5.3.3.3 (as amended by Tables 6 and 7),
then: `deviceid` names a resource through its DeviceId property, or else through the
cross-reference (system `eventhub`, type `DeviceId`, the device id); `property` is a Table 2
series type; times without an offset are in `timezone` (UTC when absent, 5.3.3.2: "If no time
zone is given UTC is assumed"); a value with an `endtime` covers [starttime, endtime), one
without is an instant reading; a value without `starttime` is an instantaneous value at
receipt. The values join the stored series in its form; a new series is made at the type's
Table 2 resolution, or at the one length every value covers when that is a CP-API
resolution, so one odd value never fixes a series' resolution. What Table 2 derives from the
values follows (hub.derivations), and plans that read them are re-sent (hub.replan). The
whole message is stored or nothing is (201, or 400 naming the field); the work one message
may ask for is bounded (hub.limits). Decisions: docs/protocols/cpapi-v1.md, "Event hub".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from hub import derivations, replan
from hub.limits import Budget, blocks_budget, derived_budget
from protocols.common.context import caller_of, limits_of, open_message
from protocols.common.jsonschemas import check
from protocols.common.wire import read_json
from protocols.cpapi.v1.codec.timeseries import STEPS, resolution_name
from protocols.cpapi.v1.timeseries import default_step
from store.entities import Entity, find_by_property
from store.errors import FieldIssue, ValidationError
from store.references import ExternalRef, find
from store.series import Series, ensure_series, find_series
from store.series_types import Quantity, SeriesType, info, parse_series_name
from store.tenants import Tenant
from store.timeutil import in_range, utcnow
from store.units import parse_unit
from store.values import Point, write_values

PROTOCOL = "cpapi-eventhub"
DEVICE_SYSTEM, DEVICE_REFERENCE = "eventhub", "DeviceId"
_UTC_NAMES = frozenset({"", "utc", "z", "gmt", "etc/utc"})
STEP_LENGTHS = frozenset(STEPS.values())
_POINT_FIELD = re.compile(r"values\[(?P<index>\d+)\](?:\.(?P<name>\w+))?")
_WIRE_NAMES = {"start": "starttime", "end": "endtime"}

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


@dataclass(frozen=True, slots=True)
class _Value:
    """One value object as sent: [start, end), or an instant when `end` is None."""

    index: int
    start: datetime
    end: datetime | None
    value: float


def _values(values: list[dict[str, Any]], zone: tzinfo) -> list[_Value]:
    """The value objects that carry a value (a text message stores none)."""
    found, issues = [], []
    received = utcnow()
    for index, item in enumerate(values):
        where = f"values[{index}]"
        if "value" not in item:
            if "message" not in item:
                issues.append(FieldIssue(f"{where}.value", "either value or message is required"))
            continue
        start = (
            _moment(item["starttime"], zone, f"{where}.starttime")
            if "starttime" in item
            else received
        )
        end = _moment(item["endtime"], zone, f"{where}.endtime") if "endtime" in item else None
        if end is not None and end <= start:
            issues.append(FieldIssue(f"{where}.endtime", "must be after starttime"))
            continue
        found.append(_Value(index, start, end, item["value"]))
    if issues:
        raise ValidationError(issues=issues)
    return found


def _new_step(series_type: SeriesType, values: list[_Value]) -> timedelta | None:
    """The resolution a new series is made at: the type's Table 2 default (as a web-API
    save without Resolution), unless every value covers the one length of a CP-API
    resolution ("metered consumption for an hour" makes an hourly series). No single odd
    value decides it: a value of 266 days, 7 minutes or an instant does not make a series of
    its own length (docs/protocols/cpapi-v1.md, "The message")."""
    default = default_step(series_type)
    if default is None:
        return None
    lengths = {v.end - v.start if v.end is not None else None for v in values}
    length = next(iter(lengths)) if len(lengths) == 1 else None
    return length if length in STEP_LENGTHS else default


def _points(values: list[_Value], series: Series, budget: Budget) -> tuple[list[Point], list[int]]:
    """Store points in the series' form, and for each the index of its value object. An
    irregular series keeps every value as sent; in a series of blocks a value covers whole
    blocks (a longer one is a band: an intensive value repeated, energy divided, as a web-API
    ValueToTime), and an instant has no block to be."""
    step = series.resolution
    if step is None:
        budget.take(len(values), "values", "values")
        return [Point(v.start, v.end or v.start, v.value) for v in values], [
            v.index for v in values
        ]
    energy = info(series.series_type).quantity is Quantity.ENERGY
    points: list[Point] = []
    origins: list[int] = []
    issues: list[FieldIssue] = []
    for v in values:
        where = f"values[{v.index}].endtime"
        if v.end is None or (v.end - v.start) % step:
            shown = resolution_name(step) or step
            issues.append(
                FieldIssue(
                    where,
                    f"{series.series_type} is kept in blocks of {shown}: a value needs an "
                    f"endtime a whole number of them after its starttime",
                )
            )
            continue
        blocks = (v.end - v.start) // step
        budget.take(blocks, where, "blocks the values expand into")
        value = v.value / blocks if energy else v.value
        for k in range(blocks):
            points.append(Point(v.start + k * step, v.start + (k + 1) * step, value))
            origins.append(v.index)
    if issues:
        raise ValidationError(issues=issues[:20])
    return points, origins


def _renamed(exc: ValidationError, origins: list[int]) -> ValidationError:
    """A store refusal of point k named as the value object it came from."""
    issues = []
    for issue in exc.issues:
        match = _POINT_FIELD.fullmatch(issue.field)
        if match is None or int(match["index"]) >= len(origins):
            issues.append(issue)
            continue
        name = _WIRE_NAMES.get(match["name"] or "", match["name"] or "")
        field = f"values[{origins[int(match['index'])]}]" + (f".{name}" if name else "")
        issues.append(FieldIssue(field, issue.reason))
    return ValidationError(issues=list(dict.fromkeys(issues)))


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
    values = _values(body["values"], _zone(body.get("timezone")))
    caller, limits = caller_of(request), limits_of(request)
    async with open_message(
        request, PROTOCOL, "TimeSeriesMessage", message_id=None, from_peer=False
    ) as message:
        tx, tenant = message.tx, message.tenant
        entity = await _device(tx, tenant, body["deviceid"])
        series = await find_series(tx, tenant, entity, series_type, phase=phase)
        if series is None:
            step = _new_step(series_type, values)
            series = await ensure_series(
                tx, tenant, entity, series_type, phase=phase, resolution=step
            )
        points, origins = _points(values, series, blocks_budget(limits))
        # A unit other than the series' is converted on write; an incompatible one is refused.
        try:
            written = await write_values(
                tx, tenant, series, points, source=caller.account.username, unit=unit
            )
        except ValidationError as exc:
            raise _renamed(exc, origins) from None
        derived = await derivations.derive(
            tx, tenant, entity, series, points, budget=derived_budget(limits), field="values"
        )
        changed = [(entity, t) for t in (series.series_type, *derived)]
        await replan.inputs_changed(tx, tenant, changed)
        message.outcome("applied", f"{written} values of {series_type} for {body['deviceid']}")
    return web.Response(status=201)
