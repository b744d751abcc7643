"""Wire types of the CP-API Time Series Management API (section 4.3), as marshmallow schemas.

Every wire name lives here (`data_key=`); handlers see typed objects (`post_load`) and build
answers through the dump helpers at the end. Keys are accepted in any letter case
(`CaseInsensitiveSchema`), plus the spellings the spec's own examples use:
`RetrieveAllTimeSeriesType` (4.3.3 example) for `RetrieveAllTimeSeriesTypes`, and
`ExternalEntityType` (4.3.4 example response) for `ExternalEntityReferenceType`.

Dates (3.3.2.2: "All Dates should be supplied in UTC in the ISO 8601 string format e.g.
"2018-02-23T13:55:05.455Z"") must carry an offset; a timestamp without one is refused (see
`UtcDateTime`). Any explicit offset is accepted and converted to UTC.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple, overload

from marshmallow import Schema, fields, post_load, validate
from marshmallow import ValidationError as SchemaError

from protocols.common.wire import CaseInsensitiveSchema
from protocols.cpapi.v1.codec.wire import NAIVE_REASON, UtcDateTime, iso  # noqa: F401
from store.calendar import Period
from store.errors import FieldIssue
from store.references import EntityRef
from store.timeutil import from_micros, in_range, to_micros
from store.values import Blocks

# ---------------------------------------------------------------------------------------------
# Resolution (TimeSeriesV1.Resolution)


class Resolution(StrEnum):
    """TimeSeriesV1.Resolution: "['None', 'Second', 'Minute', 'FiveMinutes', 'TenMinutes',
    'FifteenMinutes', 'HalfHour', 'Hour', 'Frequent', 'Rarely', 'Occasionally', 'Day',
    'Week', 'Month', 'Year', 'Quarter']"."""

    NONE = "None"
    SECOND = "Second"
    MINUTE = "Minute"
    FIVE_MINUTES = "FiveMinutes"
    TEN_MINUTES = "TenMinutes"
    FIFTEEN_MINUTES = "FifteenMinutes"
    HALF_HOUR = "HalfHour"
    HOUR = "Hour"
    FREQUENT = "Frequent"
    RARELY = "Rarely"
    OCCASIONALLY = "Occasionally"
    DAY = "Day"
    WEEK = "Week"
    MONTH = "Month"
    YEAR = "Year"
    QUARTER = "Quarter"


# Fixed-length block sizes. Table 2: "*Frequent* is used on time series types where exact
# frequency can vary"; None, Rarely and Occasionally name no length either: all four are
# irregular instants in the store (a series without a resolution).
STEPS: Mapping[Resolution, timedelta] = MappingProxyType(
    {
        Resolution.SECOND: timedelta(seconds=1),
        Resolution.MINUTE: timedelta(minutes=1),
        Resolution.FIVE_MINUTES: timedelta(minutes=5),
        Resolution.TEN_MINUTES: timedelta(minutes=10),
        Resolution.FIFTEEN_MINUTES: timedelta(minutes=15),
        Resolution.HALF_HOUR: timedelta(minutes=30),
        Resolution.HOUR: timedelta(hours=1),
        Resolution.DAY: timedelta(days=1),
        Resolution.WEEK: timedelta(weeks=1),
    }
)
IRREGULAR = frozenset(
    {Resolution.NONE, Resolution.FREQUENT, Resolution.RARELY, Resolution.OCCASIONALLY}
)
# Day and coarser are calendar periods in the request's TimeZone (4.3.2: "for resolution
# Daily and above the time zone should be specified to get the correct day alignment of
# values"); store.calendar lays them out. Day and Week keep their fixed lengths in STEPS for
# the series stored at them in UTC, where every day is 24 hours and every week 7 days.
PERIODS: Mapping[Resolution, Period] = MappingProxyType(
    {
        Resolution.DAY: Period.DAY,
        Resolution.WEEK: Period.WEEK,
        Resolution.MONTH: Period.MONTH,
        Resolution.QUARTER: Period.QUARTER,
        Resolution.YEAR: Period.YEAR,
    }
)
_NAME_OF_STEP: Mapping[timedelta, Resolution] = MappingProxyType({v: k for k, v in STEPS.items()})


