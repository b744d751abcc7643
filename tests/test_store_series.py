"""Series values in the store: merge, beliefs, filters, resampling, derivation, bad input."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from hub.derivations import derive
from store.catalogue import AssetSubType, AssetType
from store.entities import create_entity
from store.errors import NotFound, ValidationError
from store.series import Series, ensure_series, find_series
from store.series_types import SeriesType
from store.tables import values
from store.tenants import add_tenant
from store.timeutil import EARLIEST, LATEST, from_micros, to_micros
from store.units import Unit
from store.values import Blocks, Point, prepare_rows, read_values, write_values

T0 = datetime(2026, 3, 1, tzinfo=UTC)
Q = timedelta(minutes=15)
H = timedelta(hours=1)


def _blocks(start: datetime, step: timedelta, numbers) -> list[Point]:  # type: ignore[no-untyped-def]
    return [Point(start + i * step, start + (i + 1) * step, v) for i, v in enumerate(numbers)]


@pytest.fixture
async def meter(db):  # type: ignore[no-untyped-def]
    async with db.transaction() as tx:
        tenant, _ = await add_tenant(tx, "t")
        entity = await create_entity(
            tx, tenant, AssetType.RESOURCE, AssetSubType.METER, {"Name": "M"}
        )
    return tenant, entity


async def _count(db) -> int:  # type: ignore[no-untyped-def]
    async with db.read() as tx:
        return (await tx.execute(select(func.count()).select_from(values))).scalar_one()


async def test_series_is_one_per_entity_type_and_phase(db, meter):
    tenant, entity = meter
    async with db.transaction() as tx:
        first = await ensure_series(tx, tenant, entity, SeriesType.CONSUMPTION, resolution=Q)
        again = await ensure_series(tx, tenant, entity, SeriesType.CONSUMPTION, resolution=Q)
        phase2 = await ensure_series(
            tx, tenant, entity, SeriesType.CONSUMPTION, phase=2, resolution=Q
        )
        assert first == again and phase2.id != first.id and phase2.phase == 2
        assert first.unit is Unit.KWH
        assert await find_series(tx, tenant, entity, SeriesType.CONSUMPTION, phase=2) == phase2
        with pytest.raises(ValidationError, match="stored at 0:15:00"):
            await ensure_series(tx, tenant, entity, SeriesType.CONSUMPTION, resolution=H)
        with pytest.raises(ValidationError, match="no per-phase variants"):
            await ensure_series(tx, tenant, entity, SeriesType.MAX_CAPACITY, phase=1, resolution=Q)


async def test_newer_belief_replaces_older_and_late_older_belief_is_ignored(db, meter):
    """DESIGN 3: "Writing the same (series, start, source) again merges: the newer belief wins."""
    tenant, entity = meter
    async with db.transaction() as tx:
        power = await ensure_series(tx, tenant, entity, SeriesType.NET_INSTANT_POWER, resolution=Q)
        await write_values(
            tx, tenant, power, _blocks(T0, Q, [1.0, 2.0]), source="cpo", belief=T0 - H
        )
        await write_values(tx, tenant, power, _blocks(T0, Q, [5.0]), source="cpo", belief=T0 - Q)
        await write_values(
            tx, tenant, power, _blocks(T0, Q, [9.0, 9.0]), source="cpo", belief=T0 - 2 * H
        )
        got = await read_values(tx, tenant, power, T0, T0 + H)
    assert [p.value for p in got] == [5.0, 2.0]
    assert await _count(db) == 2


async def test_reads_take_the_latest_belief_across_sources_unless_filtered(db, meter):
    tenant, entity = meter
    async with db.transaction() as tx:
        power = await ensure_series(tx, tenant, entity, SeriesType.NET_INSTANT_POWER, resolution=Q)
        await write_values(
            tx, tenant, power, _blocks(T0, Q, [1.0]), source="forecaster", belief=T0 - 2 * H
        )
        await write_values(tx, tenant, power, _blocks(T0, Q, [2.0]), source="meter", belief=T0 + Q)
        latest = await read_values(tx, tenant, power, T0, T0 + Q)
        prior = await read_values(tx, tenant, power, T0, T0 + Q, prior=T0)
        ahead = await read_values(tx, tenant, power, T0, T0 + Q, horizon=H)
        forecaster_only = await read_values(tx, tenant, power, T0, T0 + Q, sources=["forecaster"])
    assert [p.value for p in latest] == [2.0]
    assert [p.value for p in prior] == [1.0]  # what was believed at T0
    assert [p.value for p in ahead] == [1.0]  # beliefs made at least an hour ahead
    assert [p.value for p in forecaster_only] == [1.0]


