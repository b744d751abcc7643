"""Pure resampling of regular series and of periods of any length, and interval energy from
meter readings.

DESIGN.md section 4: "Extensive quantities (energy, kWh) sum when coarsened and divide when
refined; intensive ones (power, price, temperature, capacity) average when coarsened and
repeat when refined; accumulated readings interpolate."

Two shapes of `Regular` series, told apart by the series' `Quantity`:
- block kinds (ENERGY, POWER, TEMPERATURE, CLOUDINESS, PRICE, STATE): values[k] belongs to
  the interval [start + k*res, start + (k+1)*res);
- instant kinds (READING, LEVEL): values[k] is the value AT the instant start + k*res.

Periods of no fixed length (calendar months, local days across a clock change: see
store.calendar) take the same rules with time as the weight: `over_periods` sums energy,
averages intensive values weighted by duration and takes a state at the period start, from
intervals [start, end) of any lengths; `values_at` interpolates readings at any instants.

Everything works on list indices and integer microseconds, never per-value datetimes, so a
million values resample in a fraction of a second. Values are finite floats or None
(missing); functions never mutate their input and always return new lists.
"""

from __future__ import annotations

import math
import operator
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise, repeat
from typing import TypeVar, cast

from store.errors import ValidationError
from store.series_types import Quantity, SeriesType, info
from store.timeutil import from_micros, require_utc, to_micros

_MICRO = timedelta(microseconds=1)
_V = TypeVar("_V")
_HOUR_US = 3_600_000_000

_INSTANT_KINDS = frozenset({Quantity.READING, Quantity.LEVEL})
_MEAN_KINDS = frozenset({Quantity.POWER, Quantity.TEMPERATURE, Quantity.CLOUDINESS, Quantity.PRICE})


@dataclass(frozen=True, slots=True)
class Regular:
    """A series on a regular grid: values at start, start + resolution, ...

    `values` is a plain list (cheap to build and slice); treat it as read-only.
    """

    start: datetime
    resolution: timedelta
    values: list[float | None]

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", require_utc(self.start, "start"))
        _positive_micros(self.resolution, "resolution")

    @property
    def end(self) -> datetime:
        """End of the last block (block kinds); for instant kinds, one step past the last."""
        return self.start + self.resolution * len(self.values)


def _positive_micros(resolution: timedelta, field: str) -> int:
    if not isinstance(resolution, timedelta):
        raise ValidationError(field, f"expected a timedelta, got {type(resolution).__name__}")
    micros = resolution // _MICRO
    if micros <= 0:
        raise ValidationError(field, f"must be positive, got {resolution}")
    return micros


def _quantity(quantity: Quantity | SeriesType) -> Quantity:
    if isinstance(quantity, SeriesType):
        return info(quantity).quantity
    if isinstance(quantity, Quantity):
        return quantity
    raise ValidationError("quantity", f"expected a Quantity or SeriesType, got {quantity!r}")


