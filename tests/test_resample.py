"""Resampling rules of DESIGN.md section 4, and interval energy from meter readings."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from store.errors import ValidationError
from store.resample import (
    Regular,
    check_monotonic,
    energy_to_power,
    interpolate_readings,
    over_periods,
    power_to_energy,
    readings_to_energy,
    resample,
    values_at,
)
from store.series_types import Quantity, SeriesType
from store.timeutil import to_micros

T0 = datetime(2024, 3, 1, tzinfo=UTC)
MIN15 = timedelta(minutes=15)
HOUR = timedelta(hours=1)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def quarter_hours(values: list[float | None], start: datetime = T0) -> Regular:
    return Regular(start, MIN15, values)


# --- coarsening -----------------------------------------------------------------------------


def test_energy_sums_when_coarsened() -> None:
    """DESIGN.md: "Extensive quantities (energy, kWh) sum when coarsened"."""
    result = resample(quarter_hours([1, 2, 3, 4, 5, 6, 7, 8]), HOUR, Quantity.ENERGY)
    assert result == Regular(T0, HOUR, [10, 26])


@pytest.mark.parametrize(
    "quantity", [Quantity.POWER, Quantity.PRICE, Quantity.TEMPERATURE, Quantity.CLOUDINESS]
)
def test_intensive_quantities_average_when_coarsened(quantity: Quantity) -> None:
    """DESIGN.md: "intensive ones (power, price, temperature, capacity) average when
    coarsened"."""
    result = resample(quarter_hours([1, 2, 3, 4, 10, 10, 20, 20]), HOUR, quantity)
    assert result.values == [2.5, 15.0]


def test_series_type_selects_its_rule() -> None:
    series = quarter_hours([1, 2, 3, 4])
    assert resample(series, HOUR, SeriesType.CONSUMPTION).values == [10]
    assert resample(series, HOUR, SeriesType.MAX_CAPACITY).values == [2.5]
    assert resample(series, HOUR, SeriesType.SPOT_PRICE).values == [2.5]


def test_state_takes_the_state_at_block_start() -> None:
    result = resample(quarter_hours([2, 1, 1, 0, 0, 2, 2, 2]), HOUR, Quantity.STATE)
    assert result.values == [2, 0]


def test_a_missing_fine_block_makes_the_coarse_block_missing() -> None:
    """No silent undercount: a partial hour of energy is not the hour's energy."""
    series = quarter_hours([1, None, 3, 4, 5, 6, 7, 8])
    assert resample(series, HOUR, Quantity.ENERGY).values == [None, 26]
    assert resample(series, HOUR, Quantity.POWER).values == [None, 6.5]
    assert resample(series, HOUR, Quantity.STATE).values == [None, 5]


def test_edges_align_to_the_utc_epoch_grid() -> None:
    """1 h blocks start on the hour; parts of an edge block outside the input are missing."""
    series = quarter_hours([1, 1, 2, 2, 2, 2, 3, 3], start=at(30))
    result = resample(series, HOUR, Quantity.ENERGY)
    assert result.start == T0
    assert result.values == [None, 8, None]


def test_days_align_to_utc_midnight() -> None:
    series = Regular(T0 + timedelta(hours=22), HOUR, [1.0] * 4)
    result = resample(series, timedelta(days=1), Quantity.ENERGY)
    assert result.start == T0
    assert result.values == [None, None]


def test_coarsening_refuses_a_start_off_its_own_grid() -> None:
    series = quarter_hours([1, 2, 3, 4], start=at(7))
    with pytest.raises(ValidationError) as caught:
        resample(series, HOUR, Quantity.ENERGY)
    assert caught.value.field == "start"


@pytest.mark.parametrize("values", [[1e308, 1e308], [math.inf, -math.inf]])
def test_overflowing_or_non_finite_blocks_are_refused(values: list[float]) -> None:
    with pytest.raises(ValidationError) as caught:
        resample(Regular(T0, HOUR, values), 2 * HOUR, Quantity.ENERGY)
    assert caught.value.field == "values"


def test_empty_series_resamples_to_empty() -> None:
    assert resample(quarter_hours([], start=at(30)), HOUR, Quantity.ENERGY) == Regular(T0, HOUR, [])
    assert resample(quarter_hours([]), timedelta(minutes=5), Quantity.READING).values == []


