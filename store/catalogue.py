"""The CP-API asset catalogue: INVADE D7.2 section 3.1.1 (Table 1) and sections 4.2.1-4.2.3.

The single source of truth for which properties each asset kind carries, their value
types, defaults and selection lists. The store validates entity properties with
`validate_properties`; the CP-API serves GetAssetSupportedPropertyList from
`properties_for` and GetAssetSelectionValueList from `selection_values`.

Wire names appear here as data on purpose: this module is the catalogue.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from store.errors import FieldIssue, ValidationError
from store.timeutil import require_utc

# --------------------------------------------------------------------------- enums


class AssetType(StrEnum):
    RESOURCE = "Resource"
    AREA = "Area"


class AssetSubType(StrEnum):
    """Kinds of DESIGN.md section 3. The spec also writes 'Metering' and 'Weather'
    (section 4.2.2 filter lists): `parse_asset_subtype` accepts them as aliases."""

    GENERATION = "Generation"
    LOAD = "Load"
    STORAGE = "Storage"
    CHARGING = "Charging"
    METER = "Meter"
    FLEXIBILITY_AREA = "FlexibilityArea"
    PRICE_AREA = "PriceArea"
    WEATHER_AREA = "WeatherArea"
    SITE = "Site"
    SITE_ASSET_GROUP = "SiteAssetGroup"
    ZONE = "Zone"
    MARKET = "Market"


class AnyKind(StrEnum):
    """Wildcards in Table 1's type columns and in the GetAssetSupportedPropertyList filter."""

    ALL = "All"
    ALL_RESOURCE_TYPES = "AllResourceTypes"
    ALL_AREA_TYPES = "AllAreaTypes"


class PropertyValueType(StrEnum):
    STRING = "string"
    INT = "int"
    DATE_TIME = "dateTime"
    DOUBLE = "double"
    BOOL = "bool"
    DECIMAL = "decimal"


class PropertyClassification(StrEnum):
    """Section 4.2.1 lists 'Monitoring' and section 4.2.4 lists 'Meter'; Table 1 uses both.
    Table 1 writes 'Geographical Location'; the wire value (4.2.1) has no space."""

    GENERAL = "General"
    GENERATION = "Generation"
    LOAD = "Load"
    CHARGING = "Charging"
    STORAGE = "Storage"
    MONITORING = "Monitoring"
    METER = "Meter"
    CONTROLLABLE = "Controllable"
    INSTALLATION = "Installation"
    COMMUNICATION = "Communication"
    IOT = "IoT"
    GEOGRAPHICAL_LOCATION = "GeographicalLocation"
    ADDRESS = "Address"


class ConnectorType(StrEnum):
    """Site, SiteAssetGroup and Area are the types section 3.1 prescribes ("connected to
    areas via asset connector of type Area", "of type SiteAssetGroup", "of type Site").
    Zone, Weather and Market come from the "e.g." lists of section 4.2.1, which name a
    connector after the kind of area it points to. Price and Flexibility are flexbridge
    additions by that same rule, for the price and flexibility areas section 3.1 says a
    site should always be connected to; the spec gives them no word of their own."""

    SITE = "Site"
    SITE_ASSET_GROUP = "SiteAssetGroup"
    AREA = "Area"
    ZONE = "Zone"
    WEATHER = "Weather"
    MARKET = "Market"
    PRICE = "Price"
    FLEXIBILITY = "Flexibility"


class EntityStatus(StrEnum):
    ACTIVE = "Active"
    IN_PROGRESS = "InProgress"
    DELETED = "Deleted"


class ReferenceDirection(StrEnum):
    NOT_SUPPLIED = "NotSupplied"
    PARENT = "Parent"
    CHILD = "Child"


class ListOption(StrEnum):
    PARTIAL_LIST = "PartialList"
    FULL_LIST = "FullList"
    NOT_SUPPLIED = "NotSupplied"


class ExternalEntityReferenceType(StrEnum):
    """Resource, Site, Zone and Weather are the spec's list (4.2.1); its examples use only
    those. The rest mirror `ConnectorType` (flexbridge additions) so that every kind of
    DESIGN.md section 3 can carry an external cross-reference of its own type."""

    RESOURCE = "Resource"
    SITE = "Site"
    ZONE = "Zone"
    WEATHER = "Weather"
    SITE_ASSET_GROUP = "SiteAssetGroup"
    AREA = "Area"
    MARKET = "Market"
    PRICE = "Price"
    FLEXIBILITY = "Flexibility"


class SelectionValueType(StrEnum):
    """Every selection list of sections 4.2.2/4.2.3, plus SiteAssetGroupType which Table 1
    uses but those lists omit. Section 4.2.3 writes 'PropertyValue' where 4.2.2 writes
    'PropertyValueType': the latter is canonical, the former an accepted alias."""

    ASSET_TYPE = "AssetType"
    ASSET_SUB_TYPE = "AssetSubType"
    RESOURCE_TYPE = "ResourceType"
    ASSET_PROPERTY_CLASSIFICATION_TYPE = "AssetPropertyClassificationType"
    PROPERTY_VALUE_TYPE = "PropertyValueType"
    ASSET_PROPERTY_TYPE_OPTION = "AssetPropertyTypeOption"
    CONNECTOR_TYPE = "ConnectorType"
    ENTITY_STATUS = "EntityStatus"
    EXTERNAL_ENTITY_REFERENCE_TYPE = "ExternalEntityReferenceType"
    LIST_OPTION = "ListOption"
    REFERENCE_DIRECTION = "ReferenceDirection"
    ASSET_SITE_TYPE = "AssetSiteType"
    ASSET_MONITORING_RESOURCE_TYPE = "AssetMonitoringResourceType"
    ASSET_MEASUREMENT_TYPE = "AssetMeasurementType"
    ASSET_CONTROLLABLE_TYPE = "AssetControllableType"
    ASSET_FLEXIBILITY_TYPE = "AssetFlexibilityType"
    ASSET_LOAD_TYPE = "AssetLoadType"
    ASSET_GENERATION_TYPE = "AssetGenerationType"
    ASSET_CHARGING_TYPE = "AssetChargingType"
    ASSET_STORAGE_TYPE = "AssetStorageType"
    SITE_ASSET_GROUP_TYPE = "SiteAssetGroupType"


