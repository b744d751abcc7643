"""Fallback capacity: a limit a peer gives for the time it is offline (OSCP 2.0: "While a
peer is offline, FALLBACK_* capacity forecasts apply").

A fallback is no forecast of what holds now, so it is kept aside in the peer's state
(`PeerState.fallbacks`: group id -> limit -> blocks in kW, unit, phase, applied), not in the
group's series. It is applied while the peer is offline, i.e. once the clock has marked it
so (a peer never heard of is not offline): its blocks are written as the group's limit
(source "<peer>:fallback") and, for a CONSUMPTION limit, the group is planned and the
optimum sent, through the hub's planning like every other plan. When the peer is back (a
heartbeat), the blocks are written again from the peer's own values for them (source
"<peer>"), or as unknown where it sent none, and the group is re-sent at the clock's next
tick.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.capacity import SERIES, Block, Limit, clear_limit, store_limit
from hub.ids import GROUP, resolve_id
from hub.optimum import mark_dirty, request_optimum, track
from hub.peer_state import Fallback, PeerState, current, save, state_of
from store.db import Database
from store.entities import Entity
from store.errors import StoreError
from store.peers import Peer, get_peer, peers_of_protocol
from store.series import find_series
from store.values import read_values

log = logging.getLogger("flexbridge.fallbacks")


def source_of(peer: Peer) -> str:
    return f"{peer.name}:fallback"


async def keep(
    tx: AsyncConnection,
    peer: Peer,
    group: Entity,
    group_id: str,
    limit: Limit,
    blocks: Sequence[Block],
    unit: str,
    phase: str,
) -> bool:
    """Keep a fallback (replacing the last for the group's limit); applied at once when the
    peer is offline. Returns whether it was applied."""
    locked, state = await current(tx, peer)
    old = state.fallbacks.get(group_id, {}).get(limit)
    if old is not None and old.applied:
        await _restore(tx, locked, group, limit, old.blocks)
    state.fallbacks.setdefault(group_id, {})[limit] = Fallback(
        list(blocks), unit, phase, datetime.now(UTC)
    )
    locked = await save(tx, locked, state)
    if state.online is False:
        await apply(tx, locked)
        return True
    return False


async def apply(tx: AsyncConnection, peer: Peer) -> int:
    """Apply every fallback of the peer not yet applied; returns how many optima it asked
    for (hub.optimum.request_optimum)."""
    locked, state = await current(tx, peer)
    consumption: list[tuple[Entity, str, Fallback]] = []
    for group_id, limits in state.fallbacks.items():
        for limit, fallback in limits.items():
            if fallback.applied:
                continue
            fallback.applied, fallback.applied_at = True, datetime.now(UTC)
            group = await _group(tx, locked, group_id)
            if group is None:  # nothing to apply it to; not tried again every tick
                continue
            await store_limit(
                tx, locked.tenant, group, Limit(limit), fallback.blocks, source_of(locked)
            )
            log.warning(
                "%s peer %r offline: fallback %s for group %r applied",
                locked.protocol,
                locked.name,
                limit,
                group_id,
            )
            if limit == Limit.CONSUMPTION and fallback.blocks:
                consumption.append((group, group_id, fallback))
    locked = await save(tx, locked, state)
    for group, group_id, fallback in consumption:
        if group_id not in state.groups:  # else our optimum speaks as its last forecast did
            await track(tx, locked, group_id, unit=fallback.unit, phase=fallback.phase)
        start, end = fallback.blocks[0].start, fallback.blocks[-1].end
        await request_optimum(tx, locked, group, group_id, start, end)
    return len(consumption)


async def restore(tx: AsyncConnection, peer: Peer) -> None:
    """The peer is back: its own limits hold again where fallbacks were applied."""
    locked, state = await current(tx, peer)
    dirty = []
    for group_id, limits in state.fallbacks.items():
        for limit, fallback in limits.items():
            if not fallback.applied:
                continue
            group = await _group(tx, locked, group_id)
            if group is not None:
                await _restore(tx, locked, group, Limit(limit), fallback.blocks)
                if limit == Limit.CONSUMPTION:
                    dirty.append(group_id)
            fallback.applied = False
    locked = await save(tx, locked, state)
    await mark_dirty(tx, locked, dirty)


def pending(state: PeerState) -> bool:
    return any(not f.applied for limits in state.fallbacks.values() for f in limits.values())


async def apply_due(db: Database, protocol: str) -> int:
    """The clock's part: apply the fallbacks of offline peers; returns how many optima it
    asked for."""
    async with db.read() as tx:
        peers = await peers_of_protocol(tx, protocol)
    sent = 0
    for peer in peers:
        state = state_of(peer)
        if not (state.online is False and pending(state)):
            continue
        async with db.transaction() as tx:
            locked = await get_peer(tx, peer.tenant, peer.id, for_update=True)
            state = state_of(locked)
            if state.online is False and pending(state):
                sent += await apply(tx, locked)
    return sent


async def _group(tx: AsyncConnection, peer: Peer, group_id: str) -> Entity | None:
    try:
        return (await resolve_id(tx, peer, GROUP, group_id, "group_id")).entity
    except StoreError:  # the operator removed the group since: nothing to apply it to
        log.warning(
            "%s peer %r: fallback for unknown group %r skipped", peer.protocol, peer.name, group_id
        )
        return None


async def _restore(
    tx: AsyncConnection, peer: Peer, group: Entity, limit: Limit, blocks: Sequence[Block]
) -> None:
    """Write the peer's own values over the fallback's blocks again (null where none)."""
    if not blocks:
        return
    own: dict[datetime, float | None] = {}
    series = await find_series(tx, peer.tenant, group, SERIES[limit])
    if series is not None:
        points = await read_values(
            tx, peer.tenant, series, blocks[0].start, blocks[-1].end, sources=[peer.name]
        )
        own = {p.start: p.value for p in points}
    present = [Block(b.start, b.end, kw) for b in blocks if (kw := own.get(b.start)) is not None]
    absent = [b for b in blocks if own.get(b.start) is None]
    if present:
        await store_limit(tx, peer.tenant, group, limit, present, peer.name)
    if absent:
        await clear_limit(tx, peer.tenant, group, limit, absent, peer.name)
