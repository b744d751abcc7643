"""Where a group's capacity forecasts live in the store.

CONSUMPTION  the group's MaxCapacity (kW), what the optimizer plans within
GENERATION   the group's ProductionPowerRegulation (kW, a magnitude >= 0): the most the
             group may feed in. Kept for the optimizer and the operator; the headroom
             rule of plan_group does not read it yet, so it changes no OPTIMUM.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from protocols.common.capacity import BLOCK, Block, store_capacity
from store.entities import Entity
from store.series import ensure_series
from store.series_types import SeriesType
from store.tenants import Tenant
from store.values import Point, write_values

CONSUMPTION = "CONSUMPTION"
GENERATION = "GENERATION"
SERIES = {CONSUMPTION: SeriesType.MAX_CAPACITY, GENERATION: SeriesType.PRODUCTION_POWER_REGULATION}


async def store_limit(
    tx: AsyncConnection,
    tenant: Tenant,
    group: Entity,
    kind: str,
    blocks: Sequence[Block],
    source: str,
) -> None:
    """Write the blocks as the group's CONSUMPTION or GENERATION limit."""
    if kind == CONSUMPTION:
        await store_capacity(tx, tenant, group, blocks, source=source)
        return
    series = await ensure_series(tx, tenant, group, SERIES[kind], resolution=BLOCK)
    await write_values(
        tx, tenant, series, [Point(b.start, b.end, b.kw) for b in blocks], source=source
    )


async def clear_limit(
    tx: AsyncConnection,
    tenant: Tenant,
    group: Entity,
    kind: str,
    blocks: Sequence[Block],
    source: str,
) -> None:
    """Write 'unknown' (null) over the blocks: a limit that no longer holds."""
    series = await ensure_series(tx, tenant, group, SERIES[kind], resolution=BLOCK)
    await write_values(
        tx, tenant, series, [Point(b.start, b.end, None) for b in blocks], source=source
    )
