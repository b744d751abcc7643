"""Series types of CP-API Table 2: names, phases, metadata and value rules."""

from __future__ import annotations

import math

import pytest

from store.errors import ValidationError
from store.series_types import (
    Quantity,
    SeriesType,
    Sign,
    format_series_name,
    info,
    parse_series_name,
    validate_values,
)
from store.units import EUR_PER_MWH, Unit

# Every "Variable (time series)" cell of Table 2, spelled exactly as the table spells it.
TABLE_2_NAMES: dict[str, SeriesType] = {
    "Net Energy Meter Reading": SeriesType.NetEnergyMeterReading,
    "Production Meter Reading": SeriesType.ProductionMeterReading,
    "Consumption Meter Reading": SeriesType.ConsumptionMeterReading,
    "Net Energy": SeriesType.NetEnergy,
    "Production": SeriesType.Production,
    "Consumption": SeriesType.Consumption,
    "Net Instant Power": SeriesType.NetInstantPower,
    "Production Instant Power": SeriesType.ProductionInstantPower,
    "Consumption Instant Power": SeriesType.ConsumptionInstantPower,
    "Production Instant power": SeriesType.ProductionInstantPower,
    "Flexibility Down": SeriesType.FlexibilityDown,
    "Production Power Regulation": SeriesType.ProductionPowerRegulation,
    "Production OnOff Power Regulation": SeriesType.ProductionOnOffPowerRegulation,
    "Consumption Instant power": SeriesType.ConsumptionInstantPower,
    "Flexibility Up": SeriesType.FlexibilityUp,
    "Load Power Regulation": SeriesType.LoadPowerRegulation,
    "Load OnOff Power Regulation": SeriesType.LoadOnOffPowerRegulation,
    "Charging current": SeriesType.ChargingCurrent,
    "Charging power": SeriesType.ChargingPower,
    "Discharging current": SeriesType.DischargingCurrent,
    "Discharging power": SeriesType.DischargingPower,
    "Charging Meter Reading": SeriesType.ChargingMeterReading,
    "Discharging Meter Reading": SeriesType.DischargingMeterReading,
    "Charging Energy": SeriesType.ChargingEnergy,
    "Discharging Energy": SeriesType.DischargingEnergy,
    "Energy Level Meter Reading": SeriesType.EnergyLevelMeterReading,
    "Energy Level": SeriesType.EnergyLevel,
    "Charging Power Regulation": SeriesType.ChargingPowerRegulation,
    "Discharging Power Regulation": SeriesType.DischargingPowerRegulation,
    "Charging Power": SeriesType.ChargingPower,
    "Discharging Power": SeriesType.DischargingPower,
    "ChargingCurrent": SeriesType.ChargingCurrent,
    "DischargingCurr ent": SeriesType.DischargingCurrent,
    "Charging point state": SeriesType.ChargingPointState,
    "Net Meter Reading": SeriesType.NetMeterReading,
    "Charging Power OnOff Regulation": SeriesType.ChargingPowerOnOffRegulation,
    "Max Capacity": SeriesType.MaxCapacity,
    "Optimal Capacity Regulation": SeriesType.OptimalCapacityRegulation,
    "Actual Temperature": SeriesType.ActualTemperature,
    "Actual Cloudiness": SeriesType.ActualCloudiness,
    "Forecasted Temperature": SeriesType.ForecastedTemperature,
    "Forecasted Cloudiness": SeriesType.ForecastedCloudiness,
    "Spot Price": SeriesType.SpotPrice,
    "Forecasted Spot Price": SeriesType.ForecastedSpotPrice,
}


@pytest.mark.parametrize(("name", "expected"), list(TABLE_2_NAMES.items()))
def test_every_table_2_name_parses(name: str, expected: SeriesType) -> None:
    assert parse_series_name(name) == (expected, None)


def test_table_2_covers_every_series_type() -> None:
    assert set(TABLE_2_NAMES.values()) == set(SeriesType)
    assert len(SeriesType) == 38


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
    assert parse_series_name(name) == (SeriesType.ConsumptionMeterReading, None)


def test_export_name_is_pascal_case() -> None:
    """Table 2 note: "... when exported will be pascalcase"."""
    series_type, _ = parse_series_name("charging point state")
    assert format_series_name(series_type) == "ChargingPointState"
    assert str(series_type) == "ChargingPointState"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Consumption Meter Reading Phase 1", (SeriesType.ConsumptionMeterReading, 1)),
        ("Production Meter Reading Phase 3", (SeriesType.ProductionMeterReading, 3)),
        ("Production Phase 2", (SeriesType.Production, 2)),
        ("consumption_phase_3", (SeriesType.Consumption, 3)),
        ("ConsumptionPhase1", (SeriesType.Consumption, 1)),
    ],
)
def test_phase_variants(name: str, expected: tuple[SeriesType, int]) -> None:
    """Table 2: "Additionally for meters with phases there are 3 series types (Consumption
    Meter Reading Phase n where n = 1..3)"."""
    assert parse_series_name(name) == expected


