"""Entities (assets and areas) with catalogue-checked properties, and connectors between them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from store.catalogue import AssetSubType, AssetType, EntityStatus, validate_properties
from store.db import inserted_id, text_limit
from store.errors import Conflict, NotFound, ValidationError, check_fits
from store.tables import connectors, entities
from store.tenants import Tenant
from store.timeutil import from_micros, require_utc, to_micros, utcnow

# Properties mirrored into columns so that they can be queried; the JSON keeps them all.
_NAME, _STATUS, _FROM, _TO = "Name", "EntityStatus", "ValidFromTime", "ValidToTime"
_KIND_PROPERTIES = ("AssetType", "AssetSubType")
_BATCH = 500  # ids per IN list, under every driver's parameter limit


@dataclass(frozen=True, slots=True)
class Entity:
    id: int
    tenant_id: int
    key: uuid.UUID
    asset_type: AssetType
    asset_subtype: AssetSubType
    name: str
    status: EntityStatus
    properties: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Connector:
    id: int
    parent: Entity
    child: Entity
    connector_type: str
    valid_from: datetime | None
    valid_to: datetime | None
    status: EntityStatus


def require_own(tenant: Tenant, *owned: Entity) -> None:
    """Refuse an entity of another tenant as if it did not exist (a protocol bug must not
    become a way to reach another tenant's data)."""
    for entity in owned:
        if entity.tenant_id != tenant.id:
            raise NotFound("entity", str(entity.key))


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def _micros_or_none(value: Any) -> int | None:
    return None if value is None else to_micros(value)


def entity_from_row(row: Any) -> Entity:
    """An Entity from a row holding the columns of the entities table."""
    return Entity(
        row.id,
        row.tenant_id,
        row.key,
        AssetType(row.asset_type),
        AssetSubType(row.asset_subtype),
        row.name,
        EntityStatus(row.status),
        dict(row.properties),
    )


def _columns_from(props: Mapping[str, Any]) -> dict[str, Any]:
    check_fits(_NAME, str(props[_NAME]), text_limit(entities.c.name))
    return {
        "name": props[_NAME],
        "status": str(props[_STATUS]),
        "valid_from": _micros_or_none(props.get(_FROM)),
        "valid_to": _micros_or_none(props.get(_TO)),
        "properties": {k: _jsonable(v) for k, v in props.items() if k not in _KIND_PROPERTIES},
    }


async def create_entity(
    tx: AsyncConnection,
    tenant: Tenant,
    asset_type: AssetType,
    asset_subtype: AssetSubType,
    properties: Mapping[str, Any],
    key: uuid.UUID | None = None,
) -> Entity:
    """Insert an entity; properties are checked against the catalogue and defaults filled in."""
    props = validate_properties(asset_type, asset_subtype, properties, insert=True)
    now = to_micros(utcnow())
    key = key or uuid.uuid4()
    columns = _columns_from(props)
    try:
        async with tx.begin_nested():
            result = await tx.execute(
                insert(entities).values(
                    tenant_id=tenant.id,
                    key=key,
                    asset_type=str(asset_type),
                    asset_subtype=str(asset_subtype),
                    created_at=now,
                    updated_at=now,
                    **columns,
                )
            )
    except IntegrityError:
        raise Conflict(f"platform key {key} is already in use in this tenant") from None
    return Entity(
        inserted_id(result),
        tenant.id,
        key,
        asset_type,
        asset_subtype,
        columns["name"],
        EntityStatus(columns["status"]),
        columns["properties"],
    )


async def update_entity(
    tx: AsyncConnection, tenant: Tenant, entity: Entity, changes: Mapping[str, Any]
) -> Entity:
    """Change some properties; the ones not supplied keep their values, a null clears one.

    The merged whole is checked again, so that orderings across old and new values
    (InstalledMinCapacity <= InstalledMaxCapacity, ValidFromTime <= ValidToTime) still hold.
    """
    require_own(tenant, entity)
    checked = validate_properties(entity.asset_type, entity.asset_subtype, changes, insert=False)
    merged = {k: v for k, v in {**entity.properties, **checked}.items() if v is not None}
    merged = validate_properties(entity.asset_type, entity.asset_subtype, merged, insert=True)
    columns = _columns_from(merged)
    await tx.execute(
        update(entities)
        .where(entities.c.id == entity.id, entities.c.tenant_id == tenant.id)
        .values(updated_at=to_micros(utcnow()), **columns)
    )
    return Entity(
        entity.id,
        entity.tenant_id,
        entity.key,
        entity.asset_type,
        entity.asset_subtype,
        columns["name"],
        EntityStatus(columns["status"]),
        columns["properties"],
    )


async def get_entity(tx: AsyncConnection, tenant: Tenant, key: uuid.UUID) -> Entity:
    query = select(entities).where(entities.c.key == key, entities.c.tenant_id == tenant.id)
    row = (await tx.execute(query)).first()
    if row is None:
        raise NotFound("entity", str(key))
    return entity_from_row(row)


async def get_entity_by_id(tx: AsyncConnection, tenant: Tenant, entity_id: int) -> Entity:
    query = select(entities).where(entities.c.id == entity_id, entities.c.tenant_id == tenant.id)
    row = (await tx.execute(query)).first()
    if row is None:
        raise NotFound("entity", f"#{entity_id}")
    return entity_from_row(row)


async def get_entities(
    tx: AsyncConnection, tenant: Tenant, keys: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Entity]:
    """This tenant's entities among `keys`, by key; the others are absent."""
    found: dict[uuid.UUID, Entity] = {}
    for first in range(0, len(keys), _BATCH):
        query = select(entities).where(
            entities.c.tenant_id == tenant.id, entities.c.key.in_(keys[first : first + _BATCH])
        )
        found.update((row.key, entity_from_row(row)) for row in await tx.execute(query))
    return found


async def list_entities(
    tx: AsyncConnection,
    tenant: Tenant,
    asset_type: AssetType | None = None,
    asset_subtype: AssetSubType | None = None,
    include_deleted: bool = False,
) -> list[Entity]:
    query = select(entities).where(entities.c.tenant_id == tenant.id).order_by(entities.c.id)
    if asset_type is not None:
        query = query.where(entities.c.asset_type == str(asset_type))
    if asset_subtype is not None:
        query = query.where(entities.c.asset_subtype == str(asset_subtype))
    if not include_deleted:
        query = query.where(entities.c.status != str(EntityStatus.DELETED))
    return [entity_from_row(row) for row in await tx.execute(query)]


def _overlaps(start: int | None, end: int | None) -> ColumnElement[bool]:
    """SQL condition: a stored [valid_from, valid_to) overlaps [start, end); None is unbounded."""
    conditions: list[ColumnElement[bool]] = []
    if end is not None:
        conditions.append(or_(connectors.c.valid_from.is_(None), connectors.c.valid_from < end))
    if start is not None:
        conditions.append(or_(connectors.c.valid_to.is_(None), connectors.c.valid_to > start))
    return and_(*conditions) if conditions else and_(True)


async def _active_clash(
    tx: AsyncConnection,
    tenant: Tenant,
    child: Entity,
    connector_type: str,
    start: int | None,
    end: int | None,
    ignore: int | None = None,
) -> Any:
    """An active connector of `child` of this type overlapping [start, end), if any."""
    # Serialise connector changes of one child: the overlap check and the write must not
    # interleave with another transaction's (SQLite's BEGIN IMMEDIATE already does).
    await tx.execute(select(entities.c.id).where(entities.c.id == child.id).with_for_update())
    query = select(connectors).where(
        connectors.c.tenant_id == tenant.id,
        connectors.c.child_id == child.id,
        connectors.c.connector_type == connector_type,
        connectors.c.status == str(EntityStatus.ACTIVE),
        _overlaps(start, end),
    )
    if ignore is not None:
        query = query.where(connectors.c.id != ignore)
    return (await tx.execute(query)).first()


async def add_connector(
    tx: AsyncConnection,
    tenant: Tenant,
    parent: Entity,
    child: Entity,
    connector_type: str,
    *,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    status: EntityStatus = EntityStatus.ACTIVE,
) -> Connector:
    """Connect `child` under `parent`.

    CP-API 3.1: "Validation ensures a resource asset has only one active connection to one
    site or site asset group over any period of time" - so an active connector may not overlap
    another active connector of the same type on the same child.
    """
    require_own(tenant, parent, child)
    if parent.id == child.id:
        raise ValidationError("AssetReferenceKey", "an asset cannot be connected to itself")
    start = None if valid_from is None else to_micros(require_utc(valid_from, "ValidFromTime"))
    end = None if valid_to is None else to_micros(require_utc(valid_to, "ValidToTime"))
    if start is not None and end is not None and end <= start:
        raise ValidationError("ValidToTime", "must be after ValidFromTime")
    if status == EntityStatus.ACTIVE:
        clash = await _active_clash(tx, tenant, child, connector_type, start, end)
        if clash is not None:
            if (clash.parent_id, clash.valid_from, clash.valid_to) != (parent.id, start, end):
                raise Conflict(
                    f"{child.name!r} already has an active {connector_type} parent in that period"
                )
            # The same link again: nothing to add.
            return Connector(clash.id, parent, child, connector_type, valid_from, valid_to, status)
    result = await tx.execute(
        insert(connectors).values(
            tenant_id=tenant.id,
            parent_id=parent.id,
            child_id=child.id,
            connector_type=connector_type,
            valid_from=start,
            valid_to=end,
            status=str(status),
        )
    )
    return Connector(
        inserted_id(result), parent, child, connector_type, valid_from, valid_to, status
    )


async def set_connector_status(
    tx: AsyncConnection, tenant: Tenant, connector: Connector, status: EntityStatus
) -> Connector:
    """Give a connector another EntityStatus; making it active again is checked against
    3.1's one active parent per type as a new connector would be."""
    require_own(tenant, connector.parent, connector.child)
    if status is connector.status:
        return connector
    if status is EntityStatus.ACTIVE:
        start = None if connector.valid_from is None else to_micros(connector.valid_from)
        end = None if connector.valid_to is None else to_micros(connector.valid_to)
        clash = await _active_clash(
            tx, tenant, connector.child, connector.connector_type, start, end, connector.id
        )
        if clash is not None:
            raise Conflict(
                f"{connector.child.name!r} already has an active {connector.connector_type} "
                "parent in that period"
            )
    await _update_connector(tx, tenant, connector, status=str(status))
    return replace(connector, status=status)


async def end_connector(
    tx: AsyncConnection, tenant: Tenant, connector: Connector, at: datetime
) -> Connector:
    """End a connector at `at`, keeping its history: its period closes there, or, when it
    had not begun by then, it is marked Deleted. One that ended before `at` is left alone."""
    require_own(tenant, connector.parent, connector.child)
    at = require_utc(at, "at")
    if connector.valid_to is not None and connector.valid_to <= at:
        return connector
    if connector.valid_from is not None and connector.valid_from >= at:
        return await set_connector_status(tx, tenant, connector, EntityStatus.DELETED)
    await _update_connector(tx, tenant, connector, valid_to=to_micros(at))
    return replace(connector, valid_to=at)


async def _update_connector(
    tx: AsyncConnection, tenant: Tenant, connector: Connector, **columns: Any
) -> None:
    await tx.execute(
        update(connectors)
        .where(connectors.c.id == connector.id, connectors.c.tenant_id == tenant.id)
        .values(**columns)
    )


async def connectors_of(
    tx: AsyncConnection,
    tenant: Tenant,
    entity: Entity,
    *,
    direction: str | None = None,
    connector_type: str | None = None,
    at: datetime | None = None,
) -> list[Connector]:
    """Connectors where `entity` is the child (direction 'parent': its parents), the parent
    ('child': its children), or either (None). `at` keeps those active at that instant."""
    require_own(tenant, entity)
    query = select(connectors).where(connectors.c.tenant_id == tenant.id)
    if direction == "parent":
        query = query.where(connectors.c.child_id == entity.id)
    elif direction == "child":
        query = query.where(connectors.c.parent_id == entity.id)
    else:
        query = query.where(
            or_(connectors.c.child_id == entity.id, connectors.c.parent_id == entity.id)
        )
    if connector_type is not None:
        query = query.where(connectors.c.connector_type == connector_type)
    if at is not None:
        instant = to_micros(require_utc(at, "at"))
        query = query.where(
            connectors.c.status == str(EntityStatus.ACTIVE), _overlaps(instant, instant + 1)
        )
    rows = (await tx.execute(query.order_by(connectors.c.id))).all()
    found = []
    for row in rows:
        parent = (
            entity
            if row.parent_id == entity.id
            else await get_entity_by_id(tx, tenant, row.parent_id)
        )
        child = (
            entity
            if row.child_id == entity.id
            else await get_entity_by_id(tx, tenant, row.child_id)
        )
        found.append(
            Connector(
                row.id,
                parent,
                child,
                row.connector_type,
                None if row.valid_from is None else from_micros(row.valid_from),
                None if row.valid_to is None else from_micros(row.valid_to),
                EntityStatus(row.status),
            )
        )
    return found


async def children_of(
    tx: AsyncConnection, tenant: Tenant, parent: Entity, at: datetime | None = None
) -> list[Entity]:
    """The entities connected under `parent` (active at `at` when given)."""
    return [c.child for c in await connectors_of(tx, tenant, parent, direction="child", at=at)]


async def find_by_property(
    tx: AsyncConnection, tenant: Tenant, name: str, value: str
) -> Entity | None:
    """The active entity whose catalogue property `name` (canonical spelling) equals `value`,
    e.g. the CP-API DeviceId an event-hub message names."""
    query = (
        select(entities)
        .where(
            entities.c.tenant_id == tenant.id,
            entities.c.status != str(EntityStatus.DELETED),
            entities.c.properties[name].as_string() == value,
        )
        .order_by(entities.c.id)
        .limit(2)
    )
    rows = (await tx.execute(query)).all()
    if len(rows) > 1:
        raise Conflict(f"more than one entity has {name} {value!r}")
    return entity_from_row(rows[0]) if rows else None


async def find_named(
    tx: AsyncConnection, tenant: Tenant, subtype: AssetSubType, name: str
) -> Entity | None:
    """The active entity of this kind called `name`, e.g. the Market a USEF address names."""
    query = (
        select(entities)
        .where(
            entities.c.tenant_id == tenant.id,
            entities.c.asset_subtype == str(subtype),
            entities.c.status != str(EntityStatus.DELETED),
            entities.c.name == name,
        )
        .order_by(entities.c.id)
        .limit(2)
    )
    rows = (await tx.execute(query)).all()
    if len(rows) > 1:
        raise Conflict(f"more than one {subtype} is called {name!r}")
    return entity_from_row(rows[0]) if rows else None
