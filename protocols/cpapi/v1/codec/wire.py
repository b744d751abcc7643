"""Wire types shared by the CP-API v1 schemas: dates as the spec writes them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError as SchemaError
from marshmallow import fields

from store.timeutil import in_range

NAIVE_REASON = (
    "naive timestamp (no UTC offset): CP-API 3.3.2.2 requires UTC ISO 8601 dates such as "
    "2018-02-23T13:55:05.455Z; add 'Z' or an offset"
)


class UtcDateTime(fields.Field):
    """An ISO 8601 date-time WITH an offset, loaded as an aware UTC datetime.

    A timestamp without an offset is refused, not taken as UTC: 3.3.2.2 asks senders to
    supply UTC *written as such* (its example ends in "Z"), and the TimeZone fields speak
    of day alignment ("for resolution Daily and above the time zone should be specified to
    get the correct day alignment of values"), not of how to read a bare clock time. A
    client serialising local clock times without an offset would otherwise have its data
    silently shifted by its UTC offset (DESIGN.md section 4: naive timestamps are rejected
    at the boundary unless a protocol defines a zone for them). Contrast the event hub
    (5.3.3.2), which says in so many words that UTC is assumed.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str):
            raise SchemaError("expected an ISO 8601 date-time string")
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise SchemaError(f"{value!r} is not an ISO 8601 date-time") from None
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise SchemaError(NAIVE_REASON)
        utc = in_range(moment)
        if utc is None:
            raise SchemaError(f"{value!r} is outside the years 1900-8999")
        return utc

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else iso(value)


def iso(moment: datetime) -> str:
    """UTC ISO 8601 with 'Z', as the spec writes dates ("2018-02-22T00:00:00Z")."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
