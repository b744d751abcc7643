"""Group capacity as OCMP 1.0 and OSCP 2.0 exchange it: blocks of per-phase Amps (or kW)
in, the group's MaxCapacity in the store, the optimal capacity back out.

The store keeps capacities in kW on a 15-minute grid: a block of any whole number of
quarter hours is laid onto that grid (capacity is a power, so it repeats), and Amps become
kW with the group's NominalVoltage, PhaseCount and PowerFactor (230 V, 3 phases, 1.0 when
the group has none).

The optimal capacity is planned by `protocols.common.planning` (the optimizer, or the headroom
max(0, MaxCapacity - non-flexible load + PV) for a group without flexible assets).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from optimizer import GroupPlan, GroupProblem, solve_group
from protocols.common import planning
from protocols.common.planning import PlanHook, Solve
from store.catalogue import AssetSubType, AssetType
from store.entities import Entity, create_entity
from store.errors import ValidationError
from store.peers import Peer
from store.references import ProtocolId, add_reference, find, find_in_system
from store.series import ensure_series
from store.series_types import SeriesType
from store.tenants import Tenant
from store.units import (
    DEFAULT_PHASES,
    DEFAULT_POWER_FACTOR,
    DEFAULT_VOLTAGE,
    amps_to_kw,
    kw_to_amps,
)
from store.values import Point, write_values

BLOCK = timedelta(minutes=15)


class UnknownIds(StrEnum):
    """What an id the peer never told us about does (per peer, `flexbridge peer add`)."""

    STRICT = "strict"  # an error naming the id
    LENIENT = "lenient"  # a new area or resource, reported in the reply


@dataclass(frozen=True, slots=True)
class Block:
    start: datetime
    end: datetime
    kw: float


@dataclass(frozen=True, slots=True)
class Resolved:
    entity: Entity
    created: bool


def policy_of(peer: Peer) -> UnknownIds:
    return UnknownIds(peer.state.get("unknown_ids", UnknownIds.STRICT))


async def find_id(
    tx: AsyncConnection, tenant: Tenant, peer: Peer, kind: str, value: str
) -> Entity | None:
    """The entity the peer calls `kind` `value`: recorded by us, or by the operator as a
    CP-API cross-reference of system "<protocol>:<peer>" (of any ExternalEntityReferenceType)."""
    ref = ProtocolId(peer.protocol, peer.name, kind, value)
    return await find(tx, tenant, ref) or await find_in_system(
        tx, tenant, f"{peer.protocol}:{peer.name}", value
    )


def quarter(moment: datetime) -> datetime:
    """The start of the quarter hour holding `moment`."""
    return moment - (moment - datetime(2000, 1, 1, tzinfo=moment.tzinfo)) % BLOCK


async def resolve_id(
    tx: AsyncConnection, tenant: Tenant, peer: Peer, kind: str, value: str, where: str
) -> Resolved:
    """The entity the peer names `kind` `value` (a group_id or asset_id), through its
    cross-references; created under the lenient policy, refused under the strict one."""
    entity = await find_id(tx, tenant, peer, kind, value)
    if entity is not None:
        return Resolved(entity, False)
    ref = ProtocolId(peer.protocol, peer.name, kind, value)
    if policy_of(peer) is UnknownIds.STRICT:
        raise ValidationError(
            where, f"unknown {kind} {value!r}: no entity carries this {peer.protocol} id"
        )
    asset_type, subtype = (
        (AssetType.AREA, AssetSubType.SITE)
        if kind == "group"
        else (AssetType.RESOURCE, AssetSubType.CHARGING)
    )
    entity = await create_entity(tx, tenant, asset_type, subtype, {"Name": f"{kind} {value}"})
    await add_reference(tx, tenant, entity, ref)
    return Resolved(entity, True)


def _electrical(group: Entity) -> dict[str, Any]:
    props = group.properties
    return {
        "voltage": float(props.get("NominalVoltage") or DEFAULT_VOLTAGE),
        "phases": int(props.get("PhaseCount") or DEFAULT_PHASES),
        "power_factor": float(props.get("PowerFactor") or DEFAULT_POWER_FACTOR),
    }


def to_kw(group: Entity, value: float, unit: str) -> float:
    """A capacity in A (per phase), W or kW as kW."""
    if unit == "A":
        return amps_to_kw(value, **_electrical(group))
    return value / 1000.0 if unit == "W" else value


def from_kw(group: Entity, kw: float, unit: str) -> float:
    if unit == "A":
        return kw_to_amps(kw, **_electrical(group))
    return kw * 1000.0 if unit == "W" else kw


def quarter_hours(start: datetime, end: datetime, kw: float, where: str) -> list[Block]:
    """A block laid onto the store's 15-minute grid."""
    if end <= start:
        raise ValidationError(f"{where}.end_time", "must be after start_time")
    if (start - datetime(2000, 1, 1, tzinfo=start.tzinfo)) % BLOCK or (end - start) % BLOCK:
        raise ValidationError(
            f"{where}.start_time", "blocks must start and end on the quarter hour"
        )
    count = (end - start) // BLOCK
    return [Block(start + k * BLOCK, start + (k + 1) * BLOCK, kw) for k in range(count)]


async def store_capacity(
    tx: AsyncConnection, tenant: Tenant, group: Entity, blocks: Sequence[Block], source: str
) -> None:
    """The group's MaxCapacity for these blocks (newer beliefs replace older ones)."""
    series = await ensure_series(tx, tenant, group, SeriesType.MAX_CAPACITY, resolution=BLOCK)
    await write_values(
        tx, tenant, series, [Point(b.start, b.end, b.kw) for b in blocks], source=source
    )


async def _solve_in_thread(problem: GroupProblem) -> GroupPlan:
    return await asyncio.to_thread(solve_group, problem)


async def plan_group(
    tx: AsyncConnection,
    tenant: Tenant,
    group: Entity,
    start: datetime,
    end: datetime,
    *,
    solve: Solve = _solve_in_thread,
    hooks: Sequence[PlanHook] = (),
) -> list[Block]:
    """The group's optimal capacity for the blocks of [start, end) that have a MaxCapacity,
    planned by `protocols.common.planning` and stored as its OptimalCapacityRegulation.
    `solve`: the hub's process pool (`Hub.solve`); a thread when not given."""
    points = await planning.plan(tx, tenant, group, start, end, solve, hooks)
    return [Block(p.start, p.end, p.value) for p in points if p.value is not None]