# --- refining -------------------------------------------------------------------------------


def test_energy_divides_when_refined() -> None:
    """DESIGN.md: "Extensive quantities (energy, kWh) ... divide when refined"."""
    result = resample(Regular(T0, HOUR, [4.0, None, 8.0]), MIN15, Quantity.ENERGY)
    assert result == Regular(T0, MIN15, [1.0] * 4 + [None] * 4 + [2.0] * 4)


@pytest.mark.parametrize(
    "quantity", [Quantity.POWER, Quantity.PRICE, Quantity.TEMPERATURE, Quantity.STATE]
)
def test_intensive_quantities_repeat_when_refined(quantity: Quantity) -> None:
    """DESIGN.md: "intensive ones (power, price, temperature, capacity) ... repeat when
    refined"."""
    result = resample(Regular(T0, HOUR, [2.0, None]), MIN15, quantity)
    assert result.values == [2.0] * 4 + [None] * 4


def test_same_resolution_is_a_copy() -> None:
    series = quarter_hours([1.0, 2.0])
    result = resample(series, MIN15, Quantity.ENERGY)
    assert result == series
    assert result.values is not series.values


@pytest.mark.parametrize(
    "to_resolution",
    [timedelta(minutes=20), timedelta(minutes=10), timedelta(0), timedelta(minutes=-15)],
)
def test_resolution_must_be_a_whole_multiple_or_divisor(to_resolution: timedelta) -> None:
    with pytest.raises(ValidationError) as caught:
        resample(quarter_hours([1.0] * 4), to_resolution, Quantity.ENERGY)
    assert caught.value.field == "resolution"


def test_quantity_must_be_known() -> None:
    with pytest.raises(ValidationError) as caught:
        resample(quarter_hours([1.0] * 4), HOUR, "energy")  # type: ignore[arg-type]
    assert caught.value.field == "quantity"


def test_regular_requires_aware_start_and_positive_resolution() -> None:
    with pytest.raises(ValidationError) as caught:
        Regular(datetime(2024, 1, 1), MIN15, [])
    assert caught.value.field == "start"
    with pytest.raises(ValidationError) as caught:
        Regular(T0, timedelta(0), [])
    assert caught.value.field == "resolution"


def test_regular_normalises_start_to_utc() -> None:
    series = Regular(datetime(2024, 3, 1, 1, tzinfo=timezone(timedelta(hours=1))), MIN15, [1.0])
    assert series.start == T0
    assert series.start.tzinfo is UTC
    assert series.end == at(15)


# --- readings on regular grids --------------------------------------------------------------


def test_readings_sample_at_coarse_instants() -> None:
    """DESIGN.md: "accumulated readings interpolate" - coarse instants are fine instants."""
    series = quarter_hours([100, 101, 102, 103, 104, 105], start=at(15))
    result = resample(series, HOUR, Quantity.READING)
    assert result.start == T0
    assert result.values == [None, 103]


def test_readings_interpolate_when_refined_without_extrapolation() -> None:
    result = resample(Regular(T0, HOUR, [0.0, 3.0, 6.0]), timedelta(minutes=20), Quantity.READING)
    assert result.values == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_level_interpolation_stops_at_missing_neighbours() -> None:
    result = resample(
        Regular(T0, HOUR, [10.0, None, 30.0]), timedelta(minutes=30), SeriesType.ENERGY_LEVEL
    )
    assert result.values == [10.0, None, None, None, 30.0]


# --- readings at irregular instants ---------------------------------------------------------

READINGS = [(at(0), 100.0), (at(20), 104.0), (at(70), 114.0)]


def test_readings_interpolated_at_boundaries() -> None:
    """Boundary values by linear interpolation: 00:15 is 3/4 of the way 100 -> 104 = 103;
    00:30 is 10/50 of 104 -> 114 = 106, 00:45 = 109, 01:00 = 112."""
    result = interpolate_readings(READINGS, T0, at(60), MIN15)
    assert result.start == T0
    assert result.values == pytest.approx([100.0, 103.0, 106.0, 109.0, 112.0])


