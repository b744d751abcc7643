"""What makes a sent plan stale, in one place, and the clock's re-send.

Triggers (each marks the groups concerned dirty for every peer that tracks them,
hub.optimum; the clock re-plans and re-sends them):
- a new maximum capacity: answered at once by the protocol that received it
  (hub.optimum.send_optimum), not here;
- metering, measurements, prices and every other series the planner reads
  (`PLAN_INPUTS`), saved on a group or on an asset below it, by any protocol:
  `inputs_changed`;
- fallbacks: applied (planned at once, hub.fallbacks) and withdrawn (`inputs_changed`).

`resend_changed` re-plans each dirty group over `horizon` from the current quarter hour,
at most every `Hub.resend_after`, one group per transaction with the peer's row locked, so
that two processes sharing a database do not both send.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.capacity import quarter
from hub.ids import GROUP, find_id, ids_of_it_and_parents
from hub.optimum import SendOptimum, mark_dirty, send_optimum
from hub.peer_state import PeerState, state_of
from hub.runtime import Hub
from store.db import Database
from store.entities import Entity
from store.peers import get_peer, list_peers, peers_of_protocol
from store.series_types import SeriesType
from store.tenants import Tenant

# The series hub.planning reads: a change to any of them changes the plan.
PLAN_INPUTS = frozenset(
    {
        SeriesType.MAX_CAPACITY,
        SeriesType.CONSUMPTION,
        SeriesType.PRODUCTION,
        SeriesType.FORECASTED_SPOT_PRICE,
        SeriesType.SPOT_PRICE,
        SeriesType.ENERGY_LEVEL,
    }
)


async def inputs_changed(
    tx: AsyncConnection, tenant: Tenant, changed: Iterable[tuple[Entity, SeriesType]]
) -> int:
    """Series were written on these entities: every tracked group that is one of them, or
    that one of them is connected below, is re-sent at the clock's next tick. Returns how
    many peers had groups marked. Cheap when no peer of the tenant tracks a group."""
    entities = {e.id: e for e, series_type in changed if series_type in PLAN_INPUTS}
    if not entities:
        return 0
    trackers = [p for p in await list_peers(tx, tenant) if state_of(p).groups]
    for peer in trackers:
        ids: set[str] = set()
        for entity in entities.values():
            ids |= await ids_of_it_and_parents(tx, peer, entity)
        await mark_dirty(tx, peer, ids)
    return len(trackers)


def due_groups(state: PeerState, hub: Hub, now: datetime) -> list[str]:
    return [
        group_id
        for group_id, link in state.groups.items()
        if link.dirty and (link.sent_at is None or now - link.sent_at >= hub.resend_after)
    ]


async def resend_changed(
    db: Database,
    hub: Hub,
    now: datetime,
    protocol: str,
    horizon: timedelta,
    send: SendOptimum,
) -> int:
    """Re-plan and send the dirty groups of every peer of `protocol`; blocks sent."""
    async with db.read() as tx:
        peers = await peers_of_protocol(tx, protocol)
    sent = 0
    for peer in peers:
        for group_id in due_groups(state_of(peer), hub, now):
            async with db.transaction() as tx:
                locked = await get_peer(tx, peer.tenant, peer.id, for_update=True)
                if group_id not in due_groups(state_of(locked), hub, now):
                    continue  # another process sent it
                group = await find_id(tx, locked, GROUP, group_id)
                if group is None:
                    continue  # the operator removed the group since
                start = quarter(now)
                sent += await send_optimum(
                    tx, hub, locked, group, group_id, start, start + horizon, send
                )
    return sent