_RESOURCE_SUBTYPES: Final = frozenset(
    {
        AssetSubType.GENERATION,
        AssetSubType.LOAD,
        AssetSubType.STORAGE,
        AssetSubType.CHARGING,
        AssetSubType.METER,
    }
)
_AREA_SUBTYPES: Final = frozenset(AssetSubType) - _RESOURCE_SUBTYPES

# What each type-column word covers, for rows of Table 1 and for query filters alike.
_SUBTYPES_OF: Final[Mapping[str, frozenset[AssetSubType]]] = MappingProxyType(
    {
        AnyKind.ALL: frozenset(AssetSubType),
        AnyKind.ALL_RESOURCE_TYPES: _RESOURCE_SUBTYPES,
        AnyKind.ALL_AREA_TYPES: _AREA_SUBTYPES,
        AssetType.RESOURCE: _RESOURCE_SUBTYPES,
        AssetType.AREA: _AREA_SUBTYPES,
    }
)

_SUBTYPE_ALIASES: Final[Mapping[str, AssetSubType]] = MappingProxyType(
    {
        "metering": AssetSubType.METER,  # 3.1 and 4.2.2 say Metering, Table 1 says Meter
        "weather": AssetSubType.WEATHER_AREA,  # 4.2.2's filter list says Weather
    }
)

# ---------------------------------------------------------------------- properties


