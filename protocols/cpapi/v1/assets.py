"""Asset management API (CP-API 4.2), with flexbridge in the platform (IIP) role.

Endpoints, under the CP-API prefix (`/api`). Section 4.2 writes the controller as
`/api/Asset/`, its example calls as `/api/Asset/Asset/` and `/api/AssetApi/`, and two method
names both ways round; every spelling, in any letter case (ASP.NET routes ignore case),
reaches the same handler:

    GET  Asset/GetAssetSupportedPropertyList?assetType=&assetSubType=      4.2.2
    GET  Asset/GetAssetSelectionValueList?selectionValueType=             4.2.3
    POST Asset/GetAssetV1                                                 4.2.4
    POST Asset/GetAssetV1List | GetAssetListV1 ?pageNum=&pageSize=        4.2.5
    POST Asset/SaveAssetV1?saveType=                                      4.2.6
    POST Asset/SaveAssetV1List | SaveAssetListV1 ?saveType=               4.2.7

The decisions where the spec leaves room (saving, properties and ListOption, connectors,
answers, reading, paging) are in docs/protocols/cpapi-v1.md, "Asset management (4.2)",
each tested in tests/test_cpapi_assets.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import orjson
from aiohttp import web
from marshmallow import ValidationError as SchemaError
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.inbound import Message, list_outcome
from hub.limits import check_items
from protocols.common.context import (
    caller_of,
    database_of,
    limits_of,
    open_message,
    request_id_of,
)
from protocols.common.wire import marshmallow_issues, read_json
from protocols.cpapi.v1.codec.assets import (
    AssetConnector,
    AssetConnectors,
    AssetListRequestV1Schema,
    AssetProperties,
    AssetProperty,
    AssetPropertyTypeSchema,
    AssetReference,
    AssetRequestV1Schema,
    AssetV1,
    AssetV1Schema,
    ExternalEntityReferenceSchema,
    SaveAssetResponseV1,
    SaveAssetResponseV1Schema,
    SelectionValueSchema,
    parse_word,
)
from protocols.cpapi.v1.errors import item_error
from store.catalogue import (
    AnyKind,
    AssetSubType,
    AssetType,
    ConnectorType,
    EntityStatus,
    ExternalEntityReferenceType,
    ListOption,
    PropertyClassification,
    ReferenceDirection,
    asset_type_of,
    find_property,
    parse_asset_subtype,
    parse_asset_type,
    properties_for,
    selection_values,
    validate_properties,
)
from store.entities import (
    Connector,
    Entity,
    add_connector,
    connectors_of,
    create_entity,
    end_connector,
    list_entities,
    set_connector_status,
    update_entity,
)
from store.errors import Conflict, FieldIssue, NotFound, StoreError, ValidationError
from store.references import (
    EntityRef,
    ExternalRef,
    add_reference,
    find,
    normalise,
    references_of,
    resolve,
)
from store.tenants import Tenant
from store.timeutil import utcnow

PROTOCOL = "cpapi"
routes = web.RouteTableDef()

_CONTROLLER: Final = "{controller:(?i:asset(?:/asset)?|assetapi)}"


def _path(*methods: str) -> str:
    """One route for every spelling of the controller and of the method, in any case."""
    return "/" + _CONTROLLER + "/{method:(?i:" + "|".join(methods) + ")}"


class SaveType(StrEnum):
    """4.2.6 / 4.2.7 query parameter `saveType`."""

    UPSERT = "Upsert"
    INSERT = "Insert"
    UPDATE = "Update"


# 4.2.1 Example 1 misspells IsControllable; its own tabular form and 4.2.6 spell it right.
_PROPERTY_ALIASES: Final[Mapping[str, str]] = {"iscontollerable": "IsControllable"}

# 4.2.1 lists Monitoring, 4.2.4 lists Meter; Table 1 files meter rows under both names.
_TWINS: Final[Mapping[PropertyClassification, PropertyClassification]] = {
    PropertyClassification.METER: PropertyClassification.MONITORING,
    PropertyClassification.MONITORING: PropertyClassification.METER,
}

# ConnectorType derived from the parent's kind (see the module docstring).
_CONNECTOR_FOR_PARENT: Final[Mapping[AssetSubType, ConnectorType]] = {
    AssetSubType.SITE: ConnectorType.SITE,
    AssetSubType.SITE_ASSET_GROUP: ConnectorType.SITE_ASSET_GROUP,
    AssetSubType.ZONE: ConnectorType.ZONE,
    AssetSubType.WEATHER_AREA: ConnectorType.WEATHER,
    AssetSubType.MARKET: ConnectorType.MARKET,
    AssetSubType.PRICE_AREA: ConnectorType.PRICE,
    AssetSubType.FLEXIBILITY_AREA: ConnectorType.FLEXIBILITY,
}

_DEFAULT_PAGE_SIZE: Final = 10_000
_MIN_PAGE_SIZE: Final = 1_000


class _Refused(Exception):
    """One asset refused, with the fields and reasons, and the HTTP status a single save gets."""

    def __init__(self, issues: Sequence[FieldIssue], status: int = 400) -> None:
        super().__init__("; ".join(str(issue) for issue in issues))
        self.issues = tuple(issues)
        self.status = status


# ------------------------------------------------------------------------ helpers


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _query(request: web.Request) -> dict[str, str]:
    """Query parameters by case-folded name (the spec writes them camelCase, ASP.NET ignores
    case)."""
    return {name.casefold(): value.strip() for name, value in request.query.items()}


def _under(prefix: str, issues: Iterable[FieldIssue]) -> list[FieldIssue]:
    return [FieldIssue(f"{prefix}.{issue.field}", issue.reason) for issue in issues]


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("body", f"expected a JSON object ({what})")
    return body


def _entity_ref(ref: AssetReference) -> EntityRef:
    kind = None if ref.reference_type is None else str(ref.reference_type)
    return EntityRef(ref.key, ref.system, kind, ref.external_key)


def _target(ref: AssetReference, field: str) -> uuid.UUID | ExternalRef:
    """The platform key or cross-reference `ref` names; issues carry `field` as prefix."""
    try:
        return normalise(_entity_ref(ref))
    except ValidationError as error:
        raise ValidationError(issues=_under(field, error.issues)) from None


def _cross_reference(ref: AssetReference, field: str) -> ExternalRef | None:
    """The cross-reference an AssetKey states besides its Key, if it has an ExternalKey."""
    if not ref.external_key:
        return None
    target = _target(AssetReference(ref.system, ref.reference_type, None, ref.external_key), field)
    assert isinstance(target, ExternalRef)
    return target


def _twins(classifications: Iterable[PropertyClassification]) -> frozenset[PropertyClassification]:
    chosen = set(classifications)
    chosen.update(_TWINS[c] for c in list(chosen) if c in _TWINS)
    return frozenset(chosen)


def _cpapi_type(text: str) -> ExternalEntityReferenceType | None:
    return next((t for t in ExternalEntityReferenceType if t == text), None)


# -------------------------------------------------------------- 4.2.2 and 4.2.3


@routes.get(_path("GetAssetSupportedPropertyList"))
async def get_asset_supported_property_list(request: web.Request) -> web.Response:
    """4.2.2: Table 1 rows for an asset type (default All) and subtype (default All)."""
    query = _query(request)
    rows = properties_for(
        query.get("assettype") or AnyKind.ALL, query.get("assetsubtype") or AnyKind.ALL
    )
    return _json(AssetPropertyTypeSchema(many=True).dump(rows))


@routes.get(_path("GetAssetSelectionValueList"))
async def get_asset_selection_value_list(request: web.Request) -> web.Response:
    """4.2.3: the values of one selection type; of every type when none is asked."""
    wanted = _query(request).get("selectionvaluetype") or None
    return _json(SelectionValueSchema(many=True).dump(selection_values(wanted)))


# ------------------------------------------------------------------------ reading


@dataclass(frozen=True, slots=True)
class _View:
    """What a GetAssetV1 / GetAssetV1List request asks to see of each asset."""

    properties: bool = True
    classifications: frozenset[PropertyClassification] = frozenset()  # empty: all
    connectors: bool = True
    connector_types: tuple[ConnectorType, ...] = ()  # empty: all
    direction: ReferenceDirection | None = None  # None: both
    active_only: bool = False
    at: datetime | None = None


def _view(asked: Any, *, active_only: bool = False, at: datetime | None = None) -> _View:
    direction = asked.restrict_direction
    return _View(
        properties=asked.include_properties is not False,
        classifications=_twins(asked.restrict_classifications),
        connectors=asked.include_connectors is not False,
        connector_types=tuple(asked.restrict_connector_types),
        direction=None if direction is ReferenceDirection.NOT_SUPPLIED else direction,
        active_only=active_only,
        at=at,
    )


async def _key_of(
    tx: AsyncConnection, tenant: Tenant, entity: Entity, prefer: AssetReference | None
) -> AssetReference:
    """An ExternalEntityReference for `entity`: its platform key, its name, and one of its
    CP-API cross-references (the asked one, else one in the asker's system, else the oldest)."""
    known = [r for r in await references_of(tx, tenant, entity) if _cpapi_type(r.reference_type)]
    chosen: ExternalRef | None = None
    if prefer is not None:
        asked = (prefer.system, str(prefer.reference_type or ""), prefer.external_key)
        chosen = next(
            (r for r in known if (r.system, r.reference_type, r.external_key) == asked), None
        )
        if chosen is None and prefer.system:
            chosen = next((r for r in known if r.system == prefer.system), None)
    if chosen is None and known:
        chosen = known[0]
    if chosen is None:
        return AssetReference(key=str(entity.key), friendly_name=entity.name)
    return AssetReference(
        chosen.system,
        _cpapi_type(chosen.reference_type),
        str(entity.key),
        chosen.external_key,
        entity.name,
    )


def _render_properties(entity: Entity, view: _View) -> AssetProperties:
    if not view.properties:
        return AssetProperties(ListOption.NOT_SUPPLIED)
    values = {
        **entity.properties,
        "AssetType": str(entity.asset_type),
        "AssetSubType": str(entity.asset_subtype),
    }
    definitions = [
        d
        for d in properties_for(entity.asset_type, entity.asset_subtype)
        if not view.classifications or d.classification in view.classifications
    ]
    rows = tuple(
        AssetProperty(d.name, values[d.name], str(d.value_type), d.classification)
        for d in definitions
        if values.get(d.name) is not None
    )
    covered = tuple(dict.fromkeys(d.classification for d in definitions))
    return AssetProperties(ListOption.FULL_LIST, covered, rows)


async def _render_connectors(
    tx: AsyncConnection, tenant: Tenant, entity: Entity, view: _View, prefer: AssetReference | None
) -> AssetConnectors:
    if not view.connectors:
        return AssetConnectors(ListOption.NOT_SUPPLIED)
    store_direction = {ReferenceDirection.PARENT: "parent", ReferenceDirection.CHILD: "child"}
    direction = None if view.direction is None else store_direction.get(view.direction)
    found = await connectors_of(tx, tenant, entity, direction=direction, at=view.at)
    rendered = []
    for connector in found:
        if view.connector_types and connector.connector_type not in view.connector_types:
            continue
        if view.active_only and connector.status is not EntityStatus.ACTIVE:
            continue
        below = connector.child.id == entity.id
        other = connector.parent if below else connector.child
        rendered.append(
            AssetConnector(
                await _key_of(tx, tenant, other, prefer),
                ReferenceDirection.PARENT if below else ReferenceDirection.CHILD,
                connector.connector_type,
                connector.valid_from,
                connector.valid_to,
                connector.status,
            )
        )
    directions = (
        (view.direction,)
        if view.direction is not None
        else (ReferenceDirection.PARENT, ReferenceDirection.CHILD)
    )
    return AssetConnectors(ListOption.FULL_LIST, view.connector_types, directions, tuple(rendered))


async def _render(
    tx: AsyncConnection, tenant: Tenant, entity: Entity, view: _View, asked: AssetReference | None
) -> AssetV1:
    prefer_system = None if asked is None else AssetReference(system=asked.system)
    return AssetV1(
        await _key_of(tx, tenant, entity, asked),
        _render_properties(entity, view),
        await _render_connectors(tx, tenant, entity, view, prefer_system),
    )


@routes.post(_path("GetAssetV1"))
async def get_asset(request: web.Request) -> web.Response:
    """4.2.4: one asset, by platform key or cross-reference, as the request options say."""
    tenant = caller_of(request).tenant
    asked = AssetRequestV1Schema().load(_object(await read_json(request), "AssetRequestV1"))
    target = _target(asked.reference, "ExternalEntityReference")
    async with database_of(request).read() as tx:
        entity = await resolve(tx, tenant, target)
        asset = await _render(tx, tenant, entity, _view(asked), asked.reference)
    return _json(AssetV1Schema().dump(asset))


def _kinds(asset_type: str | None, asset_subtype: str | None) -> frozenset[AssetSubType]:
    """The kinds a GetAssetV1List filter selects (4.2.5 uses the 4.2.2 words)."""
    type_text = (asset_type or "").strip() or AnyKind.ALL
    subtype_text = (asset_subtype or "").strip() or AnyKind.ALL
    if type_text.casefold() == AnyKind.ALL.casefold():
        types = set(AssetType)
    else:
        types = {parse_asset_type(type_text, "AssetType")}
    wildcard = _word_or_none(AnyKind, subtype_text)
    if wildcard is AnyKind.ALL:
        subtypes = set(AssetSubType)
    elif wildcard is AnyKind.ALL_RESOURCE_TYPES:
        subtypes = {s for s in AssetSubType if asset_type_of(s) is AssetType.RESOURCE}
    elif wildcard is AnyKind.ALL_AREA_TYPES:
        subtypes = {s for s in AssetSubType if asset_type_of(s) is AssetType.AREA}
    else:
        subtypes = {parse_asset_subtype(subtype_text, "AssetSubType")}
    kinds = frozenset(s for s in subtypes if asset_type_of(s) in types)
    if not kinds:
        raise ValidationError("AssetSubType", f"{subtype_text} is not a subtype of {type_text}")
    return kinds


def _word_or_none(enum: type[AnyKind], text: str) -> AnyKind | None:
    try:
        return parse_word(enum, text)
    except SchemaError:
        return None


def _stored_time(entity: Entity, name: str) -> datetime | None:
    raw = entity.properties.get(name)
    return None if raw is None else datetime.fromisoformat(str(raw))


def _live_at(entity: Entity, at: datetime) -> bool:
    start, end = _stored_time(entity, "ValidFromTime"), _stored_time(entity, "ValidToTime")
    return (start is None or start <= at) and (end is None or at < end)


def _page(request: web.Request) -> tuple[int, int]:
    query = _query(request)
    numbers = {}
    for name, default in (("pageNum", 1), ("pageSize", _DEFAULT_PAGE_SIZE)):
        text = query.get(name.casefold()) or str(default)
        try:
            numbers[name] = int(text)
        except ValueError:
            raise ValidationError(name, f"expected a whole number, got {text!r}") from None
        if numbers[name] < 1:
            raise ValidationError(name, f"expected 1 or more, got {numbers[name]}")
    size = min(max(numbers["pageSize"], _MIN_PAGE_SIZE), _DEFAULT_PAGE_SIZE)
    return numbers["pageNum"], size


@routes.post(_path("GetAssetV1List", "GetAssetListV1"))
async def get_asset_list(request: web.Request) -> web.Response:
    """4.2.5: the assets matching the search criteria, one page of them."""
    tenant = caller_of(request).tenant
    page, size = _page(request)
    asked = AssetListRequestV1Schema().load(_object(await read_json(request), "AssetListRequestV1"))
    kinds = _kinds(asked.asset_type, asked.asset_subtype)
    view = _view(asked, active_only=asked.active_only is True, at=asked.live_at)
    search = (asked.search or "").strip().casefold()
    async with database_of(request).read() as tx:
        found = await list_entities(tx, tenant, include_deleted=asked.active_only is False)
        chosen = [
            e
            for e in found
            if e.asset_subtype in kinds
            and (asked.active_only is not True or e.status is EntityStatus.ACTIVE)
            and (not search or search in e.name.casefold())
            and (asked.live_at is None or _live_at(e, asked.live_at))
        ]
        assets = [
            await _render(tx, tenant, e, view, None)
            for e in chosen[(page - 1) * size : page * size]
        ]
    return _json(AssetV1Schema(many=True).dump(assets))


# ------------------------------------------------------------------------- saving


def _supplied(
    block: AssetProperties | None,
) -> tuple[dict[str, Any], dict[str, Any], list[FieldIssue]]:
    """The properties an asset supplies, by name as given; the classification stated for
    each; and an issue per name given twice."""
    values: dict[str, Any] = {}
    stated: dict[str, PropertyClassification | None] = {}
    issues: list[FieldIssue] = []
    if block is None or block.list_option is ListOption.NOT_SUPPLIED:
        return values, stated, issues
    seen: dict[str, int] = {}
    for index, prop in enumerate(block.properties):
        name = _PROPERTY_ALIASES.get(prop.name.casefold(), prop.name)
        if name.casefold() in seen:
            issues.append(
                FieldIssue(
                    f"AssetProperties.{name}",
                    f"given more than once (AssetPropertyList[{seen[name.casefold()]}] "
                    f"and [{index}])",
                )
            )
            continue
        seen[name.casefold()] = index
        values[name] = prop.value
        stated[name] = prop.classification
    return values, stated, issues


def _lookup(values: Mapping[str, Any], name: str) -> Any:
    return next((v for k, v in values.items() if k.casefold() == name.casefold()), None)


def _classification_issues(
    kind: tuple[AssetType, AssetSubType],
    block: AssetProperties | None,
    values: Mapping[str, Any],
    stated: Mapping[str, PropertyClassification | None],
) -> list[FieldIssue]:
    if block is None:
        return []
    declared = _twins(block.classifications)
    issues = []
    for name in values:
        definition = find_property(kind[0], kind[1], name)
        if definition is None:
            continue  # unknown: validate_properties says so, and where it belongs
        field, own = f"AssetProperties.{definition.name}", definition.classification
        given = stated.get(name)
        if given is not None and given not in _twins([own]):
            issues.append(FieldIssue(field, f"is a {own} property, not {given}"))
        if declared and own not in declared:
            issues.append(
                FieldIssue(
                    field,
                    f"is a {own} property, outside the AssetPropertyClassificationTypeList "
                    f"({', '.join(block.classifications)})",
                )
            )
    return issues


def _catalogue_issues(
    kind: tuple[AssetType, AssetSubType], values: Mapping[str, Any], *, insert: bool
) -> list[FieldIssue]:
    try:
        validate_properties(kind[0], kind[1], values, insert=insert)
    except ValidationError as error:
        return _under("AssetProperties", error.issues)
    return []


def _reverted(
    kind: tuple[AssetType, AssetSubType], block: AssetProperties, values: Mapping[str, Any]
) -> dict[str, Any]:
    """FullList: the optional properties of its classifications that it leaves out, each
    back to its Table 1 default, or cleared (None) when it has none."""
    scope = _twins(block.classifications) or frozenset(PropertyClassification)
    given = {name.casefold() for name in values}
    return {
        d.name: d.default
        for d in properties_for(*kind)
        if d.classification in scope and not d.mandatory and d.name.casefold() not in given
    }


def _kind_of(values: Mapping[str, Any]) -> tuple[AssetType, AssetSubType]:
    """AssetType and AssetSubType from the supplied properties (mandatory on insert)."""
    issues = []
    parsed: list[Any] = []
    for name, parse in (("AssetType", parse_asset_type), ("AssetSubType", parse_asset_subtype)):
        field = f"AssetProperties.{name}"
        raw = _lookup(values, name)
        if raw is None:
            issues.append(FieldIssue(field, "mandatory on insert (CP-API Table 1), got nothing"))
            continue
        try:
            parsed.append(parse(raw, field))
        except ValidationError as error:
            issues.extend(error.issues)
    if issues:
        raise ValidationError(issues=issues)
    asset_type, subtype = parsed
    if asset_type_of(subtype) is not asset_type:
        raise ValidationError(
            "AssetProperties.AssetSubType",
            f"{subtype} is a {asset_type_of(subtype)} subtype, not {asset_type}",
        )
    return asset_type, subtype


async def _insert(
    tx: AsyncConnection, tenant: Tenant, block: AssetProperties | None, key: uuid.UUID | None
) -> Entity:
    values, stated, issues = _supplied(block)
    try:
        kind = _kind_of(values)
    except ValidationError as error:
        raise ValidationError(issues=[*issues, *error.issues]) from None
    issues += _classification_issues(kind, block, values, stated)
    issues += _catalogue_issues(kind, values, insert=True)
    if issues:
        raise ValidationError(issues=issues)
    try:
        return await create_entity(tx, tenant, kind[0], kind[1], values, key=key)
    except Conflict as error:
        raise _Refused([FieldIssue("AssetKey.Key", str(error))], 409) from None


async def _update(
    tx: AsyncConnection, tenant: Tenant, entity: Entity, block: AssetProperties | None
) -> Entity:
    if block is None or block.list_option is ListOption.NOT_SUPPLIED:
        return entity
    values, stated, issues = _supplied(block)
    kind = (entity.asset_type, entity.asset_subtype)
    issues += _classification_issues(kind, block, values, stated)
    changes = dict(values)
    if block.list_option is ListOption.FULL_LIST:
        changes.update(_reverted(kind, block, values))
    issues += _catalogue_issues(kind, changes, insert=False)
    if issues:
        raise ValidationError(issues=issues)
    if not changes:
        return entity
    try:
        return await update_entity(tx, tenant, entity, changes)
    except ValidationError as error:  # an ordering across stored and new values
        raise ValidationError(issues=_under("AssetProperties", error.issues)) from None


def _rank(entity: Entity) -> int:
    """Height in 3.1's topology: resource < site asset group < site < other areas."""
    if entity.asset_type is AssetType.RESOURCE:
        return 0
    return {AssetSubType.SITE_ASSET_GROUP: 1, AssetSubType.SITE: 2}.get(entity.asset_subtype, 3)


def _direction(entity: Entity, other: Entity, path: str) -> ReferenceDirection:
    if _rank(other) > _rank(entity):
        return ReferenceDirection.PARENT
    if _rank(other) < _rank(entity):
        return ReferenceDirection.CHILD
    raise ValidationError(
        f"{path}.ReferenceDirection",
        f"required between a {entity.asset_subtype} and a {other.asset_subtype}: "
        "which one is the parent cannot be derived",
    )


def _check_topology(parent: Entity, child: Entity, path: str) -> None:
    """3.1: "Validation will restrict the Site Asset groups parent to always be a Site and
    its children must always be resource assets.\""""
    if child.asset_subtype is AssetSubType.SITE_ASSET_GROUP and (
        parent.asset_subtype is not AssetSubType.SITE
    ):
        raise ValidationError(
            f"{path}.AssetReferenceKey",
            f"a SiteAssetGroup's parent is always a Site (CP-API 3.1), not a "
            f"{parent.asset_subtype}",
        )
    if parent.asset_subtype is AssetSubType.SITE_ASSET_GROUP and (
        child.asset_type is not AssetType.RESOURCE
    ):
        raise ValidationError(
            f"{path}.AssetReferenceKey",
            f"a SiteAssetGroup's children are always resources (CP-API 3.1), not a "
            f"{child.asset_subtype}",
        )


def _derived_type(parent: Entity, path: str) -> ConnectorType:
    found = _CONNECTOR_FOR_PARENT.get(parent.asset_subtype)
    if found is None:
        raise ValidationError(
            f"{path}.ConnectorType",
            f"required: no connector type derives from a {parent.asset_subtype} parent",
        )
    return found


def _same_link(
    connector: Connector,
    parent: Entity,
    child: Entity,
    connector_type: str,
    wanted: AssetConnector,
    status: EntityStatus,
) -> bool:
    return (
        connector.parent.id == parent.id
        and connector.child.id == child.id
        and connector.connector_type == connector_type
        and connector.valid_from == wanted.valid_from
        and connector.valid_to == wanted.valid_to
        and connector.status is status
    )


async def _save_connector(
    tx: AsyncConnection,
    tenant: Tenant,
    entity: Entity,
    block: AssetConnectors,
    wanted: AssetConnector,
    path: str,
    existing: list[Connector],
) -> int:
    target = _target(wanted.reference, f"{path}.AssetReferenceKey")
    other = await find(tx, tenant, target)
    if other is None:
        raise _Refused(
            [FieldIssue(f"{path}.AssetReferenceKey", f"no asset {target} in this tenant")], 404
        )
    direction = wanted.direction
    if direction not in (ReferenceDirection.PARENT, ReferenceDirection.CHILD):
        direction = _direction(entity, other, path)
    if block.directions and direction not in block.directions:
        raise ValidationError(
            f"{path}.ReferenceDirection",
            f"{direction} is outside the ReferenceDirectionList ({', '.join(block.directions)})",
        )
    parent, child = (other, entity) if direction is ReferenceDirection.PARENT else (entity, other)
    _check_topology(parent, child, path)
    connector_type = str(wanted.connector_type or _derived_type(parent, path))
    if block.connector_types and connector_type not in block.connector_types:
        raise ValidationError(
            f"{path}.ConnectorType",
            f"{connector_type} is outside the AssetConnectorTypeList "
            f"({', '.join(block.connector_types)})",
        )
    status = wanted.status or EntityStatus.ACTIVE
    for connector in existing:
        if _same_link(connector, parent, child, connector_type, wanted, connector.status):
            if connector.status is not status:
                try:
                    await set_connector_status(tx, tenant, connector, status)
                except Conflict as error:
                    raise _Refused([FieldIssue(f"{path}.EntityStatus", str(error))], 409) from None
            return connector.id
    try:
        made = await add_connector(
            tx,
            tenant,
            parent,
            child,
            connector_type,
            valid_from=wanted.valid_from,
            valid_to=wanted.valid_to,
            status=status,
        )
    except ValidationError as error:
        raise ValidationError(issues=_under(path, error.issues)) from None
    except Conflict as error:  # 3.1: one active connection per type over any period
        raise _Refused([FieldIssue(path, str(error))], 409) from None
    existing.append(made)
    return made.id


async def _end_removed(
    tx: AsyncConnection,
    tenant: Tenant,
    entity: Entity,
    block: AssetConnectors,
    existing: list[Connector],
    kept: set[int],
) -> None:
    """FullList: a connector in the list's scope (its connector types and directions) that
    the list leaves out is ended now; its history stays."""
    directions = set(block.directions) or {ReferenceDirection.PARENT, ReferenceDirection.CHILD}
    now = utcnow()
    for connector in existing:
        if connector.id in kept or connector.status is EntityStatus.DELETED:
            continue
        direction = (
            ReferenceDirection.PARENT
            if connector.child.id == entity.id
            else ReferenceDirection.CHILD
        )
        if direction not in directions:
            continue
        if block.connector_types and connector.connector_type not in block.connector_types:
            continue
        await end_connector(tx, tenant, connector, now)


async def _save_connectors(
    tx: AsyncConnection, tenant: Tenant, entity: Entity, block: AssetConnectors | None
) -> None:
    if block is None or block.list_option is ListOption.NOT_SUPPLIED:
        return
    existing = await connectors_of(tx, tenant, entity)
    kept = set()
    for index, wanted in enumerate(block.connectors):
        path = f"AssetConnectors.AssetConnectorList[{index}]"
        kept.add(await _save_connector(tx, tenant, entity, block, wanted, path, existing))
    if block.list_option is ListOption.FULL_LIST:
        await _end_removed(tx, tenant, entity, block, existing, kept)


async def _save(tx: AsyncConnection, tenant: Tenant, asset: AssetV1, save_type: SaveType) -> Entity:
    target = _target(asset.key, "AssetKey")
    entity = await find(tx, tenant, target)
    if entity is None:
        if save_type is SaveType.UPDATE:
            raise _Refused([FieldIssue("AssetKey", f"no asset {target} to update")], 404)
        key = target if isinstance(target, uuid.UUID) else None
        entity = await _insert(tx, tenant, asset.properties, key)
    elif save_type is SaveType.INSERT:
        raise _Refused([FieldIssue("AssetKey", f"asset {target} exists already")], 409)
    else:
        entity = await _update(tx, tenant, entity, asset.properties)
    cross_reference = _cross_reference(asset.key, "AssetKey")
    if cross_reference is not None:
        try:
            await add_reference(tx, tenant, entity, cross_reference)
        except Conflict as error:
            raise _Refused([FieldIssue("AssetKey", str(error))], 409) from None
    await _save_connectors(tx, tenant, entity, asset.connectors)
    return entity


def _echo_key(raw: Any) -> AssetReference | None:
    """The AssetKey of an item that could not be loaded whole, if it can be read alone."""
    if not isinstance(raw, dict):
        return None
    key = next((v for k, v in raw.items() if str(k).strip().casefold() == "assetkey"), None)
    try:
        return ExternalEntityReferenceSchema().load(key) if isinstance(key, dict) else None
    except SchemaError:
        return None


def _refusal(error: Exception) -> tuple[list[FieldIssue], int]:
    if isinstance(error, _Refused):
        return list(error.issues), error.status
    if isinstance(error, SchemaError):
        return marshmallow_issues(error.messages), 400
    if isinstance(error, ValidationError):
        return list(error.issues), 400
    if isinstance(error, NotFound):
        return [FieldIssue("AssetKey", str(error))], 404
    return [FieldIssue("AssetV1", str(error))], 409


async def _apply(
    tx: AsyncConnection, tenant: Tenant, raw: Any, save_type: SaveType
) -> tuple[SaveAssetResponseV1, int]:
    """Save one AssetV1 in its own savepoint: all of it, or nothing of it."""
    echo = _echo_key(raw)
    try:
        if not isinstance(raw, dict):
            raise ValidationError("AssetV1", f"expected a JSON object, got {type(raw).__name__}")
        asset = AssetV1Schema().load(raw)
        echo = asset.key
        async with tx.begin_nested():
            entity = await _save(tx, tenant, asset, save_type)
    except (_Refused, SchemaError, StoreError) as error:
        issues, status = _refusal(error)
        errors = tuple((issue.field, issue.reason) for issue in issues)
        return SaveAssetResponseV1(echo, False, None, item_error(issues), errors), status
    return SaveAssetResponseV1(echo, True, str(entity.key)), 200


def _save_type(request: web.Request) -> SaveType:
    text = _query(request).get("savetype", "")
    try:
        return parse_word(SaveType, text) or SaveType.UPSERT
    except SchemaError as error:
        raise ValidationError("saveType", str(error.messages[0])) from None


@routes.post(_path("SaveAssetV1"))
async def save_asset(request: web.Request) -> web.Response:
    """4.2.6: save one asset; SaveAssetResponseV1 says whether it was saved, and its key."""
    save_type = _save_type(request)
    body = _object(await read_json(request), "AssetV1")
    async with _open(request, "SaveAssetV1") as message:
        response, status = await _apply(message.tx, message.tenant, body, save_type)
        detail = f"{save_type} {_named(response)}" + (
            "" if response.success else f": {response.error_message}"
        )
        message.outcome(list_outcome(int(response.success), 1), detail)
    return _json(SaveAssetResponseV1Schema().dump(response), status)


@routes.post(_path("SaveAssetV1List", "SaveAssetListV1"))
async def save_asset_list(request: web.Request) -> web.Response:
    """4.2.7: save each asset of the list; one SaveAssetResponseV1 per asset, in order."""
    save_type = _save_type(request)
    body = await read_json(request)
    if not isinstance(body, list):
        raise ValidationError("body", "expected a JSON array of AssetV1")
    check_items(limits_of(request), len(body), "body", "assets")
    async with _open(request, "SaveAssetListV1") as message:
        tx, tenant = message.tx, message.tenant
        results = [(await _apply(tx, tenant, raw, save_type))[0] for raw in body]
        saved = sum(result.success for result in results)
        detail = f"{save_type}: {saved} of {len(results)} assets saved"
        message.outcome(list_outcome(saved, len(results)), detail)
    return _json(SaveAssetResponseV1Schema(many=True).dump(results))


def _open(request: web.Request, message_type: str) -> AbstractAsyncContextManager[Message]:
    """A save opened as a message: logged, not a peer's, so not idempotent (4.1.3)."""
    message_id = request_id_of(request)
    return open_message(request, PROTOCOL, message_type, message_id=message_id, from_peer=False)


def _named(response: SaveAssetResponseV1) -> str:
    """The asset a response is about, for the audit trail."""
    if response.key:
        return f"asset {response.key}"
    reference = response.asset_key
    if reference is None:
        return "an unreadable asset"
    return f"asset {reference.external_key or reference.key}"
