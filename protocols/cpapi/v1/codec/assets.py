"""Wire types of the CP-API Asset Management API (INVADE D7.2 section 4.2).

Every wire name lives here, as a `data_key`. Loading is case-insensitive (the spec prints its
own examples in PascalCase and camelCase) through `CaseInsensitiveSchema`; what the spec's
examples write beyond the types of section 4.2.1 is accepted on purpose and said where:

- `assetReferencKey` (4.2.4/4.2.6 examples) is an alias of `AssetReferenceKey`;
- the 4.2.4 and 4.2.6 examples put `assetPropertyList` and `assetConnectorList` directly on
  the AssetV1 instead of inside AssetProperties/AssetConnectors: accepted as that nesting;
- a classification list written as one comma-joined string ("General,Controllable", the
  4.2.4 example) is split at the commas; a bare string is taken as a one-element list;
- enum words match in any letter case and without blanks (Table 1 writes
  'Geographical Location'); an empty string is the same as null.

Loads end in typed objects (`post_load`); answers are dumped with the same schemas, so a
GetAssetV1 answer can be posted back to SaveAssetV1 unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from marshmallow import Schema, fields, post_dump, post_load
from marshmallow import ValidationError as SchemaError

from protocols.common.wire import CaseInsensitiveSchema
from protocols.cpapi.v1.codec.wire import UtcDateTime, iso
from store.catalogue import (
    ConnectorType,
    EntityStatus,
    ExternalEntityReferenceType,
    ListOption,
    PropertyClassification,
    ReferenceDirection,
)

# --------------------------------------------------------------------------- fields

E = TypeVar("E", bound=StrEnum)


def parse_word(enum: type[E], value: object) -> E | None:
    """`value` as a member of `enum`, ignoring letter case and blanks; '' and null are None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise SchemaError(f"expected one of {', '.join(enum)}, got a {type(value).__name__}")
    key = "".join(value.split()).casefold()
    if not key:
        return None
    for member in enum:
        if member.casefold() == key:
            return member
    raise SchemaError(f"expected one of {', '.join(enum)}, got {value!r}")


class Word(fields.Field):
    """One word of a spec enumeration; null (or '') when not given."""

    def __init__(self, enum: type[StrEnum], **kwargs: Any) -> None:
        kwargs.setdefault("load_default", None)
        kwargs.setdefault("allow_none", True)
        super().__init__(**kwargs)
        self.enum = enum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        return parse_word(self.enum, value)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else str(value)


class WordList(fields.Field):
    """A list of enum words; each element may itself be a comma-joined list of words.
    Null loads as None; `_lists` turns it into an empty tuple (no restriction)."""

    def __init__(self, enum: type[StrEnum], **kwargs: Any) -> None:
        kwargs.setdefault("load_default", None)
        kwargs.setdefault("allow_none", True)
        super().__init__(**kwargs)
        self.enum = enum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            raise SchemaError(f"expected a list of {', '.join(self.enum)}")
        words: list[StrEnum] = []
        for item in items:
            if not isinstance(item, str):
                raise SchemaError(f"expected strings, got a {type(item).__name__}")
            for part in item.split(","):
                word = parse_word(self.enum, part)
                if word is not None and word not in words:
                    words.append(word)
        return tuple(words)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else [str(word) for word in value]


class KeyText(fields.Field):
    """A key or identifier: a string (blanks around it dropped) or an integer (external keys
    such as 12344534457 in 4.1.2 are numbers in many systems); '' is the same as null."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("load_default", None)
        kwargs.setdefault("allow_none", True)
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise SchemaError(f"expected a string, got a {type(value).__name__}")
        return value.strip() or None

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


def _lists(data: dict[str, Any], *names: str) -> dict[str, Any]:
    """WordList values that came as null (or not at all) become empty tuples."""
    return {**data, **{name: data[name] or () for name in names}}


def format_time(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


class OptionalUtcDateTime(UtcDateTime):
    """An optional date: null, absent or blank is None (asset validity times)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("load_default", None)
        kwargs.setdefault("allow_none", True)
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return super()._deserialize(value, attr, data, **kwargs)


