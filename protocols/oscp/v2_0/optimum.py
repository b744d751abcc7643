"""The OPTIMUM UpdateGroupCapacityForecast we send the peer, and the bookkeeping of which
groups need one.

Peer state `groups`, per group_id the peer sends forecasts for:

    unit, phase   how the peer's last CONSUMPTION forecast spoke (our answer speaks alike)
    sent_at       when our last OPTIMUM for it was queued
    dirty         its inputs changed since (new measurements): the clock re-sends it
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from protocols.common.capacity import from_kw, plan_group
from protocols.common.context import Hub
from protocols.oscp.v2_0.link import PROTOCOL, send
from protocols.oscp.v2_0.times import iso
from store.entities import Entity, connectors_of
from store.peers import Peer, get_peer, update_peer
from store.references import references_of

# The clock re-plans dirty groups over this much time from now (OSCP fixes no horizon; a
# day-ahead forecast made late in the day reaches almost 48 hours out).
HORIZON = timedelta(hours=48)
PATH = "/update_group_capacity_forecast"


async def remember_group(
    tx: AsyncConnection, peer: Peer, group_id: str, **changes: Any
) -> dict[str, Any]:
    """Merge `changes` into the group's entry of the peer's state; returns the entry."""
    current = await get_peer(tx, peer.tenant, peer.id, for_update=True)
    groups = dict(current.state.get("groups", {}))
    entry = {**groups.get(group_id, {}), **changes}
    groups[group_id] = entry
    await update_peer(tx, peer.tenant, current, state={"groups": groups})
    return entry


async def send_optimum(
    tx: AsyncConnection,
    peer: Peer,
    group: Entity,
    group_id: str,
    start: datetime,
    end: datetime,
    hub: Hub | None = None,
) -> int:
    """Plan the group over [start, end) and queue the OPTIMUM forecast to the peer, one block
    per quarter hour with a MaxCapacity; returns how many blocks were sent. With the `hub`,
    the solve runs in its process pool and the plan goes to the other protocols' hooks."""
    if hub is None:
        plan = await plan_group(tx, peer.tenant, group, start, end)
    else:
        plan = await plan_group(
            tx, peer.tenant, group, start, end, solve=hub.solve, hooks=hub.plan_hooks
        )
    entry = (await get_peer(tx, peer.tenant, peer.id)).state.get("groups", {}).get(group_id, {})
    unit, phase = entry.get("unit", "KW"), entry.get("phase", "ALL")
    sent = False
    if plan:
        body = {
            "group_id": group_id,
            "type": "OPTIMUM",
            "forecasted_blocks": [
                {
                    "capacity": round(from_kw(group, b.kw, unit), 3),
                    "phase": phase,
                    "unit": unit,
                    "start_time": iso(b.start),
                    "end_time": iso(b.end),
                }
                for b in plan
            ],
        }
        sent = await send(tx, peer, "UpdateGroupCapacityForecast", PATH, body)
    await remember_group(tx, peer, group_id, dirty=False, sent_at=iso(datetime.now(UTC)))
    return len(plan) if sent else 0


async def mark_dirty(tx: AsyncConnection, peer: Peer, group_ids: Iterable[str]) -> None:
    """These groups' inputs changed: the clock re-sends their OPTIMUM (only groups the peer
    sent a forecast for; we answer forecasts, we do not start conversations)."""
    known = (await get_peer(tx, peer.tenant, peer.id)).state.get("groups", {})
    for group_id in set(group_ids):
        if group_id in known:
            await remember_group(tx, peer, group_id, dirty=True)


async def groups_of(tx: AsyncConnection, peer: Peer, asset: Entity) -> list[str]:
    """The group_ids the peer uses for the asset's parents."""
    found = []
    for connector in await connectors_of(tx, peer.tenant, asset, direction="parent"):
        refs = await references_of(
            tx, peer.tenant, connector.parent, system=f"{PROTOCOL}:{peer.name}"
        )
        found += [ref.external_key for ref in refs]
    return found
