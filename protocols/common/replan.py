"""Re-sending a group's optimal forecast when its inputs changed (OCMP 1.0 and OSCP 2.0).

A protocol marks a group dirty in its peer's state (`groups[group_id].dirty`) when metering,
measurements or fallbacks change what the plan would be; its clock calls `resend_changed`,
which re-plans each dirty group over `horizon` from the current quarter hour, at most every
`Hub.resend_after`, one group per transaction with the peer's row locked, so that two
processes sharing a database do not both send.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from protocols.common.capacity import find_id, quarter
from protocols.common.context import Hub
from protocols.common.peer_link import moment
from store.db import Database
from store.entities import Entity
from store.peers import Peer, get_peer, peers_of_protocol

# (tx, peer, group, group_id, start, end) -> how many blocks were sent
Send = Callable[[AsyncConnection, Peer, Entity, str, datetime, datetime], Awaitable[int]]


def due_groups(peer: Peer, hub: Hub, now: datetime) -> list[str]:
    due = []
    for group_id, entry in peer.state.get("groups", {}).items():
        sent = moment(entry, "sent_at")
        if entry.get("dirty") and (sent is None or now - sent >= hub.resend_after):
            due.append(group_id)
    return due


async def resend_changed(
    db: Database, hub: Hub, now: datetime, protocol: str, horizon: timedelta, send: Send
) -> int:
    """Re-plan and send the dirty groups of every peer of `protocol`; blocks sent."""
    async with db.read() as tx:
        peers = await peers_of_protocol(tx, protocol)
    sent = 0
    for peer in peers:
        for group_id in due_groups(peer, hub, now):
            async with db.transaction() as tx:
                current = await get_peer(tx, peer.tenant, peer.id, for_update=True)
                if group_id not in due_groups(current, hub, now):
                    continue  # another process sent it
                group = await find_id(tx, peer.tenant, current, "group", group_id)
                if group is None:
                    continue  # the operator removed the group since
                start = quarter(now)
                sent += await send(tx, current, group, group_id, start, start + horizon)
    return sent
