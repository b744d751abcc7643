"""Units of measure and the explicit conversions between them.

Canonical units (DESIGN.md section 4): kW, kWh, A, degC, %, currency/MWh. Physical units are
the `Unit` StrEnum. A price unit names a currency, which no closed enum can list, so it is a
small frozen `PriceUnit` (ISO 4217 code + energy unit, written "EUR/MWh"); `AnyUnit` is the
union. `str()` of either is its canonical spelling, and `parse_unit` reads it back.

Conversions never cross dimensions or currencies. A <-> kW is not a unit conversion (it
needs the group's voltage, phase count and power factor): see `amps_to_kw`/`kw_to_amps`.
Apparent/reactive power (kVA, kvar) and Kelvin/Fahrenheit are not modelled: no series type
of CP-API Table 2 or Table 3 uses them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from store.errors import ValidationError

DEFAULT_VOLTAGE = 230.0
DEFAULT_PHASES = 3
DEFAULT_POWER_FACTOR = 1.0


class Dimension(StrEnum):
    """What a unit measures; only units of the same dimension convert into each other."""

    POWER = "power"
    ENERGY = "energy"
    CURRENT = "current"
    TEMPERATURE = "temperature"
    RATIO = "ratio"
    DIMENSIONLESS = "dimensionless"
    PRICE = "price"


class Unit(StrEnum):
    """Physical units; values are the canonical spellings stored and exported."""

    W = "W"
    KW = "kW"
    MW = "MW"
    WH = "Wh"
    KWH = "kWh"
    MWH = "MWh"
    A = "A"
    DEG_C = "degC"
    PERCENT = "%"
    # States (ChargingPointState 0/1/2, OnOff regulations): "1" is UCUM's dimensionless unit.
    DIMENSIONLESS = "1"


@dataclass(frozen=True, slots=True)
class PriceUnit:
    """Currency per energy, e.g. EUR/MWh. `currency` is an upper-case ISO 4217 code."""

    currency: str
    per: Unit

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise ValidationError("unit", f"currency {self.currency!r} is not an ISO 4217 code")
        if _SCALE[self.per][0] is not Dimension.ENERGY:
            raise ValidationError("unit", f"a price is per Wh, kWh or MWh, not per {self.per}")

    def __str__(self) -> str:
        return f"{self.currency}/{self.per}"


AnyUnit = Unit | PriceUnit

# Dimension and power-of-ten exponent relative to the canonical unit of that dimension.
# Integer exponents keep W -> kW exact (1500 / 1000 == 1.5, whereas 1500 * 0.001 is not).
_SCALE: MappingProxyType[Unit, tuple[Dimension, int]] = MappingProxyType(
    {
        Unit.W: (Dimension.POWER, -3),
        Unit.KW: (Dimension.POWER, 0),
        Unit.MW: (Dimension.POWER, 3),
        Unit.WH: (Dimension.ENERGY, -3),
        Unit.KWH: (Dimension.ENERGY, 0),
        Unit.MWH: (Dimension.ENERGY, 3),
        Unit.A: (Dimension.CURRENT, 0),
        Unit.DEG_C: (Dimension.TEMPERATURE, 0),
        Unit.PERCENT: (Dimension.RATIO, 0),
        Unit.DIMENSIONLESS: (Dimension.DIMENSIONLESS, 0),
    }
)

EUR_PER_MWH = PriceUnit("EUR", Unit.MWH)

# Accepted spellings, compared after removing blanks and case-folding. CP-API Table 3 writes
# Celsius as "C"; OSCP writes "KW"/"KWH"/"WH"; Table 2 writes prices as "Euro/MWh".
_ALIASES: MappingProxyType[str, Unit] = MappingProxyType(
    {
        "w": Unit.W,
        "watt": Unit.W,
        "watts": Unit.W,
        "kw": Unit.KW,
        "kilowatt": Unit.KW,
        "kilowatts": Unit.KW,
        "mw": Unit.MW,
        "megawatt": Unit.MW,
        "megawatts": Unit.MW,
        "wh": Unit.WH,
        "kwh": Unit.KWH,
        "mwh": Unit.MWH,
        "a": Unit.A,
        "amp": Unit.A,
        "amps": Unit.A,
        "ampere": Unit.A,
        "amperes": Unit.A,
        "c": Unit.DEG_C,
        "°c": Unit.DEG_C,
        "degc": Unit.DEG_C,
        "℃": Unit.DEG_C,
        "celsius": Unit.DEG_C,
        "degreescelsius": Unit.DEG_C,
        "%": Unit.PERCENT,
        "percent": Unit.PERCENT,
        "pct": Unit.PERCENT,
        "1": Unit.DIMENSIONLESS,
        "-": Unit.DIMENSIONLESS,
        "none": Unit.DIMENSIONLESS,
        "dimensionless": Unit.DIMENSIONLESS,
    }
)

_CURRENCY_ALIASES: MappingProxyType[str, str] = MappingProxyType(
    {
        "€": "EUR",
        "euro": "EUR",
        "euros": "EUR",
        "£": "GBP",
    }
)


def parse_unit(text: str, field: str = "unit") -> AnyUnit:
    """Read a unit in any accepted spelling; unknown spellings raise ValidationError(field).

    Matching ignores case, except that SI milli prefixes ("mW", "mWh": lower-case m, upper-case
    W) are refused rather than read as mega: nobody sends milliwatts here, so such a string is
    a mistake to report, not a factor of 10^9 to apply silently. All-lower "mw" means MW.
    """
    if not isinstance(text, str):
        raise ValidationError(field, f"expected a unit string, got {type(text).__name__}")
    compact = "".join(text.split())
    if compact in ("mW", "mWh"):
        raise ValidationError(field, f"unit {text!r} (milli) is not supported; use MW/MWh")
    if "/" in compact:
        return _parse_price(compact, text, field)
    unit = _ALIASES.get(compact.casefold())
    if unit is None:
        raise ValidationError(field, f"unknown unit {text!r}")
    return unit


def _parse_price(compact: str, text: str, field: str) -> PriceUnit:
    currency_text, _, per_text = compact.partition("/")
    currency = _CURRENCY_ALIASES.get(currency_text.casefold(), currency_text.upper())
    per = _ALIASES.get(per_text.casefold())
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValidationError(field, f"unknown currency in unit {text!r} (ISO 4217 code needed)")
    if per is None or _SCALE[per][0] is not Dimension.ENERGY:
        raise ValidationError(field, f"unit {text!r}: a price must be per Wh, kWh or MWh")
    return PriceUnit(currency, per)


def dimension_of(unit: AnyUnit) -> Dimension:
    """The dimension a unit measures."""
    if isinstance(unit, PriceUnit):
        return Dimension.PRICE
    return _SCALE[unit][0]


def _exponent(unit: AnyUnit) -> int:
    # A price per MWh is 10^-3 of the same number per kWh: the exponent is negated.
    if isinstance(unit, PriceUnit):
        return -_SCALE[unit.per][1]
    return _SCALE[unit][1]


def _as_unit(unit: AnyUnit | str, field: str) -> AnyUnit:
    return unit if isinstance(unit, Unit | PriceUnit) else parse_unit(unit, field)


def convert(
    values: Sequence[float | None],
    from_unit: AnyUnit | str,
    to_unit: AnyUnit | str,
    *,
    field: str = "unit",
) -> list[float | None]:
    """Convert values between units of one dimension (and, for prices, one currency).

    None (a missing value) stays None. NaN and infinities are refused: they would otherwise
    travel through the store as if they were measurements.
    """
    source, target = _as_unit(from_unit, field), _as_unit(to_unit, field)
    if dimension_of(source) is not dimension_of(target):
        raise ValidationError(
            field,
            f"cannot convert {source} ({dimension_of(source)}) "
            f"to {target} ({dimension_of(target)})",
        )
    if (
        isinstance(source, PriceUnit)
        and isinstance(target, PriceUnit)
        and source.currency != target.currency
    ):
        raise ValidationError(
            field,
            f"cannot convert {source.currency} to {target.currency}: "
            "exchange rates are not a unit conversion",
        )
    for index, value in enumerate(values):
        if value is not None and not math.isfinite(value):
            raise ValidationError(f"values[{index}]", f"not a finite number: {value!r}")
    shift = _exponent(source) - _exponent(target)
    if shift == 0:
        return list(values)
    if shift > 0:
        factor = 10**shift
        return [None if v is None else v * factor for v in values]
    divisor = 10**-shift
    return [None if v is None else v / divisor for v in values]


def _check_finite(value: float, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(field, f"not a finite number: {value!r}")
    return float(value)


def _electrical_factor(voltage: float, phases: int, power_factor: float) -> float:
    """kW per ampere of phase current, after validating the group's electrical properties."""
    if _check_finite(voltage, "voltage") <= 0:
        raise ValidationError("voltage", f"must be > 0 V, got {voltage!r}")
    if isinstance(phases, bool) or not isinstance(phases, int) or not 1 <= phases <= 3:
        raise ValidationError("phases", f"must be 1, 2 or 3, got {phases!r}")
    if not 0 < _check_finite(power_factor, "power_factor") <= 1:
        raise ValidationError("power_factor", f"must be in (0, 1], got {power_factor!r}")
    return voltage * phases * power_factor / 1000.0