async def test_read_resamples_energy_by_sum_and_power_by_mean(db, meter):
    tenant, entity = meter
    async with db.transaction() as tx:
        energy = await ensure_series(tx, tenant, entity, SeriesType.CONSUMPTION, resolution=Q)
        power = await ensure_series(
            tx, tenant, entity, SeriesType.CONSUMPTION_INSTANT_POWER, resolution=Q
        )
        await write_values(
            tx, tenant, energy, _blocks(T0, Q, [1, 2, 3, 4, 5, 6, 7, None]), source="m"
        )
        await write_values(tx, tenant, power, _blocks(T0, Q, [4, 8, 4, 8]), source="m")
        hourly_energy = await read_values(tx, tenant, energy, T0, T0 + 2 * H, resolution=H)
        hourly_power = await read_values(tx, tenant, power, T0, T0 + H, resolution=H)
        fine_energy = await read_values(tx, tenant, energy, T0, T0 + Q, resolution=Q / 3)
    assert [p.value for p in hourly_energy] == [10.0, None]  # a missing block is not undercounted
    assert [(p.start, p.end) for p in hourly_energy] == [(T0, T0 + H), (T0 + H, T0 + 2 * H)]
    assert [p.value for p in hourly_power] == [6.0]
    assert [p.value for p in fine_energy] == pytest.approx([1 / 3] * 3)


async def test_unit_is_converted_on_write(db, meter):
    tenant, entity = meter
    async with db.transaction() as tx:
        power = await ensure_series(
            tx, tenant, entity, SeriesType.CONSUMPTION_INSTANT_POWER, resolution=Q
        )
        await write_values(tx, tenant, power, _blocks(T0, Q, [1500.0]), source="m", unit=Unit.W)
        assert [p.value for p in await read_values(tx, tenant, power, T0, T0 + Q)] == [1.5]


@pytest.mark.parametrize(
    ("point", "field", "reason"),
    [
        (Point(datetime(2026, 3, 1), datetime(2026, 3, 1, 0, 15), 1.0), "values[1].start", "naive"),
        (Point(T0 + Q, T0, 1.0), "values[1].end", "after start"),
        (Point(T0 + Q, T0 + 2 * H, 1.0), "values[1].end", "block of"),
        (Point(T0 + Q, T0 + 2 * Q, math.nan), "values[1].value", "finite"),
        (Point(T0 + Q, T0 + 2 * Q, math.inf), "values[1].value", "finite"),
        (Point(T0 + Q, T0 + 2 * Q, -1.0), "values[1].value", "unsigned"),
        (Point(T0 + Q, T0 + 2 * Q, "7"), "values[1].value", "expected a number"),
        (
            Point(datetime(1, 1, 1, tzinfo=UTC), datetime(1, 1, 1, 0, 15, tzinfo=UTC), 1.0),
            "values[1].start",
            "1900-8999",
        ),
    ],
)
async def test_bad_values_are_refused_whole_naming_field_and_reason(
    db, meter, point, field, reason
):
    tenant, entity = meter
    async with db.transaction() as tx:
        energy = await ensure_series(tx, tenant, entity, SeriesType.CONSUMPTION, resolution=Q)
    with pytest.raises(ValidationError) as refused:
        async with db.transaction() as tx:
            await write_values(tx, tenant, energy, [*_blocks(T0, Q, [1.0]), point], source="m")
    assert refused.value.field == field
    assert reason in refused.value.reason
    assert await _count(db) == 0


async def test_every_bad_value_is_reported_at_once(db, meter):
    tenant, entity = meter
    async with db.transaction() as tx:
        energy = await ensure_series(tx, tenant, entity, SeriesType.CONSUMPTION, resolution=Q)
        with pytest.raises(ValidationError) as refused:
            await write_values(
                tx, tenant, energy, _blocks(T0, Q, [-1.0, 2.0, math.nan]), source="m"
            )
    assert [i.field for i in refused.value.issues] == ["values[0].value", "values[2].value"]