def resample(series: Regular, to_resolution: timedelta, quantity: Quantity | SeriesType) -> Regular:
    """Resample to `to_resolution`, a whole multiple or whole divisor of the current one.

    Coarsening (blocks of n fine values into one):
    - ENERGY sums; POWER/TEMPERATURE/CLOUDINESS/PRICE average; STATE takes the state at the
      block start. A coarse block with ANY missing fine block is None: summing the present
      ones would silently undercount energy (and a partial mean would claim a coverage it
      lacks), so missing stays visibly missing.
    - READING/LEVEL take the value at each coarse instant.
    - Coarse blocks are aligned to the target grid counted from the UTC epoch (1 h blocks
      start on the hour, 1 day blocks at 00:00 UTC); parts of an edge block outside the
      input are missing, so those edge blocks are None. The input start must lie on its own
      grid (a multiple of its resolution from the epoch), else fine blocks would straddle
      coarse boundaries: ValidationError('start').
    Refining (each value into n finer ones), same start:
    - ENERGY divides by n; intensive kinds and STATE repeat.
    - READING/LEVEL interpolate linearly between consecutive instants; the result ends at
      the last input instant (no extrapolation), so it has (len - 1) * n + 1 values.
    """
    kind = _quantity(quantity)
    old = _positive_micros(series.resolution, "resolution")
    new = _positive_micros(to_resolution, "resolution")
    if new == old:
        return Regular(series.start, series.resolution, list(series.values))
    if new % old == 0:
        return _coarsen(series, new // old, to_resolution, kind)
    if old % new == 0:
        return _refine(series, old // new, to_resolution, kind)
    raise ValidationError(
        "resolution",
        f"{to_resolution} is neither a whole multiple nor a whole divisor of {series.resolution}",
    )


def _coarsen(series: Regular, n: int, to_resolution: timedelta, kind: Quantity) -> Regular:
    fine = series.resolution // _MICRO
    start_us = to_micros(series.start)
    if start_us % fine:
        raise ValidationError(
            "start",
            f"{series.start.isoformat()} is not on the "
            f"{series.resolution} grid counted from the UTC epoch",
        )
    new_start_us = start_us - start_us % (fine * n)  # floor onto the coarse grid
    new_start = from_micros(new_start_us)
    if not series.values:
        return Regular(new_start, to_resolution, [])
    lead = [None] * ((start_us - new_start_us) // fine)
    if kind in _INSTANT_KINDS:
        # Coarse instants are a subset of fine instants: pick every n-th, no arithmetic.
        return Regular(new_start, to_resolution, (lead + series.values)[::n])
    padded = lead + series.values
    padded += [None] * (-len(padded) % n)
    return Regular(new_start, to_resolution, _block_aggregate(padded, n, kind))


def _block_aggregate(padded: list[float | None], n: int, kind: Quantity) -> list[float | None]:
    if kind is Quantity.STATE:
        return [None if None in block else block[0] for block in _blocks(padded, n)]
    if kind is not Quantity.ENERGY and kind not in _MEAN_KINDS:
        raise ValidationError("quantity", f"no coarsening rule for {kind}")
    # NaN stands in for None: fsum propagates it, so a block with any missing value ends as
    # NaN (-> None) without a Python-level branch per value.
    filled = (
        [math.nan if v is None else v for v in padded]
        if None in padded
        else cast("list[float]", padded)  # without a None it is a list of floats
    )
    blocks = list(_blocks(filled, n))
    try:
        sums = list(map(math.fsum, blocks))  # correctly rounded: totals do not drift with n
    except (OverflowError, ValueError) as exc:  # only non-finite or absurd (~1e308) inputs
        raise ValidationError("values", f"cannot aggregate: {exc}") from exc
    if kind is Quantity.ENERGY:
        return [None if s != s else s for s in sums]
    # s / n can land one ulp outside the block's range (twelve equal values do not always
    # average to exactly that value); clamping keeps a constant setpoint exactly itself.
    lows, highs = list(map(min, blocks)), list(map(max, blocks))
    return [
        None if s != s else (m if lo <= (m := s / n) <= hi else min(max(m, lo), hi))
        for s, lo, hi in zip(sums, lows, highs, strict=True)
    ]


def _blocks(values: list[_V], n: int) -> Iterator[tuple[_V, ...]]:
    """Consecutive groups of n values (len(values) is a multiple of n); zip runs in C."""
    return zip(*[iter(values)] * n, strict=True)


def _refine(series: Regular, n: int, to_resolution: timedelta, kind: Quantity) -> Regular:
    values = series.values
    if kind in _INSTANT_KINDS:
        return Regular(series.start, to_resolution, _interpolate_instants(values, n))
    if kind is Quantity.ENERGY:
        values = [None if v is None else v / n for v in values]
    elif kind not in _MEAN_KINDS and kind is not Quantity.STATE:
        raise ValidationError("quantity", f"no refinement rule for {kind}")
    out: list[float | None] = [None] * (len(values) * n)
    for offset in range(n):
        out[offset::n] = values  # slice assignment: the repeat runs in C
    return Regular(series.start, to_resolution, out)


def _interpolate_instants(values: list[float | None], n: int) -> list[float | None]:
    if not values:
        return []
    # NaN marks missing again: any interpolation touching it is NaN, turned to None once.
    missing = None in values
    filled = [math.nan if v is None else v for v in values] if missing else values
    lefts = filled[:-1]
    deltas = list(map(operator.sub, filled[1:], lefts))
    out: list[float | None] = [None] * ((len(values) - 1) * n + 1)
    out[0::n] = filled
    for step in range(1, n):
        out[step::n] = list(map(operator.add, lefts, map(operator.mul, deltas, repeat(step / n))))
    return [None if v != v else v for v in out] if missing else out


def energy_to_power(series: Regular) -> Regular:
    """Energy per block (kWh) -> mean power over the block (kW) = kWh / block hours.

    Convert on the series' own blocks, then resample as power: repeating a kWh value onto
    finer blocks before converting multiplies the power by the refinement factor (DESIGN.md:
    "a bug FlexMeasures carries"). `resample` divides energy when refining, so converting
    before or after resampling gives the same kW.
    """
    block_us = _positive_micros(series.resolution, "resolution")
    return Regular(
        series.start,
        series.resolution,
        [None if v is None else v * _HOUR_US / block_us for v in series.values],
    )


def power_to_energy(series: Regular) -> Regular:
    """Mean power over each block (kW) -> energy in the block (kWh) = kW * block hours."""
    block_us = _positive_micros(series.resolution, "resolution")
    return Regular(
        series.start,
        series.resolution,
        [None if v is None else v * block_us / _HOUR_US for v in series.values],
    )


@dataclass(frozen=True, slots=True)
class _Readings:
    times: list[int]  # epoch microseconds, strictly increasing
    values: list[float]


def _prepare(readings: Sequence[tuple[datetime, float]], field: str) -> _Readings:
    """Validate, sort and de-duplicate readings (same instant + same value is one reading)."""
    points: list[tuple[int, float]] = []
    for index, (when, value) in enumerate(readings):
        at = to_micros(require_utc(when, f"{field}[{index}].time"))
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValidationError(f"{field}[{index}].value", f"not a finite number: {value!r}")
        points.append((at, float(value)))
    points.sort(key=operator.itemgetter(0))
    times: list[int] = []
    values: list[float] = []
    for at, value in points:
        if times and times[-1] == at:
            if values[-1] != value:
                raise ValidationError(
                    field, f"two different readings at {from_micros(at).isoformat()}"
                )
            continue
        times.append(at)
        values.append(value)
    return _Readings(times, values)


def _grid(start: datetime, end: datetime, resolution: timedelta) -> tuple[int, int, int]:
    """(start micros, step micros, number of blocks) of the grid [start, end)."""
    step = _positive_micros(resolution, "resolution")
    first = to_micros(require_utc(start, "start"))
    last = to_micros(require_utc(end, "end"))
    if last < first:
        raise ValidationError("end", "end is before start")
    if (last - first) % step:
        raise ValidationError("end", f"end - start is not a whole number of {resolution} steps")
    return first, step, (last - first) // step


def _interpolate(
    data: _Readings, instants: Sequence[int], max_gap: int | None
) -> list[float | None]:
    """The readings interpolated at each of `instants` (ascending epoch microseconds)."""
    times, values = data.times, data.values
    out: list[float | None] = []
    if not times:
        return [None] * len(instants)
    j = 0  # index of the last reading at or before the current instant
    for t in instants:
        if t < times[0] or t > times[-1]:
            out.append(None)  # no extrapolation beyond the first or last reading
            continue
        while j + 1 < len(times) and times[j + 1] <= t:
            j += 1
        if times[j] == t:
            out.append(values[j])
            continue
        t0, t1 = times[j], times[j + 1]
        if max_gap is not None and t1 - t0 > max_gap:
            out.append(None)
            continue
        out.append(values[j] + (values[j + 1] - values[j]) * (t - t0) / (t1 - t0))
    return out


def _instants(first: int, step: int, blocks: int) -> range:
    """The boundaries first, first + step, ..., first + blocks * step, both ends included."""
    return range(first, first + (blocks + 1) * step, step)


def interpolate_readings(
    readings: Sequence[tuple[datetime, float]],
    start: datetime,
    end: datetime,
    resolution: timedelta,
    *,
    max_gap: timedelta | None = None,
    field: str = "readings",
) -> Regular:
    """Readings at irregular instants -> values AT the boundaries start, start+res, ..., end.

    The result is an instant-kind Regular with blocks + 1 values (both ends included), so
    differences of neighbours give each block's energy. Linear interpolation between the
    two readings around each boundary; None before the first and after the last reading (no
    extrapolation) and, when `max_gap` is given, between readings further apart than that.
    A reading exactly on a boundary is used as is. To store a block-aligned LEVEL series
    (e.g. EnergyLevel from EnergyLevelMeterReading) drop the last value.
    """
    data = _prepare(readings, field)
    first, step, blocks = _grid(start, end, resolution)
    gap = None if max_gap is None else _positive_micros(max_gap, "max_gap")
    return Regular(
        from_micros(first), resolution, _interpolate(data, _instants(first, step, blocks), gap)
    )


def readings_to_energy(
    readings: Sequence[tuple[datetime, float]],
    start: datetime,
    end: datetime,
    resolution: timedelta,
    *,
    monotonic: bool = True,
    max_gap: timedelta | None = None,
    field: str = "readings",
) -> Regular:
    """Cumulative counter readings -> energy of each block [t, t+res) = R(t+res) - R(t).

    R is the linear interpolation of `interpolate_readings`; a block with either boundary
    unknown is None. With `monotonic` (unsigned counters: SeriesTypeInfo.monotonic), a
    decrease between two readings is a meter reset, rollover or replacement: the energy
    across it is unknown, so every block whose interpolation uses that pair of readings is
    None, never a negative or zero consumption. Only the affected blocks are lost, so one
    meter swap does not make a whole history unreadable; to refuse such data at ingest
    instead, call `check_monotonic`. Signed net counters (monotonic=False) legitimately go
    down when the site exports, and their differences are kept as they are.
    """
    data = _prepare(readings, field)
    first, step, blocks = _grid(start, end, resolution)
    gap = None if max_gap is None else _positive_micros(max_gap, "max_gap")
    bounds = _interpolate(data, _instants(first, step, blocks), gap)
    energy: list[float | None] = [
        None if a is None or b is None else b - a for a, b in pairwise(bounds)
    ]
    if monotonic:
        _blank_decreases(energy, data, first, step)
    return Regular(from_micros(first), resolution, energy)


def _blank_decreases(energy: list[float | None], data: _Readings, first: int, step: int) -> None:
    times, values = data.times, data.values
    # drops[i] = number of decreasing pairs (j, j+1) with j < i.
    drops = [0]
    for a, b in pairwise(values):
        drops.append(drops[-1] + (b < a))
    if drops[-1] == 0:
        return
    for k in range(len(energy)):
        t0, t1 = first + k * step, first + (k + 1) * step
        lo = max(bisect_right(times, t0) - 1, 0)  # reading at or before the block start
        hi = bisect_left(times, t1)  # reading at or after the block end
        if drops[min(hi, len(times) - 1)] - drops[lo] > 0:
            energy[k] = None


def check_monotonic(readings: Sequence[tuple[datetime, float]], field: str = "readings") -> None:
    """Refuse a cumulative counter that decreases; the error names the first such timestamp.

    For ingest paths that must not accept a reset or rollover silently (the stored readings
    would make every derived block across it unknown).
    """
    data = _prepare(readings, field)
    for index in range(1, len(data.times)):
        if data.values[index] < data.values[index - 1]:
            at = from_micros(data.times[index]).isoformat()
            raise ValidationError(
                field,
                f"counter decreases at {at}: "
                f"{data.values[index - 1]!r} -> {data.values[index]!r} "
                "(meter reset or rollover)",
            )


def values_at(
    readings: Sequence[tuple[datetime, float]],
    instants: Sequence[datetime],
    *,
    field: str = "readings",
) -> list[float | None]:
    """Readings or levels at each of `instants` (ascending): linear interpolation between the
    two readings around each, a reading exactly there as it is, None outside the readings (no
    extrapolation). The instant rule of `resample`, at instants of no fixed spacing."""
    data = _prepare(readings, field)
    at = [to_micros(require_utc(moment, "instants")) for moment in instants]
    if any(b <= a for a, b in pairwise(at)):
        raise ValidationError("instants", "must be strictly increasing")
    return _interpolate(data, at, None)


def over_periods(
    starts: Sequence[int],
    ends: Sequence[int],
    values: Sequence[float | None],
    edges: Sequence[int],
    quantity: Quantity | SeriesType,
) -> list[float | None]:
    """Intervals [starts[i], ends[i]) with values -> one value per period [edges[k],
    edges[k+1]), all in epoch microseconds, intervals ordered by start.

    The rules of `resample` with time as the weight, so periods and intervals may have any
    lengths (a month of quarter hours, a 23-hour day, a stored month read per day):
    - ENERGY: each interval gives the share of its value that lies in the period (its
      overlap / its length: all of it when inside, evenly by time when it straddles);
    - POWER, TEMPERATURE, CLOUDINESS, PRICE: the mean over the period weighted by overlap
      (a coarse interval read over a shorter period repeats);
    - STATE: the value of the interval that holds the period's start.
    A period is known only when intervals of known value cover it exactly, once: a gap or a
    missing value leaves it None, as a coarse block with a missing fine block is. Intervals
    that overlap an earlier one make every period they touch None: the time they share would
    count twice. Readings and levels are instants, not intervals: see `values_at`.
    """
    kind = _quantity(quantity)
    if kind in _INSTANT_KINDS:
        raise ValidationError("quantity", f"{kind} values are instants; use values_at")
    if kind is not Quantity.ENERGY and kind not in _MEAN_KINDS and kind is not Quantity.STATE:
        raise ValidationError("quantity", f"no period rule for {kind}")
    if not len(starts) == len(ends) == len(values):
        raise ValidationError("values", "starts, ends and values of different lengths")
    if any(b <= a for a, b in pairwise(edges)):
        raise ValidationError("edges", "must be strictly increasing")
    if any(b < a for a, b in pairwise(starts)):
        raise ValidationError("starts", "intervals must be ordered by start")
    known = _without_overlaps(starts, ends, values)
    return [_period_value(starts, ends, known, a, b, kind) for a, b in pairwise(edges)]


def _without_overlaps(
    starts: Sequence[int], ends: Sequence[int], values: Sequence[float | None]
) -> list[float | None]:
    """`values`, with None for every interval that begins before an earlier one has ended."""
    known = list(values)
    reach: int | None = None
    for index, (start, end) in enumerate(zip(starts, ends, strict=True)):
        if end < start:
            raise ValidationError(f"values[{index}]", "ends before it starts")
        if reach is not None and start < reach:
            known[index] = None
        reach = end if reach is None else max(reach, end)
    return known


def _period_value(
    starts: Sequence[int],
    ends: Sequence[int],
    values: Sequence[float | None],
    a: int,
    b: int,
    kind: Quantity,
) -> float | None:
    i = bisect_left(starts, a)  # the first interval that begins in the period
    j = bisect_left(starts, b, i)  # ... and the first that begins after it
    if i == j and (i == 0 or ends[i - 1] <= a):
        return None  # nothing reaches into the period (most periods of a long, sparse read)
    # Intervals that end outside the period: one begun before it (i - 1, the only one that
    # can reach into it without overlapping another), and the last one begun in it.
    edge_parts: list[int] = []
    if i > 0 and ends[i - 1] > a:
        edge_parts.append(i - 1)
    inner_end = j - 1 if j > i and ends[j - 1] > b else j
    edge_parts.extend(range(inner_end, j))
    inner = values[i:inner_end]
    if None in inner or any(values[k] is None for k in edge_parts):
        return None
    covered = sum(ends[i:inner_end]) - sum(starts[i:inner_end])
    overlaps = [min(ends[k], b) - max(starts[k], a) for k in edge_parts]
    if covered + sum(overlaps) != b - a:
        return None  # a gap (or an interval of no length where a block should be)
    if kind is Quantity.STATE:
        first = edge_parts[0] if edge_parts and starts[edge_parts[0]] <= a else i
        return values[first]
    inner_values = cast("list[float]", inner)
    edge_values = [cast("float", values[k]) for k in edge_parts]
    if kind is Quantity.ENERGY:
        shares = [
            v * part / (ends[k] - starts[k])
            for v, part, k in zip(edge_values, overlaps, edge_parts, strict=True)
        ]
        return math.fsum([*inner_values, *shares])
    lengths = map(operator.sub, ends[i:inner_end], starts[i:inner_end])
    weighted = math.fsum(
        [*map(operator.mul, inner_values, lengths), *map(operator.mul, edge_values, overlaps)]
    )
    mean = weighted / (b - a)
    # As in `_block_aggregate`: the mean may land an ulp outside its values; a constant
    # value stays exactly itself.
    low, high = min([*inner_values, *edge_values]), max([*inner_values, *edge_values])
    return min(max(mean, low), high)