@dataclass(frozen=True, slots=True)
class Bounds:
    """Numeric range a property's value must fall in."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True where `low` itself is refused (0 V would divide by zero)

    def admits(self, number: float) -> bool:
        if self.low is not None and (number <= self.low if self.low_open else number < self.low):
            return False
        return self.high is None or number <= self.high

    def __str__(self) -> str:
        low = None if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
        high = None if self.high is None else f"<= {self.high:g}"
        return " and ".join(part for part in (low, high) if part)


_FACTOR: Final = Bounds(0.0, 1.0)  # Table 1: "Factor between (0-1)"
_NON_NEGATIVE: Final = Bounds(0.0)  # capacities and powers are magnitudes


@dataclass(frozen=True, slots=True)
class PropertyDef:
    """One row of Table 1 (or a flexbridge extension row, `extension=True`)."""

    asset_type: AssetType | AnyKind
    asset_subtype: AssetSubType | AnyKind
    classification: PropertyClassification
    name: str
    value_type: PropertyValueType
    mandatory: bool
    description: str
    selection_type: SelectionValueType | None = None
    default: str | int | float | bool | None = None
    bounds: Bounds | None = None
    unit: str | None = None
    extension: bool = False

    @property
    def subtypes(self) -> frozenset[AssetSubType]:
        """The concrete kinds this row applies to."""
        return _covered(self.asset_type, self.asset_subtype)


_ALL = AnyKind.ALL
_ALL_RES = AnyKind.ALL_RESOURCE_TYPES
_ALL_AREA = AnyKind.ALL_AREA_TYPES
_RES = AssetType.RESOURCE
_AREA = AssetType.AREA
_K = AssetSubType
_C = PropertyClassification
_V = PropertyValueType
_S = SelectionValueType
_NOT_IN_PILOT = " NOT supported in June 2018 pilot release"
_DEFAULT_FILLED = " Filled in with default values if omitted."

# Table 1, row by row, in its order; columns 1-7 positional as in the table.
# Copy errors of the table resolved here:
# - 'AllResource Types' and 'Geographical Location' lose their stray spaces.
# - GenerationType's selection column reads 'AssetGeneration Type': AssetGenerationType.
# - ChargingType's selection column is empty and its description names AssetStorageType
#   with the values None, EVCharger: those are the AssetChargingType list of 4.2.2.
# - MeterType defaults to 'NotSpecified', which its own list omits: AssetMeasurementType
#   gets NotSpecified so that the default is a valid value.
# Descriptions are the spec's text, untouched (the ChargingType one included).
# "Filled in with default values if omitted" gives no value, so those rows have none;
# whoever consumes them (the optimizer) picks the number.
PROPERTIES: tuple[PropertyDef, ...] = (
    PropertyDef(
        _ALL,
        _ALL,
        _C.GENERAL,
        "AssetType",
        _V.STRING,
        True,
        "The asset type. Valid values for property name from selection "
        "list(AssetType : Resource,Area)",
        selection_type=_S.ASSET_TYPE,
    ),
    PropertyDef(
        _ALL,
        _ALL,
        _C.GENERAL,
        "AssetSubType",
        _V.STRING,
        True,
        "The asset subtype. Valid values for property name from selection list(AssetSubType : "
        "Generation,Load,Storage,Charging,Meter,FlexibilityArea,PriceArea,WeatherArea,Site,"
        "SiteAssetGroup)",
        selection_type=_S.ASSET_SUB_TYPE,
    ),
    PropertyDef(_ALL, _ALL, _C.GENERAL, "Name", _V.STRING, True, "The name of the asset."),
    PropertyDef(
        _ALL, _ALL, _C.GENERAL, "Description", _V.STRING, False, "Description of the asset"
    ),
    PropertyDef(
        _ALL,
        _ALL,
        _C.GENERAL,
        "ValidFromTime",
        _V.DATE_TIME,
        False,
        "The asset's valid from date (ISO8601-format).",
    ),
    PropertyDef(
        _ALL,
        _ALL,
        _C.GENERAL,
        "ValidToTime",
        _V.DATE_TIME,
        False,
        "The asset's valid to date (ISO8601-format).",
    ),
    PropertyDef(
        _ALL,
        _ALL,
        _C.GENERAL,
        "EntityStatus",
        _V.STRING,
        True,
        "Entity Status. Valid values for property name from selection list(EntityStatus : "
        "Active,InProgress,Deleted). By default set to 'Active'.",
        selection_type=_S.ENTITY_STATUS,
        default="Active",
    ),
    PropertyDef(
        _ALL,
        _ALL,
        _C.GEOGRAPHICAL_LOCATION,
        "TimeZone",
        _V.STRING,
        False,
        "The time zone the asset is located in.",
    ),
    PropertyDef(
        _ALL,
        _ALL,
        _C.GEOGRAPHICAL_LOCATION,
        "Longitude",
        _V.DECIMAL,
        False,
        "Longitude reference of the asset (decimal degrees WSG84)",
        bounds=Bounds(-180.0, 180.0),
        unit="deg",
    ),
    PropertyDef(
        _ALL,
        _ALL,
        _C.GEOGRAPHICAL_LOCATION,
        "Latitude",
        _V.DECIMAL,
        False,
        "Latitude reference of the asset (decimal degrees WSG84)",
        bounds=Bounds(-90.0, 90.0),
        unit="deg",
    ),
    PropertyDef(
        _ALL, _ALL, _C.ADDRESS, "StreetNumber", _V.INT, False, "Street number of the asset"
    ),
    PropertyDef(
        _ALL, _ALL, _C.ADDRESS, "Street", _V.STRING, False, "The street the asset is located in."
    ),
    PropertyDef(
        _ALL, _ALL, _C.ADDRESS, "City", _V.STRING, False, "The city the asset is located in."
    ),
    PropertyDef(
        _ALL,
        _ALL,
        _C.ADDRESS,
        "PostalCode",
        _V.STRING,
        False,
        "The postal code the asset is located in.",
    ),
    PropertyDef(
        _ALL,
        _ALL,
        _C.ADDRESS,
        "StateOrProvinceCode",
        _V.STRING,
        False,
        "The state or province code the asset is located in.",
    ),
    PropertyDef(
        _ALL,
        _ALL,
        _C.ADDRESS,
        "StateOrProvince",
        _V.STRING,
        False,
        "The state or province the asset is located in.",
    ),
    PropertyDef(
        _ALL, _ALL, _C.ADDRESS, "Country", _V.STRING, False, "The country the asset is located in."
    ),
    PropertyDef(
        _AREA,
        _K.SITE,
        _C.GENERAL,
        "SiteType",
        _V.STRING,
        False,
        "Used when AssetSubType is Site. Indicates site type. Valid values for property name "
        "from selection list(SiteType : NotSpecified,Household,Office,CarPark,Hotel). "
        "By default set to 'NotSpecified'.",
        selection_type=_S.ASSET_SITE_TYPE,
        default="NotSpecified",
    ),
    PropertyDef(
        _AREA,
        _K.SITE,
        _C.GENERAL,
        "NonControllableConsumptionProductionDerivedFromMainMeter",
        _V.BOOL,
        False,
        "True if non-controllable consumption/production assets are not metered individually "
        "and usage should be derived from main meter readings (minus the controllable asset "
        "readings), else false. Defaults to false for insert.",
        default=False,
    ),
    PropertyDef(
        _AREA,
        _K.SITE_ASSET_GROUP,
        _C.GENERAL,
        "SiteAssetGroupType",
        _V.STRING,
        False,
        "Used when AssetSubType is SiteAssetGroup. Indicates site asset group type. Valid "
        "values for property name from selection list(SiteAssetGroupType : "
        "NotSpecified,EVSystem). By default set to 'NotSpecified'.",
        selection_type=_S.SITE_ASSET_GROUP_TYPE,
        default="NotSpecified",
    ),
    PropertyDef(
        _RES,
        _ALL_RES,
        _C.MONITORING,
        "IsMetered",
        _V.BOOL,
        False,
        "Resource property. Indicates if asset is metered. By default set to 'FALSE'.",
        default=False,
    ),
    PropertyDef(
        _RES,
        _ALL_RES,
        _C.METER,
        "MeterType",
        _V.STRING,
        False,
        "Indicates meter type. Valid values from selection list (MeterType: "
        "EnergyConsumption,EnergyProduction,EnergyProductionAndConsumption). "
        "By default set to 'NotSpecified'.",
        selection_type=_S.ASSET_MEASUREMENT_TYPE,
        default="NotSpecified",
    ),
    PropertyDef(
        _RES,
        _ALL_RES,
        _C.METER,
        "IsMainMeter",
        _V.BOOL,
        False,
        "Monitoring property. Indicates if meter is main for a site. By default set to 'FALSE'.",
        default=False,
    ),
    PropertyDef(
        _RES,
        _ALL_RES,
        _C.CONTROLLABLE,
        "IsControllable",
        _V.BOOL,
        False,
        "Resource property. Indicates if asset is controllable. By default set to 'FALSE'.",
        default=False,
    ),
    PropertyDef(
        _RES,
        _ALL_RES,
        _C.CONTROLLABLE,
        "ControllableType",
        _V.STRING,
        False,
        "Controllable property. Indicates controller type. Valid values for property name "
        "from selection list(AssetControllableType : None,OnOff,Continuous). "
        "By default set to 'None'.",
        selection_type=_S.ASSET_CONTROLLABLE_TYPE,
        default="None",
    ),
    PropertyDef(
        _RES,
        _ALL_RES,
        _C.CONTROLLABLE,
        "FlexibilityType",
        _V.STRING,
        False,
        "Flexibility property. Indicate flexibility type. Valid values for property name "
        "from selection list(AssetFlexibilityType : None,Disconnectable,Reducible,"
        "ShiftableVolume,ShiftableProfile). By default set to 'None'.",
        selection_type=_S.ASSET_FLEXIBILITY_TYPE,
        default="None",
    ),
    PropertyDef(
        _RES,
        _ALL_RES,
        _C.IOT,
        "IsGateway",
        _V.BOOL,
        False,
        "Resource property. Indicates if asset is gateway. By default set to 'false'."
        + _NOT_IN_PILOT
        + ".",
        default=False,
    ),
    PropertyDef(
        _RES,
        _ALL_RES,
        _C.IOT,
        "IsIoTEnabled",
        _V.BOOL,
        False,
        "Resource property. Indicates of asset is IoT Device. By default set to 'false'."
        + _NOT_IN_PILOT,
        default=False,
    ),
    PropertyDef(
        _RES,
        _ALL_RES,
        _C.IOT,
        "Manufacturer",
        _V.STRING,
        False,
        "IoT property. The manufacturer of the IoT asset." + _NOT_IN_PILOT,
    ),
    PropertyDef(
        _RES,
        _ALL_RES,
        _C.IOT,
        "IoTItemGuid",
        _V.STRING,
        False,
        "IoT property. Its unique IoT GUID, auto set (to asset key) if IsIoTEnabled = True "
        "and not already set." + _NOT_IN_PILOT,
    ),
    PropertyDef(
        _RES,
        _ALL_RES,
        _C.IOT,
        "DeviceId",
        _V.STRING,
        False,
        "IoT property, its Unique DeviceId, auto set (to asset key) if IsIoTEnabled = True "
        "and not already set." + _NOT_IN_PILOT,
    ),
    PropertyDef(
        _RES,
        _K.LOAD,
        _C.LOAD,
        "LoadType",
        _V.STRING,
        False,
        "The load type. Valid values for property name from selection list(AssetLoadType : "
        "WaterHeater,FloorHeating,None). Use 'None' for other type of load. "
        "By default set to 'None'.",
        selection_type=_S.ASSET_LOAD_TYPE,
        default="None",
    ),
    PropertyDef(
        _RES,
        _K.LOAD,
        _C.LOAD,
        "InstalledMaxCapacity",
        _V.INT,
        False,
        "The installed maximum capacity of the load.",
        bounds=_NON_NEGATIVE,
    ),
    PropertyDef(
        _RES,
        _K.GENERATION,
        _C.GENERATION,
        "GenerationType",
        _V.STRING,
        False,
        "The generation type. Valid values for property name from selection "
        "list(AssetGenerationType : PV, None). Use 'None' for other type of generation. "
        "By default set to 'None'.",
        selection_type=_S.ASSET_GENERATION_TYPE,
        default="None",
    ),
    PropertyDef(
        _RES,
        _K.GENERATION,
        _C.GENERATION,
        "InstalledMaxCapacity",
        _V.INT,
        False,
        "The Maximum Capacity of the installed generation. Unit: kW.",
        bounds=_NON_NEGATIVE,
        unit="kW",
    ),
    PropertyDef(
        _RES,
        _K.CHARGING,
        _C.CHARGING,
        "ChargingType",
        _V.STRING,
        False,
        "The charging type. Valid values for property name from selection "
        "list(AssetStorageType : None, EVCharger). Use 'None' for other type of charging "
        "assets. By default set to 'None'.",
        selection_type=_S.ASSET_CHARGING_TYPE,
        default="None",
    ),
    PropertyDef(
        _RES,
        _K.CHARGING,
        _C.CHARGING,
        "InstalledMaxCapacity",
        _V.DOUBLE,
        False,
        "The installed charging capacity. Unit: kW.",
        bounds=_NON_NEGATIVE,
        unit="kW",
    ),
    PropertyDef(
        _RES,
        _K.CHARGING,
        _C.CHARGING,
        "MaxChargingPower",
        _V.DOUBLE,
        False,
        "The maximum charging capacity. Unit: kW.",
        bounds=_NON_NEGATIVE,
        unit="kW",
    ),
    PropertyDef(
        _RES,
        _K.CHARGING,
        _C.CHARGING,
        "MaxDischargingPower",
        _V.DOUBLE,
        False,
        "The maximum discharging capacity. Used when the EV has V2X capabilities. Unit: kW.",
        bounds=_NON_NEGATIVE,
        unit="kW",
    ),
    PropertyDef(
        _RES,
        _K.CHARGING,
        _C.CHARGING,
        "EfficiencyOfCharging",
        _V.DOUBLE,
        False,
        "The charging efficiency. Factor between (0-1)." + _DEFAULT_FILLED,
        bounds=_FACTOR,
    ),
    PropertyDef(
        _RES,
        _K.CHARGING,
        _C.CHARGING,
        "EfficiencyOfDischarging",
        _V.DOUBLE,
        False,
        "The discharging efficiency. Factor between (0-1)." + _DEFAULT_FILLED,
        bounds=_FACTOR,
    ),
    PropertyDef(
        _RES,
        _K.CHARGING,
        _C.CHARGING,
        "ChargingOnly",
        _V.BOOL,
        False,
        "Indicates if the Charging asset has V2X capabilities. 'True' if it only can be "
        "charged, else false. By default set to 'FALSE'",
        default=False,
    ),
    PropertyDef(
        _RES,
        _K.STORAGE,
        _C.STORAGE,
        "StorageType",
        _V.STRING,
        False,
        "The storage type. Valid values for property name from selection "
        "list(AssetStorageType : None,Battery,EVBattery). Use 'None' for other type of "
        "storage assets. By default set to 'None'.",
        selection_type=_S.ASSET_STORAGE_TYPE,
        default="None",
    ),
    PropertyDef(
        _RES,
        _K.STORAGE,
        _C.STORAGE,
        "InstalledMaxCapacity",
        _V.INT,
        False,
        "The maximum capacity of the storage asset. Unit: kWh.",
        bounds=_NON_NEGATIVE,
        unit="kWh",
    ),
    PropertyDef(
        _RES,
        _K.STORAGE,
        _C.STORAGE,
        "InstalledMinCapacity",
        _V.INT,
        False,
        "The minimum level the storage can be discharged to. Unit: kWh.",
        bounds=_NON_NEGATIVE,
        unit="kWh",
    ),
    PropertyDef(
        _RES,
        _K.STORAGE,
        _C.STORAGE,
        "MaxChargingPower",
        _V.DOUBLE,
        False,
        "The maximum charging capacity. Unit: kW.",
        bounds=_NON_NEGATIVE,
        unit="kW",
    ),
    PropertyDef(
        _RES,
        _K.STORAGE,
        _C.STORAGE,
        "MaxDischargingPower",
        _V.DOUBLE,
        False,
        "The maximum discharging capacity. Unit: kW.",
        bounds=_NON_NEGATIVE,
        unit="kW",
    ),
    PropertyDef(
        _RES,
        _K.STORAGE,
        _C.STORAGE,
        "EfficiencyOfCharging",
        _V.DOUBLE,
        False,
        "The charging efficiency. Factor between (0-1)." + _DEFAULT_FILLED,
        bounds=_FACTOR,
    ),
    PropertyDef(
        _RES,
        _K.STORAGE,
        _C.STORAGE,
        "EfficiencyOfDischarging",
        _V.DOUBLE,
        False,
        "The discharging efficiency. Factor between (0-1)." + _DEFAULT_FILLED,
        bounds=_FACTOR,
    ),
    PropertyDef(
        _RES,
        _K.STORAGE,
        _C.STORAGE,
        "ThresholdCharge",
        _V.DOUBLE,
        False,
        "The maximum Threshold or SOC which the storage should not charge above. "
        "Factor between (0-1)." + _DEFAULT_FILLED,
        bounds=_FACTOR,
    ),
    PropertyDef(
        _RES,
        _K.STORAGE,
        _C.STORAGE,
        "ThresholdDischarge",
        _V.DOUBLE,
        False,
        "The minimum Threshold or SOC which the storage should not discharge below. "
        "Factor between (0-1)." + _DEFAULT_FILLED,
        bounds=_FACTOR,
    ),
    PropertyDef(
        _RES,
        _K.STORAGE,
        _C.STORAGE,
        "ThresholdStoredEnergyEndP",
        _V.DOUBLE,
        False,
        "The Threshold or SOC which the storage level should be at by the end of the "
        "planning horizon. Factor between (0-1)." + _DEFAULT_FILLED,
        bounds=_FACTOR,
    ),
    PropertyDef(
        _RES,
        _K.STORAGE,
        _C.STORAGE,
        "CostCharging",
        _V.DOUBLE,
        False,
        "Cost Charging in currency/ kWh." + _DEFAULT_FILLED,
        unit="currency/kWh",
    ),
    PropertyDef(
        _RES,
        _K.STORAGE,
        _C.STORAGE,
        "CostDischarging",
        _V.DOUBLE,
        False,
        "Cost Discharging in currency/ kWh." + _DEFAULT_FILLED,
        unit="currency/kWh",
    ),
    # flexbridge extensions (DESIGN.md section 4): A <-> kW on groups and areas needs
    # P = phases * V * I * cos(phi) for a 3-phase line-to-neutral voltage.
    PropertyDef(
        _AREA,
        _ALL_AREA,
        _C.INSTALLATION,
        "NominalVoltage",
        _V.DOUBLE,
        False,
        "flexbridge extension, not in Table 1: nominal line-to-neutral voltage of the "
        "area's connection, used to convert between A and kW. Unit: V. "
        "By default set to '230'.",
        default=230.0,
        bounds=Bounds(0.0, low_open=True),
        unit="V",
        extension=True,
    ),
    PropertyDef(
        _AREA,
        _ALL_AREA,
        _C.INSTALLATION,
        "PhaseCount",
        _V.INT,
        False,
        "flexbridge extension, not in Table 1: number of phases of the area's connection "
        "(1 to 3), used to convert between A and kW. By default set to '3'.",
        default=3,
        bounds=Bounds(1.0, 3.0),
        extension=True,
    ),
    PropertyDef(
        _AREA,
        _ALL_AREA,
        _C.INSTALLATION,
        "PowerFactor",
        _V.DOUBLE,
        False,
        "flexbridge extension, not in Table 1: power factor (cos phi) of the area's load, "
        "used to convert between A and kW. Factor in (0-1]. By default set to '1.0'.",
        default=1.0,
        bounds=Bounds(0.0, 1.0, low_open=True),
        extension=True,
    ),
    # The USEF API's postPriceData takes a market's prices in the market's own unit
    # (docs/protocols/usef-api.md, "Prices").
    PropertyDef(
        _AREA,
        AssetSubType.MARKET,
        _C.INSTALLATION,
        "PriceUnit",
        _V.STRING,
        False,
        "flexbridge extension, not in Table 1: the unit the market's prices are given in, "
        "a currency per energy such as EUR/MWh or KRW/kWh. By default set to 'EUR/MWh'.",
        default="EUR/MWh",
        extension=True,
    ),
)

# Pairs (low, high) that must be ordered when both are given in one call.
_ORDERED_PAIRS: Final = (
    ("InstalledMinCapacity", "InstalledMaxCapacity"),
    ("ThresholdDischarge", "ThresholdCharge"),
    ("ValidFromTime", "ValidToTime"),
)

# ------------------------------------------------------------------ selection values


@dataclass(frozen=True, slots=True)
class SelectionValue:
    """One entry of GetAssetSelectionValueList."""

    id: int
    name: str
    selection_type: str
    is_persistable: bool


def _options(
    names: Iterable[str], *, wildcards: Iterable[str] = ()
) -> tuple[tuple[str, bool], ...]:
    """Wildcards first (not persistable: retrieval filters only), then the saveable values."""
    return tuple((str(name), False) for name in wildcards) + tuple(
        (str(name), True) for name in names
    )


# Ids are positions: id 0 is the neutral option, as in the spec's AssetType example
# (0 All, not persistable). Where the spec has no wildcard, id 0 is the 'None' or
# 'NotSpecified' value if the list has one (Table 1 lists LoadType's None last; it moves
# first here); other lists keep the spec's order. NotSupplied (ListOption,
# ReferenceDirection) marks an absent choice, so like All it is never stored.
# AssetPropertyTypeOption and AssetMonitoringResourceType are named by the spec but
# their values are given nowhere: they are served empty rather than invented.
_SELECTION_OPTIONS: Final[Mapping[SelectionValueType, tuple[tuple[str, bool], ...]]] = (
    MappingProxyType(
        {
            _S.ASSET_TYPE: _options(AssetType, wildcards=[AnyKind.ALL]),
            _S.ASSET_SUB_TYPE: _options(AssetSubType, wildcards=AnyKind),
            _S.RESOURCE_TYPE: _options(
                [s for s in AssetSubType if s in _RESOURCE_SUBTYPES], wildcards=[AnyKind.ALL]
            ),
            _S.ASSET_PROPERTY_CLASSIFICATION_TYPE: _options(PropertyClassification),
            _S.PROPERTY_VALUE_TYPE: _options(PropertyValueType),
            _S.ASSET_PROPERTY_TYPE_OPTION: (),
            _S.CONNECTOR_TYPE: _options(ConnectorType),
            _S.ENTITY_STATUS: _options(EntityStatus),
            _S.EXTERNAL_ENTITY_REFERENCE_TYPE: _options(ExternalEntityReferenceType),
            _S.LIST_OPTION: _options(
                [ListOption.PARTIAL_LIST, ListOption.FULL_LIST], wildcards=[ListOption.NOT_SUPPLIED]
            ),
            _S.REFERENCE_DIRECTION: _options(
                [ReferenceDirection.PARENT, ReferenceDirection.CHILD],
                wildcards=[ReferenceDirection.NOT_SUPPLIED],
            ),
            _S.ASSET_SITE_TYPE: _options(
                ["NotSpecified", "Household", "Office", "CarPark", "Hotel"]
            ),
            _S.ASSET_MONITORING_RESOURCE_TYPE: (),
            _S.ASSET_MEASUREMENT_TYPE: _options(
                [
                    "NotSpecified",
                    "EnergyConsumption",
                    "EnergyProduction",
                    "EnergyProductionAndConsumption",
                ]
            ),
            _S.ASSET_CONTROLLABLE_TYPE: _options(["None", "OnOff", "Continuous"]),
            _S.ASSET_FLEXIBILITY_TYPE: _options(
                ["None", "Disconnectable", "Reducible", "ShiftableVolume", "ShiftableProfile"]
            ),
            _S.ASSET_LOAD_TYPE: _options(["None", "WaterHeater", "FloorHeating"]),
            _S.ASSET_GENERATION_TYPE: _options(["None", "PV"]),
            _S.ASSET_CHARGING_TYPE: _options(["None", "EVCharger"]),
            _S.ASSET_STORAGE_TYPE: _options(["None", "Battery", "EVBattery"]),
            _S.SITE_ASSET_GROUP_TYPE: _options(["NotSpecified", "EVSystem"]),
        }
    )
)

# Other names the spec uses for a list: 4.2.3 says PropertyValue, Table 1's descriptions
# say SiteType and MeterType. Keys are squeezed (no spaces) and casefolded.
_SELECTION_TYPE_ALIASES: Final[Mapping[str, SelectionValueType]] = MappingProxyType(
    {
        "propertyvalue": _S.PROPERTY_VALUE_TYPE,
        "sitetype": _S.ASSET_SITE_TYPE,
        "metertype": _S.ASSET_MEASUREMENT_TYPE,
    }
)


def parse_selection_value_type(name: str) -> SelectionValueType:
    """The canonical selection type for `name`, matched ignoring case and spaces."""
    key = "".join(name.split()).casefold() if isinstance(name, str) else ""
    for member in SelectionValueType:
        if member.casefold() == key:
            return member
    if key in _SELECTION_TYPE_ALIASES:
        return _SELECTION_TYPE_ALIASES[key]
    raise ValidationError(
        "selectionValueType",
        f"unknown selection value type {name!r}; expected one of " + ", ".join(SelectionValueType),
    )


def selection_values(selection_type: str | None = None) -> list[SelectionValue]:
    """GetAssetSelectionValueList: one type's values, or every type's when None."""
    types = (
        tuple(SelectionValueType)
        if selection_type is None
        else (parse_selection_value_type(selection_type),)
    )
    return [
        SelectionValue(index, name, str(kind), persistable)
        for kind in types
        for index, (name, persistable) in enumerate(_SELECTION_OPTIONS[kind])
    ]


# ------------------------------------------------------------------------- kinds


def _match(value: object, options: Iterable[str]) -> str | None:
    if not isinstance(value, str):
        return None
    key = value.strip().casefold()
    return next((option for option in options if option.casefold() == key), None)


def parse_asset_type(value: object, field: str = "AssetType") -> AssetType:
    """`value` as an AssetType, ignoring case; refused with `field` named otherwise."""
    found = _match(value, AssetType)
    if found is None:
        raise ValidationError(
            field, f"expected one of {', '.join(AssetType)}, got {_describe(value)}"
        )
    return AssetType(found)


def parse_asset_subtype(value: object, field: str = "AssetSubType") -> AssetSubType:
    """`value` as an AssetSubType, ignoring case; 'Metering' and 'Weather' are aliases."""
    found = _match(value, AssetSubType)
    if found is not None:
        return AssetSubType(found)
    if isinstance(value, str) and value.strip().casefold() in _SUBTYPE_ALIASES:
        return _SUBTYPE_ALIASES[value.strip().casefold()]
    raise ValidationError(
        field, f"expected one of {', '.join(AssetSubType)}, got {_describe(value)}"
    )


def asset_type_of(subtype: AssetSubType) -> AssetType:
    return AssetType.RESOURCE if subtype in _RESOURCE_SUBTYPES else AssetType.AREA


def _covered(asset_type: str, asset_subtype: str) -> frozenset[AssetSubType]:
    by_subtype = (
        frozenset({asset_subtype})
        if isinstance(asset_subtype, AssetSubType)
        else _SUBTYPES_OF[asset_subtype]
    )
    return _SUBTYPES_OF[asset_type] & by_subtype


def _query_kinds(asset_type: str, asset_subtype: str) -> frozenset[AssetSubType]:
    """The concrete kinds a GetAssetSupportedPropertyList filter selects."""
    type_word = _match(asset_type, [AnyKind.ALL, *AssetType])
    if type_word is None:
        raise ValidationError(
            "assetType", f"expected one of All, {', '.join(AssetType)}, got {_describe(asset_type)}"
        )
    subtype_word: str | None = _match(asset_subtype, AnyKind)
    if subtype_word is None:
        subtype_word = parse_asset_subtype(asset_subtype, "assetSubType")
    else:
        subtype_word = AnyKind(subtype_word)
    kinds = _covered(type_word, subtype_word)
    if not kinds:
        raise ValidationError("assetSubType", f"{subtype_word!s} is not a subtype of {type_word}")
    return kinds


def properties_for(
    asset_type: AssetType | str = AnyKind.ALL, asset_subtype: AssetSubType | str = AnyKind.ALL
) -> list[PropertyDef]:
    """GetAssetSupportedPropertyList: every row that applies to some kind the filter selects.

    'All' selects every kind, so (All, All) is the whole catalogue; a concrete subtype gets
    the All rows, its type's AllResourceTypes/AllAreaTypes rows and its own rows.
    """
    kinds = _query_kinds(asset_type, asset_subtype)
    return [definition for definition in PROPERTIES if definition.subtypes & kinds]


def find_property(
    asset_type: AssetType | str, asset_subtype: AssetSubType | str, name: str
) -> PropertyDef | None:
    """The row for `name` (any case) on one concrete kind, or None if it has none."""
    kind = _concrete_kind(asset_type, asset_subtype)
    key = name.casefold()
    return next((d for d in properties_for(*kind) if d.name.casefold() == key), None)


def _concrete_kind(
    asset_type: AssetType | str, asset_subtype: AssetSubType | str
) -> tuple[AssetType, AssetSubType]:
    parsed_type = parse_asset_type(asset_type)
    parsed_subtype = parse_asset_subtype(asset_subtype)
    if asset_type_of(parsed_subtype) is not parsed_type:
        raise ValidationError(
            "AssetSubType",
            f"{parsed_subtype} is a {asset_type_of(parsed_subtype)} subtype, not {parsed_type}",
        )
    return parsed_type, parsed_subtype


# -------------------------------------------------------------------- value coercion


class _Refused(Exception):
    """A value a coercer will not take; the message is the reason."""


def _describe(raw: object) -> str:
    if raw is None:
        return "null"
    if isinstance(raw, bool):
        return f"{str(raw).lower()} (a boolean)"
    if isinstance(raw, str):
        return f"{raw!r} (a string)"
    if isinstance(raw, int | float | Decimal):
        return f"{raw} (a number)"
    return f"a {type(raw).__name__}"


def _as_string(raw: object) -> str:
    if not isinstance(raw, str):
        raise _Refused(f"expected a string, got {_describe(raw)}")
    return raw


def _as_int(raw: object) -> int:
    # bool is an int subclass and JSON true is no integer; 10.0 is (JSON has one number type)
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, float | Decimal) and math.isfinite(raw) and raw == int(raw):
        return int(raw)
    raise _Refused(f"expected an integer, got {_describe(raw)}")


def _as_float(raw: object) -> float:
    if isinstance(raw, int | float | Decimal) and not isinstance(raw, bool):
        number = float(raw)
        if math.isfinite(number):
            return number
    raise _Refused(f"expected a finite number, got {_describe(raw)}")


def _as_bool(raw: object) -> bool:
    # Table 1 writes defaults as 'FALSE' and 'false': accept the words in any case
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().casefold() in ("true", "false"):
        return raw.strip().casefold() == "true"
    raise _Refused(f"expected true or false, got {_describe(raw)}")


def _as_datetime(raw: object) -> datetime:
    if isinstance(raw, datetime):
        parsed = raw
    elif isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise _Refused(f"expected an ISO 8601 date-time in UTC, got {_describe(raw)}") from None
    else:
        raise _Refused(f"expected an ISO 8601 date-time in UTC, got {_describe(raw)}")
    try:
        return require_utc(parsed, "value")
    except ValidationError as error:
        raise _Refused(f"{error.reason}; got {_describe(raw)}") from None


_COERCERS: Final = MappingProxyType(
    {
        PropertyValueType.STRING: _as_string,
        PropertyValueType.INT: _as_int,
        PropertyValueType.DOUBLE: _as_float,
        PropertyValueType.DECIMAL: _as_float,
        PropertyValueType.BOOL: _as_bool,
        PropertyValueType.DATE_TIME: _as_datetime,
    }
)


def _selection_name(selection_type: SelectionValueType, value: object) -> str:
    """The canonical spelling of a saveable option (spec 4.2.3: only persisted ones)."""
    options = _SELECTION_OPTIONS[selection_type]
    saveable = [name for name, persistable in options if persistable]
    found = _match(value, saveable)
    if found is not None:
        return found
    raise _Refused(
        f"expected one of {', '.join(saveable)} (selection list "
        f"{selection_type}), got {_describe(value)}"
    )


def _coerce(definition: PropertyDef, raw: object) -> object:
    value = _COERCERS[definition.value_type](raw)
    if definition.selection_type is not None:
        value = _selection_name(definition.selection_type, value)
    if definition.bounds is not None:
        if not isinstance(value, int | float):  # a bound compares with numbers only
            raise TypeError(f"{definition.name} has bounds but {definition.value_type} values")
        if not definition.bounds.admits(value):
            raise _Refused(f"expected a number {definition.bounds}, got {_describe(raw)}")
    if definition.mandatory and isinstance(value, str) and not value.strip():
        raise _Refused(f"mandatory; expected a non-empty string, got {_describe(raw)}")
    return value


def _coerce_kind(definition: PropertyDef, raw: object, kind: tuple[AssetType, AssetSubType]) -> str:
    """AssetType/AssetSubType repeated in the values: they must name the caller's kind."""
    expected = kind[0] if definition.name == "AssetType" else kind[1]
    parse = parse_asset_type if definition.name == "AssetType" else parse_asset_subtype
    try:
        given = parse(raw)
    except ValidationError as error:
        raise _Refused(error.reason) from None
    if given is not expected:
        raise _Refused(f"expected {expected} (the asset's {definition.name}), got {_describe(raw)}")
    return str(expected)


