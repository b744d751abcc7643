"""Calendar periods in a time zone: days, ISO weeks, months, quarters and years.

A period starts at the first instant of its first local day (local midnight) and ends where
the next one starts, so its length in UTC is not fixed: a day in Europe/Oslo lasts 23 hours
on the last Sunday of March and 25 on the last Sunday of October, a month 28 to 31 days. Weeks
are ISO 8601 weeks, Monday to Sunday; quarters start in January, April, July and October.

Everything here is pure. Periods are numbered (`_index`), so counting the periods of a window
costs nothing however long it is; boundaries are made only for windows whose count a caller
has accepted (`edges` refuses more than its `limit`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum

from store.errors import ValidationError
from store.timeutil import MICROSECOND, require_utc


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"  # ISO 8601: Monday to Sunday
    MONTH = "month"
    QUARTER = "quarter"  # January, April, July, October
    YEAR = "year"


_MONDAY = date(1, 1, 1)  # 0001-01-01 is a Monday: week k starts k weeks after it
_MONTHS = {Period.MONTH: 1, Period.QUARTER: 3, Period.YEAR: 12}


def _index(day: date, period: Period) -> int:
    """The number of the period holding the local date `day`."""
    if period is Period.DAY:
        return day.toordinal()
    if period is Period.WEEK:
        return (day - _MONDAY).days // 7
    return (day.year * 12 + day.month - 1) // _MONTHS[period]


def _first_day(index: int, period: Period) -> date:
    """The local date on which period `index` begins."""
    if period is Period.DAY:
        return date.fromordinal(index)
    if period is Period.WEEK:
        return _MONDAY + timedelta(weeks=index)
    year, month0 = divmod(index * _MONTHS[period], 12)
    return date(year, month0 + 1, 1)


def _midnight(day: date, zone: tzinfo) -> datetime:
    """The first instant of the local date `day`, in UTC.

    Where a zone skips its midnight (a clock change at 00:00), the local time 00:00 does not
    exist; zoneinfo reads it with the offset before the change, which is the instant the day
    begins. Where midnight occurs twice, fold 0 is the first of them.
    """
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def _local_day(moment: datetime, zone: tzinfo) -> date:
    return require_utc(moment, "moment").astimezone(zone).date()


def _start(index: int, period: Period, zone: tzinfo) -> datetime:
    return _midnight(_first_day(index, period), zone)


def _containing(moment: datetime, period: Period, zone: tzinfo) -> int:
    """The index of the period that holds `moment`: the last one to start at or before it.

    The local date names it but where a zone moves its clock across midnight (back: a moment
    can carry the previous date after the day has begun; a whole day skipped, as Samoa's
    2011-12-30: two periods start at one instant); the starts alone decide.
    """
    index = _index(_local_day(moment, zone), period)
    while _start(index, period, zone) > moment:
        index -= 1
    while _start(index + 1, period, zone) <= moment:
        index += 1
    return index


def floor(moment: datetime, period: Period, zone: tzinfo) -> datetime:
    """The start of the period that holds `moment`."""
    return _start(_containing(moment, period, zone), period, zone)


def ceil(moment: datetime, period: Period, zone: tzinfo) -> datetime:
    """The first period start at or after `moment`."""
    index = _containing(moment, period, zone)
    start = _start(index, period, zone)
    return start if start == moment else _start(index + 1, period, zone)


def is_start(moment: datetime, period: Period, zone: tzinfo) -> bool:
    """Whether `moment` is the first instant of a period."""
    return floor(moment, period, zone) == require_utc(moment, "moment")


def following(start: datetime, period: Period, zone: tzinfo) -> datetime:
    """The start of the period after the one that holds `start`."""
    return _start(_containing(start, period, zone) + 1, period, zone)


def count(start: datetime, end: datetime, period: Period, zone: tzinfo) -> int:
    """How many periods [start, end) touches, without laying them out."""
    if end <= start:
        return 0
    return _containing(end - MICROSECOND, period, zone) - _containing(start, period, zone) + 1


def edges(
    start: datetime, end: datetime, period: Period, zone: tzinfo, *, limit: int, field: str = "end"
) -> list[datetime]:
    """The boundaries of the periods [start, end) touches, both outer ones included:
    floor(start), ..., ceil(end). More than `limit` periods is a ValidationError naming
    `field`: the window is refused, not laid out."""
    start, end = require_utc(start, "start"), require_utc(end, field)
    if end <= start:
        raise ValidationError(field, "must be after the start")
    periods = count(start, end, period, zone)
    if periods > limit:
        raise ValidationError(
            field, f"the window holds {periods} periods of a {period}, more than {limit}"
        )
    first = _containing(start, period, zone)
    bounds = [_start(first + k, period, zone) for k in range(periods + 1)]
    # A skipped day starts where the next one does: a period of no length is not one.
    return [b for b, after in zip(bounds, [*bounds[1:], None], strict=True) if b != after]
