"""What makes a sent plan stale, in one place, and the clock's re-send.

Triggers (each marks the groups concerned dirty for every peer that tracks them,
hub.optimum; the clock re-plans and re-sends them):
- a new maximum capacity: answered at once by the protocol that received it
  (hub.optimum.request_optimum), not here;
- metering, measurements, prices and every other series the planner reads
  (`PLAN_INPUTS`), saved on a group or on an asset below it, by any protocol:
  `inputs_changed`;
- fallbacks: applied (planned at once, hub.fallbacks) and withdrawn (`inputs_changed`);
- the schedule: a tracked group with flexible assets (hub.planning.has_flexible_assets)
  whose last optimum is `Hub.replan_every` old is due, changed inputs or not. Its plan
  moves on with time though nothing was sent (the horizon rolls, naive forecasts follow
  yesterday, a battery's charge is what it became); a group without flexible assets only
  has the headroom, which changes only with its inputs.

`resend_changed` asks for the plan of each due group over `horizon` from the current quarter
hour (a plan job, hub.plan_jobs), a dirty one at most every `Hub.resend_after`, one group per
transaction with the peer's row locked, so that two processes sharing a database do not both
ask. Every protocol's clock
calls it, so each protocol that answers limits re-plans on the schedule alike
(docs/protocols/ocmp-1.0.md, "Re-planning").
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.capacity import quarter
from hub.ids import GROUP, find_id, ids_of_it_and_parents
from hub.optimum import mark_dirty, request_optimum
from hub.peer_state import GroupLink, PeerState, state_of
from hub.planning import has_flexible_assets
from hub.runtime import Hub
from store.db import Database
from store.entities import Entity
from store.peers import Peer, get_peer, list_peers, peers_of_protocol
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


def _older(link: GroupLink, age: timedelta, now: datetime) -> bool:
    return link.sent_at is None or now - link.sent_at >= age


def due_groups(
    state: PeerState, hub: Hub, now: datetime, scheduled: Collection[str] = ()
) -> list[str]:
    """The groups to re-send now: dirty ones past `resend_after`; of `scheduled` (the groups
    with flexible assets), those whose last optimum is `replan_every` old."""
    every = hub.replan_every
    return [
        group_id
        for group_id, link in state.groups.items()
        if (link.dirty and _older(link, hub.resend_after, now))
        or (every is not None and group_id in scheduled and _older(link, every, now))
    ]


async def _scheduled(tx: AsyncConnection, hub: Hub, peer: Peer, now: datetime) -> set[str]:
    """The peer's groups that the schedule makes due: flexible assets, last optimum old.
    Only groups whose last optimum is old enough are looked at (a read of the group's
    children each), so between sends a beat reads nothing more than before."""
    every = hub.replan_every
    if every is None:
        return set()
    found: set[str] = set()
    for group_id, link in state_of(peer).groups.items():
        if not _older(link, every, now):
            continue
        group = await find_id(tx, peer, GROUP, group_id)
        if group is not None and await has_flexible_assets(tx, peer.tenant, group, now):
            found.add(group_id)
    return found


async def resend_changed(
    db: Database,
    hub: Hub,
    now: datetime,
    protocol: str,
    horizon: timedelta,
) -> int:
    """Ask for the plans of the due groups of every peer of `protocol` (dirty ones, and those
    the schedule makes due), which are sent when made; how many were asked for."""
    async with db.read() as tx:
        peers = await peers_of_protocol(tx, protocol)
        scheduled = {peer.id: await _scheduled(tx, hub, peer, now) for peer in peers}
    sent = 0
    for peer in peers:
        for group_id in due_groups(state_of(peer), hub, now, scheduled[peer.id]):
            async with db.transaction() as tx:
                locked = await get_peer(tx, peer.tenant, peer.id, for_update=True)
                if group_id not in due_groups(state_of(locked), hub, now, scheduled[peer.id]):
                    continue  # another process sent it
                group = await find_id(tx, locked, GROUP, group_id)
                if group is None:
                    continue  # the operator removed the group since
                start = quarter(now)
                await request_optimum(tx, locked, group, group_id, start, start + horizon)
                sent += 1
    return sent
