"""OSCP 2.0 on the wire: headers, bodies against schemas/oscp/2.0, times, forecasted blocks,
and what we send.

Headers: X-Request-ID is required on every request (400 without; at most 200 characters);
a repeated one from the same peer is answered 204 again and changes nothing.
X-Correlation-ID is on our answers (= the request id answered) and on our replies (Register
back, HandshakeAcknowledge).

Timestamps: RFC 3339 in, UTC 'Z' out. Accepted: `YYYY-MM-DDTHH:MM:SS` with 'Z' or a
`+hh:mm` / `-hh:mm` offset, fractional seconds optional (any number of digits; beyond
microseconds they are cut), 'T' and 'Z' in either case.
Tolerated: the zone-less `YYYY-MM-DD HH:MM:SS` (space, no offset, optional fraction) that
pyoscp sends, read as UTC (docs/protocols/oscp-2.0.md, "Timestamps"). Any other zone-less
time is refused: it names no instant.

Forecasted blocks: a capacity is a magnitude in A (per phase), W, KW, WH or KWH. Power and
current become kW as hub.capacity does (Amps with the group's NominalVoltage, PhaseCount and
PowerFactor, whatever the block's `phase` says). An energy over a block is its mean power:
WH or KWH divided by the block's length in hours (docs/protocols/oscp-2.0.md, "Units").
Each block is laid onto the quarter hours it covers; a block off that grid is refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from hub import outbound
from hub.capacity import Block, from_kw, quarter_hours, to_kw
from protocols.common.jsonschemas import check
from protocols.common.surface import ProtocolError
from protocols.common.wire import iso, read_json
from store.entities import Entity
from store.errors import FieldIssue, ValidationError
from store.peers import OutboundAuth, Peer

PROTOCOL = "oscp"
SCHEMAS = "schemas.oscp"
MAX_REQUEST_ID = 200  # what the message log keeps
HOUR = timedelta(hours=1)
SPAN = timedelta(days=31)  # the most one message may cover, all its blocks together
_ENERGY_PER_KWH = {"WH": 1000.0, "KWH": 1.0}

_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_ZONELESS = re.compile(r"(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(\.\d+)?")


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


def request_id(request: web.Request) -> str:
    """OSCP 2.0: X-Request-ID is required on every request."""
    given = request.headers.get("X-Request-ID", "").strip()
    if not given:
        raise ProtocolError(400, "invalid", "header X-Request-ID is required")
    if len(given) > MAX_REQUEST_ID:
        raise ProtocolError(
            400, "invalid", f"header X-Request-ID: at most {MAX_REQUEST_ID} characters"
        )
    return given


async def read(request: web.Request, schema: str) -> dict[str, Any]:
    """The JSON body, checked against schemas/oscp/2.0/<schema>.json."""
    body = await read_json(request)
    check(body, SCHEMAS, f"2.0/{schema}.json")
    return body


def no_content(request: web.Request) -> web.Response:
    """204, empty body, X-Correlation-ID = the request id answered."""
    return web.Response(status=204, headers={"X-Correlation-ID": request_id(request)})


async def answered_first(request: web.Request) -> web.Response:
    """The 204, already written to the peer: call before waking the outbox when the reply
    must follow the answer (OSCP 2.0 Register: "answers 204 FIRST, then POSTs")."""
    response = no_content(request)
    await response.prepare(request)
    await response.write_eof()
    return response


def caller_token(request: web.Request) -> str:
    """The token the caller authenticated with (the surface checked it)."""
    parts = request.headers.get("Authorization", "").split(None, 1)
    return parts[1].strip() if len(parts) == 2 else ""


def seconds(value: float) -> int | float:
    """A number of seconds as JSON: whole numbers without '.0' (peers validate integers)."""
    return int(value) if float(value).is_integer() else value


def registered(peer: Peer) -> bool:
    """We know where to reach the peer and the token to use there (from its Register)."""
    return bool(peer.base_url) and peer.auth is OutboundAuth.TOKEN and peer.has_secret


async def send(
    tx: Any,
    peer: Peer,
    kind: str,
    path: str,
    body: dict[str, Any],
    *,
    correlation: str | None = None,
    topic: str | None = None,
) -> bool:
    """Queue a message for the peer (sent after commit); False when the peer has not
    registered, so there is nowhere to send it (what caused it is kept all the same)."""
    if not registered(peer):
        return False
    headers = {"X-Correlation-ID": correlation} if correlation else None
    queued = await outbound.send(
        tx,
        peer,
        protocol=PROTOCOL,
        message_type=kind,
        path=path,
        body=body,
        headers=headers,
        topic=topic,
    )
    return queued is not None


def _kw(group: Entity, capacity: float, unit: str, length: timedelta, where: str) -> float:
    if unit in _ENERGY_PER_KWH:
        kw = capacity / _ENERGY_PER_KWH[unit] / (length / HOUR)
    else:
        kw = to_kw(group, capacity, unit)
    if not math.isfinite(kw):
        raise ValidationError(f"{where}.capacity", "too large")
    return kw


def blocks_of(
    group: Entity,
    items: Sequence[dict[str, Any]],
    field: str = "forecasted_blocks",
    span: timedelta = SPAN,
) -> list[Block]:
    """Every wire block in kW quarter hours, in time order; ValidationError naming every bad
    block (and nothing converted) when any is bad, or when the blocks cover more than `span`
    (the caller's hub.limits message_span)."""
    blocks: list[Block] = []
    issues: list[FieldIssue] = []
    covered = timedelta(0)
    for index, item in enumerate(items):
        where = f"{field}[{index}]"
        try:
            start = timestamp(item["start_time"], f"{where}.start_time")
            end = timestamp(item["end_time"], f"{where}.end_time")
            if end <= start:
                raise ValidationError(f"{where}.end_time", "must be after start_time")
            covered += end - start
            if covered > span:
                days = span / timedelta(days=1)
                raise ValidationError(
                    f"{where}.end_time",
                    f"the blocks cover more than {days:g} days (limit max_message_span_days)",
                )
            kw = _kw(group, float(item["capacity"]), item["unit"], end - start, where)
            blocks.extend(quarter_hours(start, end, kw, where))
        except ValidationError as exc:
            issues.extend(
                FieldIssue(i.field if i.field.startswith(field) else f"{where}.{i.field}", i.reason)
                for i in exc.issues
            )
    if issues:
        raise ValidationError(issues=issues)
    return sorted(blocks, key=lambda b: b.start)


def reply_unit(items: Sequence[dict[str, Any]]) -> str:
    """The unit our OPTIMUM answers in: A when the peer spoke Amps, else KW."""
    return "A" if items[0]["unit"] == "A" else "KW"


def reply_phase(items: Sequence[dict[str, Any]]) -> str:
    return items[0]["phase"]


def optimum(
    group: Entity, group_id: str, unit: str, phase: str, blocks: Sequence[Block]
) -> dict[str, Any]:
    """Our OPTIMUM UpdateGroupCapacityForecast: one block per quarter hour."""
    return {
        "group_id": group_id,
        "type": "OPTIMUM",
        "forecasted_blocks": [
            {
                "capacity": round(from_kw(group, b.kw, unit), 3),
                "phase": phase,
                "unit": unit,
                "start_time": iso(b.start),
                "end_time": iso(b.end),
            }
            for b in blocks
        ],
    }
