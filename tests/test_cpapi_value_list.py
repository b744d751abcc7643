"""The fast TimeSeriesValueList reader agrees with the schema on every list it accepts, and
hands every list it does not accept to the schema, which names the problem."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError as SchemaError

from protocols.cpapi.v1.codec.timeseries import (
    TimeSeriesSchema,
    TimeSeriesValueSchema,
    ValueColumns,
    _plain_values,
)
from store.timeutil import to_micros
from store.values import Blocks

_TIMES = st.one_of(
    st.sampled_from(
        [
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:15:00+00:00",
            " 2026-01-01T01:00:00.455Z ",
            "2026-01-01T02:00:00+02:00",
            "2026-01-01T00:00:00",  # naive: refused
            "1899-12-31T23:00:00Z",  # outside the stored years
            "9000-01-01T00:00:00Z",
            "yesterday",
            "",
        ]
    ),
    st.integers(),
    st.none(),
)
_VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)
_STATUS = st.one_of(st.none(), st.text(max_size=25), st.integers())
_KEYS = {
    "time": st.sampled_from(["ValueTime", "valueTime", "valuetime", " VALUETIME "]),
    "to_time": st.sampled_from(["ValueToTime", "valueToTime"]),
    "value": st.sampled_from(["Value", "value", "VALUE"]),
    "status": st.sampled_from(["Status", "status"]),
}


@st.composite
def _items(draw: st.DrawFn) -> object:
    if draw(st.integers(0, 30)) == 0:
        return draw(st.one_of(st.none(), st.integers(), st.text(max_size=3), st.lists(st.none())))
    item: dict[str, object] = {}
    for name, value in (
        ("time", _TIMES),
        ("to_time", st.one_of(st.none(), _TIMES)),
        ("value", _VALUES),
        ("status", _STATUS),
    ):
        if draw(st.integers(0, 9)) > (6 if name in ("to_time", "status") else 0):
            item[draw(_KEYS[name])] = draw(value)
    if draw(st.booleans()):
        item["Unknown"] = 1
    return item


def _by_schema(raw: list[object]) -> list[object] | None:
    try:
        return TimeSeriesValueSchema(many=True).load(raw)
    except SchemaError:
        return None


@settings(max_examples=400, deadline=None)
@given(st.lists(_items(), max_size=4))
def test_fast_reader_accepts_only_what_the_schema_accepts_and_reads_it_alike(raw: list) -> None:
    fast = _plain_values(raw)
    slow = _by_schema(raw)
    if fast is not None:
        assert slow is not None, f"fast reader accepted what the schema refuses: {raw!r}"
        assert list(fast) == slow


def test_fast_reader_reads_the_usual_list() -> None:
    raw = [
        {"ValueTime": "2026-01-01T00:00:00Z", "Value": 1},
        {"valueTime": "2026-01-01T00:15:00+01:00", "Value": 2.5, "Status": "ok"},
    ]
    values = _plain_values(raw)
    assert values is not None
    assert values[0].time == datetime(2026, 1, 1, tzinfo=UTC)
    assert values[0].value == 1.0 and isinstance(values[0].value, float)
    assert values[1].time == datetime(2025, 12, 31, 23, 15, tzinfo=UTC)
    assert values[1].status == "ok"


def test_the_usual_list_becomes_the_stores_columns_and_bands_go_to_the_schema() -> None:
    values = _plain_values(
        [
            {"ValueTime": "2026-01-01T00:00:00Z", "Value": 1},
            {"ValueTime": "2026-01-01T00:15:00Z", "Value": None},
        ]
    )
    assert isinstance(values, ValueColumns)
    first = to_micros(datetime(2026, 1, 1, tzinfo=UTC))
    assert values.blocks == Blocks([first, first + 900_000_000], [1.0, None], None)
    band = {"ValueTime": "2026-01-01T00:00:00Z", "ValueToTime": "2026-01-01T01:00:00Z"}
    assert _plain_values([{**band, "Value": 4}]) is None


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"ValueTime": "2026-01-01T00:00:00", "Value": 1}, "ValueTime"),
        ({"ValueTime": "2026-01-01T00:00:00Z", "Value": True}, "Value"),
        ({"ValueTime": "2026-01-01T00:00:00Z"}, "Value"),
        ({"ValueTime": "2026-01-01T00:00:00Z", "Value": 1, "Status": "x" * 21}, "Status"),
    ],
)
def test_a_list_the_fast_reader_declines_is_refused_by_the_schema_with_the_field(
    value: dict, path: str
) -> None:
    body = {
        "EntityKey": {"Key": "00000000-0000-0000-0000-000000000001"},
        "TimeSeriesType": "Consumption",
        "TimeSeriesValueList": [{"ValueTime": "2026-01-01T00:00:00Z", "Value": 0}, value],
    }
    with pytest.raises(SchemaError) as refused:
        TimeSeriesSchema().load(body)
    assert path in refused.value.messages["TimeSeriesValueList"][1]