# ------------------------------------------------------------------ typed objects


@dataclass(frozen=True, slots=True)
class AssetReference:
    """ExternalEntityReference (4.2.1): a platform key and/or an external cross-reference."""

    system: str | None = None
    reference_type: ExternalEntityReferenceType | None = None
    key: str | None = None
    external_key: str | None = None
    friendly_name: str | None = None

    @property
    def has_external(self) -> bool:
        return bool(self.system or self.reference_type or self.external_key)


@dataclass(frozen=True, slots=True)
class AssetProperty:
    name: str
    value: Any
    value_type: str | None = None
    classification: PropertyClassification | None = None


@dataclass(frozen=True, slots=True)
class AssetProperties:
    list_option: ListOption | None = None
    classifications: tuple[PropertyClassification, ...] = ()
    properties: tuple[AssetProperty, ...] = ()


@dataclass(frozen=True, slots=True)
class AssetConnector:
    reference: AssetReference
    direction: ReferenceDirection | None = None
    connector_type: ConnectorType | str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    status: EntityStatus | None = None


@dataclass(frozen=True, slots=True)
class AssetConnectors:
    list_option: ListOption | None = None
    connector_types: tuple[ConnectorType, ...] = ()
    directions: tuple[ReferenceDirection, ...] = ()
    connectors: tuple[AssetConnector, ...] = ()


@dataclass(frozen=True, slots=True)
class AssetV1:
    key: AssetReference
    properties: AssetProperties | None = None
    connectors: AssetConnectors | None = None


@dataclass(frozen=True, slots=True)
class AssetRequestV1:
    reference: AssetReference
    include_properties: bool | None = None
    restrict_classifications: tuple[PropertyClassification, ...] = ()
    include_connectors: bool | None = None
    restrict_connector_types: tuple[ConnectorType, ...] = ()
    restrict_direction: ReferenceDirection | None = None


@dataclass(frozen=True, slots=True)
class AssetListRequestV1:
    asset_type: str | None = None
    asset_subtype: str | None = None
    include_properties: bool | None = None
    restrict_classifications: tuple[PropertyClassification, ...] = ()
    include_connectors: bool | None = None
    restrict_connector_types: tuple[ConnectorType, ...] = ()
    restrict_direction: ReferenceDirection | None = None
    active_only: bool | None = None
    live_at: datetime | None = None
    search: str | None = None


@dataclass(frozen=True, slots=True)
class SaveAssetResponseV1:
    asset_key: AssetReference | None
    success: bool
    key: str | None = None
    error_message: str | None = None
    errors: tuple[tuple[str, str], ...] = ()


# ------------------------------------------------------------------------ schemas


def _optional_bool(data_key: str) -> fields.Boolean:
    return fields.Boolean(data_key=data_key, load_default=None, allow_none=True)


