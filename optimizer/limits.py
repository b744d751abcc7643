"""How big a problem may be: every solve's work is bounded (DESIGN 6), and each bound is
refused by name before any work scales with it (docs/optimizer.md, Input limits).

The model has a column per asset per block, so its size is blocks x assets; the caps leave
room above the largest fleet measured (benchmarks/optimizer.py: 10,000 chargers x 96
blocks) and refuse what would only exhaust memory or the calendar.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from optimizer.errors import ProblemError

# A horizon: more than 100 days of quarter hours, more than a year of hours.
MAX_BLOCKS = 10_000
# Chargers plus batteries behind one connection.
MAX_ASSETS = 20_000
# Blocks x assets: the number of per-block asset values, hence of the model's columns.
MAX_CELLS = 2_000_000
# A block no longer than a day (coarser blocks plan nothing a day-ahead price can steer)
# and no shorter than a second (a kW over less than that is below the solver's tolerances
# as energy).
MIN_RESOLUTION = timedelta(seconds=1)
MAX_RESOLUTION = timedelta(days=1)
# Threads HiGHS may start for one solve: a count is a request for OS threads, and no
# machine here has more cores than this.
MAX_THREADS = 64
# Bytes of problem JSON the CLI reads: the largest problem the caps allow, with room.
MAX_INPUT_BYTES = 64 * 1024 * 1024
# Digits of a JSON integer: beyond 309 no float holds it anyway, and Python refuses to
# read more than 4,300 (sys.get_int_max_str_digits, at least 640 wherever it is set).
MAX_DIGITS = 600


def check_count(field: str, count: int, most: int, what: str = "values") -> None:
    if count > most:
        raise ProblemError(field, f"has {count:,} {what}, at most {most:,} allowed")


def check_blocks(field: str, blocks: int) -> None:
    """A per-block array (the price array: the horizon) within MAX_BLOCKS."""
    check_count(field, blocks, MAX_BLOCKS)


def check_size(blocks: int, assets: int) -> None:
    """Blocks x assets within MAX_CELLS (each on its own within its cap)."""
    check_count("assets", assets, MAX_ASSETS, "chargers and batteries")
    if blocks * assets > MAX_CELLS:
        raise ProblemError(
            "assets",
            f"{assets:,} assets x {blocks:,} blocks is {blocks * assets:,} per-block values,"
            f" at most {MAX_CELLS:,} allowed",
        )


def check_horizon(start: datetime, resolution: timedelta, blocks: int) -> None:
    """The block length within its bounds, and a horizon that ends within the calendar."""
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise ProblemError("resolution", "must be from 1 second to 1 day")
    try:
        start + blocks * resolution
    except OverflowError:
        raise ProblemError("start", "the horizon must end before the year 10000") from None
