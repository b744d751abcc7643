"""What OSCP 2.0 does on the adapter's clock: our heartbeats at the interval each peer
required, offline detection (hub.peer_link.beat), fallback forecasts applied for peers gone
offline (hub.fallbacks), and OPTIMUM forecasts re-sent for groups whose inputs changed (at
most every `Hub.resend_after`, over forecasts.HORIZON from now)."""

from __future__ import annotations

from datetime import datetime

from hub import fallbacks
from hub.peer_link import Heartbeats, beat
from hub.replan import resend_changed
from hub.runtime import Hub
from protocols.oscp.v2_0 import codec
from protocols.oscp.v2_0.dialects import dialect_of
from protocols.oscp.v2_0.forecasts import HORIZON
from store.db import Database
from store.peers import peers_of_protocol

HEARTBEATS = Heartbeats(
    codec.PROTOCOL,
    "/heartbeat",
    lambda peer, until: {"offline_mode_at": dialect_of(peer).time(until)},
)


async def tick(db: Database, hub: Hub, now: datetime) -> None:
    async with db.read() as tx:
        if not await peers_of_protocol(tx, codec.PROTOCOL):
            return  # one cheap look per tick on a server without OSCP peers
    if await beat(db, HEARTBEATS, now):
        hub.wake_outbox()
    if await fallbacks.apply_due(db, codec.PROTOCOL):
        hub.wake_planner()
    if await resend_changed(db, hub, now, codec.PROTOCOL, HORIZON):
        hub.wake_planner()