async def test_read_refuses_naive_and_reversed_windows(db, meter):
    tenant, entity = meter
    async with db.transaction() as tx:
        energy = await ensure_series(tx, tenant, entity, SeriesType.CONSUMPTION, resolution=Q)
        with pytest.raises(ValidationError) as naive:
            await read_values(tx, tenant, energy, datetime(2026, 3, 1), T0 + H)
        with pytest.raises(ValidationError) as reversed_window:
            await read_values(tx, tenant, energy, T0 + H, T0)
    assert naive.value.field == "start" and reversed_window.value.field == "end"


async def test_accumulated_readings_derive_interval_energy(db, meter):
    """CP-API Table 2: Consumption is "Calculated from Consumption Meter Reading if supplied"."""
    tenant, entity = meter
    readings = [
        Point(T0 - timedelta(minutes=5), T0 - timedelta(minutes=5), 99.0),
        Point(T0 + timedelta(minutes=10), T0 + timedelta(minutes=10), 102.0),
        Point(T0 + timedelta(minutes=40), T0 + timedelta(minutes=40), 110.0),
        Point(T0 + timedelta(minutes=65), T0 + timedelta(minutes=65), 113.0),
    ]
    async with db.transaction() as tx:
        counter = await ensure_series(tx, tenant, entity, SeriesType.CONSUMPTION_METER_READING)
        await write_values(tx, tenant, counter, readings, source="cpo")
        await derive(tx, tenant, entity, counter, readings)
        derived = await find_series(tx, tenant, entity, SeriesType.CONSUMPTION)
        assert derived is not None and derived.resolution == Q
        energy = await read_values(tx, tenant, derived, T0, T0 + H)
        at_grid = await read_values(tx, tenant, counter, T0, T0 + 2 * Q, resolution=Q)
    assert derived.series_type is SeriesType.CONSUMPTION
    # Interpolated: T0 99 + 3 * 5/15 = 100; :15 102 + 8 * 5/30 = 103.33; :30 107.33;
    # :45 110 + 3 * 5/25 = 110.6; :60 112.4.
    assert [p.value for p in energy] == pytest.approx([10 / 3, 4.0, 3.2667, 1.8], abs=1e-3)
    assert [(p.start, p.value) for p in at_grid] == [
        (T0, pytest.approx(100.0)),
        (T0 + Q, pytest.approx(103.3333, abs=1e-3)),
    ]


async def test_other_tenants_cannot_read_or_write_a_series(db, meter):
    tenant, entity = meter
    async with db.transaction() as tx:
        other, _ = await add_tenant(tx, "intruder")
        energy = await ensure_series(tx, tenant, entity, SeriesType.CONSUMPTION, resolution=Q)
        await write_values(tx, tenant, energy, _blocks(T0, Q, [1.0]), source="m")
    async with db.transaction() as tx:
        with pytest.raises(NotFound):
            await read_values(tx, other, energy, T0, T0 + H)
        with pytest.raises(NotFound):
            await write_values(tx, other, energy, _blocks(T0, Q, [2.0]), source="m")
    assert await _count(db) == 1


def test_rows_follow_the_upsert_parameter_order():
    """The hot path builds tuples positionally; they must match the compiled statement."""
    from sqlalchemy.dialects import postgresql, sqlite

    from store.values import ROW_ORDER, _upsert_statement

    for dialect in (sqlite.dialect(), postgresql.asyncpg.dialect()):
        assert _upsert_statement(dialect)[1] == ROW_ORDER


async def test_blocks_start_on_the_series_grid(db, meter):
    """Blocks of up to an hour start at whole multiples of the resolution from 00:00 UTC, so
    two writers can never store overlapping blocks."""
    tenant, entity = meter
    async with db.transaction() as tx:
        energy = await ensure_series(tx, tenant, entity, SeriesType.CONSUMPTION, resolution=Q)
    off_grid = T0 + timedelta(minutes=7)
    with pytest.raises(ValidationError) as refused:
        async with db.transaction() as tx:
            await write_values(tx, tenant, energy, _blocks(off_grid, Q, [1.0]), source="m")
    assert refused.value.field == "values[0].start" and "grid" in refused.value.reason
    async with db.transaction() as tx:
        with pytest.raises(ValidationError) as partial:
            await read_values(tx, tenant, energy, T0, T0 + timedelta(minutes=50), resolution=H)
        with pytest.raises(ValidationError) as misaligned:
            await read_values(tx, tenant, energy, off_grid, off_grid + H, resolution=H)
    assert (partial.value.field, misaligned.value.field) == ("end", "start")