def test_phase_variant_export_round_trips() -> None:
    name = format_series_name(SeriesType.ConsumptionMeterReading, 2)
    assert name == "ConsumptionMeterReadingPhase2"
    assert parse_series_name(name) == (SeriesType.ConsumptionMeterReading, 2)


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
        format_series_name(SeriesType.NetEnergy, 1)
    assert caught.value.field == "phase"
    with pytest.raises(ValidationError) as caught:
        format_series_name(SeriesType.Consumption, 4)
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
        (SeriesType.ConsumptionMeterReading, SeriesType.Consumption),
        (SeriesType.ProductionMeterReading, SeriesType.Production),
        (SeriesType.NetEnergyMeterReading, SeriesType.NetEnergy),
        (SeriesType.ChargingMeterReading, SeriesType.ChargingEnergy),
        (SeriesType.DischargingMeterReading, SeriesType.DischargingEnergy),
        (SeriesType.NetMeterReading, SeriesType.NetEnergy),
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
    for series_type in (SeriesType.EnergyLevelMeterReading, SeriesType.EnergyLevel):
        meta = info(series_type)
        assert meta.quantity is Quantity.LEVEL
        assert meta.derives is None
        assert not meta.is_counter
        assert not meta.monotonic


@pytest.mark.parametrize(
    "series_type",
    [
        SeriesType.NetEnergyMeterReading,
        SeriesType.NetEnergy,
        SeriesType.NetInstantPower,
        SeriesType.NetMeterReading,
    ],
)
def test_net_types_are_signed(series_type: SeriesType) -> None:
    """Table 2: "Signed values(+ve, -ve) +ve = Consumption -ve = Production"."""
    assert info(series_type).sign is Sign.SIGNED
    assert not info(series_type).monotonic
    validate_values(series_type, [-3.5, 0.0, 2.0])


@pytest.mark.parametrize(
    "series_type",
    [
        SeriesType.ProductionMeterReading,
        SeriesType.ConsumptionMeterReading,
        SeriesType.Production,
        SeriesType.Consumption,
        SeriesType.ProductionInstantPower,
        SeriesType.ConsumptionInstantPower,
        SeriesType.ChargingMeterReading,
        SeriesType.DischargingMeterReading,
        SeriesType.ChargingEnergy,
        SeriesType.DischargingEnergy,
        SeriesType.EnergyLevelMeterReading,
        SeriesType.EnergyLevel,
        SeriesType.MaxCapacity,
        SeriesType.OptimalCapacityRegulation,
    ],
)
def test_unsigned_values_refuse_negatives(series_type: SeriesType) -> None:
    """Table 2: "Unsigned values"."""
    assert info(series_type).sign is Sign.UNSIGNED
    with pytest.raises(ValidationError) as caught:
        validate_values(series_type, [1.0, None, -0.1], field="TimeSeriesValueList")
    assert caught.value.field == "TimeSeriesValueList[2]"


def test_unsigned_counters_are_monotonic() -> None:
    assert info(SeriesType.ConsumptionMeterReading).monotonic
    assert info(SeriesType.ChargingMeterReading).monotonic


@pytest.mark.parametrize(
    ("series_type", "unit", "quantity"),
    [
        (SeriesType.Consumption, Unit.KWH, Quantity.ENERGY),
        (SeriesType.NetInstantPower, Unit.KW, Quantity.POWER),
        (SeriesType.FlexibilityUp, Unit.KW, Quantity.POWER),
        (SeriesType.MaxCapacity, Unit.KW, Quantity.POWER),
        (SeriesType.LoadPowerRegulation, Unit.KW, Quantity.POWER),
        (SeriesType.ChargingCurrent, Unit.A, Quantity.POWER),
        (SeriesType.DischargingCurrent, Unit.A, Quantity.POWER),
        (SeriesType.ActualTemperature, Unit.DEG_C, Quantity.TEMPERATURE),
        (SeriesType.ForecastedCloudiness, Unit.PERCENT, Quantity.CLOUDINESS),
        (SeriesType.SpotPrice, EUR_PER_MWH, Quantity.PRICE),
        (SeriesType.ChargingPointState, Unit.DIMENSIONLESS, Quantity.STATE),
        (SeriesType.ChargingPowerOnOffRegulation, Unit.DIMENSIONLESS, Quantity.STATE),
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
    validate_values(SeriesType.ChargingPointState, [0, 1, 2, 2.0, None])
    with pytest.raises(ValidationError) as caught:
        validate_values(SeriesType.ChargingPointState, [0, 3, 1.5])
    assert [issue.field for issue in caught.value.issues] == ["values[1]", "values[2]"]


def test_on_off_regulation_is_zero_or_one() -> None:
    validate_values(SeriesType.LoadOnOffPowerRegulation, [0, 1])
    with pytest.raises(ValidationError) as caught:
        validate_values(SeriesType.LoadOnOffPowerRegulation, [2])
    assert caught.value.field == "values[0]"


def test_cloudiness_is_zero_to_hundred() -> None:
    """Table 3: "Cloudiness % 0-100"."""
    validate_values(SeriesType.ActualCloudiness, [0.0, 55.5, 100.0])
    with pytest.raises(ValidationError) as caught:
        validate_values(SeriesType.ActualCloudiness, [100.5])
    assert caught.value.field == "values[0]"


def test_temperature_and_price_may_be_negative() -> None:
    validate_values(SeriesType.ActualTemperature, [-20.0])
    validate_values(SeriesType.SpotPrice, [-12.3])


@pytest.mark.parametrize("bad", [math.nan, math.inf, "1", True])
def test_non_finite_or_non_numeric_values_refused(bad: object) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_values(SeriesType.NetEnergy, [1.0, bad])  # type: ignore[list-item]
    assert caught.value.field == "values[1]"


def test_validate_values_caps_the_issue_list() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_values(SeriesType.Consumption, [-1.0] * 100)
    assert len(caught.value.issues) == 20
