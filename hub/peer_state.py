"""What flexbridge knows of a peer beyond how to reach it: one typed record per peer, kept as
JSON in the peer's row (store.peers) so that every process and every restart sees it.

`PeerState.schema_version` says which layout the JSON has. Version 0 is the untyped bag
written before this module existed; it has the same keys but for two renamed ones
(`adjust_requests` -> `capacity_requests`, `compliance_error` -> `complaint`) and is read
as version 1. A state is changed only through `edit`, with the peer's row locked, so two
processes sharing a database never lose each other's changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.capacity import Block
from store.peers import Peer, get_peer, replace_state

SCHEMA_VERSION = 1


class UnknownIds(StrEnum):
    """What an id the peer never told us about does (per peer, `flexbridge peer add`)."""

    STRICT = "strict"  # an error naming the id
    LENIENT = "lenient"  # a new area or resource, reported in the reply


@dataclass(slots=True)
class GroupLink:
    """A group the peer sends capacity for, and our optimum back to it."""

    sent_at: datetime | None = None  # when our last optimum for it was queued
    dirty: bool = False  # its inputs changed since: the clock re-sends it
    unit: str | None = None  # how the peer's last forecast spoke; our answer speaks alike
    phase: str | None = None


@dataclass(slots=True)
class Fallback:
    """A capacity that holds while the peer is offline (hub.fallbacks)."""

    blocks: list[Block]
    unit: str
    phase: str
    received_at: datetime
    applied: bool = False
    applied_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CapacityRequest:
    """The latest request of the peer to change a group's capacity (kept for the operator)."""

    kind: str
    request_id: str
    received_at: datetime
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Complaint:
    """The latest word of the peer that it cannot keep to a capacity."""

    message: str
    request_id: str
    received_at: datetime


@dataclass(slots=True)
class PeerState:
    schema_version: int = SCHEMA_VERSION
    unknown_ids: UnknownIds = UnknownIds.STRICT
    dialect: str | None = None  # a named set of the protocol's wire choices for this peer
    # The link: registration (OSCP), handshake and heartbeats (OCMP, OSCP).
    version: str | None = None
    registered_at: datetime | None = None
    endpoint_updated_at: datetime | None = None
    unregistered_at: datetime | None = None
    handshaken_at: datetime | None = None
    heartbeat_interval: float | None = None  # seconds between the heartbeats it asks of us
    next_heartbeat_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    offline_mode_at: datetime | None = None  # until when its last heartbeat vouches for it
    online: bool | None = None  # as the clock last judged; None: never heard of
    offline_since: datetime | None = None
    measurement_configuration: Any = None  # what it asks us to measure, as it sent it
    # Capacity: its groups, fallbacks held for its absence, its requests and complaints.
    groups: dict[str, GroupLink] = field(default_factory=dict)
    # group_id -> limit (hub.capacity.Limit) -> the fallback for it
    fallbacks: dict[str, dict[str, Fallback]] = field(default_factory=dict)
    capacity_requests: dict[str, CapacityRequest] = field(default_factory=dict)
    complaint: Complaint | None = None
    # An outbound endpoint (CP-API section 6): whose cross-references name entities in our
    # messages, and which message names it wants (empty: all).
    system: str | None = None
    messages: list[str] = field(default_factory=list)
    # A peer that signs its messages (UFTP): the role it signs as (AGR, CRO) and the public
    # keys that verify it, two while it rotates.
    role: str | None = None
    public_keys: list[str] = field(default_factory=list)
    # Where the peer trades (UFTP): the entity addresses of the congestion points it is
    # active at.
    congestion_points: list[str] = field(default_factory=list)


def _time(text: Any) -> datetime | None:
    return None if not text else datetime.fromisoformat(text)


def _text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _required_time(text: Any) -> datetime:
    moment = _time(text)
    if moment is None:
        raise ValueError("a stored peer state lacks a time")
    return moment


def _blocks(rows: Any) -> list[Block]:
    return [Block(_required_time(s), _required_time(e), float(kw)) for s, e, kw in rows]


def _group(raw: Mapping[str, Any]) -> GroupLink:
    return GroupLink(
        _time(raw.get("sent_at")), bool(raw.get("dirty")), raw.get("unit"), raw.get("phase")
    )


def _fallback(raw: Mapping[str, Any]) -> Fallback:
    return Fallback(
        _blocks(raw.get("blocks", [])),
        raw["unit"],
        raw["phase"],
        _required_time(raw["received_at"]),
        bool(raw.get("applied")),
        _time(raw.get("applied_at")),
    )


def _request(raw: Mapping[str, Any]) -> CapacityRequest:
    return CapacityRequest(
        raw.get("kind", raw.get("type", "")),
        raw["request_id"],
        _required_time(raw["received_at"]),
        _required_time(raw["start"]),
        _required_time(raw["end"]),
    )