def resolution_name(step: timedelta | None) -> str | None:
    """The wire name of a store resolution: irregular -> "Frequent" (Table 2's word for
    readings at varying intervals); a length with no enum value (written by another
    protocol) -> None."""
    if step is None:
        return Resolution.FREQUENT.value
    name = _NAME_OF_STEP.get(step)
    return None if name is None else name.value


_RESOLUTION_BY_KEY = MappingProxyType({r.value.casefold(): r for r in Resolution})


class ResolutionField(fields.Field):
    """A Resolution enum value, in any letter case (3.3.2.3: enums are strings)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Resolution:
        found = _RESOLUTION_BY_KEY.get(value.strip().casefold()) if isinstance(value, str) else None
        if found is None:
            raise SchemaError(f"must be one of {', '.join(r.value for r in Resolution)}")
        return found


# ---------------------------------------------------------------------------------------------
# Scalars


class Number(fields.Field):
    """A JSON number (TimeSeriesValue.Value is "(number)"): not a string, not a boolean."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SchemaError(f"expected a number, got {type(value).__name__}")
        number = float(value)
        if not math.isfinite(number):
            raise SchemaError(f"not a finite number: {value!r}")
        return number


# ---------------------------------------------------------------------------------------------
# ExternalEntityReference (4.2.1.1, used as EntityKey and ExternalEntityReference)

REFERENCE_FIELDS = (
    "SystemIdentifier",
    "ExternalEntityReferenceType",
    "Key",
    "ExternalKey",
    "FriendlyName",
)


@dataclass(frozen=True, slots=True)
class EntityKey:
    """An ExternalEntityReference as sent: what the store resolves, and what to echo."""

    ref: EntityRef
    echo: Mapping[str, Any]  # the supplied fields under their canonical wire names


