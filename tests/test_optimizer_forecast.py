"""Naive forecasts (same time yesterday, else the last value) and posted ones winning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from optimizer import (
    History,
    ProblemError,
    block_starts,
    merge_forecasts,
    naive_forecast,
    on_blocks,
)

DAY0 = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)
TOMORROW = DAY0 + timedelta(days=1)


def test_the_value_at_the_same_time_yesterday_is_the_forecast() -> None:
    history = History(block_starts(DAY0, STEP, 96), np.arange(96, dtype=float))
    forecast = naive_forecast(history, block_starts(TOMORROW, STEP, 96), STEP)
    np.testing.assert_allclose(forecast, np.arange(96))


def test_without_yesterday_the_last_value_before_the_block_is_used() -> None:
    # history covers only yesterday's first two hours
    history = History(block_starts(DAY0, STEP, 8), [1.0, 2, 3, 4, 5, 6, 7, 8])
    forecast = naive_forecast(history, block_starts(TOMORROW, STEP, 12), STEP)
    np.testing.assert_allclose(forecast, [1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 8, 8])


def test_a_history_value_covers_its_own_period_only() -> None:
    """A value belongs to the period that starts at its timestamp (DESIGN 4)."""
    hourly = History([DAY0, DAY0 + timedelta(hours=1)], [10.0, 20.0])
    forecast = naive_forecast(hourly, block_starts(TOMORROW, STEP, 8), timedelta(hours=1))
    np.testing.assert_allclose(forecast, [10, 10, 10, 10, 20, 20, 20, 20])
    quarter = naive_forecast(hourly, block_starts(TOMORROW, STEP, 8), STEP)
    # with 15-minute periods only :00 of each hour is "the same time yesterday"
    np.testing.assert_allclose(quarter, [10, 20, 20, 20, 20, 20, 20, 20])


def test_missing_values_are_skipped() -> None:
    history = History([DAY0, DAY0 + STEP, DAY0 + 2 * STEP], [5.0, None, float("nan")])
    forecast = naive_forecast(history, block_starts(TOMORROW, STEP, 3), STEP)
    np.testing.assert_allclose(forecast, [5.0, 5.0, 5.0])


def test_no_history_gives_the_default() -> None:
    forecast = naive_forecast(History([], []), block_starts(TOMORROW, STEP, 3), STEP, default=1.5)
    np.testing.assert_allclose(forecast, [1.5, 1.5, 1.5])


def test_times_in_any_zone_compare_as_instants() -> None:
    cet = timezone(timedelta(hours=1))
    history = History([datetime(2026, 1, 1, 1, 0, tzinfo=cet)], [7.0])  # 00:00 UTC
    forecast = naive_forecast(history, [TOMORROW], STEP, default=-1.0)
    np.testing.assert_allclose(forecast, [7.0])


def test_posted_forecasts_win_and_the_naive_one_fills_the_gaps() -> None:
    starts = block_starts(TOMORROW, STEP, 4)
    naive = naive_forecast(History([DAY0], [9.0]), starts, STEP)
    posted = on_blocks(History([starts[1], starts[3]], [1.0, 3.0]), starts, STEP)
    np.testing.assert_allclose(posted, [np.nan, 1.0, np.nan, 3.0])
    np.testing.assert_allclose(merge_forecasts(posted, naive), [9.0, 1.0, 9.0, 3.0])


def test_posted_values_average_within_a_block() -> None:
    starts = block_starts(TOMORROW, timedelta(hours=1), 2)
    minutes = [TOMORROW + timedelta(minutes=m) for m in (0, 15, 30, 45)]
    posted = on_blocks(History(minutes, [1.0, 2.0, 3.0, 6.0]), starts, timedelta(hours=1))
    np.testing.assert_allclose(posted, [3.0, np.nan])


def test_bad_history_inputs_name_the_field() -> None:
    with pytest.raises(ProblemError, match=r"times\[0\]: must be timezone-aware"):
        History([datetime(2026, 1, 1)], [1.0])
    with pytest.raises(ProblemError, match="values"):
        History([DAY0], [1.0, 2.0])
    with pytest.raises(ProblemError, match="posted"):
        merge_forecasts(np.zeros(2), np.zeros(3))