# ---------------------------------------------------------------------- validation

_ABSENT: Final = object()  # a null on insert: treated as not supplied


def _value_for(
    definition: PropertyDef, raw: object, kind: tuple[AssetType, AssetSubType], insert: bool
) -> object:
    if raw is None:
        if insert:
            return _ABSENT
        if definition.mandatory:
            raise _Refused("mandatory and cannot be cleared, got null")
        return None  # null on update clears an optional property
    if definition.name in ("AssetType", "AssetSubType"):
        return _coerce_kind(definition, raw, kind)
    return _coerce(definition, raw)


def _unknown_reason(
    name: str, kind: tuple[AssetType, AssetSubType], catalogue: Iterable[PropertyDef]
) -> str:
    key = name.casefold()
    elsewhere = sorted(
        {f"{d.asset_type}/{d.asset_subtype}" for d in PROPERTIES if d.name.casefold() == key}
    )
    label = f"{kind[0]}/{kind[1]}"
    if elsewhere:
        return f"not a property of {label}; it applies to {', '.join(elsewhere)}"
    return f"unknown property for {label}; expected one of " + ", ".join(d.name for d in catalogue)


def _exceeds(low: object, high: object) -> bool:
    """`low > high` for the coerced values of an ordered pair: two numbers or two date-times."""
    if isinstance(low, int | float) and isinstance(high, int | float):
        return low > high
    if isinstance(low, datetime) and isinstance(high, datetime):
        return low > high
    raise TypeError(f"cannot order {type(low).__name__} and {type(high).__name__}")


