"""The link with a peer that handshakes and beats: OCMP 1.0 and OSCP 2.0 share it.

A peer tells us, in its handshake, where to reach it and how often it wants our heartbeat;
in its heartbeats, until when it is to be taken as online (`offline_mode_at`). What we know
lives in the peer's state (store.peers), so that every process and every restart sees it:

    handshaken_at        when its handshake arrived
    heartbeat_interval   seconds between the heartbeats it asked of us
    next_heartbeat_at    when our next heartbeat to it is due
    last_heartbeat_at    when its last heartbeat arrived
    offline_mode_at      until when its last heartbeat vouches for it
    online               false once offline_mode_at has passed without a new heartbeat

`beat` is run by the adapter's clock: it sends the heartbeats that are due (through the
outbox) and marks peers whose offline_mode_at has passed offline, in the message log and in
the peer's state (the peer list and the metrics read it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from store.db import Database
from store.errors import ValidationError
from store.messages import Direction, log_message
from store.outbox import enqueue
from store.peers import Peer, get_peer, peers_of_protocol, set_state, update_peer
from store.tenants import Tenant

log = logging.getLogger("flexbridge.peers")

# Peers take us as offline after this many of our heartbeat intervals without one.
OFFLINE_AFTER_INTERVALS = 3
# The longest heartbeat interval a peer may ask for (the schemas say so too).
MAX_INTERVAL = timedelta(days=1)


def iso(moment: datetime) -> str:
    """UTC with 'Z', as OSCP emits times."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def moment(state: dict[str, Any] | Any, key: str) -> datetime | None:
    text = state.get(key)
    return None if not text else datetime.fromisoformat(text)


def is_online(peer: Peer) -> bool:
    """As the clock last judged: marked offline once offline_mode_at passed unrenewed."""
    return bool(peer.state.get("online"))


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
    body: Callable[[datetime], dict[str, Any]]  # offline_mode_at -> message body


async def record_heartbeat(tx: Any, tenant: Tenant, locked: Peer, offline_at: datetime) -> Peer:
    """A heartbeat from a peer read with its row locked (store.peers.peer_for_account)."""
    now = datetime.now(UTC)
    if not locked.state.get("online", False):
        log.info("%s peer %r is online until %s", locked.protocol, locked.name, iso(offline_at))
    state = {
        "last_heartbeat_at": iso(now),
        "offline_mode_at": iso(offline_at),
        "online": offline_at > now,
    }
    return await set_state(tx, tenant, locked, state, seen=now)


async def record_interval(tx: Any, tenant: Tenant, peer: Peer, seconds: float | None) -> Peer:
    """The heartbeat interval the peer asked of us; the first heartbeat is due at once."""
    if seconds is not None and not 1 <= seconds <= MAX_INTERVAL.total_seconds():
        raise ValidationError("heartbeat_interval", f"must be 1 to 86400 seconds, got {seconds}")
    now = datetime.now(UTC)
    state: dict[str, Any] = {"handshaken_at": iso(now)}
    if seconds is not None:
        state |= {"heartbeat_interval": seconds, "next_heartbeat_at": iso(now)}
    return await update_peer(tx, tenant, peer, state=state, seen=now)


async def beat(db: Database, heartbeats: Heartbeats, now: datetime) -> int:
    """Send the heartbeats that are due and mark lapsed peers offline; returns how many
    heartbeats were queued. Each peer in its own transaction, its row locked, so that two
    processes sharing one database do not both send."""
    async with db.read() as tx:
        peers = await peers_of_protocol(tx, heartbeats.protocol)
    sent = 0
    for peer in peers:
        if not _due(peer, now) and not _lapsed(peer, now):
            continue
        async with db.transaction() as tx:
            current = await get_peer(tx, peer.tenant, peer.id, for_update=True)
            if _lapsed(current, now):
                await _mark_offline(tx, current, now)
            if _due(current, now) and current.base_url:
                await _send_heartbeat(tx, current, heartbeats, now)
                sent += 1
    return sent


def _due(peer: Peer, now: datetime) -> bool:
    due = moment(peer.state, "next_heartbeat_at")
    return due is not None and due <= now and bool(peer.state.get("heartbeat_interval"))


def _lapsed(peer: Peer, now: datetime) -> bool:
    offline_at = moment(peer.state, "offline_mode_at")
    return bool(peer.state.get("online")) and offline_at is not None and offline_at <= now


async def _mark_offline(tx: Any, peer: Peer, now: datetime) -> None:
    since = peer.state.get("offline_mode_at")
    log.warning("%s peer %r is offline: no heartbeat before %s", peer.protocol, peer.name, since)
    await update_peer(tx, peer.tenant, peer, state={"online": False, "offline_since": since})
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


async def _send_heartbeat(tx: Any, peer: Peer, heartbeats: Heartbeats, now: datetime) -> None:
    interval = timedelta(seconds=float(peer.state["heartbeat_interval"]))
    body = heartbeats.body(now + OFFLINE_AFTER_INTERVALS * interval)
    await enqueue(
        tx,
        peer.tenant,
        peer,
        protocol=heartbeats.protocol,
        message_type="Heartbeat",
        path=heartbeats.path,
        body=orjson.dumps(body),
        headers={"Content-Type": "application/json"},
        # A heartbeat not delivered within its interval is worth nothing: the next one is due.
        deadline=interval,
    )
    await update_peer(tx, peer.tenant, peer, state={"next_heartbeat_at": iso(now + interval)})
