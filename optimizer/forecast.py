"""Forecasts for the optimizer's inputs when nobody posted one.

naive_forecast: the value at the same time yesterday, else the last value before the block
(persistence), else `default`. A history value belongs to the period [time, time +
resolution) (DESIGN 4), so "same time yesterday" is the value whose period holds
block start - 24 h. Missing values (None/NaN) are skipped.

Posted forecasts win: merge_forecasts keeps every posted value and fills only the gaps
with the naive one; on_blocks puts posted values onto the horizon's blocks first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from optimizer.checks import aware, duration, frozen
from optimizer.errors import ProblemError

DAY = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def _micros(field: str, times: Sequence[datetime]) -> np.ndarray:
    return np.array(
        [(aware(f"{field}[{i}]", t) - _EPOCH) // _MICRO for i, t in enumerate(times)],
        dtype=np.int64,
    )


@dataclass(frozen=True, eq=False)
class History:
    """Values at times (timezone-aware); None or NaN marks a missing value."""

    times: Sequence[datetime]
    values: Sequence[float | None] | np.ndarray
    # The finite values and their times (µs), in time order: set by __post_init__.
    _micros: np.ndarray = field(init=False, repr=False)
    _values: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.times) != len(self.values):
            raise ProblemError("values", f"{len(self.values)} values for {len(self.times)} times")
        micros = _micros("times", self.times)
        values = np.array([np.nan if v is None else v for v in self.values], dtype=np.float64)
        keep = np.isfinite(values)
        order = np.argsort(micros[keep], kind="stable")
        object.__setattr__(self, "_micros", frozen(micros[keep][order]))
        object.__setattr__(self, "_values", frozen(values[keep][order]))

    def held_at(self, instants: np.ndarray, span: int) -> np.ndarray:
        """The value whose period [time, time + span) holds each instant (µs), else NaN."""
        index = np.searchsorted(self._micros, instants, side="right") - 1
        found = index >= 0
        safe = np.maximum(index, 0)
        found &= (instants - self._micros[safe] < span) if self._micros.size else False
        return np.where(found, self._values[safe] if self._values.size else np.nan, np.nan)

    def last_before(self, instants: np.ndarray, default: float) -> np.ndarray:
        index = np.searchsorted(self._micros, instants, side="left") - 1
        if not self._values.size:
            return np.full(instants.shape, default)
        return np.where(index >= 0, self._values[np.maximum(index, 0)], default)

    def mean_within(self, starts: np.ndarray, span: int) -> np.ndarray:
        """Mean of the values timed in [start, start + span) (power averages), else NaN."""
        low = np.searchsorted(self._micros, starts, side="left")
        high = np.searchsorted(self._micros, starts + span, side="left")
        total = np.concatenate([[0.0], np.cumsum(self._values)])
        count = high - low
        sums = total[high] - total[low]
        empty = np.full(starts.shape, np.nan)
        means: np.ndarray = np.divide(sums, count, out=empty, where=count > 0)
        return means


def block_starts(start: datetime, resolution: timedelta, blocks: int) -> list[datetime]:
    return [start + i * resolution for i in range(blocks)]


def naive_forecast(
    history: History,
    horizon_starts: Sequence[datetime],
    resolution: timedelta,
    default: float = 0.0,
) -> np.ndarray:
    """One value per horizon block: same time yesterday, else last value, else default."""
    duration("resolution", resolution)
    starts = _micros("horizon_starts", horizon_starts)
    span = resolution // _MICRO
    yesterday = history.held_at(starts - DAY // _MICRO, span)
    return np.where(np.isfinite(yesterday), yesterday, history.last_before(starts, default))


def on_blocks(
    posted: History, horizon_starts: Sequence[datetime], resolution: timedelta
) -> np.ndarray:
    """Posted values per horizon block (mean within the block), NaN where none was posted."""
    duration("resolution", resolution)
    return posted.mean_within(_micros("horizon_starts", horizon_starts), resolution // _MICRO)


def merge_forecasts(posted: np.ndarray, naive: np.ndarray) -> np.ndarray:
    """Where a posted value exists (finite) use it, else the naive one."""
    posted = np.asarray(posted, dtype=np.float64)
    naive = np.asarray(naive, dtype=np.float64)
    if posted.shape != naive.shape:
        raise ProblemError("posted", f"shape {posted.shape} differs from {naive.shape}")
    return np.where(np.isfinite(posted), posted, naive)
