"""Units: parsing spellings, explicit conversions, and A <-> kW with documented defaults."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from store.errors import ValidationError
from store.units import (
    DEFAULT_PHASES,
    DEFAULT_POWER_FACTOR,
    DEFAULT_VOLTAGE,
    EUR_PER_MWH,
    Dimension,
    PriceUnit,
    Unit,
    amps_to_kw,
    convert,
    dimension_of,
    kw_to_amps,
    parse_unit,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kW", Unit.KW),
        ("kw", Unit.KW),
        ("KW", Unit.KW),
        (" kW ", Unit.KW),
        ("W", Unit.W),
        ("MW", Unit.MW),
        ("mw", Unit.MW),
        ("kWh", Unit.KWH),
        ("KWH", Unit.KWH),
        ("WH", Unit.WH),
        ("MWh", Unit.MWH),
        ("A", Unit.A),
        ("amps", Unit.A),
        ("C", Unit.DEG_C),
        ("°C", Unit.DEG_C),
        ("degC", Unit.DEG_C),
        ("deg C", Unit.DEG_C),
        ("%", Unit.PERCENT),
        ("percent", Unit.PERCENT),
        ("1", Unit.DIMENSIONLESS),
        ("dimensionless", Unit.DIMENSIONLESS),
    ],
)
def test_parse_unit_accepts_spellings(text: str, expected: Unit) -> None:
    assert parse_unit(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("EUR/MWh", PriceUnit("EUR", Unit.MWH)),
        ("Euro/MWh", PriceUnit("EUR", Unit.MWH)),
        ("€/MWh", PriceUnit("EUR", Unit.MWH)),
        ("nok/kWh", PriceUnit("NOK", Unit.KWH)),
        ("KRW / kWh", PriceUnit("KRW", Unit.KWH)),
    ],
)
def test_parse_unit_reads_prices_as_currency_per_energy(text: str, expected: PriceUnit) -> None:
    """CP-API Table 2, Spot Price: "e.g. Euro/MWh"; DESIGN.md: canonical "currency/MWh"."""
    assert parse_unit(text) == expected


def test_every_unit_round_trips_through_its_canonical_spelling() -> None:
    for unit in Unit:
        assert parse_unit(str(unit)) is unit
    assert parse_unit(str(EUR_PER_MWH)) == EUR_PER_MWH
    assert str(EUR_PER_MWH) == "EUR/MWh"


@pytest.mark.parametrize("text", ["furlong", "", "kWs", "EUR/kW", "EURO1/MWh", "kr/kWh"])
def test_parse_unit_refuses_unknown_spellings_naming_the_field(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_unit(text, field="Unit")
    assert caught.value.field == "Unit"


@pytest.mark.parametrize("text", ["mW", "mWh"])
def test_parse_unit_refuses_milli_rather_than_reading_mega(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_unit(text)
    assert caught.value.field == "unit"
    assert "milli" in caught.value.reason


def test_parse_unit_refuses_non_strings() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_unit(None)  # type: ignore[arg-type]
    assert caught.value.field == "unit"


def test_price_unit_refuses_non_iso_currency_and_non_energy_denominator() -> None:
    with pytest.raises(ValidationError):
        PriceUnit("eur", Unit.MWH)
    with pytest.raises(ValidationError):
        PriceUnit("EUR", Unit.KW)


def test_dimensions() -> None:
    assert dimension_of(Unit.W) is Dimension.POWER
    assert dimension_of(Unit.MWH) is Dimension.ENERGY
    assert dimension_of(Unit.A) is Dimension.CURRENT
    assert dimension_of(EUR_PER_MWH) is Dimension.PRICE


def test_convert_power_exactly() -> None:
    assert convert([1500.0, None, -250.0], Unit.W, Unit.KW) == [1.5, None, -0.25]
    assert convert([2.5], Unit.MW, Unit.KW) == [2500.0]
    assert convert([1.0], Unit.W, Unit.MW) == [1e-06]


def test_convert_energy_and_strings() -> None:
    assert convert([1234.0], "kWh", "MWh") == [1.234]
    assert convert([0.5], "MWh", "Wh") == [500000.0]


def test_convert_price_per_mwh_to_per_kwh() -> None:
    """50 EUR/MWh is 0.05 EUR/kWh: a price per unit energy scales inversely to the energy."""
    assert convert([50.0, None], "EUR/MWh", "EUR/kWh") == [0.05, None]
    assert convert([0.05], PriceUnit("EUR", Unit.KWH), EUR_PER_MWH) == [50.0]


def test_convert_identity_returns_a_new_list() -> None:
    values = [1.0, None]
    result = convert(values, Unit.DEG_C, "C")
    assert result == values
    assert result is not values


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (Unit.KW, Unit.KWH),
        (Unit.A, Unit.KW),
        (Unit.DEG_C, Unit.PERCENT),
        (EUR_PER_MWH, Unit.MWH),
    ],
)
def test_convert_refuses_incompatible_dimensions(
    source: Unit | PriceUnit, target: Unit | PriceUnit
) -> None:
    with pytest.raises(ValidationError) as caught:
        convert([1.0], source, target, field="Unit")
    assert caught.value.field == "Unit"


def test_convert_refuses_currency_change() -> None:
    with pytest.raises(ValidationError) as caught:
        convert([1.0], "EUR/MWh", "NOK/MWh")
    assert caught.value.field == "unit"
    assert "EUR" in caught.value.reason


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_convert_refuses_non_finite_values_naming_the_index(bad: float) -> None:
    with pytest.raises(ValidationError) as caught:
        convert([1.0, bad], Unit.KW, Unit.W)
    assert caught.value.field == "values[1]"


def test_defaults_are_design_group_defaults() -> None:
    """DESIGN.md: "A <-> kW needs the group's nominal voltage, phase count and power factor
    (entity properties, defaults 230 V, 3 phases, 1.0) and is documented"."""
    assert (DEFAULT_VOLTAGE, DEFAULT_PHASES, DEFAULT_POWER_FACTOR) == (230.0, 3, 1.0)
    assert "P[kW] = I[A] * V * phases * pf / 1000" in (amps_to_kw.__doc__ or "")


