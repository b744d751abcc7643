"""Series types of CP-API Table 2: names, phases, metadata and value rules."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from store.errors import ValidationError
from store.series import Series
from store.series_types import (
    Quantity,
    SeriesType,
    Sign,
    format_series_name,
    info,
    parse_series_name,
)
from store.units import EUR_PER_MWH, Unit
from store.values import Point, _rows

T0 = datetime(2026, 1, 1, tzinfo=UTC)
Q = timedelta(minutes=15)


def _refused(series_type: SeriesType, numbers: list[object]) -> list[str]:
    """Fields the store's write path refuses for these values (one 15-minute block each)."""
    series = Series(1, 1, 1, series_type, None, info(series_type).unit, Q)
    points = [Point(T0 + i * Q, T0 + (i + 1) * Q, v) for i, v in enumerate(numbers)]  # type: ignore[arg-type]
    try:
        _rows(series, points, 1, 0)
    except ValidationError as refused:
        return [issue.field for issue in refused.issues]
    return []


# Every "Variable (time series)" cell of Table 2, spelled exactly as the table spells it.
TABLE_2_NAMES: dict[str, SeriesType] = {
    "Net Energy Meter Reading": SeriesType.NET_ENERGY_METER_READING,
    "Production Meter Reading": SeriesType.PRODUCTION_METER_READING,
    "Consumption Meter Reading": SeriesType.CONSUMPTION_METER_READING,
    "Net Energy": SeriesType.NET_ENERGY,
    "Production": SeriesType.PRODUCTION,
    "Consumption": SeriesType.CONSUMPTION,
    "Net Instant Power": SeriesType.NET_INSTANT_POWER,
    "Production Instant Power": SeriesType.PRODUCTION_INSTANT_POWER,
    "Consumption Instant Power": SeriesType.CONSUMPTION_INSTANT_POWER,
    "Production Instant power": SeriesType.PRODUCTION_INSTANT_POWER,
    "Flexibility Down": SeriesType.FLEXIBILITY_DOWN,
    "Production Power Regulation": SeriesType.PRODUCTION_POWER_REGULATION,
    "Production OnOff Power Regulation": SeriesType.PRODUCTION_ON_OFF_POWER_REGULATION,
    "Consumption Instant power": SeriesType.CONSUMPTION_INSTANT_POWER,
    "Flexibility Up": SeriesType.FLEXIBILITY_UP,
    "Load Power Regulation": SeriesType.LOAD_POWER_REGULATION,
    "Load OnOff Power Regulation": SeriesType.LOAD_ON_OFF_POWER_REGULATION,
    "Charging current": SeriesType.CHARGING_CURRENT,
    "Charging power": SeriesType.CHARGING_POWER,
    "Discharging current": SeriesType.DISCHARGING_CURRENT,
    "Discharging power": SeriesType.DISCHARGING_POWER,
    "Charging Meter Reading": SeriesType.CHARGING_METER_READING,
    "Discharging Meter Reading": SeriesType.DISCHARGING_METER_READING,
    "Charging Energy": SeriesType.CHARGING_ENERGY,
    "Discharging Energy": SeriesType.DISCHARGING_ENERGY,
    "Energy Level Meter Reading": SeriesType.ENERGY_LEVEL_METER_READING,
    "Energy Level": SeriesType.ENERGY_LEVEL,
    "Charging Power Regulation": SeriesType.CHARGING_POWER_REGULATION,
    "Discharging Power Regulation": SeriesType.DISCHARGING_POWER_REGULATION,
    "Charging Power": SeriesType.CHARGING_POWER,
    "Discharging Power": SeriesType.DISCHARGING_POWER,
    "ChargingCurrent": SeriesType.CHARGING_CURRENT,
    "DischargingCurr ent": SeriesType.DISCHARGING_CURRENT,
    "Charging point state": SeriesType.CHARGING_POINT_STATE,
    "Net Meter Reading": SeriesType.NET_METER_READING,
    "Charging Power OnOff Regulation": SeriesType.CHARGING_POWER_ON_OFF_REGULATION,
    "Max Capacity": SeriesType.MAX_CAPACITY,
    "Optimal Capacity Regulation": SeriesType.OPTIMAL_CAPACITY_REGULATION,
    "Actual Temperature": SeriesType.ACTUAL_TEMPERATURE,
    "Actual Cloudiness": SeriesType.ACTUAL_CLOUDINESS,
    "Forecasted Temperature": SeriesType.FORECASTED_TEMPERATURE,
    "Forecasted Cloudiness": SeriesType.FORECASTED_CLOUDINESS,
    "Spot Price": SeriesType.SPOT_PRICE,
    "Forecasted Spot Price": SeriesType.FORECASTED_SPOT_PRICE,
}


