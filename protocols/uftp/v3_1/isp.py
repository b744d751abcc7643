"""Imbalance settlement periods (ISPs) of a UFTP Period (uftp-3.1 "ISP and time arithmetic"):

ISP n (1-based) of a Period (a local date in the message's TimeZone) covers
[local midnight + (n - 1) * ISP-Duration, local midnight + n * ISP-Duration), counted in
elapsed time, so a day of PT15M ISPs in Europe/Amsterdam has 96 of them, 92 on the day the
clocks go forward and 100 on the day they go back. An ISP element covers Start to
Start + Duration - 1; the elements of one list may not overlap.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from protocols.uftp.v3_1.errors import Rejected


@dataclass(frozen=True, slots=True)
class Day:
    """The ISPs of one Period."""

    period: date
    zone: ZoneInfo
    isp: timedelta

    @property
    def start(self) -> datetime:
        return datetime.combine(self.period, time(), self.zone).astimezone(UTC)

    @property
    def end(self) -> datetime:
        following = self.period + timedelta(days=1)
        return datetime.combine(following, time(), self.zone).astimezone(UTC)

    @property
    def count(self) -> int:
        return (self.end - self.start) // self.isp

    def interval(self, first: int, duration: int = 1) -> tuple[datetime, datetime]:
        """UTC [start, end) of ISPs first .. first + duration - 1."""
        return self.start + (first - 1) * self.isp, self.start + (first - 1 + duration) * self.isp


def zone_named(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Rejected("TimeZone rejected") from exc


def same_clock(zone: ZoneInfo, market: ZoneInfo, period: date) -> bool:
    """Whether `zone` keeps the market's UTC offsets through `period` ("TimeZone rejected":
    a TimeZone whose UTC offset differs from the market's)."""
    midnight = datetime.combine(period, time(), UTC)
    hours = (midnight + timedelta(hours=h) for h in range(-3, 28, 3))
    return all(m.astimezone(zone).utcoffset() == m.astimezone(market).utcoffset() for m in hours)


@dataclass(frozen=True, slots=True)
class Span:
    """One ISP element: Start and Duration."""

    start: int
    duration: int = 1

    @property
    def last(self) -> int:
        return self.start + self.duration - 1


def check_spans(spans: Iterable[Span], day: Day, *, complete: bool = False) -> None:
    """Every span inside the day ("ISPs out of bounds"), none overlapping ("ISP conflict"),
    and with `complete` every ISP of the day covered ("Lacking ISPs")."""
    ordered = sorted(spans, key=lambda s: s.start)
    if not ordered:
        raise Rejected("ISPs out of bounds")
    if any(s.start < 1 or s.duration < 1 or s.last > day.count for s in ordered):
        raise Rejected("ISPs out of bounds")
    if any(b.start <= a.last for a, b in pairwise(ordered)):
        raise Rejected("ISP conflict")
    if complete and sum(s.duration for s in ordered) != day.count:
        raise Rejected("Lacking ISPs")
