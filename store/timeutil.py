"""Time at the store boundary: aware UTC inside, integer epoch microseconds in the tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from store.errors import ValidationError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def require_utc(value: datetime, field: str) -> datetime:
    """Return `value` in UTC; naive datetimes are refused (their zone is unknown)."""
    if not isinstance(value, datetime):
        raise ValidationError(field, f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(field, "naive timestamp: a UTC offset or 'Z' is required")
    return value.astimezone(UTC)


def to_micros(value: datetime) -> int:
    """Aware datetime -> integer microseconds since the Unix epoch."""
    return (value - EPOCH) // MICROSECOND


def from_micros(micros: int) -> datetime:
    """Integer microseconds since the Unix epoch -> aware UTC datetime."""
    return EPOCH + timedelta(microseconds=micros)


def utcnow() -> datetime:
    return datetime.now(UTC)


# The years flexbridge stores. Outside them a time converted to UTC may leave Python's
# datetime range (year 1 with a positive offset), and no energy data lives there.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def in_range(value: datetime) -> datetime | None:
    """`value` in UTC when it lies in [EARLIEST, LATEST), else None (never raises)."""
    try:
        moment = value.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return moment if EARLIEST <= moment < LATEST else None
