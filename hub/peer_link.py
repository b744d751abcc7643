"""The link with a peer that handshakes and beats (OCMP 1.0 and OSCP 2.0 alike).

A peer tells us, in its handshake, how often it wants our heartbeat; in its heartbeats,
until when it is to be taken as online (`offline_mode_at`). Both are kept in its
`PeerState`. `beat`, run by the adapter's clock, queues the heartbeats that are due and
marks peers whose offline_mode_at passed offline, in the message log and in the state (the
peer list and the metrics read it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from hub import outbound
from hub.peer_state import PeerState, edit, save, state_of
from store.db import Database
from store.errors import ValidationError
from store.messages import Direction, log_message
from store.peers import Peer, get_peer, peers_of_protocol

log = logging.getLogger("flexbridge.peers")

# Peers take us as offline after this many of our heartbeat intervals without one.
OFFLINE_AFTER_INTERVALS = 3
# The longest heartbeat interval a peer may ask for (the schemas say so too).
MAX_INTERVAL = timedelta(days=1)
HEARTBEAT_TOPIC = "heartbeat"


def is_online(peer: Peer) -> bool:
    """As the clock last judged: marked offline once offline_mode_at passed unrenewed."""
    return bool(state_of(peer).online)


def is_offline(peer: Peer) -> bool:
    """Judged offline by the clock (a peer never heard of is not offline)."""
    return state_of(peer).online is False


class HeartbeatLedger:
    """The heartbeats this process wrote in the last WINDOW seconds, by account: a peer that
    beats many times a second costs one write a second. A heartbeat is idempotent and only
    moves offline_mode_at forward, so skipping one that moves it less than WINDOW leaves the
    store at most WINDOW behind the peer's latest word (the clock could mark a peer that
    stops beating offline up to a second early)."""

    WINDOW = timedelta(seconds=1)

    def __init__(self) -> None:
        self._written: dict[int, tuple[float, datetime]] = {}

    def covers(self, account_id: int, offline_at: datetime) -> bool:
        entry = self._written.get(account_id)
        if entry is None or time.monotonic() - entry[0] >= self.WINDOW.total_seconds():
            return False
        return timedelta(0) <= offline_at - entry[1] < self.WINDOW

    def note(self, account_id: int, offline_at: datetime) -> None:
        self._written[account_id] = (time.monotonic(), offline_at)


@dataclass(frozen=True, slots=True)
class Heartbeats:
    """How one protocol sends its heartbeat."""

    protocol: str
    path: str
    body: Callable[[Peer, datetime], Mapping[str, Any]]  # (peer, offline_mode_at) -> body


async def record_heartbeat(tx: AsyncConnection, locked: Peer, offline_at: datetime) -> Peer:
    """A heartbeat from a peer read with its row locked (hub.inbound opens it so)."""
    now = datetime.now(UTC)
    state = state_of(locked)
    if not state.online:
        log.info("%s peer %r is online until %s", locked.protocol, locked.name, offline_at)
    state.last_heartbeat_at, state.offline_mode_at = now, offline_at
    state.online = offline_at > now
    return await save(tx, locked, state, seen=now)


async def record_interval(tx: AsyncConnection, peer: Peer, seconds: float | None) -> None:
    """The heartbeat interval the peer asked of us; the first heartbeat is due at once."""
    if seconds is not None and not 1 <= seconds <= MAX_INTERVAL.total_seconds():
        raise ValidationError("heartbeat_interval", f"must be 1 to 86400 seconds, got {seconds}")
    now = datetime.now(UTC)
    async with edit(tx, peer, seen=now) as state:
        state.handshaken_at = now
        if seconds is not None:
            state.heartbeat_interval, state.next_heartbeat_at = float(seconds), now


async def beat(db: Database, heartbeats: Heartbeats, now: datetime) -> int:
    """Send the heartbeats that are due and mark lapsed peers offline; returns how many
    heartbeats were queued. Each peer in its own transaction, its row locked, so that two
    processes sharing one database do not both send."""
    async with db.read() as tx:
        peers = await peers_of_protocol(tx, heartbeats.protocol)
    sent = 0
    for peer in peers:
        if not _due(state_of(peer), now) and not _lapsed(state_of(peer), now):
            continue
        async with db.transaction() as tx:
            current = await get_peer(tx, peer.tenant, peer.id, for_update=True)
            state = state_of(current)
            if _lapsed(state, now):
                await _mark_offline(tx, current, state)
            if _due(state, now) and current.base_url:
                await _send_heartbeat(tx, current, state, heartbeats, now)
                sent += 1
            await save(tx, current, state)
    return sent


def _due(state: PeerState, now: datetime) -> bool:
    due = state.next_heartbeat_at
    return due is not None and due <= now and bool(state.heartbeat_interval)


def _lapsed(state: PeerState, now: datetime) -> bool:
    offline_at = state.offline_mode_at
    return bool(state.online) and offline_at is not None and offline_at <= now


async def _mark_offline(tx: AsyncConnection, peer: Peer, state: PeerState) -> None:
    since = state.offline_mode_at
    log.warning("%s peer %r is offline: no heartbeat before %s", peer.protocol, peer.name, since)
    state.online, state.offline_since = False, since
    await log_message(
        tx,
        peer.tenant,
        protocol=peer.protocol,
        message_type="PeerOffline",
        direction=Direction.IN,
        status="offline",
        peer_id=peer.id,
        detail=f"no heartbeat from {peer.name!r} before {since}",
    )


async def _send_heartbeat(
    tx: AsyncConnection, peer: Peer, state: PeerState, heartbeats: Heartbeats, now: datetime
) -> None:
    assert state.heartbeat_interval is not None  # _due checked it
    interval = timedelta(seconds=state.heartbeat_interval)
    await outbound.send(
        tx,
        peer,
        protocol=heartbeats.protocol,
        message_type="Heartbeat",
        path=heartbeats.path,
        body=heartbeats.body(peer, now + OFFLINE_AFTER_INTERVALS * interval),
        # A heartbeat not delivered within its interval is worth nothing: the next one is due,
        # and a newer one makes an undelivered older one moot.
        deadline=interval,
        topic=HEARTBEAT_TOPIC,
    )
    state.next_heartbeat_at = now + interval
