"""A group's optimal capacity for the peer that sends its limits (OCMP's optimal forecast,
OSCP's OPTIMUM), and the bookkeeping of which groups need one.

Asking for an optimum (`request_optimum`) stores a plan job; the job runs off the request
path (hub.plan_jobs) and hands the plan to the protocol's `SendOptimum`, which encodes and
queues it.

The peer's state keeps, per group id it sent a forecast for (`PeerState.groups`), when our
last optimum went out, whether its inputs changed since (`dirty`: the clock re-sends it,
hub.replan) and how the peer spoke (unit, phase: our answer speaks alike). We answer
forecasts; we do not start conversations, so a group the peer never sent a forecast for is
not tracked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.capacity import Block
from hub.peer_state import GroupLink, current, edit, save
from store.entities import Entity
from store.peers import Peer
from store.plan_jobs import request_plan


@dataclass(frozen=True, slots=True)
class Optimum:
    """A group's optimal capacity, for the peer that tracks the group as `group_id`."""

    peer: Peer
    group: Entity
    group_id: str
    link: GroupLink  # how the peer's forecasts speak
    blocks: Sequence[Block]

    @property
    def topic(self) -> str:
        """The outbox topic: a newer optimum of the same group and window supersedes an
        undelivered older one (the peer must never act on a stale capacity once a newer one
        is made); optima of other windows keep their order instead (store.outbox)."""
        start, end = self.blocks[0].start, self.blocks[-1].end
        return f"optimum:{self.group_id}:{start.isoformat()}/{end.isoformat()}"


# How a protocol encodes and queues an optimum; whether a message was queued.
SendOptimum = Callable[[AsyncConnection, Optimum], Awaitable[bool]]


async def track(
    tx: AsyncConnection, peer: Peer, group_id: str, *, unit: str | None, phase: str | None
) -> None:
    """The peer sent a forecast for the group (speaking `unit` and `phase`)."""
    async with edit(tx, peer) as state:
        link = state.groups.setdefault(group_id, GroupLink())
        link.unit, link.phase = unit or link.unit, phase or link.phase


async def mark_dirty(tx: AsyncConnection, peer: Peer, group_ids: Iterable[str]) -> None:
    """These groups' inputs changed: the clock re-sends their optimum (tracked ones only)."""
    locked, state = await current(tx, peer)
    wanted = set(group_ids).intersection(state.groups)
    for group_id in wanted:
        state.groups[group_id].dirty = True
    if wanted:
        await save(tx, locked, state)


async def request_optimum(
    tx: AsyncConnection,
    peer: Peer,
    group: Entity,
    group_id: str,
    start: datetime,
    end: datetime,
) -> None:
    """Ask for the group's plan over [start, end) for the peer: a plan job (hub.plan_jobs),
    committed with `tx`, which plans the group and has the peer's protocol send the optimum.
    The group is clean from this request on: inputs that change later ask again."""
    await request_plan(
        tx,
        tenant_id=peer.tenant.id,
        peer_id=peer.id,
        group_key=group_id,
        entity_id=group.id,
        start=start,
        end=end,
    )
    async with edit(tx, peer) as state:
        entry = state.groups.setdefault(group_id, GroupLink())
        entry.dirty, entry.sent_at = False, datetime.now(UTC)
