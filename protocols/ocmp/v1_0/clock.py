"""What OCMP 1.0 does on the adapter's clock: heartbeats at the interval each peer asked
for, offline detection, and optimal forecasts re-sent for groups whose inputs changed (at
most every `Hub.resend_after`, over the rolling 24 hours from now)."""

from __future__ import annotations

from datetime import UTC, datetime

from protocols.common.capacity import BLOCK
from protocols.common.context import Hub
from protocols.common.peer_link import Heartbeats, beat, iso, moment
from protocols.ocmp.v1_0.messages import HORIZON, PROTOCOL, send_optimal
from store.db import Database
from store.peers import Peer, get_peer, peers_of_protocol
from store.references import ProtocolId, find

HEARTBEATS = Heartbeats(PROTOCOL, "/heartbeat", lambda until: {"offline_mode_at": iso(until)})


async def tick(db: Database, hub: Hub, now: datetime) -> None:
    if await beat(db, HEARTBEATS, now):
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
                group = await find(
                    tx, peer.tenant, ProtocolId(PROTOCOL, peer.name, "group", group_id)
                )
                if group is None:
                    continue
                start = _floor(now)
                sent += await send_optimal(
                    tx, hub, current, group, group_id, start, start + HORIZON
                )
    return sent


def _floor(now: datetime) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    return now - (now - epoch) % BLOCK