class ExternalEntityReferenceSchema(CaseInsensitiveSchema):
    ALIASES: ClassVar[Mapping[str, str]] = {"ExternalEntityType": "ExternalEntityReferenceType"}

    system = fields.Str(data_key="SystemIdentifier", allow_none=True)
    reference_type = fields.Str(data_key="ExternalEntityReferenceType", allow_none=True)
    key = fields.Str(data_key="Key", allow_none=True)
    external_key = fields.Str(data_key="ExternalKey", allow_none=True)
    friendly_name = fields.Str(data_key="FriendlyName", allow_none=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> EntityKey:
        wire = {self.fields[name].data_key: value for name, value in data.items()}
        echo = {name: wire[name] for name in REFERENCE_FIELDS if name in wire}
        ref = EntityRef(
            key=data.get("key") or None,
            system=data.get("system") or None,
            reference_type=data.get("reference_type") or None,
            external_key=data.get("external_key") or None,
        )
        return EntityKey(ref, echo)


# ---------------------------------------------------------------------------------------------
# TimeSeriesV1 and TimeSeriesValue (4.3.1.1)


class ValueIn(NamedTuple):  # a tuple: a day of values a series makes 96 of them per save
    """TimeSeriesValue: ValueTime is the period START (4.3.1.2)."""

    time: datetime
    to_time: datetime | None
    value: float | None
    status: str | None


@dataclass(frozen=True, slots=True)
class TimeSeriesIn:
    """TimeSeriesV1 as sent to SaveTimeSeriesV1 / SaveTimeSeriesListForEntitiesV1."""

    entity_key: EntityKey
    series_type: str
    from_time: datetime | None
    to_time: datetime | None
    unit: str | None
    time_zone: str | None
    resolution: Resolution | None
    values: Sequence[ValueIn]


class TimeSeriesValueSchema(CaseInsensitiveSchema):
    time = UtcDateTime(data_key="ValueTime", required=True)
    to_time = UtcDateTime(data_key="ValueToTime", allow_none=True)
    # Null is accepted: a newer belief that the value is unknown (it is merged like any
    # value, and Get leaves such values out).
    value = Number(data_key="Value", required=True, allow_none=True)
    status = fields.Str(
        data_key="Status",
        allow_none=True,
        validate=validate.Length(max=20, error="at most {max} characters"),
    )

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> ValueIn:
        return ValueIn(data["time"], data.get("to_time"), data["value"], data.get("status"))


# The value list is the bulk of every save (96 values a day a series): a well-formed list
# is read by `_plain_values` without marshmallow, about ten times faster. Anything it
# does not recognise goes through the schema above, which names each problem; the two agree
# on every list the fast reader accepts (tests/test_cpapi_value_list.py).
_VALUE_NAMES = frozenset({"ValueTime", "ValueToTime", "Value", "Status"})
# Keys as CaseInsensitiveSchema normalises them (stripped, casefolded) -> wire name.
_VALUE_KEYS = {name.casefold(): name for name in _VALUE_NAMES}
_MISSING = object()


@functools.lru_cache(maxsize=8192)
def _utc_micros(text: str) -> int | None:
    """An offset-bearing ISO 8601 date-time in the stored years, as integer microseconds
    since the epoch in UTC; None otherwise.

    A memo of a pure function: a list save repeats the same timestamps for every series."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        return None
    utc = in_range(moment)
    return None if utc is None else to_micros(utc)


class ValueColumns(Sequence[ValueIn]):
    """A well-formed value list without ValueToTime, kept as the columns the store takes
    (`store.values.Blocks`: starts in microseconds, values, statuses) instead of 96 ValueIn
    a series. Read as a sequence it gives ValueIn, for every path that wants them."""

    __slots__ = ("blocks",)

    def __init__(self, blocks: Blocks) -> None:
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks.starts_us)

    @overload
    def __getitem__(self, index: int) -> ValueIn: ...
    @overload
    def __getitem__(self, index: slice) -> list[ValueIn]: ...
    def __getitem__(self, index: int | slice) -> ValueIn | list[ValueIn]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        statuses = self.blocks.statuses
        return ValueIn(
            from_micros(self.blocks.starts_us[index]),
            None,
            self.blocks.values[index],
            None if statuses is None else statuses[index],
        )


def _members(item: dict[Any, Any]) -> dict[str, Any]:
    """The item's fields under their wire names; other spellings matched as the schema does."""
    if _VALUE_NAMES.issuperset(item):  # spelt as the spec prints them
        return item
    members: dict[str, Any] = {}
    for key, member in item.items():
        name = _VALUE_KEYS.get(key.strip().casefold()) if key.__class__ is str else None
        if name is not None:
            members.setdefault(name, member)  # the first spelling wins, as in the schema
    return members


def _plain_values(raw: Any) -> ValueColumns | None:
    """The values of a well-formed TimeSeriesValueList without ValueToTime, or None to let
    the schema judge (a list with ValueToTime takes the schema too: bands are rare)."""
    if raw.__class__ is not list:
        return None
    starts: list[int] = []
    values: list[float | None] = []
    statuses: list[str | None] = []
    micros, names = _utc_micros, _VALUE_NAMES
    for item in raw:
        if item.__class__ is not dict:
            return None
        if not names.issuperset(item):
            item = _members(item)
        time, value, status = item.get("ValueTime"), item.get("Value", _MISSING), item.get("Status")
        if time.__class__ is not str or item.get("ValueToTime") is not None:
            return None
        if status is not None and (status.__class__ is not str or len(status) > 20):
            return None
        if value is not None:
            if value.__class__ is int:
                value = float(value)
            elif value.__class__ is not float or not math.isfinite(value):
                return None  # also _MISSING, booleans and strings
        start = micros(time)
        if start is None:
            return None
        starts.append(start)
        values.append(value)
        statuses.append(status)
    has_status = any(status is not None for status in statuses)
    return ValueColumns(Blocks(starts, values, statuses if has_status else None))


class ValueList(fields.List):
    """TimeSeriesValueList: the fast reader first, the schema for anything unusual."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        plain = _plain_values(value)
        return plain if plain is not None else super()._deserialize(value, attr, data, **kwargs)


class TimeSeriesSchema(CaseInsensitiveSchema):
    entity_key = fields.Nested(ExternalEntityReferenceSchema, data_key="EntityKey", required=True)
    series_type = fields.Str(data_key="TimeSeriesType", required=True)
    from_time = UtcDateTime(data_key="FromDateTime", allow_none=True)
    to_time = UtcDateTime(data_key="ToDateTime", allow_none=True)
    unit = fields.Str(data_key="Unit", allow_none=True)
    time_zone = fields.Str(data_key="TimeZone", allow_none=True)
    resolution = ResolutionField(data_key="Resolution", allow_none=True)
    values = ValueList(
        fields.Nested(TimeSeriesValueSchema), data_key="TimeSeriesValueList", allow_none=True
    )

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> TimeSeriesIn:
        return TimeSeriesIn(
            data["entity_key"],
            data["series_type"],
            data.get("from_time"),
            data.get("to_time"),
            data.get("unit") or None,
            data.get("time_zone") or None,
            data.get("resolution"),
            data.get("values") or [],
        )


# ---------------------------------------------------------------------------------------------
# TimeSeriesRequestV1 (4.3.2) and TimeSeriesEntityListRequestV1 (4.3.3)


@dataclass(frozen=True, slots=True)
class TimeSeriesRequest:
    entity_key: EntityKey
    series_type: str
    from_time: datetime
    to_time: datetime | None
    time_zone: str | None
    resolution: Resolution | None


@dataclass(frozen=True, slots=True)
class TimeSeriesListRequest:
    entity_key: EntityKey
    retrieve_all: bool | None
    series_types: Sequence[str] | None
    from_time: datetime
    to_time: datetime | None
    time_zone: str | None
    resolution: Resolution | None


class TimeSeriesRequestSchema(CaseInsensitiveSchema):
    entity_key = fields.Nested(
        ExternalEntityReferenceSchema, data_key="ExternalEntityReference", required=True
    )
    series_type = fields.Str(data_key="TimeSeriesType", required=True)
    from_time = UtcDateTime(data_key="FromDateTime", required=True)
    to_time = UtcDateTime(data_key="ToDateTime", allow_none=True)
    time_zone = fields.Str(data_key="TimeZone", allow_none=True)
    resolution = ResolutionField(data_key="Resolution", allow_none=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> TimeSeriesRequest:
        return TimeSeriesRequest(
            data["entity_key"],
            data["series_type"],
            data["from_time"],
            data.get("to_time"),
            data.get("time_zone") or None,
            data.get("resolution"),
        )


class TimeSeriesEntityListRequestSchema(CaseInsensitiveSchema):
    ALIASES: ClassVar[Mapping[str, str]] = {
        "RetrieveAllTimeSeriesType": "RetrieveAllTimeSeriesTypes"
    }

    entity_key = fields.Nested(
        ExternalEntityReferenceSchema, data_key="ExternalEntityReference", required=True
    )
    retrieve_all = fields.Bool(data_key="RetrieveAllTimeSeriesTypes", allow_none=True)
    series_types = fields.List(fields.Str(), data_key="TimeSeriesTypeList", allow_none=True)
    from_time = UtcDateTime(data_key="FromDateTime", required=True)
    to_time = UtcDateTime(data_key="ToDateTime", allow_none=True)
    time_zone = fields.Str(data_key="TimeZone", allow_none=True)
    resolution = ResolutionField(data_key="Resolution", allow_none=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> TimeSeriesListRequest:
        return TimeSeriesListRequest(
            data["entity_key"],
            data.get("retrieve_all"),
            data.get("series_types"),
            data["from_time"],
            data.get("to_time"),
            data.get("time_zone") or None,
            data.get("resolution"),
        )


# ---------------------------------------------------------------------------------------------
# Answers


@dataclass(frozen=True, slots=True)
class ValueOut:
    start: datetime
    end: datetime | None  # only when not implicit from the resolution
    value: float
    status: str | None


@dataclass(frozen=True, slots=True)
class TimeSeriesOut:
    entity_key: Mapping[str, Any]
    series_type: str
    from_time: datetime | None
    to_time: datetime | None
    unit: str | None
    resolution: str | None
    values: Sequence[ValueOut]
    # The zone the periods of a Day-or-coarser answer are aligned to; every date is UTC.
    time_zone: str = "UTC"


class TimeSeriesOutSchema(Schema):
    """TimeSeriesV1 as answered by the Get methods; the value list is dumped by
    `dump_values` (a plain loop: a year of 15-minute values is 35,040 of them)."""

    entity_key = fields.Dict(data_key="EntityKey")
    series_type = fields.Str(data_key="TimeSeriesType")
    from_time = UtcDateTime(data_key="FromDateTime", allow_none=True)
    to_time = UtcDateTime(data_key="ToDateTime", allow_none=True)
    unit = fields.Str(data_key="Unit", allow_none=True)
    time_zone = fields.Str(data_key="TimeZone")
    resolution = fields.Str(data_key="Resolution", allow_none=True)


def dump_values(values: Sequence[ValueOut]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for v in values:
        item: dict[str, Any] = {"ValueTime": iso(v.start)}
        if v.end is not None:
            item["ValueToTime"] = iso(v.end)
        item["Value"] = v.value
        if v.status is not None:
            item["Status"] = v.status
        out.append(item)
    return out


def dump_time_series(series: TimeSeriesOut) -> dict[str, Any]:
    body: dict[str, Any] = TimeSeriesOutSchema().dump(series)
    body["TimeSeriesValueList"] = dump_values(series.values)
    return body


def dump_save_response(
    entity_key: Mapping[str, Any] | None,
    series_type: Any,
    success: bool,
    key: str | None,
    error: str | None,
) -> dict[str, Any]:
    """SaveTimeSeriesResponseV1 { EntityKey, TimeSeriesType, Success, Key, ErrorMessage }."""
    body: dict[str, Any] = {
        "EntityKey": entity_key,
        "TimeSeriesType": series_type,
        "Success": success,
        "Key": key,
    }
    if error is not None:
        body["ErrorMessage"] = error
    return body


def raw_member(item: Any, name: str) -> Any:
    """`item[name]` in any letter case, for echoing parts of an item that failed to load."""
    if not isinstance(item, Mapping):
        return None
    wanted = name.casefold()
    for key, value in item.items():
        if str(key).strip().casefold() == wanted:
            return value
    return None


# ---------------------------------------------------------------------------------------------
# Store field names -> wire field names

_VALUE_FIELD = re.compile(r"values\[(\d+)\](?:\.(\w+))?")
_VALUE_PARTS = MappingProxyType(
    {"start": "ValueTime", "end": "ValueToTime", "value": "Value", "status": "Status"}
)
_PLAIN = MappingProxyType(
    {
        "unit": "Unit",
        "resolution": "Resolution",
        "series_type": "TimeSeriesType",
        "phase": "TimeSeriesType",
        "values": "TimeSeriesValueList",
        "start": "FromDateTime",
        "end": "ToDateTime",
        "timezone": "TimeZone",
    }
)


def wire_field(field: str, reference: str, origins: Sequence[int] = ()) -> str:
    """The wire name of a field a store error names.

    `reference` is where the entity reference sits ("EntityKey" in TimeSeriesV1,
    "ExternalEntityReference" in requests); `origins[i]` is the TimeSeriesValueList index
    that stored point i came from (a ValueToTime band becomes several points).
    """
    match = _VALUE_FIELD.fullmatch(field)
    if match:
        index = int(match[1])
        wire_index = origins[index] if index < len(origins) else index
        part = _VALUE_PARTS.get(match[2] or "", match[2])
        return f"TimeSeriesValueList[{wire_index}]" + (f".{part}" if part else "")
    if field in REFERENCE_FIELDS:
        return f"{reference}.{field}"
    return _PLAIN.get(field, field)


def wire_issues(
    issues: Sequence[FieldIssue], reference: str, origins: Sequence[int] = ()
) -> list[FieldIssue]:
    """Issues renamed to wire fields; duplicates (one band, several points) said once."""
    seen: dict[tuple[str, str], FieldIssue] = {}
    for issue in issues:
        renamed = FieldIssue(wire_field(issue.field, reference, origins), issue.reason)
        seen.setdefault((renamed.field, renamed.reason), renamed)
    return list(seen.values())
