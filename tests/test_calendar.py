"""Calendar periods in a time zone (store.calendar): CP-API 4.3.2's "correct day alignment"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from store import calendar
from store.calendar import Period
from store.errors import ValidationError

OSLO = ZoneInfo("Europe/Oslo")
H = timedelta(hours=1)
ZONES = [
    UTC,
    OSLO,
    ZoneInfo("America/New_York"),
    ZoneInfo("Asia/Kolkata"),
    ZoneInfo("Australia/Lord_Howe"),
    ZoneInfo("America/Havana"),
    ZoneInfo("Pacific/Apia"),
]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_a_day_in_oslo_lasts_23_hours_on_the_last_sunday_of_march() -> None:
    """CP-API 4.3.2: "for resolution Daily and above the time zone should be specified to get
    the correct day alignment of values"; Europe/Oslo moves to summer time on 2026-03-29."""
    edges = calendar.edges(utc(2026, 3, 28), utc(2026, 3, 30), Period.DAY, OSLO, limit=10)
    assert edges == [
        utc(2026, 3, 27, 23),
        utc(2026, 3, 28, 23),
        utc(2026, 3, 29, 22),
        utc(2026, 3, 30, 22),
    ]
    assert [b - a for a, b in pairwise(edges)] == [24 * H, 23 * H, 24 * H]


def test_a_day_in_oslo_lasts_25_hours_on_the_last_sunday_of_october() -> None:
    edges = calendar.edges(utc(2026, 10, 24), utc(2026, 10, 26), Period.DAY, OSLO, limit=10)
    assert [b - a for a, b in pairwise(edges)] == [24 * H, 25 * H, 24 * H]
    assert edges[2] == utc(2026, 10, 25, 23)  # 2026-10-26 00:00 in winter time, UTC+1


def test_weeks_start_on_monday() -> None:
    """ISO 8601 weeks: 2026-03-05 is a Thursday of the week that begins Monday 2026-03-02."""
    assert calendar.floor(utc(2026, 3, 5, 12), Period.WEEK, UTC) == utc(2026, 3, 2)
    assert calendar.floor(utc(2026, 3, 5, 12), Period.WEEK, OSLO) == utc(2026, 3, 1, 23)
    assert calendar.following(utc(2026, 3, 2), Period.WEEK, UTC) == utc(2026, 3, 9)


def test_months_quarters_and_years_begin_at_local_midnight_of_their_first_day() -> None:
    moment = utc(2026, 8, 17, 9)
    assert calendar.floor(moment, Period.MONTH, OSLO) == utc(2026, 7, 31, 22)
    assert calendar.floor(moment, Period.QUARTER, OSLO) == utc(2026, 6, 30, 22)
    assert calendar.floor(moment, Period.YEAR, OSLO) == utc(2025, 12, 31, 23)
    assert calendar.ceil(moment, Period.MONTH, UTC) == utc(2026, 9, 1)
    assert calendar.is_start(utc(2026, 2, 28, 23), Period.MONTH, OSLO)
    assert not calendar.is_start(utc(2026, 3, 1), Period.MONTH, OSLO)


def test_counting_periods_lays_nothing_out_and_a_long_window_is_refused() -> None:
    """Bounded work: 7,099 years of days are counted, not made, and refused past the limit."""
    start, end = utc(1900, 1, 1), utc(8999, 1, 1)
    assert calendar.count(start, end, Period.MONTH, OSLO) == 7099 * 12 + 1  # Dec 1899 local
    with pytest.raises(ValidationError) as caught:
        calendar.edges(start, end, Period.DAY, OSLO, limit=1_000_000, field="ToDateTime")
    assert caught.value.field == "ToDateTime"


def test_a_skipped_day_is_not_a_period() -> None:
    """Samoa skipped 2011-12-30: the day before and the day after are neighbours."""
    apia = ZoneInfo("Pacific/Apia")
    edges = calendar.edges(utc(2011, 12, 29, 12), utc(2011, 12, 30, 12), Period.DAY, apia, limit=10)
    local = [e.astimezone(apia).date().isoformat() for e in edges]
    assert local == ["2011-12-29", "2011-12-31", "2012-01-01"]


MOMENTS = st.datetimes(
    min_value=datetime(1901, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(moment=MOMENTS, zone=st.sampled_from(ZONES), period=st.sampled_from(list(Period)))
def test_every_moment_lies_in_exactly_one_period(moment: datetime, zone, period) -> None:  # type: ignore[no-untyped-def]
    start = calendar.floor(moment, period, zone)
    end = calendar.following(moment, period, zone)
    assert start <= moment < end
    assert calendar.is_start(start, period, zone) and calendar.is_start(end, period, zone)
    assert calendar.following(start, period, zone) == end
    assert calendar.ceil(moment, period, zone) == (start if start == moment else end)
    local = start.astimezone(zone)
    assert local.hour == 0 or local.utcoffset() != (start - H).astimezone(zone).utcoffset()


@given(
    moment=MOMENTS,
    span=st.integers(min_value=1, max_value=400 * 24),
    zone=st.sampled_from(ZONES),
    period=st.sampled_from(list(Period)),
)
def test_edges_cover_the_window_in_periods_that_follow_each_other(  # type: ignore[no-untyped-def]
    moment: datetime, span: int, zone, period
) -> None:
    end = moment + span * H
    edges = calendar.edges(moment, end, period, zone, limit=100_000)
    assert edges[0] <= moment and edges[-1] >= end
    assert all(calendar.following(a, period, zone) == b for a, b in pairwise(edges))
    assert len(edges) - 1 <= calendar.count(moment, end, period, zone)
