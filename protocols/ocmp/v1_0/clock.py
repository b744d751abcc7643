"""What OCMP 1.0 does on the adapter's clock: heartbeats at the interval each peer asked
for, offline detection, and optimal forecasts re-sent for groups whose inputs changed (at
most every `Hub.resend_after`, over the rolling 24 hours from now)."""

from __future__ import annotations

from datetime import datetime

from protocols.common.context import Hub
from protocols.common.peer_link import Heartbeats, beat, iso
from protocols.common.replan import resend_changed
from protocols.ocmp.v1_0.messages import HORIZON, PROTOCOL, send_optimal
from store.db import Database

HEARTBEATS = Heartbeats(PROTOCOL, "/heartbeat", lambda until: {"offline_mode_at": iso(until)})


async def tick(db: Database, hub: Hub, now: datetime) -> None:
    if await beat(db, HEARTBEATS, now):
        hub.wake_outbox()

    async def send(tx, peer, group, group_id, start, end):  # type: ignore[no-untyped-def]
        return await send_optimal(tx, hub, peer, group, group_id, start, end)

    if await resend_changed(db, hub, now, PROTOCOL, HORIZON, send):
        hub.wake_outbox()