def test_interpolation_does_not_extrapolate() -> None:
    result = interpolate_readings(READINGS, at(-15), at(90), MIN15)
    assert result.values[0] is None
    assert result.values[1] == 100.0
    assert result.values[-2:] == [None, None]  # 01:15 and 01:30 are after the last reading


def test_interpolation_respects_max_gap() -> None:
    readings = [(at(0), 0.0), (at(120), 10.0)]
    result = interpolate_readings(readings, T0, at(120), HOUR, max_gap=HOUR)
    assert result.values == [0.0, None, 10.0]
    assert interpolate_readings(readings, T0, at(120), HOUR).values == [0.0, 5.0, 10.0]


def test_interpolation_with_no_readings_is_all_missing() -> None:
    assert interpolate_readings([], T0, at(30), MIN15).values == [None, None, None]


def test_derived_energy_from_irregular_readings() -> None:
    """CP-API 3.2: "it is preferred that energy data are interfaced from the accumulated
    readings in kWh. That way, if any messages or data is missed the actual
    consumption/production over a period can still be calculated/inferred"."""
    result = readings_to_energy(READINGS, T0, at(60), MIN15)
    assert result.start == T0
    assert result.resolution == MIN15
    assert result.values == pytest.approx([3.0, 3.0, 3.0, 3.0])


def test_derived_energy_with_unsorted_and_duplicate_readings() -> None:
    readings = [(at(60), 10.0), (at(0), 0.0), (at(30), 2.0), (at(30), 2.0)]
    result = readings_to_energy(readings, T0, at(60), MIN15)
    assert result.values == pytest.approx([1.0, 1.0, 4.0, 4.0])


def test_derived_energy_is_missing_outside_the_readings() -> None:
    result = readings_to_energy(READINGS, at(-15), at(90), MIN15)
    assert result.values[0] is None
    assert result.values[1:5] == pytest.approx([3.0, 3.0, 3.0, 3.0])
    assert result.values[5:] == [None, None]


def test_meter_reset_gives_missing_blocks_not_negative_energy() -> None:
    """A decrease of a cumulative counter is a reset or rollover: the blocks across it are
    None, the others keep their energy."""
    readings = [(at(0), 100.0), (at(30), 110.0), (at(45), 5.0), (at(75), 15.0)]
    result = readings_to_energy(readings, T0, at(90), MIN15)
    assert result.values[:2] == pytest.approx([5.0, 5.0])
    assert result.values[2] is None
    assert result.values[3:5] == pytest.approx([5.0, 5.0])
    assert result.values[5] is None  # after the last reading


def test_reset_inside_a_block_blanks_that_block() -> None:
    readings = [(at(0), 100.0), (at(20), 110.0), (at(25), 0.0), (at(60), 7.0)]
    result = readings_to_energy(readings, T0, at(60), MIN15)
    assert result.values[0] == pytest.approx(7.5)
    assert result.values[1] is None
    assert result.values[2:] == pytest.approx([3.0, 3.0])


def test_signed_net_counter_may_decrease() -> None:
    """Table 2, Net Meter Reading: "Signed values(+ve, -ve)" - export lowers the counter."""
    readings = [(at(0), 100.0), (at(15), 110.0), (at(30), 90.0)]
    result = readings_to_energy(readings, T0, at(30), MIN15, monotonic=False)
    assert result.values == pytest.approx([10.0, -20.0])
    assert readings_to_energy(readings, T0, at(30), MIN15).values == [10.0, None]


def test_check_monotonic_names_the_timestamp() -> None:
    check_monotonic(READINGS)
    with pytest.raises(ValidationError) as caught:
        check_monotonic([(at(0), 5.0), (at(45), 1.0), (at(15), 6.0)], field="Readings")
    assert caught.value.field == "Readings"
    assert "2024-03-01T00:45:00+00:00" in caught.value.reason


def test_conflicting_readings_at_one_instant_are_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        interpolate_readings([(at(0), 1.0), (at(0), 2.0)], T0, at(15), MIN15)
    assert caught.value.field == "readings"