@pytest.mark.parametrize(("name", "expected"), list(TABLE_2_NAMES.items()))
def test_every_table_2_name_parses(name: str, expected: SeriesType) -> None:
    assert parse_series_name(name) == (expected, None)


def test_table_2_and_table_8_cover_every_series_type() -> None:
    """Every type is a Table 2 row, but Table 8's DischargingOnOffPowerRegulation and the
    flex a DSO requests and orders over UFTP."""
    beyond_table_2 = {
        SeriesType.DISCHARGING_POWER_ON_OFF_REGULATION,
        SeriesType.REQUESTED_FLEXIBILITY,
        SeriesType.ORDERED_FLEXIBILITY,
    }
    assert set(TABLE_2_NAMES.values()) == set(SeriesType) - beyond_table_2
    assert len(SeriesType) == 41


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ChargingOnOffPowerRegulation", SeriesType.CHARGING_POWER_ON_OFF_REGULATION),
        ("charging on off power regulation", SeriesType.CHARGING_POWER_ON_OFF_REGULATION),
        ("DischargingOnOffPowerRegulation", SeriesType.DISCHARGING_POWER_ON_OFF_REGULATION),
        (" DISCHARGING_ONOFF power-regulation", SeriesType.DISCHARGING_POWER_ON_OFF_REGULATION),
        ("Discharging Power OnOff Regulation", SeriesType.DISCHARGING_POWER_ON_OFF_REGULATION),
    ],
)
def test_table_8_names_are_accepted_as_aliases(name: str, expected: SeriesType) -> None:
    """CP-API 6.1.2 Table 8 lists "ChargingOnOffPowerRegulation" and
    "DischargingOnOffPowerRegulation" among the results sent to external systems; Table 2 spells
    the first "Charging Power OnOff Regulation". Both are accepted in any case and spacing, and
    exported under the Table 2 pattern."""
    assert parse_series_name(name) == (expected, None)
    assert format_series_name(expected) in (
        "ChargingPowerOnOffRegulation",
        "DischargingPowerOnOffRegulation",
    )


def test_discharging_on_off_regulation_is_an_on_off_state() -> None:
    """Table 8: DischargingOnOffPowerRegulation goes out as a ControlOnOffMessage, like the
    other OnOff regulations: a state of 0 or 1 without a unit."""
    meta = info(SeriesType.DISCHARGING_POWER_ON_OFF_REGULATION)
    assert (meta.quantity, meta.unit) == (Quantity.STATE, Unit.DIMENSIONLESS)
    assert _refused(SeriesType.DISCHARGING_POWER_ON_OFF_REGULATION, [0, 1, 2]) == [
        "values[2].value"
    ]


@pytest.mark.parametrize(
    "name",
    [
        "consumptionmeterreading",
        "CONSUMPTION METER READING",
        "Consumption_Meter_Reading",
        "consumption-meter-reading",
        "ConsumptionMeterReading",
        "  consumption  meter\treading ",
    ],
)
def test_names_in_any_case_and_spacing(name: str) -> None:
    """Table 2 note: "for time series, names can be supplied in any lower/upper case
    combination, when exported will be pascalcase"."""
    assert parse_series_name(name) == (SeriesType.CONSUMPTION_METER_READING, None)


def test_export_name_is_pascal_case() -> None:
    """Table 2 note: "... when exported will be pascalcase"."""
    series_type, _ = parse_series_name("charging point state")
    assert format_series_name(series_type) == "ChargingPointState"
    assert str(series_type) == "ChargingPointState"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Consumption Meter Reading Phase 1", (SeriesType.CONSUMPTION_METER_READING, 1)),
        ("Production Meter Reading Phase 3", (SeriesType.PRODUCTION_METER_READING, 3)),
        ("Production Phase 2", (SeriesType.PRODUCTION, 2)),
        ("consumption_phase_3", (SeriesType.CONSUMPTION, 3)),
        ("ConsumptionPhase1", (SeriesType.CONSUMPTION, 1)),
    ],
)
def test_phase_variants(name: str, expected: tuple[SeriesType, int]) -> None:
    """Table 2: "Additionally for meters with phases there are 3 series types (Consumption
    Meter Reading Phase n where n = 1..3)"."""
    assert parse_series_name(name) == expected