def _ordering_issues(supplied: Mapping[str, object]) -> list[FieldIssue]:
    issues = []
    for low, high in _ORDERED_PAIRS:
        low_value, high_value = supplied.get(low), supplied.get(high)
        if low_value is not None and high_value is not None and _exceeds(low_value, high_value):
            issues.append(
                FieldIssue(low, f"expected at most {high} ({high_value}), got {low_value}")
            )
    return issues


def _completion(
    catalogue: Iterable[PropertyDef],
    supplied: Mapping[str, object],
    refused: set[str],
    kind: tuple[AssetType, AssetSubType],
) -> tuple[dict[str, object], list[FieldIssue]]:
    """On insert: the kind, the defaults, and an issue per mandatory property missing."""
    filled: dict[str, object] = {}
    issues = []
    kind_values = {"AssetType": str(kind[0]), "AssetSubType": str(kind[1])}
    for definition in catalogue:
        name = definition.name
        if name in supplied or name in refused:
            continue
        if name in kind_values:
            filled[name] = kind_values[name]
        elif definition.default is not None:
            filled[name] = definition.default
        elif definition.mandatory:
            issues.append(
                FieldIssue(
                    name,
                    f"mandatory on insert; expected a {definition.value_type} value, got nothing",
                )
            )
    return filled, issues


