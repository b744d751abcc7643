"""One resolver from any outside name to an entity.

The outside names an entity by its platform key (a UUID), by an external cross-reference
(CP-API 4.1.2: system identifier, reference type, external key), by a USEF entity address
(ea1./ean.), or by a protocol id a peer uses (OCMP/OSCP group_id and asset_id, ETRM ids).
All but the platform key live in one table, `entity_references`; the kinds differ only in
how they spell the (system, reference type, external key) triple, which `_triple` decides.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from store.addresses import EA1Address, EANAddress, parse_entity_address
from store.catalogue import AssetType
from store.db import text_limit
from store.entities import (
    Entity,
    entity_from_row,
    get_entities,
    get_entity,
    get_entity_by_id,
    require_own,
)
from store.errors import Conflict, NotFound, ValidationError, check_fits
from store.tables import entities, entity_references
from store.tenants import Tenant

USEF_SYSTEM = "usef"
_BATCH = 300  # references per query: 900 parameters, under every driver's limit


@dataclass(frozen=True, slots=True)
class ExternalRef:
    """CP-API ExternalEntityReference without the platform key."""

    system: str
    reference_type: str
    external_key: str

    def __str__(self) -> str:
        return f"{self.system}/{self.reference_type}/{self.external_key}"


@dataclass(frozen=True, slots=True)
class ProtocolId:
    """An id a peer gives an entity in its protocol, e.g. an OCMP group_id."""

    protocol: str
    peer: str
    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.protocol}:{self.peer} {self.kind} {self.value}"


@dataclass(frozen=True, slots=True)
class EntityRef:
    """A CP-API reference as sent: the platform key wins over the external key when both given."""

    key: str | None = None
    system: str | None = None
    reference_type: str | None = None
    external_key: str | None = None


Reference = uuid.UUID | ExternalRef | ProtocolId | EA1Address | EANAddress | EntityRef


def _triple(ref: ExternalRef | ProtocolId | EA1Address | EANAddress) -> ExternalRef:
    if isinstance(ref, ExternalRef):
        return ref
    if isinstance(ref, ProtocolId):
        return ExternalRef(f"{ref.protocol}:{ref.peer}", ref.kind, ref.value)
    kind = "ea1" if isinstance(ref, EA1Address) else "ean"
    return ExternalRef(USEF_SYSTEM, kind, str(ref))


def parse_platform_key(text: str, field: str = "Key") -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        raise ValidationError(field, f"{text!r} is not a platform key (a UUID)") from None


def _external_from(ref: EntityRef, external_key: str) -> ExternalRef:
    """CP-API 4.1.2: 'ExternalKey ... if supplied the System Identifier should also be supplied'."""
    if not ref.system:
        raise ValidationError("SystemIdentifier", "required with ExternalKey")
    if not ref.reference_type:
        raise ValidationError("ExternalEntityReferenceType", "required with ExternalKey")
    return ExternalRef(ref.system, ref.reference_type, external_key)


def normalise(ref: Reference) -> uuid.UUID | ExternalRef:
    """Reduce any reference to a platform key or a stored triple."""
    if isinstance(ref, EntityRef):
        if ref.key:
            return parse_platform_key(ref.key)
        if ref.external_key:
            return _external_from(ref, ref.external_key)
        raise ValidationError("Key", "either Key or ExternalKey is required")
    if isinstance(ref, uuid.UUID):
        return ref
    return _triple(ref)


async def find(tx: AsyncConnection, tenant: Tenant, ref: Reference) -> Entity | None:
    """The entity `ref` names in this tenant, or None."""
    target = normalise(ref)
    if isinstance(target, uuid.UUID):
        try:
            return await get_entity(tx, tenant, target)
        except NotFound:
            return None
    query = select(entity_references.c.entity_id).where(
        entity_references.c.tenant_id == tenant.id,
        entity_references.c.system == target.system,
        entity_references.c.reference_type == target.reference_type,
        entity_references.c.external_key == target.external_key,
    )
    entity_id = (await tx.execute(query)).scalar_one_or_none()
    return None if entity_id is None else await get_entity_by_id(tx, tenant, entity_id)


async def find_in_system(
    tx: AsyncConnection, tenant: Tenant, system: str, external_key: str
) -> Entity | None:
    """The entity an outside system calls `external_key`, whatever reference type it was
    recorded with; Conflict when two entities carry that key in that system."""
    query = select(entity_references.c.entity_id).where(
        entity_references.c.tenant_id == tenant.id,
        entity_references.c.system == system,
        entity_references.c.external_key == external_key,
    )
    ids = sorted({row.entity_id for row in await tx.execute(query)})
    if len(ids) > 1:
        raise Conflict(f"{len(ids)} entities are called {external_key!r} in {system!r}")
    return await get_entity_by_id(tx, tenant, ids[0]) if ids else None


async def find_many(
    tx: AsyncConnection, tenant: Tenant, targets: Iterable[uuid.UUID | ExternalRef]
) -> dict[uuid.UUID | ExternalRef, Entity]:
    """The entities of many normalised references at once, for batch messages; a reference
    naming nothing in this tenant is absent from the answer."""
    wanted = set(targets)
    keys = [t for t in wanted if isinstance(t, uuid.UUID)]
    refs = {t for t in wanted if isinstance(t, ExternalRef)}
    found: dict[uuid.UUID | ExternalRef, Entity] = dict(
        (await get_entities(tx, tenant, keys)).items()
    )
    # By external key alone (a plain IN list, whose SQL is cached), then the whole triple.
    external_keys = sorted({ref.external_key for ref in refs})
    for first in range(0, len(external_keys), _BATCH):
        query = (
            select(
                entities,
                entity_references.c.system,
                entity_references.c.reference_type,
                entity_references.c.external_key,
            )
            .join(entities, entities.c.id == entity_references.c.entity_id)
            .where(
                entity_references.c.tenant_id == tenant.id,
                entities.c.tenant_id == tenant.id,
                entity_references.c.external_key.in_(external_keys[first : first + _BATCH]),
            )
        )
        for row in await tx.execute(query):
            ref = ExternalRef(row.system, row.reference_type, row.external_key)
            if ref in refs:
                found[ref] = entity_from_row(row)
    return found


async def resolve(tx: AsyncConnection, tenant: Tenant, ref: Reference) -> Entity:
    """The entity `ref` names; NotFound naming the reference when there is none."""
    entity = await find(tx, tenant, ref)
    if entity is None:
        raise NotFound("entity", str(normalise(ref)))
    return entity


async def add_reference(
    tx: AsyncConnection,
    tenant: Tenant,
    entity: Entity,
    ref: ExternalRef | ProtocolId | EA1Address | EANAddress,
) -> ExternalRef:
    """Record that `ref` names `entity`. Naming another entity already is a Conflict."""
    require_own(tenant, entity)
    triple = _triple(ref)
    if not triple.system or not triple.reference_type or not triple.external_key:
        raise ValidationError(
            "reference", "system, reference type and external key are all required"
        )
    columns = entity_references.c
    check_fits("SystemIdentifier", triple.system, text_limit(columns.system))
    check_fits(
        "ExternalEntityReferenceType", triple.reference_type, text_limit(columns.reference_type)
    )
    check_fits("ExternalKey", triple.external_key, text_limit(columns.external_key))
    existing = await find(tx, tenant, triple)
    if existing is not None:
        if existing.id != entity.id:
            raise Conflict(f"{triple} already names entity {existing.key}")
        return triple
    try:
        async with tx.begin_nested():
            await tx.execute(
                insert(entity_references).values(
                    tenant_id=tenant.id,
                    entity_id=entity.id,
                    system=triple.system,
                    reference_type=triple.reference_type,
                    external_key=triple.external_key,
                )
            )
    except IntegrityError:
        raise Conflict(f"{triple} was just recorded for another entity") from None
    return triple


async def references_of(
    tx: AsyncConnection, tenant: Tenant, entity: Entity, system: str | None = None
) -> list[ExternalRef]:
    """How the outside names `entity` (optionally in one system), oldest first."""
    require_own(tenant, entity)
    query = select(entity_references).where(
        entity_references.c.tenant_id == tenant.id, entity_references.c.entity_id == entity.id
    )
    if system is not None:
        query = query.where(entity_references.c.system == system)
    rows = await tx.execute(query.order_by(entity_references.c.id))
    return [ExternalRef(r.system, r.reference_type, r.external_key) for r in rows]


async def named_resources(
    tx: AsyncConnection, tenant: Tenant, system: str, reference_type: str
) -> list[tuple[str, str]]:
    """(external key, entity name) of every resource (not area) of this tenant the system
    names with `reference_type`, the newest entity first: e.g. the connections the USEF
    API lists by their EA1 addresses."""
    query = (
        select(entity_references.c.external_key, entities.c.name)
        .join(entities, entities.c.id == entity_references.c.entity_id)
        .where(
            entity_references.c.tenant_id == tenant.id,
            entity_references.c.system == system,
            entity_references.c.reference_type == reference_type,
            entities.c.asset_type == str(AssetType.RESOURCE),
        )
        .order_by(entities.c.id.desc(), entity_references.c.id)
    )
    return [(row.external_key, row.name) for row in await tx.execute(query)]


async def mint_ea1_addresses(tx: AsyncConnection, tenant: Tenant, authority: str) -> int:
    """Give every resource of the tenant that no USEF `ea1` reference names yet the address
    `<authority>:<tenant id>:<entity id>` (FlexMeasures' `<owner>:<asset>` shape), kept as
    its reference from then on; how many were minted. A concurrent minting makes the same
    addresses, so losing the race to it changes nothing."""
    named = select(entity_references.c.entity_id).where(
        entity_references.c.tenant_id == tenant.id,
        entity_references.c.system == USEF_SYSTEM,
        entity_references.c.reference_type == "ea1",
    )
    query = select(entities.c.id).where(
        entities.c.tenant_id == tenant.id,
        entities.c.asset_type == str(AssetType.RESOURCE),
        entities.c.id.not_in(named),
    )
    ids = list((await tx.execute(query)).scalars())
    if not ids:
        return 0
    rows = [
        {
            "tenant_id": tenant.id,
            "entity_id": entity_id,
            "system": USEF_SYSTEM,
            "reference_type": "ea1",
            "external_key": str(parse_entity_address(f"{authority}:{tenant.id}:{entity_id}")),
        }
        for entity_id in ids
    ]
    try:
        async with tx.begin_nested():
            await tx.execute(insert(entity_references), rows)
    except IntegrityError:
        return 0
    return len(rows)


def parse_address(text: str, field: str = "entity_address") -> EA1Address | EANAddress:
    """Parse a USEF entity address (re-exported so protocols resolve through one module)."""
    return parse_entity_address(text, field)
