"""What OCMP 1.0 does on the adapter's clock: heartbeats at the interval each peer asked
for, offline detection, and optimal forecasts re-sent for groups whose inputs changed (at
most every `Hub.resend_after`, over the rolling 24 hours from now)."""

from __future__ import annotations

from datetime import datetime

from hub.peer_link import Heartbeats, beat
from hub.replan import resend_changed
from hub.runtime import Hub
from protocols.ocmp.v1_0 import codec
from protocols.ocmp.v1_0.capacity import HORIZON
from store.db import Database

HEARTBEATS = Heartbeats(codec.PROTOCOL, "/heartbeat", codec.heartbeat)


async def tick(db: Database, hub: Hub, now: datetime) -> None:
    if await beat(db, HEARTBEATS, now):
        hub.wake_outbox()
    if await resend_changed(db, hub, now, codec.PROTOCOL, HORIZON):
        hub.wake_planner()
