"""What OSCP 2.0 does on the adapter's clock: our heartbeats at the interval each peer
required, offline detection (protocols.common.peer_link.beat), fallback forecasts applied for
peers gone offline, and OPTIMUM forecasts re-sent for groups whose inputs changed (at most
every `Hub.resend_after`, over optimum.HORIZON from now)."""

from __future__ import annotations

from datetime import datetime

from protocols.common.context import Hub
from protocols.common.peer_link import Heartbeats, beat, iso
from protocols.common.replan import resend_changed
from protocols.oscp.v2_0 import fallback
from protocols.oscp.v2_0.link import PROTOCOL
from protocols.oscp.v2_0.optimum import HORIZON, send_optimum
from store.db import Database
from store.peers import peers_of_protocol

HEARTBEATS = Heartbeats(PROTOCOL, "/heartbeat", lambda until: {"offline_mode_at": iso(until)})


async def tick(db: Database, hub: Hub, now: datetime) -> None:
    async with db.read() as tx:
        if not await peers_of_protocol(tx, PROTOCOL):
            return  # one cheap look per tick on a server without OSCP peers
    if await beat(db, HEARTBEATS, now):
        hub.wake_outbox()
    if await fallback.apply_due(db):
        hub.wake_outbox()

    async def send(tx, peer, group, group_id, start, end):  # type: ignore[no-untyped-def]
        return await send_optimum(tx, peer, group, group_id, start, end, hub)

    if await resend_changed(db, hub, now, PROTOCOL, HORIZON, send):
        hub.wake_outbox()