async def test_values_are_checked_before_their_unit_is_converted(db, meter):
    tenant, entity = meter
    async with db.transaction() as tx:
        power = await ensure_series(
            tx, tenant, entity, SeriesType.CONSUMPTION_INSTANT_POWER, resolution=Q
        )
        with pytest.raises(ValidationError) as refused:
            await write_values(
                tx, tenant, power, [Point(T0, T0 + Q, "7"), (T0 + Q,)], source="m", unit=Unit.W
            )
    assert [i.field for i in refused.value.issues] == ["values[0].value", "values[1]"]


async def test_a_series_keeps_its_unit(db, meter):
    tenant, entity = meter
    async with db.transaction() as tx:
        with pytest.raises(ValidationError, match="A is not a unit of Consumption"):
            await ensure_series(tx, tenant, entity, SeriesType.CONSUMPTION, unit=Unit.A)
        await ensure_series(tx, tenant, entity, SeriesType.CONSUMPTION, unit=Unit.MWH)
        with pytest.raises(ValidationError, match="stored in MWh, not kWh"):
            await ensure_series(tx, tenant, entity, SeriesType.CONSUMPTION, unit=Unit.KWH)


async def test_another_tenants_entity_or_series_is_not_found(db, meter):
    tenant, entity = meter
    async with db.transaction() as tx:
        other, _ = await add_tenant(tx, "other")
        counter = await ensure_series(tx, tenant, entity, SeriesType.CONSUMPTION_METER_READING)
        await write_values(
            tx, tenant, counter, [Point(T0, T0, 1.0), Point(T0 + H, T0 + H, 2.0)], source="m"
        )
        theirs = await create_entity(
            tx, other, AssetType.RESOURCE, AssetSubType.METER, {"Name": "X"}
        )
        with pytest.raises(NotFound):
            await ensure_series(tx, other, entity, SeriesType.CONSUMPTION, resolution=Q)
        with pytest.raises(NotFound):
            await read_values(tx, other, counter, T0, T0 + H)
        assert theirs.tenant_id != tenant.id


# ---------------------------------------------------------------------------------------------
# Blocks: the columnar input of list saves, checked like points


_EARLIEST_US = to_micros(EARLIEST)
_LATEST_US = to_micros(LATEST)
_Q_US = 15 * 60 * 1_000_000
_SERIES = Series(7, 1, 3, SeriesType.CONSUMPTION, None, Unit.KWH, Q)

_block_starts = st.one_of(
    st.integers(0, 4 * 96).map(lambda k: to_micros(T0) + k * _Q_US),  # on the grid
    st.integers(1, _Q_US - 1).map(lambda k: to_micros(T0) + k),  # off the grid
    st.sampled_from(
        [_EARLIEST_US, _EARLIEST_US - _Q_US, _LATEST_US - _Q_US, _LATEST_US - 2 * _Q_US]
    ),
)
_block_values = st.one_of(
    st.floats(min_value=0, max_value=1e6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 5),
    st.booleans(),
    st.none(),
    st.text(max_size=2),
)
_block_statuses = st.one_of(st.none(), st.text(max_size=22), st.integers())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_block_starts, _block_values, _block_statuses), max_size=6))
def test_blocks_make_the_rows_and_the_refusals_their_points_make(blocks) -> None:  # type: ignore[no-untyped-def]
    """Columns of block starts in microseconds are checked exactly as the same points."""
    points = [
        Point(from_micros(s), from_micros(s) + Q, value, status) for s, value, status in blocks
    ]
    columns = Blocks([b[0] for b in blocks], [b[1] for b in blocks], [b[2] for b in blocks])

    def outcome(given):  # type: ignore[no-untyped-def]
        try:
            return prepare_rows(_SERIES, given, source_id=1, belief=T0)
        except ValidationError as refused:
            return refused.issues

    assert outcome(columns) == outcome(points)


