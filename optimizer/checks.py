"""Input checks shared by the problem constructors. Each names the field it checks, so the
message a peer sees says what to fix."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, overload

import numpy as np

from optimizer.errors import ProblemError
from optimizer.limits import check_blocks

# What a float holds at most, for the message refusing an integer beyond it.
_LARGEST = float(np.finfo(np.float64).max)
_LARGE = "a number of 16 digits or more"


def _float(field: str, value: int | float | np.integer | np.floating) -> float:
    """float(value), refusing by name an integer too large for a float (JSON has no bound on
    digits; Python's float() raises OverflowError)."""
    try:
        return float(value)
    except OverflowError:
        raise ProblemError(field, f"is too large (a number beyond {_LARGEST:.1e})") from None


def number(field: str, value: Any, *, low: float | None = None, high: float | None = None) -> float:
    """A finite float within [low, high]; booleans are refused because JSON `true` is no kW."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ProblemError(field, f"must be a number, not {type(value).__name__}")
    result = _float(field, value)
    if not math.isfinite(result):
        raise ProblemError(field, "must be finite")
    if low is not None and result < low:
        raise ProblemError(field, f"must be >= {low:g}, got {result:g}")
    if high is not None and result > high:
        raise ProblemError(field, f"must be <= {high:g}, got {result:g}")
    return result


def positive(field: str, value: Any) -> float:
    result = number(field, value)
    if result <= 0:
        raise ProblemError(field, f"must be > 0, got {result:g}")
    return result


def integer(field: str, value: Any, *, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ProblemError(field, f"must be an integer, not {type(value).__name__}")
    result = int(value)
    if result < low or (high is not None and result > high):
        upper = "" if high is None else f" and <= {high}"
        raise ProblemError(field, f"must be >= {low}{upper}, got {_integer_shown(result)}")
    return result


def _integer_shown(value: int) -> str:
    # A long integer stays off the line (and str() of one of 5,000 digits raises).
    return str(value) if abs(value) < 10**15 else _LARGE


def flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise ProblemError(field, f"must be true or false, not {type(value).__name__}")
    return bool(value)


def frozen(array: np.ndarray) -> np.ndarray:
    """A read-only copy: problems and plans are values, and a caller's later edits to the
    array it passed in must not change a problem already built."""
    result = np.array(array, copy=True)
    result.flags.writeable = False
    return result


def series(field: str, value: Any, blocks: int | None, *, low: float | None = None) -> np.ndarray:
    """A per-block float array. A scalar means the same value in every block (when the
    horizon length is known); an array must have exactly one value per block."""
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        if blocks is None:
            raise ProblemError(field, "must be an array (it defines the horizon)")
        return frozen(np.full(blocks, number(field, value, low=low)))
    if isinstance(value, str | bytes | dict):
        # np.asarray would read the string "1.5" as a number
        raise ProblemError(field, "must be a number or an array of numbers")
    if isinstance(value, list | tuple):
        # Sized first: the checks below take a step per value.
        if blocks is not None and len(value) != blocks:
            raise ProblemError(field, f"has {len(value)} values, expected one per block ({blocks})")
        check_blocks(field, len(value))
        # np.asarray would read "1.5" and True as numbers; JSON strings and booleans are not.
        for index, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, int | float):
                raise ProblemError(f"{field}[{index}]", "must be a number")
            if isinstance(item, int):
                _float(f"{field}[{index}]", item)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ProblemError(field, "must be a number or an array of numbers") from None
    if array.ndim != 1:
        raise ProblemError(field, "must be a one-dimensional array")
    if array.size == 0:
        raise ProblemError(field, "must not be empty")
    if blocks is not None and array.size != blocks:
        raise ProblemError(field, f"has {array.size} values, expected one per block ({blocks})")
    check_blocks(field, array.size)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ProblemError(f"{field}[{bad[0]}]", "must be finite")
    if low is not None and (array < low).any():
        index = int(np.flatnonzero(array < low)[0])
        raise ProblemError(f"{field}[{index}]", f"must be >= {low:g}, got {array[index]:g}")
    return frozen(array)


@overload
def per_block(value: np.ndarray | float) -> np.ndarray: ...
@overload
def per_block(value: None) -> None: ...
def per_block(value: np.ndarray | float | None) -> np.ndarray | None:
    """A problem field that its __post_init__ turned into a per-block array with `series`
    (its declared type also admits the scalar a caller may pass); None stays None."""
    if value is None or isinstance(value, np.ndarray):
        return value
    raise TypeError(f"expected a per-block array, got {type(value).__name__}")


def mask(field: str, value: Any, blocks: int) -> np.ndarray:
    """A per-block boolean array (True/False only: 0/1 would hide a unit mix-up)."""
    if isinstance(value, np.ndarray) and value.dtype == np.bool_:
        array = value
    elif (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and all(isinstance(v, bool | np.bool_) for v in value)
    ):
        array = np.asarray(value, dtype=np.bool_)
    else:
        raise ProblemError(field, "must be an array of true/false, one per block")
    if array.ndim != 1 or array.size != blocks:
        raise ProblemError(field, f"has {array.size} values, expected one per block ({blocks})")
    return frozen(array)


def aware(field: str, value: Any) -> datetime:
    """Times are timezone-aware inside (DESIGN 4): a naive one could be any zone."""
    if not isinstance(value, datetime):
        raise ProblemError(field, f"must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ProblemError(field, "must be timezone-aware")
    return value


def duration(field: str, value: Any) -> timedelta:
    if not isinstance(value, timedelta):
        raise ProblemError(field, f"must be a timedelta, not {type(value).__name__}")
    if value <= timedelta(0):
        raise ProblemError(field, "must be positive")
    return value


def unique_ids(field: str, ids: Sequence[str]) -> None:
    seen: set[str] = set()
    for index, name in enumerate(ids):
        if name in seen:
            raise ProblemError(f"{field}[{index}].id", f"duplicate id {name!r}")
        seen.add(name)