def test_amps_to_kw_three_phase_default() -> None:
    """16 A per phase x 230 V x 3 phases = 11.04 kW."""
    assert amps_to_kw(16) == pytest.approx(11.04)


def test_amps_to_kw_one_phase_with_power_factor() -> None:
    """16 A x 230 V x 1 phase x 0.95 = 3.496 kW."""
    assert amps_to_kw(16, phases=1, power_factor=0.95) == pytest.approx(3.496)


def test_kw_to_amps_inverts() -> None:
    assert kw_to_amps(11.04) == pytest.approx(16.0)
    assert kw_to_amps(3.496, phases=1, power_factor=0.95) == pytest.approx(16.0)
    assert kw_to_amps(-7.36, voltage=230.0, phases=2) == pytest.approx(-16.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"voltage": 0.0}, "voltage"),
        ({"voltage": -230.0}, "voltage"),
        ({"voltage": math.nan}, "voltage"),
        ({"voltage": math.inf}, "voltage"),
        ({"phases": 0}, "phases"),
        ({"phases": 4}, "phases"),
        ({"phases": 2.5}, "phases"),
        ({"phases": True}, "phases"),
        ({"power_factor": 0.0}, "power_factor"),
        ({"power_factor": 1.01}, "power_factor"),
        ({"power_factor": -0.5}, "power_factor"),
        ({"power_factor": math.nan}, "power_factor"),
    ],
)
def test_electrical_parameters_are_validated(kwargs: dict[str, float], field: str) -> None:
    for function in (amps_to_kw, kw_to_amps):
        with pytest.raises(ValidationError) as caught:
            function(10.0, **kwargs)  # type: ignore[arg-type]
        assert caught.value.field == field


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_current_or_power_refused(bad: float) -> None:
    with pytest.raises(ValidationError) as caught:
        amps_to_kw(bad)
    assert caught.value.field == "amps"
    with pytest.raises(ValidationError) as caught:
        kw_to_amps(bad)
    assert caught.value.field == "kw"


@given(
    amps=st.floats(min_value=-1000, max_value=1000),
    voltage=st.floats(min_value=100, max_value=400),
    phases=st.integers(min_value=1, max_value=3),
    power_factor=st.floats(min_value=0.1, max_value=1.0),
)
def test_amps_kw_round_trip(amps: float, voltage: float, phases: int, power_factor: float) -> None:
    kw = amps_to_kw(amps, voltage=voltage, phases=phases, power_factor=power_factor)
    back = kw_to_amps(kw, voltage=voltage, phases=phases, power_factor=power_factor)
    assert back == pytest.approx(amps, rel=1e-12, abs=1e-12)


@given(st.lists(st.one_of(st.none(), st.floats(min_value=-1e9, max_value=1e9)), max_size=20))
def test_convert_round_trip_w_mw(values: list[float | None]) -> None:
    back = convert(convert(values, Unit.W, Unit.MW), Unit.MW, Unit.W)
    assert [v is None for v in back] == [v is None for v in values]
    for original, result in zip(values, back, strict=True):
        if original is not None:
            assert result == pytest.approx(original, rel=1e-12, abs=1e-9)
