"""FALLBACK_CONSUMPTION and FALLBACK_GENERATION forecasts: the capacity that holds while
their sender is offline (OSCP 2.0: "While a peer is offline, FALLBACK_* capacity forecasts
apply").

A fallback is not a forecast of what holds now, so it is kept aside, in the peer's state
(`fallbacks`: group_id -> type -> blocks in kW, unit, phase, applied), not in the group's
series. It is applied when the peer is offline, i.e. when the clock has marked it so (its
offline_mode_at passed without a new heartbeat; a peer that never sent a heartbeat is not
taken as offline): its blocks are written as the group's limit (source "<peer>:fallback")
and, for FALLBACK_CONSUMPTION, the group is re-planned and an OPTIMUM sent. When the peer is
back (a heartbeat), the blocks are written again from the peer's own forecast for them
(source "<peer>"), or as unknown where it sent none, and the clock re-sends the OPTIMUM.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from protocols.common.capacity import Block, resolve_id
from protocols.oscp.v2_0.limits import CONSUMPTION, SERIES, clear_limit, store_limit
from protocols.oscp.v2_0.optimum import mark_dirty, remember_group, send_optimum
from protocols.oscp.v2_0.times import iso
from store.db import Database
from store.entities import Entity
from store.errors import StoreError
from store.peers import Peer, get_peer, peers_of_protocol, update_peer
from store.series import find_series
from store.values import read_values

log = logging.getLogger("flexbridge.oscp")

KINDS = {"FALLBACK_CONSUMPTION": CONSUMPTION, "FALLBACK_GENERATION": "GENERATION"}


def is_offline(peer: Peer) -> bool:
    """As the clock last judged (an explicit False; never heard of is not offline)."""
    return peer.state.get("online") is False


def source_of(peer: Peer) -> str:
    return f"{peer.name}:fallback"


def _encode(blocks: Sequence[Block]) -> list[list[Any]]:
    return [[iso(b.start), iso(b.end), b.kw] for b in blocks]


def _decode(rows: Sequence[Sequence[Any]]) -> list[Block]:
    return [
        Block(datetime.fromisoformat(s), datetime.fromisoformat(e), float(kw)) for s, e, kw in rows
    ]


async def _fallbacks(tx: AsyncConnection, peer: Peer) -> dict[str, dict[str, Any]]:
    current = await get_peer(tx, peer.tenant, peer.id, for_update=True)
    return {g: dict(kinds) for g, kinds in current.state.get("fallbacks", {}).items()}


async def keep(
    tx: AsyncConnection,
    peer: Peer,
    group: Entity,
    group_id: str,
    wire_type: str,
    blocks: Sequence[Block],
    unit: str,
    phase: str,
) -> bool:
    """Keep a fallback forecast (replacing the last of its type for the group); applied at
    once when the peer is offline. Returns whether it was applied."""
    fallbacks = await _fallbacks(tx, peer)
    kinds = fallbacks.setdefault(group_id, {})
    old = kinds.get(wire_type)
    if old and old.get("applied"):
        await _restore(tx, peer, group, KINDS[wire_type], _decode(old["blocks"]))
    kinds[wire_type] = {
        "blocks": _encode(blocks),
        "unit": unit,
        "phase": phase,
        "received_at": iso(datetime.now(UTC)),
        "applied": False,
    }
    await update_peer(tx, peer.tenant, peer, state={"fallbacks": fallbacks})
    if is_offline(peer):
        await apply(tx, peer)
        return True
    return False


async def apply(tx: AsyncConnection, peer: Peer) -> int:
    """Apply every fallback of the peer not yet applied; returns how many OPTIMUM blocks
    were queued."""
    fallbacks = await _fallbacks(tx, peer)
    sent = 0
    for group_id, kinds in fallbacks.items():
        for wire_type, entry in kinds.items():
            if entry.get("applied"):
                continue
            group = await _group(tx, peer, group_id)
            if group is None:  # nothing to apply it to; not tried again every tick
                kinds[wire_type] = {**entry, "applied": True}
                continue
            blocks = _decode(entry["blocks"])
            kind = KINDS[wire_type]
            await store_limit(tx, peer.tenant, group, kind, blocks, source_of(peer))
            kinds[wire_type] = {**entry, "applied": True, "applied_at": iso(datetime.now(UTC))}
            log.warning(
                "oscp peer %r offline: %s for group %r applied", peer.name, wire_type, group_id
            )
            if kind == CONSUMPTION and blocks:
                known = peer.state.get("groups", {}).get(group_id, {})
                await remember_group(
                    tx,
                    peer,
                    group_id,
                    unit=known.get("unit", entry["unit"]),
                    phase=known.get("phase", entry["phase"]),
                )
                sent += await send_optimum(
                    tx, peer, group, group_id, blocks[0].start, blocks[-1].end
                )
    await update_peer(tx, peer.tenant, peer, state={"fallbacks": fallbacks})
    return sent


async def restore(tx: AsyncConnection, peer: Peer) -> None:
    """The peer is back: its own forecasts hold again where fallbacks were applied."""
    fallbacks = await _fallbacks(tx, peer)
    dirty = []
    for group_id, kinds in fallbacks.items():
        for wire_type, entry in kinds.items():
            if not entry.get("applied"):
                continue
            group = await _group(tx, peer, group_id)
            if group is not None:
                await _restore(tx, peer, group, KINDS[wire_type], _decode(entry["blocks"]))
                if KINDS[wire_type] == CONSUMPTION:
                    dirty.append(group_id)
            kinds[wire_type] = {**entry, "applied": False}
    await update_peer(tx, peer.tenant, peer, state={"fallbacks": fallbacks})
    await mark_dirty(tx, peer, dirty)


async def apply_due(db: Database) -> int:
    """The clock's part: apply the fallbacks of offline peers; returns OPTIMUM blocks queued."""
    async with db.read() as tx:
        peers = await peers_of_protocol(tx, "oscp")
    sent = 0
    for peer in peers:
        if not (is_offline(peer) and _pending(peer)):
            continue
        async with db.transaction() as tx:
            current = await get_peer(tx, peer.tenant, peer.id, for_update=True)
            if is_offline(current) and _pending(current):
                sent += await apply(tx, current)
    return sent


