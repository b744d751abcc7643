"""What OSCP 2.0 does on the adapter's clock: our heartbeats at the interval each peer
required, offline detection (protocols.common.peer_link.beat), fallback forecasts applied for
peers gone offline, and OPTIMUM forecasts re-sent for groups whose inputs changed (at most
every `Hub.resend_after`, over optimum.HORIZON from now)."""

from __future__ import annotations

from datetime import UTC, datetime

from protocols.common.capacity import BLOCK, resolve_id
from protocols.common.context import Hub
from protocols.common.peer_link import Heartbeats, beat, iso, moment
from protocols.oscp.v2_0 import fallback
from protocols.oscp.v2_0.link import PROTOCOL
from protocols.oscp.v2_0.optimum import HORIZON, send_optimum
from store.db import Database
from store.errors import StoreError
from store.peers import Peer, get_peer, peers_of_protocol

HEARTBEATS = Heartbeats(PROTOCOL, "/heartbeat", lambda until: {"offline_mode_at": iso(until)})


async def tick(db: Database, hub: Hub, now: datetime) -> None:
    async with db.read() as tx:
        if not await peers_of_protocol(tx, PROTOCOL):
            return  # one cheap look per tick on a server without OSCP peers
    if await beat(db, HEARTBEATS, now):
        hub.wake_outbox()
    if await fallback.apply_due(db):
        hub.wake_outbox()
    if await _resend_changed(db, hub, now):
        hub.wake_outbox()


def _due_groups(peer: Peer, hub: Hub, now: datetime) -> list[str]:
    due = []
    for group_id, entry in peer.state.get("groups", {}).items():
        sent = moment(entry, "sent_at")
        if entry.get("dirty") and (sent is None or now - sent >= hub.resend_after):
            due.append(group_id)
    return due


async def _resend_changed(db: Database, hub: Hub, now: datetime) -> int:
    async with db.read() as tx:
        peers = await peers_of_protocol(tx, PROTOCOL)
    sent = 0
    for peer in peers:
        for group_id in _due_groups(peer, hub, now):
            async with db.transaction() as tx:
                current = await get_peer(tx, peer.tenant, peer.id, for_update=True)
                if group_id not in _due_groups(current, hub, now):
                    continue  # another process sent it
                try:
                    found = await resolve_id(tx, peer.tenant, current, "group", group_id, "")
                except StoreError:
                    continue  # the operator removed the group since
                start = _floor(now)
                sent += await send_optimum(
                    tx, current, found.entity, group_id, start, start + HORIZON, hub
                )
    return sent


def _floor(now: datetime) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    return now - (now - epoch) % BLOCK