def test_naive_and_non_finite_readings_are_refused_by_index() -> None:
    with pytest.raises(ValidationError) as caught:
        readings_to_energy([(at(0), 1.0), (datetime(2024, 3, 1), 2.0)], T0, at(15), MIN15)
    assert caught.value.field == "readings[1].time"
    with pytest.raises(ValidationError) as caught:
        readings_to_energy([(at(0), math.nan)], T0, at(15), MIN15)
    assert caught.value.field == "readings[0].value"


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (T0, at(20), "end"),
        (at(30), T0, "end"),
        (datetime(2024, 3, 1), at(15), "start"),
    ],
)
def test_grid_errors_name_the_field(start: datetime, end: datetime, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        interpolate_readings(READINGS, start, end, MIN15)
    assert caught.value.field == field


def test_max_gap_must_be_positive() -> None:
    with pytest.raises(ValidationError) as caught:
        interpolate_readings(READINGS, T0, at(15), MIN15, max_gap=timedelta(0))
    assert caught.value.field == "max_gap"


# --- energy <-> power -----------------------------------------------------------------------


def test_energy_to_power_and_back() -> None:
    energy = quarter_hours([1.0, None, 0.5])
    power = energy_to_power(energy)
    assert power.values == [4.0, None, 2.0]
    assert power_to_energy(power) == energy


def test_refining_energy_then_converting_equals_converting_then_refining() -> None:
    """DESIGN.md: "Convert units before or after resampling consistently: repeating a kWh
    value onto finer blocks before converting to kW multiplies power (a bug FlexMeasures
    carries)"."""
    hourly_energy = Regular(T0, HOUR, [8.0, 2.0])
    refine_then_convert = energy_to_power(resample(hourly_energy, MIN15, Quantity.ENERGY))
    convert_then_refine = resample(energy_to_power(hourly_energy), MIN15, Quantity.POWER)
    assert refine_then_convert == convert_then_refine
    assert refine_then_convert.values == [8.0] * 4 + [2.0] * 4
    # The trap: repeating kWh as if it were intensive makes 8 kWh/h look like 32 kW.
    repeated = energy_to_power(resample(hourly_energy, MIN15, Quantity.POWER))
    assert repeated.values[0] == 32.0


# --- properties -----------------------------------------------------------------------------

FINITE = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
FACTORS = st.sampled_from([2, 3, 4, 6, 12])


@given(factor=FACTORS, blocks=st.integers(min_value=0, max_value=8), data=st.data())
def test_coarsen_then_refine_energy_conserves_totals(
    factor: int, blocks: int, data: st.DataObject
) -> None:
    values = data.draw(st.lists(FINITE, min_size=factor * blocks, max_size=factor * blocks))
    fine = Regular(T0, timedelta(minutes=5), values)
    coarse = resample(fine, timedelta(minutes=5 * factor), Quantity.ENERGY)
    back = resample(coarse, fine.resolution, Quantity.ENERGY)
    assert len(coarse.values) == blocks
    assert len(back.values) == len(values)
    assert math.fsum(coarse.values) == pytest.approx(math.fsum(values), abs=1e-6)  # type: ignore[arg-type]
    assert math.fsum(back.values) == pytest.approx(math.fsum(values), abs=1e-6)  # type: ignore[arg-type]


@given(factor=FACTORS, data=st.data())
def test_power_mean_within_block_min_and_max(factor: int, data: st.DataObject) -> None:
    values = data.draw(st.lists(FINITE, min_size=factor, max_size=factor * 5))
    series = Regular(T0, timedelta(minutes=5), values)
    coarse = resample(series, timedelta(minutes=5 * factor), Quantity.POWER)
    for index, mean in enumerate(coarse.values):
        block = values[index * factor : (index + 1) * factor]
        if len(block) < factor:
            assert mean is None  # partial trailing block
            continue
        assert mean is not None
        tolerance = 1e-9 * max(1.0, *map(abs, block))
        assert min(block) - tolerance <= mean <= max(block) + tolerance


@given(factor=FACTORS, values=st.lists(st.one_of(st.none(), FINITE), max_size=10))
def test_refine_then_coarsen_is_identity(factor: int, values: list[float | None]) -> None:
    coarse = Regular(T0, HOUR, values)
    for quantity in (Quantity.POWER, Quantity.STATE, Quantity.READING):
        fine = resample(coarse, HOUR / factor, quantity)
        assert resample(fine, HOUR, quantity).values == values
    energy = resample(resample(coarse, HOUR / factor, Quantity.ENERGY), HOUR, Quantity.ENERGY)
    for original, result in zip(values, energy.values, strict=True):
        if original is None:
            assert result is None
        else:
            assert result == pytest.approx(original, abs=1e-6)


@given(factor=FACTORS, values=st.lists(st.one_of(st.none(), FINITE), max_size=10))
def test_energy_power_conversion_commutes_with_refinement(
    factor: int, values: list[float | None]
) -> None:
    hourly = Regular(T0, HOUR, values)
    a = energy_to_power(resample(hourly, HOUR / factor, Quantity.ENERGY)).values
    b = resample(energy_to_power(hourly), HOUR / factor, Quantity.POWER).values
    assert [v is None for v in a] == [v is None for v in b]
    for x, y in zip(a, b, strict=True):
        if x is not None:
            assert x == pytest.approx(y, rel=1e-12, abs=1e-9)


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=600), st.floats(min_value=0, max_value=100)),
        min_size=2,
        max_size=15,
    )
)
def test_monotonic_readings_give_energy_that_sums_to_the_counter_difference(
    raw: list[tuple[int, float]],
) -> None:
    # Build an increasing counter at distinct instants from increments.
    instants = sorted({minute for minute, _ in raw})
    total = 0.0
    readings = []
    for minute, (_, increment) in zip(instants, raw, strict=False):
        total += increment
        readings.append((at(minute), total))
    first, last = instants[0], instants[-1]
    start = first - first % 15 + (15 if first % 15 else 0)
    end = last - last % 15
    if end <= start:
        return
    result = readings_to_energy(readings, at(start), at(end), MIN15)
    bounds = interpolate_readings(readings, at(start), at(end), MIN15).values
    assert all(v is not None and v >= 0 for v in result.values)
    assert math.fsum(result.values) == pytest.approx(bounds[-1] - bounds[0], abs=1e-6)  # type: ignore[arg-type, operator]


