"""OSCP 2.0 timestamps: RFC 3339 in, UTC 'Z' out.

Accepted: `YYYY-MM-DDTHH:MM:SS` with 'Z' or a `+hh:mm` / `-hh:mm` offset, fractional seconds
optional (any number of digits; beyond microseconds they are cut), 'T' and 'Z' in either case.
Tolerated: the zone-less `YYYY-MM-DD HH:MM:SS` (space, no offset, optional fraction) that
pyoscp sends, read as UTC (docs/protocols/oscp-2.0.md, "Timestamps"). Any other zone-less
time is refused: it names no instant.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from protocols.common.peer_link import iso
from store.errors import ValidationError

_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_ZONELESS = re.compile(r"(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(\.\d+)?")

__all__ = ["iso", "timestamp"]


def _fraction(digits: str | None) -> str:
    return "" if not digits else digits[:7].ljust(7, "0")  # '.' + six digits


def timestamp(text: object, where: str) -> datetime:
    """The UTC instant `text` names; ValidationError naming `where` and the reason."""
    if not isinstance(text, str):
        raise ValidationError(where, "expected an RFC 3339 date-time string")
    text = text.strip()
    match = _RFC3339.fullmatch(text)
    if match:
        date, clock, fraction, zone = match.groups()
        zone = "+00:00" if zone in ("Z", "z") else zone
        wire = f"{date}T{clock}{_fraction(fraction)}{zone}"
    else:
        match = _ZONELESS.fullmatch(text)
        if match is None:
            raise ValidationError(
                where,
                f"{text[:60]!r} is not an RFC 3339 date-time "
                "(YYYY-MM-DDTHH:MM:SS[.fff] with 'Z' or +hh:mm)",
            )
        date, clock, fraction = match.groups()
        wire = f"{date}T{clock}{_fraction(fraction)}+00:00"
    try:
        moment = datetime.fromisoformat(wire).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValidationError(where, f"{text[:60]!r} is no valid date-time: {exc}") from None
    if not 1900 <= moment.year <= 8999:  # what the store keeps
        raise ValidationError(where, f"{text[:60]!r} is outside the years 1900-8999")
    return moment
