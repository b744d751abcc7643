"""OCMP 1.0 on the wire, in the rendition of docs/protocols/ocmp-1.0.md: bodies checked
against schemas/ocmp/1.0, RFC 3339 times, capacities in Amps per phase, and the messages we
send encoded.

A message whose items may be partly bad (forecast blocks, meter values) is checked item by
item: an error inside an item drops that item; an error in the message itself (its group or
asset missing or unknown) keeps nothing, yet every item is still checked so that one reply
lists every error (docs/protocols/ocmp-1.0.md, Errors).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from hub.capacity import Block, from_kw
from protocols.common.jsonschemas import check, violations
from protocols.common.wire import iso, read_json
from store.entities import Entity
from store.errors import FieldIssue, ValidationError
from store.peers import Peer
from store.timeutil import in_range

PROTOCOL = "ocmp"
SCHEMAS = "schemas.ocmp"
MAX_NAMED = 200  # issues named in one reply


@dataclass
class Checked:
    """A message after its schema: the body, the items that passed, the issues of its items
    and the issues of the message itself (any of those keeps nothing of it)."""

    body: dict[str, Any]
    good: list[tuple[int, dict[str, Any]]]
    issues: list[FieldIssue]
    refusals: list[FieldIssue] = field(default_factory=list)

    def refuse(self, issues: Sequence[FieldIssue]) -> None:
        """An error of the message itself, found after the schema (an unknown group)."""
        self.refusals.extend(issues)

    def well_formed(self, name: str) -> bool:
        """Whether the message's own field `name` passed the schema (it may be looked up)."""
        return name in self.body and not any(i.field == name for i in self.refusals)

    def every_issue(self) -> list[FieldIssue]:
        """The message's errors first, then its items' in the order found."""
        return [*self.refusals, *self.issues]


def message_id(request: web.Request) -> str | None:
    """X-Request-ID: optional in OCMP; a repeated one is not applied twice."""
    return request.headers.get("X-Request-ID") or None


async def read_whole(request: web.Request, schema: str) -> dict[str, Any]:
    """The JSON body, refused whole on any error against schemas/ocmp/1.0/<schema>.json."""
    body = await read_json(request)
    check(body, SCHEMAS, f"1.0/{schema}.json")
    if not isinstance(body, dict):  # every OCMP schema asks for an object
        raise ValidationError("body", "expected a JSON object")
    return body


async def read_items(request: web.Request, schema: str, items: str) -> Checked:
    """The JSON body whose `items` array may be partly bad. Only a body that is no object is
    refused here: a message whose own fields are wrong is still checked item by item."""
    body = await read_json(request)
    # Every violation decides which items are bad; the reply names at most MAX_NAMED of them.
    found = violations(body, SCHEMAS, f"1.0/{schema}.json", limit=None)
    if not isinstance(body, dict):  # every OCMP schema asks for an object
        raise ValidationError(issues=[issue for _, issue in found])

    def in_item(path: tuple[Any, ...]) -> bool:
        return len(path) >= 2 and path[0] == items

    listed = body.get(items)
    bad = {path[1] for path, _ in found if in_item(path)}
    every = listed if isinstance(listed, list) else []  # not a list: a refusal already
    good = [(i, item) for i, item in enumerate(every) if i not in bad]
    return Checked(
        body,
        good,
        [issue for path, issue in found if in_item(path)][:MAX_NAMED],
        [issue for path, issue in found if not in_item(path)][:MAX_NAMED],
    )


def timestamp(text: str, where: str) -> datetime:
    """RFC 3339 with 'Z' or an offset, fractional seconds optional; naive times refused."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(where, f"{text!r} is not an RFC 3339 date-time") from None
    if moment.tzinfo is None:
        raise ValidationError(where, f"{text!r} has no UTC offset; add 'Z' or +hh:mm")
    utc = in_range(moment)
    if utc is None:
        raise ValidationError(where, f"{text!r} is outside the years 1900-8999")
    return utc


# Phases a block's Amps are on (docs/protocols/ocmp-1.0.md, Capacity): one phase (named, or
# UNKNOWN: any one of them) carries the Amps alone; ALL, or no phase, is each of the group's.
ONE_PHASE = frozenset({"ONE", "TWO", "THREE", "UNKNOWN"})
ALL_PHASES = "ALL"


def phases_of(phase: str | None) -> int | None:
    """How many phases carry a block's Amps: 1, or None for the group's PhaseCount."""
    return 1 if phase in ONE_PHASE else None


def answer_phase(phases: Sequence[str]) -> str:
    """The phase our optimal forecast names: the one the CPO's forecast named in every block,
    else ALL (Amps per phase of every phase: never more power than planned, however read)."""
    named = set(phases)
    return named.pop() if len(named) == 1 else ALL_PHASES


def handshake(base_url: str, heartbeat_seconds: float) -> dict[str, Any]:
    return {"base_url": base_url, "heartbeat_interval": heartbeat_seconds}


def heartbeat(peer: Peer, offline_mode_at: datetime) -> dict[str, Any]:
    del peer  # every OCMP peer reads the same times
    return {"offline_mode_at": iso(offline_mode_at)}


def optimal_forecast(
    group: Entity, group_id: str, blocks: Sequence[Block], phase: str | None
) -> dict[str, Any]:
    """UpdateGroupOptimalCapacityForecast: one block per quarter hour, in Amps per phase, on
    the `phase` the CPO's forecast named (ALL when none), converted as its Amps were."""
    phase = phase or ALL_PHASES
    return {
        "group_id": group_id,
        "forecasted_blocks": [
            {
                "capacity": round(from_kw(group, b.kw, "A", phases=phases_of(phase)), 3),
                "phase": phase,
                "unit": "A",
                "start_time": iso(b.start),
                "end_time": iso(b.end),
            }
            for b in blocks
        ],
    }


def login_of(body: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The basic login the peer wants us to use towards it, if any."""
    return body.get("username"), body.get("password")
