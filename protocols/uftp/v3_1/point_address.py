"""A congestion point's name on the wire: its EA1 entity address."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from store.entities import Entity
from store.errors import NotFound
from store.references import USEF_SYSTEM, references_of
from store.tenants import Tenant


async def address_of(tx: AsyncConnection, tenant: Tenant, point: Entity) -> str:
    """The congestion point's EA1 entity address, as messages name it."""
    for reference in await references_of(tx, tenant, point, USEF_SYSTEM):
        if reference.reference_type == "ea1":
            return reference.external_key
    raise NotFound("EA1 address of congestion point", str(point.key))
