"""The time series of a message (A.1): `start` (ISO 8601 with a zone), `duration`, and
`values` spread evenly over it (the timeseries shorthand: resolution = duration / number of
values). Version v1 keeps to quarter hours: a start on one, a duration of whole ones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import isodate

from protocols.usef.v1_v2_0.errors import UsefError
from store.values import Point

QUARTER = timedelta(minutes=15)
_LONGEST = timedelta(days=36_500)


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime  # UTC
    duration: timedelta

    @property
    def end(self) -> datetime:
        return self.start + self.duration


def parse_time(text: object, field: str) -> datetime:
    """A zoned ISO 8601 time, in UTC: INVALID_TIMEZONE without a zone, INVALID_PERIOD when
    it is no time."""
    if not isinstance(text, str):
        raise UsefError("INVALID_PERIOD", f"{field} must be an ISO 8601 time.")
    try:
        moment = isodate.parse_datetime(text)
    except (isodate.ISO8601Error, ValueError, OverflowError):
        raise UsefError(
            "INVALID_PERIOD", f"{field} {text[:60]!r} is not an ISO 8601 time."
        ) from None
    if moment.tzinfo is None:
        subject = "Start time" if field == "start" else "Datetime"
        raise UsefError("INVALID_TIMEZONE", f"{subject} should explicitly state a timezone.")
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise UsefError("INVALID_PERIOD", f"{field} {text[:60]!r} is out of range.") from None


def parse_duration(text: object, field: str = "duration") -> timedelta:
    if not isinstance(text, str):
        raise UsefError("INVALID_PERIOD", f"{field} must be an ISO 8601 duration.")
    try:
        duration = isodate.parse_duration(text)
    except (isodate.ISO8601Error, ValueError, OverflowError):
        raise UsefError("INVALID_PERIOD", f"{field} {text[:60]!r} is not a duration.") from None
    if not isinstance(duration, timedelta) or not timedelta(0) < duration <= _LONGEST:
        raise UsefError(
            "INVALID_PERIOD", f"{field} {text[:60]!r}: a positive span of days, hours, minutes."
        )
    return duration


def period_of(fields: dict[str, object], version: str) -> Period:
    if fields.get("start") is None or fields.get("duration") is None:
        raise UsefError("INVALID_PERIOD", "start and duration are required.")
    period = Period(parse_time(fields["start"], "start"), parse_duration(fields["duration"]))
    try:
        period.end  # noqa: B018  (a period past the calendar's end is no period)
    except OverflowError:
        raise UsefError("INVALID_PERIOD", "the period runs past the year 9999.") from None
    if version == "v1" and (
        period.start.minute % 15
        or period.start.second
        or period.start.microsecond
        or period.duration % QUARTER
    ):
        raise UsefError(
            "INVALID_PERIOD", "API v1 takes a start on a quarter hour and whole quarter hours."
        )
    return period


def iso(duration: timedelta) -> str:
    """PT15M, PT1H, P1D: the duration as FlexMeasures writes it."""
    seconds = int(duration.total_seconds())
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    body = (f"{days}D" if days else "") + (f"T{time}" if time else "")
    return f"P{body}" if body else "PT0M"


def repeats(period: Period, count: int, resolution: timedelta) -> int:
    """How many intervals of `resolution` each of `count` values over the period covers
    (values coarser than a series are repeated onto it); INVALID_RESOLUTION unless whole."""
    step = period.duration / count
    if step * count != period.duration or step % resolution:
        raise UsefError(
            "INVALID_RESOLUTION",
            detail=f"Only the following resolutions are supported: {iso(resolution)}",
        )
    return step // resolution


def spread(period: Period, values: tuple[float, ...], resolution: timedelta, k: int) -> list[Point]:
    """The values over the period as intervals of `resolution`, each repeated `k` times."""
    start, step = period.start, resolution * k
    return [
        Point(start + i * step + j * resolution, start + i * step + (j + 1) * resolution, value)
        for i, value in enumerate(values)
        for j in range(k)
    ]


def value_ends(period: Period, points: list[Point], k: int) -> list[datetime]:
    """For each interval `spread` made, the end of the value it repeats: when it was known
    is reckoned from there (timing.py)."""
    if not points:
        return []
    resolution = points[0].end - points[0].start
    return [period.start + (i // k + 1) * k * resolution for i in range(len(points))]
