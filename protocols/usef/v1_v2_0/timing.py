"""Belief timing (A.2): when each posted value was known, from `horizon` and `prior`.

    v1 to v1_3   `horizon` required; `R/<H>` rolling: each value known H before its own
                 interval end; plain `<H>`: H before the end of the whole series, so
                 every value shares that belief time ("anchored at the series end").
    v2_0         `horizon` optional and rolling, `R/` refused; `prior`: the belief time of
                 the whole message; both: the earlier belief; neither: when it arrived.

A horizon is an ISO 8601 duration, negative for after the fact. Meter data are observed
after the fact: a positive horizon, or (v2_0) a prior before the end of the series, is
INVALID_HORIZON.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import isodate

from protocols.usef.v1_v2_0.errors import UsefError
from protocols.usef.v1_v2_0.periods import parse_time

_REPEATING = (
    "API versions 2.0 and higher use regular ISO 8601 durations instead of repeating time "
    "intervals. For example: R/P1D should be replaced by P1D."
)
_MISSING = "Missing horizons are no longer accepted for API versions below v2.0."
_METER_HORIZON = (
    "Meter data must have a zero or negative horizon to indicate observations after the fact."
)
_METER_PRIOR = "Meter data can only be observed after the fact."


@dataclass(frozen=True, slots=True)
class Horizon:
    before: timedelta  # how long before the fact the values were known (negative: after)
    rolling: bool  # per interval end; else from the end of the whole series


def parse_horizon(text: object, version: str) -> Horizon:
    if not isinstance(text, str):
        raise UsefError("INVALID_HORIZON", f"{text!r} is not a duration.")
    sign, rest = (-1, text[1:]) if text.startswith("-") else (1, text)
    rolling = rest.startswith("R/")
    if rolling and version == "v2_0":
        raise UsefError("INVALID_HORIZON", _REPEATING)
    try:
        duration = isodate.parse_duration(rest[2:] if rolling else rest)
    except (isodate.ISO8601Error, ValueError, OverflowError):
        raise UsefError("INVALID_HORIZON", f"{text[:60]!r} is not an ISO 8601 duration.") from None
    if not isinstance(duration, timedelta) or abs(duration) > timedelta(days=36_500):
        raise UsefError("INVALID_HORIZON", f"{text[:60]!r}: days, hours and minutes only.")
    return Horizon(sign * duration, rolling or version == "v2_0")


def _known(ends: list[datetime], horizon: Horizon | None, otherwise: datetime) -> list[datetime]:
    if horizon is None:
        return [otherwise] * len(ends)
    if horizon.rolling:
        return [end - horizon.before for end in ends]
    return [max(ends) - horizon.before] * len(ends)


def beliefs(
    fields: dict[str, object],
    version: str,
    ends: list[datetime],
    received: datetime,
    *,
    observed: bool,
) -> list[datetime]:
    """The belief time of each value whose interval ends at `ends[i]`; `observed`: meter
    data, which must be known after the fact."""
    horizon = None if fields.get("horizon") is None else parse_horizon(fields["horizon"], version)
    prior = None
    if version == "v2_0" and fields.get("prior") is not None:
        prior = parse_time(fields["prior"], "prior")
    if version != "v2_0" and horizon is None:
        raise UsefError("INVALID_HORIZON", _MISSING)
    if observed and horizon is not None and horizon.before > timedelta(0):
        raise UsefError("INVALID_HORIZON", _METER_HORIZON)
    try:
        known = _known(ends, horizon, prior or received)
    except OverflowError:
        raise UsefError("INVALID_HORIZON", "The horizon reaches past the calendar.") from None
    if prior is not None:
        known = [min(moment, prior) for moment in known]
    if observed and any(moment < end for moment, end in zip(known, ends, strict=True)):
        raise UsefError("INVALID_HORIZON", _METER_PRIOR)
    return known
