"""Canonical series types: the time series of CP-API Table 2, in PascalCase, with metadata.

Each type says its canonical unit, how it aggregates over time (`Quantity`, which drives
`store.resample`), its sign rule and, for cumulative meter readings, which interval-energy
type derives from it. The spec sentences behind each choice are quoted where they decide.

Deviations from a literal reading of Table 2, on purpose:
- "Charging Power OnOff Regulation" lists unit kW, but like the other OnOff regulations
  (no unit) it is an on/off setting, so it is a STATE with a dimensionless unit.
- EnergyLevel and EnergyLevelMeterReading are in kWh but are a stock (what a battery holds
  at an instant), not energy per interval: summing them when coarsening would be wrong, and
  the level is not a counter whose differences are consumption. Both are `Quantity.LEVEL`.
- Table 8 (CP-API 6.1.2) names two on/off results in its own word order,
  "ChargingOnOffPowerRegulation" and "DischargingOnOffPowerRegulation". The first is Table 2's
  "Charging Power OnOff Regulation"; the second has no Table 2 row, yet Table 8 says the
  optimization sends it, so it is a type of its own named after the Table 2 pattern
  (DischargingPowerOnOffRegulation). Both Table 8 spellings are accepted as aliases.
Beyond the CP-API: what a DSO asks for and buys over UFTP at a congestion point
(docs/protocols/uftp-3.1.md, "Flex as series"), RequestedFlexibility and
OrderedFlexibility, kW per ISP, signed as USEF signs power: negative is less consumption (or
more production).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from store.errors import ValidationError
from store.units import EUR_PER_MWH, AnyUnit, Unit


class SeriesType(StrEnum):
    """The series types of CP-API Table 2; the value is the PascalCase export name."""

    NET_ENERGY_METER_READING = "NetEnergyMeterReading"
    PRODUCTION_METER_READING = "ProductionMeterReading"
    CONSUMPTION_METER_READING = "ConsumptionMeterReading"
    NET_ENERGY = "NetEnergy"
    PRODUCTION = "Production"
    CONSUMPTION = "Consumption"
    NET_INSTANT_POWER = "NetInstantPower"
    PRODUCTION_INSTANT_POWER = "ProductionInstantPower"
    CONSUMPTION_INSTANT_POWER = "ConsumptionInstantPower"
    FLEXIBILITY_UP = "FlexibilityUp"
    FLEXIBILITY_DOWN = "FlexibilityDown"
    PRODUCTION_POWER_REGULATION = "ProductionPowerRegulation"
    PRODUCTION_ON_OFF_POWER_REGULATION = "ProductionOnOffPowerRegulation"
    LOAD_POWER_REGULATION = "LoadPowerRegulation"
    LOAD_ON_OFF_POWER_REGULATION = "LoadOnOffPowerRegulation"
    CHARGING_CURRENT = "ChargingCurrent"
    CHARGING_POWER = "ChargingPower"
    DISCHARGING_CURRENT = "DischargingCurrent"
    DISCHARGING_POWER = "DischargingPower"
    CHARGING_METER_READING = "ChargingMeterReading"
    DISCHARGING_METER_READING = "DischargingMeterReading"
    NET_METER_READING = "NetMeterReading"
    CHARGING_ENERGY = "ChargingEnergy"
    DISCHARGING_ENERGY = "DischargingEnergy"
    ENERGY_LEVEL_METER_READING = "EnergyLevelMeterReading"
    ENERGY_LEVEL = "EnergyLevel"
    CHARGING_POWER_REGULATION = "ChargingPowerRegulation"
    DISCHARGING_POWER_REGULATION = "DischargingPowerRegulation"
    CHARGING_POWER_ON_OFF_REGULATION = "ChargingPowerOnOffRegulation"
    # Not in Table 2: Table 8's DischargingOnOffPowerRegulation (see the module docstring).
    DISCHARGING_POWER_ON_OFF_REGULATION = "DischargingPowerOnOffRegulation"
    CHARGING_POINT_STATE = "ChargingPointState"
    MAX_CAPACITY = "MaxCapacity"
    OPTIMAL_CAPACITY_REGULATION = "OptimalCapacityRegulation"
    ACTUAL_TEMPERATURE = "ActualTemperature"
    ACTUAL_CLOUDINESS = "ActualCloudiness"
    FORECASTED_TEMPERATURE = "ForecastedTemperature"
    FORECASTED_CLOUDINESS = "ForecastedCloudiness"
    SPOT_PRICE = "SpotPrice"
    FORECASTED_SPOT_PRICE = "ForecastedSpotPrice"
    # Not in Table 2: UFTP flex at a congestion point (see the module docstring).
    REQUESTED_FLEXIBILITY = "RequestedFlexibility"
    ORDERED_FLEXIBILITY = "OrderedFlexibility"


class Quantity(StrEnum):
    """How values of a series combine over time (the resampling rule, see store.resample).

    ENERGY: extensive energy per interval (kWh): sums when coarsened, divides when refined.
    POWER: intensive rates per interval: power, current, capacity, regulation setpoints,
        flexibility. Averages when coarsened, repeats when refined.
    TEMPERATURE, CLOUDINESS, PRICE: intensive too (average / repeat); separate kinds so
        their units and ranges stay distinct.
    READING: cumulative counter sampled at instants (kWh since installation). Resampled by
        interpolating at the new instants; differences give interval energy.
    LEVEL: a stock sampled at instants (battery energy level). Resampled like READING, but
        it is not a counter: its differences are not consumption, so nothing derives from it.
    STATE: discrete codes (ChargingPointState 0/1/2, OnOff regulation 0/1). Repeat when
        refined; when coarsened take the state in force at the coarse block start (a mean
        of codes is meaningless, and the start value is what the period's ValueTime names).
    """

    ENERGY = "energy"
    POWER = "power"
    READING = "reading"
    LEVEL = "level"
    STATE = "state"
    TEMPERATURE = "temperature"
    CLOUDINESS = "cloudiness"
    PRICE = "price"


class Sign(StrEnum):
    """The sign rule of a series.

    SIGNED: Table 2 "Signed values(+ve, -ve) +ve = Consumption -ve = Production" (Net*).
    UNSIGNED: Table 2 "Unsigned values": every value must be >= 0.
    FREE: Table 2 states no sign rule (setpoints, flexibility, currents, temperature, price).
    """

    SIGNED = "signed"
    UNSIGNED = "unsigned"
    FREE = "free"


@dataclass(frozen=True, slots=True)
class SeriesTypeInfo:
    """Metadata of one series type."""

    series_type: SeriesType
    unit: AnyUnit
    quantity: Quantity
    sign: Sign
    # READING only: the interval-energy type computed from this counter's differences.
    derives: SeriesType | None = None
    # Table 2: "for meters with phases there are 3 series types (... Phase n where n = 1..3)".
    has_phases: bool = False
    # STATE only: the codes that are valid values.
    states: frozenset[int] | None = None
    # Inclusive upper bound where the spec gives one (cloudiness "between 0-100").
    maximum: float | None = None

    @property
    def is_counter(self) -> bool:
        """A cumulative counter whose differences are interval energy."""
        return self.quantity is Quantity.READING

    @property
    def monotonic(self) -> bool:
        """A counter that may never decrease (a decrease is a reset, rollover or swap).

        Net counters are signed ("+ve = Consumption -ve = Production") and go down when the
        site exports, so only unsigned counters are monotonic.
        """
        return self.is_counter and self.sign is Sign.UNSIGNED


_T = SeriesType
_ON_OFF = frozenset({0, 1})
# "Charging point state - possible values: 0- suspended/out of order, 1- available/not
# connected, 2- charging".
_CHARGING_POINT_STATES = frozenset({0, 1, 2})


def _power(series_type: SeriesType, sign: Sign = Sign.FREE) -> SeriesTypeInfo:
    return SeriesTypeInfo(series_type, Unit.KW, Quantity.POWER, sign)


def _energy(
    series_type: SeriesType, sign: Sign = Sign.UNSIGNED, has_phases: bool = False
) -> SeriesTypeInfo:
    return SeriesTypeInfo(series_type, Unit.KWH, Quantity.ENERGY, sign, has_phases=has_phases)


def _reading(
    series_type: SeriesType,
    derives: SeriesType,
    sign: Sign = Sign.UNSIGNED,
    has_phases: bool = False,
) -> SeriesTypeInfo:
    return SeriesTypeInfo(
        series_type, Unit.KWH, Quantity.READING, sign, derives=derives, has_phases=has_phases
    )


def _state(series_type: SeriesType, states: frozenset[int]) -> SeriesTypeInfo:
    return SeriesTypeInfo(
        series_type, Unit.DIMENSIONLESS, Quantity.STATE, Sign.UNSIGNED, states=states
    )


def _weather(series_type: SeriesType, quantity: Quantity) -> SeriesTypeInfo:
    if quantity is Quantity.TEMPERATURE:
        return SeriesTypeInfo(series_type, Unit.DEG_C, quantity, Sign.FREE)
    return SeriesTypeInfo(series_type, Unit.PERCENT, quantity, Sign.UNSIGNED, maximum=100.0)


def _price(series_type: SeriesType) -> SeriesTypeInfo:
    # Table 2: "e.g. Euro/MWh"; the currency of a stored price series is its own, the
    # canonical energy denominator is MWh. Prices may be negative (FREE).
    return SeriesTypeInfo(series_type, EUR_PER_MWH, Quantity.PRICE, Sign.FREE)


_INFO: MappingProxyType[SeriesType, SeriesTypeInfo] = MappingProxyType(
    {
        i.series_type: i
        for i in (
            _reading(_T.NET_ENERGY_METER_READING, _T.NET_ENERGY, Sign.SIGNED),
            _reading(_T.PRODUCTION_METER_READING, _T.PRODUCTION, has_phases=True),
            _reading(_T.CONSUMPTION_METER_READING, _T.CONSUMPTION, has_phases=True),
            _energy(_T.NET_ENERGY, Sign.SIGNED),
            _energy(_T.PRODUCTION, has_phases=True),
            _energy(_T.CONSUMPTION, has_phases=True),
            _power(_T.NET_INSTANT_POWER, Sign.SIGNED),
            _power(_T.PRODUCTION_INSTANT_POWER, Sign.UNSIGNED),
            _power(_T.CONSUMPTION_INSTANT_POWER, Sign.UNSIGNED),
            _power(_T.FLEXIBILITY_UP),
            _power(_T.FLEXIBILITY_DOWN),
            _power(_T.PRODUCTION_POWER_REGULATION),
            _state(_T.PRODUCTION_ON_OFF_POWER_REGULATION, _ON_OFF),
            _power(_T.LOAD_POWER_REGULATION),
            _state(_T.LOAD_ON_OFF_POWER_REGULATION, _ON_OFF),
            SeriesTypeInfo(_T.CHARGING_CURRENT, Unit.A, Quantity.POWER, Sign.FREE),
            _power(_T.CHARGING_POWER),
            SeriesTypeInfo(_T.DISCHARGING_CURRENT, Unit.A, Quantity.POWER, Sign.FREE),
            _power(_T.DISCHARGING_POWER),
            _reading(_T.CHARGING_METER_READING, _T.CHARGING_ENERGY),
            _reading(_T.DISCHARGING_METER_READING, _T.DISCHARGING_ENERGY),
            _reading(_T.NET_METER_READING, _T.NET_ENERGY, Sign.SIGNED),
            _energy(_T.CHARGING_ENERGY),
            _energy(_T.DISCHARGING_ENERGY),
            SeriesTypeInfo(_T.ENERGY_LEVEL_METER_READING, Unit.KWH, Quantity.LEVEL, Sign.UNSIGNED),
            SeriesTypeInfo(_T.ENERGY_LEVEL, Unit.KWH, Quantity.LEVEL, Sign.UNSIGNED),
            _power(_T.CHARGING_POWER_REGULATION),
            _power(_T.DISCHARGING_POWER_REGULATION),
            _state(_T.CHARGING_POWER_ON_OFF_REGULATION, _ON_OFF),
            _state(_T.DISCHARGING_POWER_ON_OFF_REGULATION, _ON_OFF),
            _state(_T.CHARGING_POINT_STATE, _CHARGING_POINT_STATES),
            _power(_T.MAX_CAPACITY, Sign.UNSIGNED),
            _power(_T.OPTIMAL_CAPACITY_REGULATION, Sign.UNSIGNED),
            _weather(_T.ACTUAL_TEMPERATURE, Quantity.TEMPERATURE),
            _weather(_T.ACTUAL_CLOUDINESS, Quantity.CLOUDINESS),
            _weather(_T.FORECASTED_TEMPERATURE, Quantity.TEMPERATURE),
            _weather(_T.FORECASTED_CLOUDINESS, Quantity.CLOUDINESS),
            _price(_T.SPOT_PRICE),
            _price(_T.FORECASTED_SPOT_PRICE),
            _power(_T.REQUESTED_FLEXIBILITY, Sign.SIGNED),
            _power(_T.ORDERED_FLEXIBILITY, Sign.SIGNED),
        )
    }
)


def info(series_type: SeriesType) -> SeriesTypeInfo:
    """Metadata of a series type."""
    return _INFO[series_type]


_SEPARATORS = re.compile(r"[\s_\-]+")


def _key(name: str) -> str:
    # Table 2: "names can be supplied in any lower/upper case combination"; spacing varies
    # in the table itself ("DischargingCurr ent", "Charging point state").
    return _SEPARATORS.sub("", name).casefold()


# Other spellings the spec prints for a type: Table 8 (6.1.2) orders the words of the on/off
# regulations differently from Table 2.
_ALIASES: MappingProxyType[str, SeriesType] = MappingProxyType(
    {
        "ChargingOnOffPowerRegulation": SeriesType.CHARGING_POWER_ON_OFF_REGULATION,
        "DischargingOnOffPowerRegulation": SeriesType.DISCHARGING_POWER_ON_OFF_REGULATION,
    }
)
_BY_KEY: MappingProxyType[str, SeriesType] = MappingProxyType(
    {**{_key(a): t for a, t in _ALIASES.items()}, **{_key(t): t for t in SeriesType}}
)
_PHASE = re.compile(r"(?P<base>.+?)phase(?P<phase>\d+)")


def parse_series_name(name: str, field: str = "series_type") -> tuple[SeriesType, int | None]:
    """A Table 2 name in any case and spacing -> (type, phase or None).

    "Consumption Meter Reading Phase 2" -> (ConsumptionMeterReading, 2); phases 1..3 exist
    only for the types Table 2 gives them (Production/Consumption and their meter readings).
    """
    if not isinstance(name, str):
        raise ValidationError(field, f"expected a series type name, got {type(name).__name__}")
    key = _key(name)
    series_type = _BY_KEY.get(key)
    if series_type is not None:
        return series_type, None
    match = _PHASE.fullmatch(key)
    base = _BY_KEY.get(match["base"]) if match else None
    if match is None or base is None:
        raise ValidationError(field, f"unknown series type {name!r}")
    if not _INFO[base].has_phases:
        raise ValidationError(field, f"series type {base} has no phase variants: {name!r}")
    phase = int(match["phase"])
    if not 1 <= phase <= 3:
        raise ValidationError(field, f"phase must be 1..3, got {phase} in {name!r}")
    return base, phase


def format_series_name(series_type: SeriesType, phase: int | None = None) -> str:
    """The PascalCase export name: "Consumption" or "ConsumptionPhase2"."""
    if phase is None:
        return series_type.value
    if not _INFO[series_type].has_phases:
        raise ValidationError("phase", f"series type {series_type} has no phase variants")
    if isinstance(phase, bool) or not isinstance(phase, int) or not 1 <= phase <= 3:
        raise ValidationError("phase", f"phase must be 1..3, got {phase!r}")
    return f"{series_type.value}Phase{phase}"


def value_issue(meta: SeriesTypeInfo, value: float) -> str | None:
    """Why `value` breaks the type's rules (finite, state codes, sign, range), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"not a finite number: {value!r}"
    if meta.states is not None and value not in meta.states:
        return f"{value!r} is not a valid {meta.series_type} (one of {sorted(meta.states)})"
    if meta.sign is Sign.UNSIGNED and value < 0:
        return f"{meta.series_type} values are unsigned (>= 0), got {value!r}"
    if meta.maximum is not None and value > meta.maximum:
        return f"{meta.series_type} values are at most {meta.maximum:g}, got {value!r}"
    return None