class ExternalEntityReferenceSchema(CaseInsensitiveSchema):
    system = KeyText(data_key="SystemIdentifier")
    reference_type = Word(ExternalEntityReferenceType, data_key="ExternalEntityReferenceType")
    key = KeyText(data_key="Key")
    external_key = KeyText(data_key="ExternalKey")
    friendly_name = fields.String(data_key="FriendlyName", load_default=None, allow_none=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> AssetReference:
        return AssetReference(**data)


class AssetPropertySchema(CaseInsensitiveSchema):
    name = fields.String(data_key="PropertyName", required=True)
    value = fields.Raw(data_key="PropertyValue", required=True, allow_none=True)
    # 4.2.1: "not required on save methods, will be set on retrieval methods"; on save the
    # catalogue's type applies and a given one is not checked.
    value_type = fields.String(data_key="PropertyValueType", load_default=None, allow_none=True)
    classification = Word(PropertyClassification, data_key="AssetPropertyClassificationType")

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> AssetProperty:
        name = data["name"].strip()
        if not name:
            raise SchemaError("a property name is required", field_name="PropertyName")
        return AssetProperty(name, data["value"], data["value_type"], data["classification"])


class AssetPropertiesSchema(CaseInsensitiveSchema):
    list_option = Word(ListOption, data_key="ListOption")
    classifications = WordList(
        PropertyClassification, data_key="AssetPropertyClassificationTypeList"
    )
    properties = fields.List(
        fields.Nested(AssetPropertySchema),
        data_key="AssetPropertyList",
        load_default=None,
        allow_none=True,
    )

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> AssetProperties:
        return AssetProperties(
            data["list_option"], data["classifications"] or (), tuple(data["properties"] or ())
        )


class AssetConnectorSchema(CaseInsensitiveSchema):
    # The 4.2.4 and 4.2.6 examples write "assetReferencKey".
    ALIASES: ClassVar[Mapping[str, str]] = {"assetReferencKey": "AssetReferenceKey"}

    direction = Word(ReferenceDirection, data_key="ReferenceDirection")
    connector_type = Word(ConnectorType, data_key="ConnectorType")
    reference = fields.Nested(
        ExternalEntityReferenceSchema, data_key="AssetReferenceKey", required=True
    )
    valid_from = OptionalUtcDateTime(data_key="ValidFromTime")
    valid_to = OptionalUtcDateTime(data_key="ValidToTime")
    status = Word(EntityStatus, data_key="EntityStatus")

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> AssetConnector:
        return AssetConnector(**data)


class AssetConnectorsSchema(CaseInsensitiveSchema):
    list_option = Word(ListOption, data_key="ListOption")
    connector_types = WordList(ConnectorType, data_key="AssetConnectorTypeList")
    directions = WordList(ReferenceDirection, data_key="ReferenceDirectionList")
    connectors = fields.List(
        fields.Nested(AssetConnectorSchema),
        data_key="AssetConnectorList",
        load_default=None,
        allow_none=True,
    )

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> AssetConnectors:
        return AssetConnectors(
            data["list_option"],
            data["connector_types"] or (),
            data["directions"] or (),
            tuple(data["connectors"] or ()),
        )


class AssetV1Schema(CaseInsensitiveSchema):
    key = fields.Nested(ExternalEntityReferenceSchema, data_key="AssetKey", required=True)
    properties = fields.Nested(
        AssetPropertiesSchema, data_key="AssetProperties", load_default=None, allow_none=True
    )
    connectors = fields.Nested(
        AssetConnectorsSchema, data_key="AssetConnectors", load_default=None, allow_none=True
    )
    # The flat shape of the 4.2.4 answer and the 4.2.6 request: lists on the asset itself.
    flat_properties = fields.List(
        fields.Nested(AssetPropertySchema),
        data_key="AssetPropertyList",
        load_only=True,
        load_default=None,
        allow_none=True,
    )
    flat_connectors = fields.List(
        fields.Nested(AssetConnectorSchema),
        data_key="AssetConnectorList",
        load_only=True,
        load_default=None,
        allow_none=True,
    )

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> AssetV1:
        properties, connectors = data["properties"], data["connectors"]
        if data["flat_properties"] is not None:
            if properties is not None:
                raise SchemaError(
                    "give the properties in AssetProperties or on the asset, not both",
                    field_name="AssetPropertyList",
                )
            properties = AssetProperties(properties=tuple(data["flat_properties"]))
        if data["flat_connectors"] is not None:
            if connectors is not None:
                raise SchemaError(
                    "give the connectors in AssetConnectors or on the asset, not both",
                    field_name="AssetConnectorList",
                )
            connectors = AssetConnectors(connectors=tuple(data["flat_connectors"]))
        return AssetV1(data["key"], properties, connectors)


class AssetRequestV1Schema(CaseInsensitiveSchema):
    ALIASES: ClassVar[Mapping[str, str]] = {"AssetKey": "ExternalEntityReference"}

    reference = fields.Nested(
        ExternalEntityReferenceSchema, data_key="ExternalEntityReference", required=True
    )
    include_properties = _optional_bool("IncludePropertyClassificationTypes")
    restrict_classifications = WordList(
        PropertyClassification, data_key="RestrictToAssetPropertyClassificationTypes"
    )
    include_connectors = _optional_bool("IncludeAssetConnectorTypes")
    restrict_connector_types = WordList(ConnectorType, data_key="RestrictToAssetConnectorTypes")
    restrict_direction = Word(ReferenceDirection, data_key="RestrictToReferenceDirection")

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> AssetRequestV1:
        return AssetRequestV1(
            **_lists(data, "restrict_classifications", "restrict_connector_types")
        )


class AssetListRequestV1Schema(CaseInsensitiveSchema):
    asset_type = fields.String(data_key="AssetType", load_default=None, allow_none=True)
    asset_subtype = fields.String(data_key="AssetSubType", load_default=None, allow_none=True)
    include_properties = _optional_bool("IncludePropertyClassificationTypes")
    restrict_classifications = WordList(
        PropertyClassification, data_key="RestrictToAssetPropertyClassificationTypes"
    )
    include_connectors = _optional_bool("IncludeAssetConnectorTypes")
    restrict_connector_types = WordList(ConnectorType, data_key="RestrictToAssetConnectorTypes")
    restrict_direction = Word(ReferenceDirection, data_key="RestrictToReferenceDirection")
    active_only = _optional_bool("ActiveOnly")
    live_at = OptionalUtcDateTime(data_key="LiveAtDateTime")
    search = fields.String(data_key="Search", load_default=None, allow_none=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> AssetListRequestV1:
        return AssetListRequestV1(
            **_lists(data, "restrict_classifications", "restrict_connector_types")
        )


class _IssueSchema(Schema):
    field = fields.String(data_key="Field")
    reason = fields.String(data_key="Reason")


class SaveAssetResponseV1Schema(Schema):
    """SaveAssetResponseV1 (4.2.1). `Errors` ({Field, Reason} per problem, the shape of the
    CP-API error answer) is a flexbridge addition, present only when Success is false."""

    asset_key = fields.Nested(ExternalEntityReferenceSchema, data_key="AssetKey", allow_none=True)
    success = fields.Boolean(data_key="Success")
    key = fields.String(data_key="Key", allow_none=True)
    error_message = fields.String(data_key="ErrorMessage", allow_none=True)
    errors = fields.Method("_errors", data_key="Errors")

    def _errors(self, response: SaveAssetResponseV1) -> list[dict[str, str]]:
        return [{"Field": field, "Reason": reason} for field, reason in response.errors]

    @post_dump
    def _drop_empty_errors(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if not data.get("Errors"):
            data.pop("Errors", None)
        return data


class AssetPropertyTypeSchema(Schema):
    """AssetPropertyType (4.2.2), dumped from a catalogue `PropertyDef`.

    The type definition names the value type `PropertyValueType`; the example answer
    printed under it writes `PropertyValue`. Both keys carry the same word, so a client
    written against either reads it."""

    asset_type = fields.String(data_key="AssetType")
    asset_subtype = fields.String(data_key="AssetSubType")
    classification = fields.String(data_key="AssetPropertyClassificationType")
    name = fields.String(data_key="PropertyName")
    value_type = fields.String(data_key="PropertyValueType")
    example_value_type = fields.Function(lambda d: str(d.value_type), data_key="PropertyValue")
    mandatory = fields.Boolean(data_key="IsMandatory")
    description = fields.String(data_key="Description")
    selection_type = fields.String(data_key="SelectionValueType", allow_none=True)


class SelectionValueSchema(Schema):
    """SelectionValue (4.2.3), dumped from a catalogue `SelectionValue`."""

    id = fields.Integer(data_key="Id")
    name = fields.String(data_key="Name")
    selection_type = fields.String(data_key="SelectionValueType")
    is_persistable = fields.Boolean(data_key="IsPersistable")
