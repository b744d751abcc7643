"""How a peer names entities: its protocol ids (an OCMP or OSCP group_id, asset_id), kept as
cross-references of system "<protocol>:<peer>". An id the peer never told us about is an
error under the peer's strict policy, a new entity under the lenient one."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.peer_state import UnknownIds, state_of
from store.catalogue import AssetSubType, AssetType
from store.entities import Entity, connectors_of, create_entity
from store.errors import ValidationError
from store.peers import Peer
from store.references import ProtocolId, add_reference, find, find_in_system, references_of

GROUP = "group"
ASSET = "asset"


@dataclass(frozen=True, slots=True)
class Resolved:
    entity: Entity
    created: bool


def system_of(peer: Peer) -> str:
    """The cross-reference system in which the peer's ids are kept."""
    return f"{peer.protocol}:{peer.name}"


async def find_id(tx: AsyncConnection, peer: Peer, kind: str, value: str) -> Entity | None:
    """The entity the peer calls `kind` `value`: recorded by us, or by the operator as a
    CP-API cross-reference of the peer's system (of any ExternalEntityReferenceType)."""
    ref = ProtocolId(peer.protocol, peer.name, kind, value)
    return await find(tx, peer.tenant, ref) or await find_in_system(
        tx, peer.tenant, system_of(peer), value
    )


async def resolve_id(
    tx: AsyncConnection, peer: Peer, kind: str, value: str, where: str
) -> Resolved:
    """The entity the peer names `kind` `value` (a group or an asset); created under the
    lenient policy (a site or a charging resource), refused under the strict one."""
    entity = await find_id(tx, peer, kind, value)
    if entity is not None:
        return Resolved(entity, False)
    if state_of(peer).unknown_ids is UnknownIds.STRICT:
        raise ValidationError(
            where, f"unknown {kind} {value!r}: no entity carries this {peer.protocol} id"
        )
    asset_type, subtype = (
        (AssetType.AREA, AssetSubType.SITE)
        if kind == GROUP
        else (AssetType.RESOURCE, AssetSubType.CHARGING)
    )
    tenant = peer.tenant
    entity = await create_entity(tx, tenant, asset_type, subtype, {"Name": f"{kind} {value}"})
    await add_reference(tx, tenant, entity, ProtocolId(peer.protocol, peer.name, kind, value))
    return Resolved(entity, True)


async def ids_of(tx: AsyncConnection, peer: Peer, entity: Entity) -> list[str]:
    """Every id the peer uses for `entity`."""
    return [r.external_key for r in await references_of(tx, peer.tenant, entity, system_of(peer))]


async def ids_of_it_and_parents(tx: AsyncConnection, peer: Peer, entity: Entity) -> set[str]:
    """The ids the peer uses for `entity` and for the entities it is connected below."""
    found = set(await ids_of(tx, peer, entity))
    for link in await connectors_of(tx, peer.tenant, entity, direction="parent"):
        found.update(await ids_of(tx, peer, link.parent))
    return found