# --- periods of any length (calendar periods, store.calendar) --------------------------------

H_US = 3_600_000_000


def test_energy_over_a_period_is_the_sum_of_what_lies_in_it() -> None:
    """DESIGN.md: "Extensive quantities (energy, kWh) sum when coarsened": a 23-hour day of
    hourly energy sums 23 hours, a 25-hour day 25."""
    starts = [k * H_US for k in range(48)]
    ends = [s + H_US for s in starts]
    days = over_periods(starts, ends, [1.0] * 48, [0, 23 * H_US, 48 * H_US], Quantity.ENERGY)
    assert days == [23.0, 25.0]


def test_intensive_values_average_over_a_period_weighted_by_duration() -> None:
    """DESIGN.md: intensive quantities "average when coarsened": a January of 0, a February
    of 90 and a March of 0 average 28 over the quarter (90 x 28 days / 90 days), not 30."""
    day = 24 * H_US
    edges = [0, 31 * day, 59 * day, 90 * day]
    quarter = over_periods(edges[:-1], edges[1:], [0.0, 90.0, 0.0], [0, 90 * day], Quantity.PRICE)
    assert quarter == [28.0]


def test_a_coarse_interval_is_shared_by_time_over_shorter_periods() -> None:
    """DESIGN.md: energy "divide[s] when refined", intensive values "repeat when refined": a
    month of 310 kWh is 10 kWh a day, a month at 50 kW is 50 kW every day."""
    day = 24 * H_US
    edges = [k * day for k in range(32)]
    assert over_periods([0], [31 * day], [310.0], edges, Quantity.ENERGY) == [10.0] * 31
    assert over_periods([0], [31 * day], [50.0], edges, Quantity.POWER) == [50.0] * 31


def test_a_block_across_a_period_boundary_is_shared_by_time() -> None:
    """Hourly energy read in days of a zone at +05:30: the hour across local midnight gives
    half of itself to each day."""
    starts = [k * H_US for k in range(48)]
    ends = [s + H_US for s in starts]
    half = H_US // 2
    days = over_periods(
        starts, ends, [2.0] * 48, [half, 24 * H_US + half, 47 * H_US + half], Quantity.ENERGY
    )
    assert days == [48.0, 46.0]