def test_blocks_without_statuses_and_with_ragged_columns() -> None:
    starts = [to_micros(T0), to_micros(T0 + Q)]
    rows = prepare_rows(_SERIES, Blocks(starts, [1, None]), source_id=1, belief=T0)
    assert [(r[1], r[3], r[4], r[6]) for r in rows] == [
        (starts[0], starts[0] + _Q_US, 1.0, None),
        (starts[1], starts[1] + _Q_US, None, None),
    ]
    with pytest.raises(ValidationError, match="different lengths"):
        prepare_rows(_SERIES, Blocks(starts, [1.0]), source_id=1, belief=T0)
    irregular = Series(8, 1, 3, SeriesType.CONSUMPTION, None, Unit.KWH, None)
    with pytest.raises(ValidationError, match="resolution"):
        prepare_rows(irregular, Blocks(starts, [1.0, 2.0]), source_id=1, belief=T0)


async def test_blocks_are_written_and_merged_like_points(db, meter):
    tenant, entity = meter
    async with db.transaction() as tx:
        energy = await ensure_series(tx, tenant, entity, SeriesType.CONSUMPTION, resolution=Q)
        starts = [to_micros(T0 + i * Q) for i in range(3)]
        await write_values(tx, tenant, energy, Blocks(starts, [1.0, 2.0, 3.0]), source="m")
        await write_values(tx, tenant, energy, _blocks(T0 + Q, Q, [20.0]), source="m")
        stored = await read_values(tx, tenant, energy, T0, T0 + 3 * Q)
    assert [(p.start, p.value) for p in stored] == [(T0, 1.0), (T0 + Q, 20.0), (T0 + 2 * Q, 3.0)]


async def test_a_write_larger_than_one_statement_is_stored_whole(db, meter):
    """Rows go to the database in statements of `_CHUNK_ROWS`; a write spanning several, with
    a remainder, stores every value (on SQLite and on PostgreSQL)."""
    from store.values import _CHUNK_ROWS

    tenant, entity = meter
    count = 2 * _CHUNK_ROWS + 17
    starts = [to_micros(T0) + k * _Q_US for k in range(count)]
    async with db.transaction() as tx:
        energy = await ensure_series(tx, tenant, entity, SeriesType.CONSUMPTION, resolution=Q)
        await write_values(
            tx, tenant, energy, Blocks(starts, [float(k) for k in range(count)]), source="m"
        )
    assert await _count(db) == count
    async with db.read() as tx:
        stored = await read_values(tx, tenant, energy, T0, T0 + count * Q)
    assert [p.value for p in stored] == [float(k) for k in range(count)]


async def test_each_point_may_carry_its_own_belief_time(db, meter):
    """Issue 15 item 4: "per-point belief times in one write" (the USEF API's rolling
    horizons know each interval at its own time); the horizon filter then tells them apart."""
    tenant, entity = meter
    beliefs = [T0 - 6 * H + n * Q for n in range(4)]
    async with db.transaction() as tx:
        power = await ensure_series(tx, tenant, entity, SeriesType.NET_INSTANT_POWER, resolution=Q)
        await write_values(
            tx, tenant, power, _blocks(T0, Q, [1.0, 2.0, 3.0, 4.0]), source="usef", belief=beliefs
        )
        stored = (await tx.execute(select(values.c.belief).order_by(values.c.start))).scalars()
        assert [from_micros(b) for b in stored] == beliefs
        # Each known 6 h before its start: all pass a 6 h horizon, none a longer one.
        early = await read_values(tx, tenant, power, T0, T0 + H, horizon=6 * H)
        assert [p.value for p in early] == [1.0, 2.0, 3.0, 4.0]
        assert await read_values(tx, tenant, power, T0, T0 + H, horizon=6 * H + Q) == []
        with pytest.raises(ValidationError, match="3 belief times for 4 values"):
            await write_values(
                tx, tenant, power, _blocks(T0, Q, [1.0] * 4), source="usef", belief=beliefs[:3]
            )
        with pytest.raises(ValidationError, match="belief"):
            await write_values(
                tx,
                tenant,
                power,
                _blocks(T0, Q, [1.0]),
                source="usef",
                belief=[datetime(2026, 3, 1)],
            )