def test_phase_variant_export_round_trips() -> None:
    name = format_series_name(SeriesType.CONSUMPTION_METER_READING, 2)
    assert name == "ConsumptionMeterReadingPhase2"
    assert parse_series_name(name) == (SeriesType.CONSUMPTION_METER_READING, 2)


@pytest.mark.parametrize(
    "name",
    [
        "Consumption Phase 4",
        "Consumption Phase 0",
        "Net Energy Phase 1",
        "Spot Price Phase 2",
        "Phase 1",
    ],
)
def test_phase_variants_only_where_table_2_has_them(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_series_name(name)
    assert caught.value.field == "series_type"


def test_format_refuses_bad_phase() -> None:
    with pytest.raises(ValidationError) as caught:
        format_series_name(SeriesType.NET_ENERGY, 1)
    assert caught.value.field == "phase"
    with pytest.raises(ValidationError) as caught:
        format_series_name(SeriesType.CONSUMPTION, 4)
    assert caught.value.field == "phase"


@pytest.mark.parametrize("name", ["Other", "", "Consumptions", "On/Off Setting", "Energy"])
def test_unknown_name_names_the_default_field(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_series_name(name)
    assert caught.value.field == "series_type"
    assert "unknown series type" in caught.value.reason


def test_unknown_name_names_the_callers_field() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_series_name("Wind Speed", field="TimeSeriesTypeList[2]")
    assert caught.value.field == "TimeSeriesTypeList[2]"
    assert caught.value.reason == "unknown series type 'Wind Speed'"


def test_non_string_name_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_series_name(42)  # type: ignore[arg-type]
    assert caught.value.field == "series_type"


def test_every_type_has_info() -> None:
    for series_type in SeriesType:
        assert info(series_type).series_type is series_type


@pytest.mark.parametrize(
    ("reading", "energy"),
    [
        (SeriesType.CONSUMPTION_METER_READING, SeriesType.CONSUMPTION),
        (SeriesType.PRODUCTION_METER_READING, SeriesType.PRODUCTION),
        (SeriesType.NET_ENERGY_METER_READING, SeriesType.NET_ENERGY),
        (SeriesType.CHARGING_METER_READING, SeriesType.CHARGING_ENERGY),
        (SeriesType.DISCHARGING_METER_READING, SeriesType.DISCHARGING_ENERGY),
        (SeriesType.NET_METER_READING, SeriesType.NET_ENERGY),
    ],
)
def test_readings_derive_interval_energy(reading: SeriesType, energy: SeriesType) -> None:
    """Table 2, Consumption: "Calculated from Consumption Meter Reading if supplied"."""
    meta = info(reading)
    assert meta.quantity is Quantity.READING
    assert meta.is_counter
    assert meta.derives is energy
    assert info(energy).quantity is Quantity.ENERGY
    assert info(energy).unit is Unit.KWH


def test_only_readings_derive() -> None:
    derivers = {t for t in SeriesType if info(t).derives is not None}
    assert derivers == {t for t in SeriesType if info(t).quantity is Quantity.READING}


def test_energy_level_reading_is_a_level_not_a_counter() -> None:
    """EnergyLevelMeterReading is interpolated like a reading but its differences are not
    consumption: it derives nothing."""
    for series_type in (SeriesType.ENERGY_LEVEL_METER_READING, SeriesType.ENERGY_LEVEL):
        meta = info(series_type)
        assert meta.quantity is Quantity.LEVEL
        assert meta.derives is None
        assert not meta.is_counter
        assert not meta.monotonic


@pytest.mark.parametrize(
    "series_type",
    [
        SeriesType.NET_ENERGY_METER_READING,
        SeriesType.NET_ENERGY,
        SeriesType.NET_INSTANT_POWER,
        SeriesType.NET_METER_READING,
    ],
)
def test_net_types_are_signed(series_type: SeriesType) -> None:
    """Table 2: "Signed values(+ve, -ve) +ve = Consumption -ve = Production"."""
    assert info(series_type).sign is Sign.SIGNED
    assert not info(series_type).monotonic
    assert _refused(series_type, [-3.5, 0.0, 2.0]) == []


@pytest.mark.parametrize(
    "series_type",
    [
        SeriesType.PRODUCTION_METER_READING,
        SeriesType.CONSUMPTION_METER_READING,
        SeriesType.PRODUCTION,
        SeriesType.CONSUMPTION,
        SeriesType.PRODUCTION_INSTANT_POWER,
        SeriesType.CONSUMPTION_INSTANT_POWER,
        SeriesType.CHARGING_METER_READING,
        SeriesType.DISCHARGING_METER_READING,
        SeriesType.CHARGING_ENERGY,
        SeriesType.DISCHARGING_ENERGY,
        SeriesType.ENERGY_LEVEL_METER_READING,
        SeriesType.ENERGY_LEVEL,
        SeriesType.MAX_CAPACITY,
        SeriesType.OPTIMAL_CAPACITY_REGULATION,
    ],
)
def test_unsigned_values_refuse_negatives(series_type: SeriesType) -> None:
    """Table 2: "Unsigned values"."""
    assert info(series_type).sign is Sign.UNSIGNED
    assert _refused(series_type, [1.0, None, -0.1]) == ["values[2].value"]


def test_unsigned_counters_are_monotonic() -> None:
    assert info(SeriesType.CONSUMPTION_METER_READING).monotonic
    assert info(SeriesType.CHARGING_METER_READING).monotonic


@pytest.mark.parametrize(
    ("series_type", "unit", "quantity"),
    [
        (SeriesType.CONSUMPTION, Unit.KWH, Quantity.ENERGY),
        (SeriesType.NET_INSTANT_POWER, Unit.KW, Quantity.POWER),
        (SeriesType.FLEXIBILITY_UP, Unit.KW, Quantity.POWER),
        (SeriesType.MAX_CAPACITY, Unit.KW, Quantity.POWER),
        (SeriesType.LOAD_POWER_REGULATION, Unit.KW, Quantity.POWER),
        (SeriesType.CHARGING_CURRENT, Unit.A, Quantity.POWER),
        (SeriesType.DISCHARGING_CURRENT, Unit.A, Quantity.POWER),
        (SeriesType.ACTUAL_TEMPERATURE, Unit.DEG_C, Quantity.TEMPERATURE),
        (SeriesType.FORECASTED_CLOUDINESS, Unit.PERCENT, Quantity.CLOUDINESS),
        (SeriesType.SPOT_PRICE, EUR_PER_MWH, Quantity.PRICE),
        (SeriesType.CHARGING_POINT_STATE, Unit.DIMENSIONLESS, Quantity.STATE),
        (SeriesType.CHARGING_POWER_ON_OFF_REGULATION, Unit.DIMENSIONLESS, Quantity.STATE),
    ],
)
def test_units_and_quantities(series_type: SeriesType, unit: object, quantity: Quantity) -> None:
    """Table 3: "All data that is related to energy should be provided in kWh", "All power
    based values should be supplied in kW", current in amps, temperature in C, cloudiness %."""
    assert info(series_type).unit == unit
    assert info(series_type).quantity is quantity


def test_charging_point_states() -> None:
    """Table 2: "Charging point state - possible values: 0- suspended/out of order, 1-
    available/not connected, 2- charging"."""
    assert _refused(SeriesType.CHARGING_POINT_STATE, [0, 1, 2, 2.0, None]) == []
    assert _refused(SeriesType.CHARGING_POINT_STATE, [0, 3, 1.5]) == [
        "values[1].value",
        "values[2].value",
    ]


def test_on_off_regulation_is_zero_or_one() -> None:
    assert _refused(SeriesType.LOAD_ON_OFF_POWER_REGULATION, [0, 1]) == []
    assert _refused(SeriesType.LOAD_ON_OFF_POWER_REGULATION, [2]) == ["values[0].value"]


def test_cloudiness_is_zero_to_hundred() -> None:
    """Table 3: "Cloudiness % 0-100"."""
    assert _refused(SeriesType.ACTUAL_CLOUDINESS, [0.0, 55.5, 100.0]) == []
    assert _refused(SeriesType.ACTUAL_CLOUDINESS, [100.5]) == ["values[0].value"]


def test_temperature_and_price_may_be_negative() -> None:
    assert _refused(SeriesType.ACTUAL_TEMPERATURE, [-20.0]) == []
    assert _refused(SeriesType.SPOT_PRICE, [-12.3]) == []


@pytest.mark.parametrize("bad", [math.nan, math.inf, "1", True])
def test_non_finite_or_non_numeric_values_refused(bad: object) -> None:
    assert _refused(SeriesType.NET_ENERGY, [1.0, bad]) == ["values[1].value"]


def test_the_issue_list_is_capped() -> None:
    assert len(_refused(SeriesType.CONSUMPTION, [-1.0] * 100)) == 20