def test_a_state_over_a_period_is_the_state_at_its_start() -> None:
    starts = [k * H_US for k in range(4)]
    ends = [s + H_US for s in starts]
    assert over_periods(starts, ends, [1, 0, 0, 1], [0, 2 * H_US, 4 * H_US], Quantity.STATE) == [
        1,
        0,
    ]


def test_a_gap_or_a_missing_value_leaves_the_period_unknown() -> None:
    """As "a coarse block with any missing fine block is missing": summing what is there would
    undercount."""
    starts = [0, H_US, 3 * H_US]  # nothing in [2 h, 3 h)
    ends = [H_US, 2 * H_US, 4 * H_US]
    edges = [0, 2 * H_US, 4 * H_US]
    assert over_periods(starts, ends, [1.0, 1.0, 1.0], edges, Quantity.ENERGY) == [2.0, None]
    assert over_periods(starts, ends, [1.0, None, 1.0], edges, Quantity.ENERGY) == [None, None]


def test_overlapping_intervals_leave_the_periods_they_touch_unknown() -> None:
    """Two values over the same time would count it twice."""
    starts, ends = [0, H_US // 2, 2 * H_US], [H_US, 2 * H_US, 3 * H_US]
    edges = [0, 2 * H_US, 3 * H_US]
    assert over_periods(starts, ends, [1.0, 1.0, 1.0], edges, Quantity.ENERGY) == [None, 1.0]


def test_readings_are_instants_and_have_their_own_rule() -> None:
    with pytest.raises(ValidationError) as caught:
        over_periods([0], [H_US], [1.0], [0, H_US], Quantity.READING)
    assert caught.value.field == "quantity"
    readings = [(at(0), 100.0), (at(60), 160.0)]
    assert values_at(readings, [at(-15), at(0), at(15), at(60), at(75)]) == [
        None,
        100.0,
        115.0,
        160.0,
        None,
    ]


@given(
    factor=FACTORS,
    values=st.lists(st.one_of(st.none(), FINITE), max_size=24),
    quantity=st.sampled_from([Quantity.ENERGY, Quantity.POWER, Quantity.STATE]),
)
def test_periods_of_a_fixed_length_resample_as_blocks_do(
    factor: int, values: list[float | None], quantity: Quantity
) -> None:
    """One rule, two implementations: on a grid, `over_periods` is `resample`."""
    step = 5 * 60_000_000
    start = to_micros(T0)
    starts = [start + k * step for k in range(len(values))]
    ends = [s + step for s in starts]
    whole = len(values) // factor
    edges = [start + k * factor * step for k in range(whole + 1)]
    expected = resample(
        Regular(T0, timedelta(minutes=5), values), timedelta(minutes=5 * factor), quantity
    )
    got = over_periods(starts, ends, values, edges, quantity) if whole else []
    assert [v is None for v in got] == [v is None for v in expected.values[:whole]]
    for mine, theirs in zip(got, expected.values[:whole], strict=True):
        if mine is not None:
            assert mine == pytest.approx(theirs, rel=1e-9, abs=1e-6)


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=20),
    values=st.lists(st.floats(min_value=0, max_value=1e4), min_size=20, max_size=20),
    cuts=st.lists(st.integers(min_value=1, max_value=999), max_size=10),
)
def test_energy_over_periods_keeps_the_total(
    lengths: list[int], values: list[float], cuts: list[int]
) -> None:
    """Intervals of any lengths, periods cut anywhere inside them: the periods' energy adds
    up to the intervals' whatever the cuts, and each period's mean power lies within the
    intervals' values."""
    starts, ends = [], []
    t = 0
    for length in lengths:
        starts.append(t)
        t += length
        ends.append(t)
    total_time = t
    edges = sorted({0, total_time, *(c * total_time // 1000 for c in cuts)})
    given_values = values[: len(lengths)]
    energy = over_periods(starts, ends, given_values, edges, Quantity.ENERGY)
    assert all(v is not None for v in energy)
    assert math.fsum(energy) == pytest.approx(math.fsum(given_values), rel=1e-9, abs=1e-6)  # type: ignore[arg-type]
    power = over_periods(starts, ends, given_values, edges, Quantity.POWER)
    for mean in power:
        assert mean is not None and min(given_values) <= mean <= max(given_values)