def validate_properties(
    asset_type: AssetType | str,
    asset_subtype: AssetSubType | str,
    values: Mapping[str, object],
    *,
    insert: bool,
) -> dict[str, object]:
    """Check `values` against the catalogue for one kind; return them typed and canonical.

    Names and selection values match in any case and come back in canonical spelling.
    On insert, missing mandatory properties are errors and defaults are filled in, and
    AssetType/AssetSubType are taken from the arguments; on update only the supplied
    properties are checked, and a null clears an optional one. Orderings (min <= max,
    from < to) are checked only between values given in the same call: the caller checks
    an update against what is stored. Every problem is reported in one ValidationError.
    """
    kind = _concrete_kind(asset_type, asset_subtype)
    catalogue = {d.name.casefold(): d for d in properties_for(*kind)}
    supplied: dict[str, object] = {}
    refused: set[str] = set()
    issues: list[FieldIssue] = []
    seen: set[str] = set()
    for given, raw in values.items():
        definition = catalogue.get(str(given).casefold())
        if definition is None:
            issues.append(
                FieldIssue(str(given), _unknown_reason(str(given), kind, catalogue.values()))
            )
            continue
        if definition.name in seen:
            issues.append(FieldIssue(definition.name, f"given more than once (as {given!r} too)"))
            refused.add(definition.name)
            continue
        seen.add(definition.name)
        try:
            value = _value_for(definition, raw, kind, insert)
        except _Refused as refusal:
            issues.append(FieldIssue(definition.name, str(refusal)))
            refused.add(definition.name)
            continue
        if value is not _ABSENT:
            supplied[definition.name] = value
    issues.extend(_ordering_issues(supplied))
    if insert:
        filled, missing = _completion(catalogue.values(), supplied, refused, kind)
        supplied.update(filled)
        issues.extend(missing)
    if issues:
        raise ValidationError(issues=issues)
    return {d.name: supplied[d.name] for d in catalogue.values() if d.name in supplied}