def decode(raw: Mapping[str, Any]) -> PeerState:
    """The state in a peer row's JSON, of any schema version so far."""
    complaint = raw.get("complaint", raw.get("compliance_error"))
    requests = raw.get("capacity_requests", raw.get("adjust_requests", {}))
    interval = raw.get("heartbeat_interval")
    return PeerState(
        unknown_ids=UnknownIds(raw.get("unknown_ids", UnknownIds.STRICT)),
        dialect=raw.get("dialect"),
        version=raw.get("version"),
        registered_at=_time(raw.get("registered_at")),
        endpoint_updated_at=_time(raw.get("endpoint_updated_at")),
        unregistered_at=_time(raw.get("unregistered_at")),
        handshaken_at=_time(raw.get("handshaken_at")),
        heartbeat_interval=None if interval is None else float(interval),
        next_heartbeat_at=_time(raw.get("next_heartbeat_at")),
        last_heartbeat_at=_time(raw.get("last_heartbeat_at")),
        offline_mode_at=_time(raw.get("offline_mode_at")),
        online=raw.get("online"),
        offline_since=_time(raw.get("offline_since")),
        measurement_configuration=raw.get("measurement_configuration"),
        groups={g: _group(entry) for g, entry in raw.get("groups", {}).items()},
        fallbacks={
            # version 0 keyed them by the OSCP type: FALLBACK_CONSUMPTION
            g: {kind.removeprefix("FALLBACK_"): _fallback(entry) for kind, entry in kinds.items()}
            for g, kinds in raw.get("fallbacks", {}).items()
        },
        capacity_requests={g: _request(entry) for g, entry in requests.items()},
        complaint=None
        if not complaint
        else Complaint(
            complaint["message"], complaint["request_id"], _required_time(complaint["received_at"])
        ),
        system=raw.get("system"),
        messages=list(raw.get("messages") or []),
        role=raw.get("role"),
        public_keys=list(raw.get("public_keys") or []),
        congestion_points=list(raw.get("congestion_points") or []),
    )


def _encode_blocks(blocks: list[Block]) -> list[list[Any]]:
    return [[b.start.isoformat(), b.end.isoformat(), b.kw] for b in blocks]


def encode(state: PeerState) -> dict[str, Any]:
    """The state as the JSON a peer row keeps (the current schema version)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "unknown_ids": str(state.unknown_ids),
        "dialect": state.dialect,
        "version": state.version,
        "registered_at": _text(state.registered_at),
        "endpoint_updated_at": _text(state.endpoint_updated_at),
        "unregistered_at": _text(state.unregistered_at),
        "handshaken_at": _text(state.handshaken_at),
        "heartbeat_interval": state.heartbeat_interval,
        "next_heartbeat_at": _text(state.next_heartbeat_at),
        "last_heartbeat_at": _text(state.last_heartbeat_at),
        "offline_mode_at": _text(state.offline_mode_at),
        "online": state.online,
        "offline_since": _text(state.offline_since),
        "measurement_configuration": state.measurement_configuration,
        "groups": {
            g: {"sent_at": _text(e.sent_at), "dirty": e.dirty, "unit": e.unit, "phase": e.phase}
            for g, e in state.groups.items()
        },
        "fallbacks": {
            g: {
                kind: {
                    "blocks": _encode_blocks(f.blocks),
                    "unit": f.unit,
                    "phase": f.phase,
                    "received_at": _text(f.received_at),
                    "applied": f.applied,
                    "applied_at": _text(f.applied_at),
                }
                for kind, f in kinds.items()
            }
            for g, kinds in state.fallbacks.items()
        },
        "capacity_requests": {
            g: {
                "kind": r.kind,
                "request_id": r.request_id,
                "received_at": _text(r.received_at),
                "start": _text(r.start),
                "end": _text(r.end),
            }
            for g, r in state.capacity_requests.items()
        },
        "complaint": None
        if state.complaint is None
        else {
            "message": state.complaint.message,
            "request_id": state.complaint.request_id,
            "received_at": _text(state.complaint.received_at),
        },
        "system": state.system,
        "messages": list(state.messages),
        "role": state.role,
        "public_keys": list(state.public_keys),
        "congestion_points": list(state.congestion_points),
    }


def state_of(peer: Peer) -> PeerState:
    """The peer's state as its row was read (a copy: change it through `edit`)."""
    return decode(peer.state)


async def save(
    tx: AsyncConnection, locked: Peer, state: PeerState, *, seen: datetime | None = None
) -> Peer:
    """Write `state` for a peer read in this transaction with its row locked."""
    return await replace_state(tx, locked.tenant, locked, encode(state), seen=seen)


async def current(tx: AsyncConnection, peer: Peer) -> tuple[Peer, PeerState]:
    """The peer as stored now, its row locked, and its state (written back by `save`)."""
    locked = await get_peer(tx, peer.tenant, peer.id, for_update=True)
    return locked, state_of(locked)


@asynccontextmanager
async def edit(
    tx: AsyncConnection, peer: Peer, *, seen: datetime | None = None
) -> AsyncIterator[PeerState]:
    """The peer's current state, its row locked, written back when the block ends."""
    locked, state = await current(tx, peer)
    yield state
    await save(tx, locked, state, seen=seen)