def amps_to_kw(
    amps: float,
    *,
    voltage: float = DEFAULT_VOLTAGE,
    phases: int = DEFAULT_PHASES,
    power_factor: float = DEFAULT_POWER_FACTOR,
) -> float:
    """Active power of a per-phase current: P[kW] = I[A] * V * phases * pf / 1000.

    `amps` is the current in EACH phase (what OCMP/OSCP and charge points report), `voltage`
    is phase-to-neutral (230 V in Europe, not the 400 V line-to-line), `phases` is how many
    phases carry that current, `power_factor` is in (0, 1]. Example: 16 A x 230 V x 3 phases
    x 1.0 = 11.04 kW; on 1 phase at pf 0.95 the same 16 A is 3.496 kW. The defaults are
    DESIGN.md's group defaults (230 V, 3 phases, 1.0); pass the entity's properties instead
    when it has them. The sign of `amps` is kept.
    """
    return _check_finite(amps, "amps") * _electrical_factor(voltage, phases, power_factor)


def kw_to_amps(
    kw: float,
    *,
    voltage: float = DEFAULT_VOLTAGE,
    phases: int = DEFAULT_PHASES,
    power_factor: float = DEFAULT_POWER_FACTOR,
) -> float:
    """Per-phase current for an active power: I[A] = P[kW] * 1000 / (V * phases * pf).

    The inverse of `amps_to_kw`, same conventions (per-phase amps, phase-to-neutral volts):
    11.04 kW on 3 x 230 V at pf 1.0 is 16 A per phase.
    """
    return _check_finite(kw, "kw") / _electrical_factor(voltage, phases, power_factor)
