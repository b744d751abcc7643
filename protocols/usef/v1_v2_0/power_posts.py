"""postMeterData (v1+) and postPrognosis (v1_1+): a message's groups of values written to
their connections' power series (power.py), each value with its belief time (timing.py).

A post is a handful of statements whatever its size: every connection's resource found at
once, every series at once, and the groups that share their belief times written in one
statement. A connection named twice in one message is refused: which values would it mean?
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.limits import Budget, blocks_budget
from protocols.common.context import caller_of, database_of, limits_of
from protocols.usef.v1_v2_0.addresses import resources_at
from protocols.usef.v1_v2_0.envelope import processed
from protocols.usef.v1_v2_0.errors import UsefError
from protocols.usef.v1_v2_0.groups import Group
from protocols.usef.v1_v2_0.periods import repeats, spread, value_ends
from protocols.usef.v1_v2_0.power import (
    SERIES,
    Kind,
    PowerMessage,
    read_message,
    resolution_of,
    series_at,
    source_name,
)
from protocols.usef.v1_v2_0.timing import beliefs
from store.catalogue import AssetSubType
from store.entities import Entity
from store.series import Series, ensure_series
from store.tenants import Tenant
from store.timeutil import utcnow
from store.units import Unit
from store.values import Point, write_many


def _sign_check(entity: Entity, values: tuple[float, ...]) -> None:
    """A pure producer consumes nothing, a pure consumer produces nothing (A.1 Signs)."""
    if entity.asset_subtype is AssetSubType.GENERATION and any(v > 0 for v in values):
        raise UsefError("POWER_VALUE_TOO_BIG", f"{entity.name} only produces (values <= 0).")
    if entity.asset_subtype is AssetSubType.LOAD and any(v < 0 for v in values):
        raise UsefError("POWER_VALUE_TOO_SMALL", f"{entity.name} only consumes (values >= 0).")


@dataclass(frozen=True, slots=True)
class _Write:
    """One group's values as its connections' intervals, and when each was known."""

    entities: list[Entity]
    resolution: timedelta
    points: list[Point]
    known: list[datetime]


def _group_write(
    message: PowerMessage,
    kind: Kind,
    located: tuple[Group, list[Entity]],
    series: dict[int, Series],
    received: datetime,
    budget: Budget,
) -> _Write:
    group, entities = located
    period = message.period
    resolution = resolution_of(entities, series)
    k = repeats(period, len(group.values), resolution)
    budget.take(len(group.values) * k * len(entities), "values", "intervals they become")
    for entity in entities:
        _sign_check(entity, group.values)
    points = spread(period, group.values, resolution, k)
    ends = value_ends(period, points, k)
    known = beliefs(message.fields, message.version, ends, received, observed=kind.observed)
    return _Write(entities, resolution, points, known)


def post_handler(kind: Kind) -> Any:
    async def handler(request: web.Request) -> web.Response:
        message = await read_message(request, kind.post, with_values=True)
        budget = blocks_budget(limits_of(request))
        caller = caller_of(request)
        received = utcnow()
        async with database_of(request).transaction() as tx:
            located = await _located(tx, caller.tenant, message.groups)
            series = await series_at(tx, caller.tenant, [e for _, es in located for e in es])
            writes = [_group_write(message, kind, one, series, received, budget) for one in located]
            source = source_name(caller.account.username, kind)
            await _store(tx, caller.tenant, writes, series, source)
        return processed(kind.post)

    return handler


async def _located(
    tx: AsyncConnection, tenant: Tenant, groups: list[Group]
) -> list[tuple[Group, list[Entity]]]:
    """Each group with the resources at its addresses, all found in one lookup."""
    addresses = [a for g in groups for a in g.addresses]
    entities = await resources_at(tx, tenant, addresses, unknown="UNRECOGNIZED_ASSET")
    seen: set[int] = set()
    for address, entity in zip(addresses, entities, strict=True):
        if entity.id in seen:  # the same resource twice, by one address or two
            raise UsefError("INVALID_REQUEST", f"{address[:80]!r}: its connection is named twice.")
        seen.add(entity.id)
    found = iter(entities)
    return [(g, [next(found) for _ in g.addresses]) for g in groups]


async def _store(
    tx: AsyncConnection,
    tenant: Tenant,
    writes: list[_Write],
    series: dict[int, Series],
    source: str,
) -> None:
    """Every group's points into its connections' series (made at the group's resolution
    where new), one statement for the groups that share their belief times."""
    by_belief: dict[tuple[datetime, ...], list[tuple[Series, Sequence[Point]]]] = {}
    for write in writes:
        for entity in write.entities:  # every entity once: _located refuses repeats
            if entity.id not in series:
                series[entity.id] = await ensure_series(
                    tx, tenant, entity, SERIES, resolution=write.resolution
                )
            by_belief.setdefault(tuple(write.known), []).append((series[entity.id], write.points))
    for known, batch in by_belief.items():
        await write_many(tx, tenant, batch, source=source, belief=list(known), unit=Unit.MW)