def _pending(peer: Peer) -> bool:
    return any(
        not entry.get("applied")
        for kinds in peer.state.get("fallbacks", {}).values()
        for entry in kinds.values()
    )


async def _group(tx: AsyncConnection, peer: Peer, group_id: str) -> Entity | None:
    try:
        return (await resolve_id(tx, peer.tenant, peer, "group", group_id, "group_id")).entity
    except StoreError:  # the operator removed the group since: nothing to apply it to
        log.warning("oscp peer %r: fallback for unknown group %r skipped", peer.name, group_id)
        return None


async def _restore(
    tx: AsyncConnection, peer: Peer, group: Entity, kind: str, blocks: Sequence[Block]
) -> None:
    """Write the peer's own values over the fallback's blocks again (null where none)."""
    if not blocks:
        return
    own: dict[datetime, float | None] = {}
    series = await find_series(tx, peer.tenant, group, SERIES[kind])
    if series is not None:
        points = await read_values(
            tx, peer.tenant, series, blocks[0].start, blocks[-1].end, sources=[peer.name]
        )
        own = {p.start: p.value for p in points}
    values = [Block(b.start, b.end, own.get(b.start)) for b in blocks]  # type: ignore[arg-type]
    present = [b for b in values if b.kw is not None]
    absent = [b for b in values if b.kw is None]
    if present:
        await store_limit(tx, peer.tenant, group, kind, present, peer.name)
    if absent:
        await clear_limit(tx, peer.tenant, group, kind, absent, peer.name)
