"""The CP-API asset catalogue against INVADE D7.2 Table 1 and sections 4.2.1-4.2.3."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from store.catalogue import (
    PROPERTIES,
    AssetSubType,
    AssetType,
    ConnectorType,
    EntityStatus,
    ExternalEntityReferenceType,
    ListOption,
    PropertyClassification,
    PropertyDef,
    PropertyValueType,
    ReferenceDirection,
    SelectionValue,
    SelectionValueType,
    asset_type_of,
    find_property,
    parse_asset_subtype,
    parse_asset_type,
    parse_selection_value_type,
    properties_for,
    selection_values,
    validate_properties,
)
from store.errors import FieldIssue, ValidationError

SPEC = Path(__file__).resolve().parents[2] / "shared" / "specs" / "invade-d7.2-cp-api-ocmp.txt"
TABLE_1_ROWS = 54


def issues_of(error: pytest.ExceptionInfo[ValidationError]) -> dict[str, str]:
    return {issue.field: issue.reason for issue in error.value.issues}


def row(asset_type: str, asset_subtype: str, name: str) -> PropertyDef:
    matches = [
        p
        for p in PROPERTIES
        if (p.asset_type, p.asset_subtype, p.name) == (asset_type, asset_subtype, name)
    ]
    assert len(matches) == 1, f"{asset_type}/{asset_subtype}/{name}: {len(matches)} rows"
    return matches[0]


# ------------------------------------------------------------------------- enums


@pytest.mark.parametrize(
    ("enum", "values"),
    [
        (AssetType, ["Resource", "Area"]),
        (
            AssetSubType,
            [
                "Generation",
                "Load",
                "Storage",
                "Charging",
                "Meter",
                "FlexibilityArea",
                "PriceArea",
                "WeatherArea",
                "Site",
                "SiteAssetGroup",
                "Zone",
                "Market",
            ],
        ),
        (PropertyValueType, ["string", "int", "dateTime", "double", "bool", "decimal"]),
        (
            PropertyClassification,
            [
                "General",
                "Generation",
                "Load",
                "Charging",
                "Storage",
                "Monitoring",
                "Meter",
                "Controllable",
                "Installation",
                "Communication",
                "IoT",
                "GeographicalLocation",
                "Address",
            ],
        ),
        (EntityStatus, ["Active", "InProgress", "Deleted"]),
        (ReferenceDirection, ["NotSupplied", "Parent", "Child"]),
        (ListOption, ["PartialList", "FullList", "NotSupplied"]),
    ],
)
def test_enums_carry_the_spec_words(enum: type[StrEnum], values: list[str]) -> None:
    """Section 3.3.2.3: "enum values will be represented as strings"."""
    assert [member.value for member in enum] == values


def test_connector_types_cover_section_3_1_and_the_4_2_1_examples() -> None:
    """3.1: "connected to areas via asset connector of type *Area*" / "of type
    *SiteAssetGroup*" / "of type *Site*"; 4.2.1: "e.g. ['Site', 'Zone', 'Weather', 'Market']"."""
    assert {
        "Site",
        "SiteAssetGroup",
        "Area",
        "Zone",
        "Weather",
        "Market",
        "Price",
        "Flexibility",
    } <= set(ConnectorType)


def test_external_reference_types_include_the_spec_list() -> None:
    """4.2.1: "ExternalEntityReferenceType (string): External Entity Reference Type :
    ['Resource', 'Site', 'Zone', 'Weather']"."""
    assert [t.value for t in ExternalEntityReferenceType][:4] == [
        "Resource",
        "Site",
        "Zone",
        "Weather",
    ]


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("Metering", AssetSubType.METER),
        ("metering", AssetSubType.METER),
        ("Meter", AssetSubType.METER),
        ("Weather", AssetSubType.WEATHER_AREA),
        ("siteassetgroup", AssetSubType.SITE_ASSET_GROUP),
    ],
)
def test_metering_is_accepted_as_meter(word: str, expected: AssetSubType) -> None:
    """4.2.2: assetSubType "['All', ..., 'Metering', 'Site', 'Zone', 'Weather', 'Market']"
    while Table 1 says "AssetSubType : Generation,Load,Storage,Charging,Meter,..."."""
    assert parse_asset_subtype(word) is expected


def test_unknown_asset_type_names_the_field() -> None:
    with pytest.raises(ValidationError) as error:
        parse_asset_type("Thing")
    assert error.value.field == "AssetType"
    assert "'Thing'" in error.value.reason and "Resource" in error.value.reason


# ---------------------------------------------------------------------- Table 1


def test_table_1_is_encoded_row_for_row() -> None:
    """3.1.1: "The following table details the prevailing asset properties that will be
    supported on each asset type" - all 54 rows, plus only marked extensions."""
    assert sum(not p.extension for p in PROPERTIES) == TABLE_1_ROWS
    assert [p.name for p in PROPERTIES if p.extension] == [
        "NominalVoltage",
        "PhaseCount",
        "PowerFactor",
        "PriceUnit",
    ]


def _spec_table_1() -> list[list[str]]:
    text = SPEC.read_text(encoding="utf-8")
    start = text.index("Asset Type\tAsset SubType\tClassification Type")
    end = text.index("**Table 1 - Asset properties")
    rows: list[list[str]] = []
    for line in text[start:end].splitlines()[1:]:
        if line.startswith("\t") and line.strip():
            rows[-1][6] += " " + line.strip()  # a description wrapped onto a new line
        elif line.strip():
            rows.append((line.split("\t") + [""] * 8)[:8])
    return rows


@pytest.mark.skipif(not SPEC.exists(), reason=f"spec text not found at {SPEC}")
def test_table_1_matches_the_spec_text() -> None:
    """Every Table 1 row: type, subtype, classification, name, value type, mandatory,
    description and selection list as the spec prints them, stray spaces removed."""
    spec_rows = _spec_table_1()
    ours = [p for p in PROPERTIES if not p.extension]
    assert len(spec_rows) == len(ours) == TABLE_1_ROWS
    for cells, definition in zip(spec_rows, ours, strict=True):
        squeeze = ["".join(cell.split()) for cell in cells]
        assert (
            str(definition.asset_type),
            str(definition.asset_subtype),
            str(definition.classification),
            definition.name,
            str(definition.value_type),
        ) == tuple(squeeze[:5])
        assert definition.mandatory is (squeeze[5] == "TRUE")
        assert " ".join(definition.description.split()) == " ".join(cells[6].split())
        if squeeze[7] not in ("", "null"):
            assert definition.selection_type == squeeze[7]
        elif definition.name != "ChargingType":  # empty in the table, a copy error
            assert definition.selection_type is None


@pytest.mark.parametrize(
    ("key", "classification", "value_type", "mandatory", "default", "selection"),
    [
        (("All", "All", "AssetType"), "General", "string", True, None, "AssetType"),
        (("All", "All", "Name"), "General", "string", True, None, None),
        (("All", "All", "EntityStatus"), "General", "string", True, "Active", "EntityStatus"),
        (("All", "All", "ValidFromTime"), "General", "dateTime", False, None, None),
        (("All", "All", "Longitude"), "GeographicalLocation", "decimal", False, None, None),
        (("All", "All", "StreetNumber"), "Address", "int", False, None, None),
        (("Area", "Site", "SiteType"), "General", "string", False, "NotSpecified", "AssetSiteType"),
        (
            ("Area", "Site", "NonControllableConsumptionProductionDerivedFromMainMeter"),
            "General",
            "bool",
            False,
            False,
            None,
        ),
        (
            ("Area", "SiteAssetGroup", "SiteAssetGroupType"),
            "General",
            "string",
            False,
            "NotSpecified",
            "SiteAssetGroupType",
        ),
        (("Resource", "AllResourceTypes", "IsMetered"), "Monitoring", "bool", False, False, None),
        (
            ("Resource", "AllResourceTypes", "MeterType"),
            "Meter",
            "string",
            False,
            "NotSpecified",
            "AssetMeasurementType",
        ),
        (
            ("Resource", "AllResourceTypes", "IsControllable"),
            "Controllable",
            "bool",
            False,
            False,
            None,
        ),
        (
            ("Resource", "AllResourceTypes", "FlexibilityType"),
            "Controllable",
            "string",
            False,
            "None",
            "AssetFlexibilityType",
        ),
        (("Resource", "AllResourceTypes", "IsGateway"), "IoT", "bool", False, False, None),
        (("Resource", "Load", "InstalledMaxCapacity"), "Load", "int", False, None, None),
        (
            ("Resource", "Generation", "GenerationType"),
            "Generation",
            "string",
            False,
            "None",
            "AssetGenerationType",
        ),
        (
            ("Resource", "Charging", "ChargingType"),
            "Charging",
            "string",
            False,
            "None",
            "AssetChargingType",
        ),
        (("Resource", "Charging", "InstalledMaxCapacity"), "Charging", "double", False, None, None),
        (("Resource", "Charging", "ChargingOnly"), "Charging", "bool", False, False, None),
        (("Resource", "Storage", "InstalledMaxCapacity"), "Storage", "int", False, None, None),
        (
            ("Resource", "Storage", "ThresholdStoredEnergyEndP"),
            "Storage",
            "double",
            False,
            None,
            None,
        ),
        (
            ("Resource", "Storage", "StorageType"),
            "Storage",
            "string",
            False,
            "None",
            "AssetStorageType",
        ),
    ],
)
def test_table_1_rows(
    key: tuple[str, str, str],
    classification: str,
    value_type: str,
    mandatory: bool,
    default: object,
    selection: str | None,
) -> None:
    """Spot checks across every classification: 'By default set to ...' becomes `default`."""
    definition = row(*key)
    assert (
        definition.classification,
        definition.value_type,
        definition.mandatory,
        definition.default,
        definition.selection_type,
    ) == (classification, value_type, mandatory, default, selection)
    assert type(definition.default) is type(default)


def test_units_from_table_1() -> None:
    """Table 1: "The maximum capacity of the storage asset. Unit: kWh." and "The installed
    charging capacity. Unit: kW."."""
    assert row("Resource", "Storage", "InstalledMaxCapacity").unit == "kWh"
    assert row("Resource", "Charging", "InstalledMaxCapacity").unit == "kW"


def test_extension_rows_are_marked_and_default_as_design_says() -> None:
    """DESIGN.md 4: "A <-> kW needs the group's nominal voltage, phase count and power factor
    (entity properties, defaults 230 V, 3 phases, 1.0)"."""
    extensions = {p.name: p for p in PROPERTIES if p.extension}
    assert {n: (p.value_type, p.default) for n, p in extensions.items()} == {
        "NominalVoltage": ("double", 230.0),
        "PhaseCount": ("int", 3),
        "PowerFactor": ("double", 1.0),
        "PriceUnit": ("string", "EUR/MWh"),  # a Market's (the USEF API's postPriceData)
    }
    for definition in extensions.values():
        kind = "Market" if definition.name == "PriceUnit" else "AllAreaTypes"
        assert (definition.asset_type, definition.asset_subtype) == ("Area", kind)
        assert "flexbridge extension, not in Table 1" in definition.description


@pytest.mark.parametrize("subtype", list(AssetSubType))
def test_property_names_are_unique_within_each_kind(subtype: AssetSubType) -> None:
    names = [p.name.casefold() for p in properties_for(asset_type_of(subtype), subtype)]
    assert len(names) == len(set(names))


def test_every_selection_default_is_a_saveable_value() -> None:
    """Table 1: "By default set to 'NotSpecified'" for MeterType, whose list omits it: the
    default must still validate, so the list carries it."""
    for definition in PROPERTIES:
        if definition.selection_type is not None and definition.default is not None:
            saveable = {
                v.name for v in selection_values(definition.selection_type) if v.is_persistable
            }
            assert definition.default in saveable, definition.name


def test_every_property_selection_list_has_values() -> None:
    for definition in PROPERTIES:
        if definition.selection_type is not None:
            assert any(v.is_persistable for v in selection_values(definition.selection_type))


def test_catalogue_is_immutable() -> None:
    assert isinstance(PROPERTIES, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROPERTIES[0].name = "Renamed"  # type: ignore[misc]


# ------------------------------------------------------------- properties_for


def test_all_all_serves_the_whole_table() -> None:
    """4.2.2: "GetAssetSupportedPropertyList?assetType=All&assetSubType=All" returns the
    "Full list ... shown in Table 1"."""
    assert properties_for("All", "All") == list(PROPERTIES)
    assert properties_for() == list(PROPERTIES)


def test_a_kind_gets_general_type_wide_and_own_rows() -> None:
    names = {p.name for p in properties_for("Resource", "Storage")}
    assert {
        "Name",
        "Latitude",
        "Country",
        "IsMetered",
        "FlexibilityType",
        "DeviceId",
        "StorageType",
        "ThresholdCharge",
        "CostDischarging",
    } <= names
    assert not names & {"SiteType", "ChargingType", "LoadType", "ChargingOnly", "NominalVoltage"}


def test_areas_get_the_conversion_properties_and_no_resource_rows() -> None:
    names = {p.name for p in properties_for("Area", "SiteAssetGroup")}
    assert {"SiteAssetGroupType", "NominalVoltage", "PhaseCount", "PowerFactor"} <= names
    assert not names & {"IsMetered", "SiteType", "InstalledMaxCapacity"}


def test_wildcard_subtypes_select_every_kind_of_their_type() -> None:
    """4.2.2: assetSubType "['All', 'AllResourceTypes', 'AllAreaTypes', ...]"."""
    resource_rows = properties_for("Resource", "AllResourceTypes")
    assert (
        resource_rows
        == properties_for("Resource", "All")
        == properties_for("All", "AllResourceTypes")
    )
    assert {p.name for p in resource_rows} >= {"LoadType", "ChargingType", "StorageType"}
    assert "SiteType" not in {p.name for p in resource_rows}
    assert "SiteType" in {p.name for p in properties_for("All", "AllAreaTypes")}


def test_metering_filter_is_the_meter_kind() -> None:
    assert properties_for("Resource", "Metering") == properties_for("resource", "meter")


@pytest.mark.parametrize(
    ("asset_type", "asset_subtype", "field"),
    [
        ("Thing", "All", "assetType"),
        ("All", "Gadget", "assetSubType"),
        ("Area", "Load", "assetSubType"),
        ("Resource", "AllAreaTypes", "assetSubType"),
    ],
)
def test_bad_filters_name_the_query_parameter(
    asset_type: str, asset_subtype: str, field: str
) -> None:
    with pytest.raises(ValidationError) as error:
        properties_for(asset_type, asset_subtype)
    assert error.value.field == field


def test_find_property_picks_the_kinds_own_row() -> None:
    """Table 1 types InstalledMaxCapacity int on Storage but double on Charging."""
    storage = find_property("Resource", "Storage", "installedmaxcapacity")
    charging = find_property("Resource", "Charging", "InstalledMaxCapacity")
    assert storage is not None and storage.value_type == "int"
    assert charging is not None and charging.value_type == "double"
    assert find_property("Area", "Site", "InstalledMaxCapacity") is None


# ----------------------------------------------------------- selection values


def test_asset_type_selection_values_match_the_spec_example() -> None:
    """4.2.3 example response: Id 0 All IsPersistable false, 1 Resource true, 2 Area true."""
    assert selection_values("AssetType") == [
        SelectionValue(0, "All", "AssetType", False),
        SelectionValue(1, "Resource", "AssetType", True),
        SelectionValue(2, "Area", "AssetType", True),
    ]


@pytest.mark.parametrize("selection_type", list(SelectionValueType))
def test_every_selection_type_is_served_with_sequential_ids(selection_type: str) -> None:
    """4.2.3: "Given selection value type, the method returns the valid values for that
    selection type" - for each type 4.2.2/4.2.3 list."""
    values = selection_values(selection_type)
    assert [v.id for v in values] == list(range(len(values)))
    assert {v.selection_type for v in values} <= {selection_type}
    assert len({v.name for v in values}) == len(values)


@pytest.mark.parametrize(
    ("selection_type", "names"),
    [
        (
            "AssetSubType",
            [
                "All",
                "AllResourceTypes",
                "AllAreaTypes",
                "Generation",
                "Load",
                "Storage",
                "Charging",
                "Meter",
                "FlexibilityArea",
                "PriceArea",
                "WeatherArea",
                "Site",
                "SiteAssetGroup",
                "Zone",
                "Market",
            ],
        ),
        ("ResourceType", ["All", "Generation", "Load", "Storage", "Charging", "Meter"]),
        ("EntityStatus", ["Active", "InProgress", "Deleted"]),
        ("ListOption", ["NotSupplied", "PartialList", "FullList"]),
        ("ReferenceDirection", ["NotSupplied", "Parent", "Child"]),
        ("AssetSiteType", ["NotSpecified", "Household", "Office", "CarPark", "Hotel"]),
        (
            "AssetMeasurementType",
            [
                "NotSpecified",
                "EnergyConsumption",
                "EnergyProduction",
                "EnergyProductionAndConsumption",
            ],
        ),
        ("AssetControllableType", ["None", "OnOff", "Continuous"]),
        (
            "AssetFlexibilityType",
            ["None", "Disconnectable", "Reducible", "ShiftableVolume", "ShiftableProfile"],
        ),
        ("AssetLoadType", ["None", "WaterHeater", "FloorHeating"]),
        ("AssetGenerationType", ["None", "PV"]),
        ("AssetChargingType", ["None", "EVCharger"]),
        ("AssetStorageType", ["None", "Battery", "EVBattery"]),
        ("SiteAssetGroupType", ["NotSpecified", "EVSystem"]),
        ("PropertyValueType", ["string", "int", "dateTime", "double", "bool", "decimal"]),
        ("AssetPropertyClassificationType", list(PropertyClassification)),
        ("ConnectorType", list(ConnectorType)),
        ("ExternalEntityReferenceType", list(ExternalEntityReferenceType)),
    ],
)
def test_selection_lists_hold_the_table_1_values(selection_type: str, names: list[str]) -> None:
    """Table 1: e.g. "selection list(AssetFlexibilityType : None,Disconnectable,Reducible,
    ShiftableVolume,ShiftableProfile)"."""
    assert [v.name for v in selection_values(selection_type)] == names


@pytest.mark.parametrize(
    ("selection_type", "retrieval_only"),
    [
        ("AssetType", {"All"}),
        ("AssetSubType", {"All", "AllResourceTypes", "AllAreaTypes"}),
        ("ResourceType", {"All"}),
        ("ListOption", {"NotSupplied"}),
        ("ReferenceDirection", {"NotSupplied"}),
        ("AssetFlexibilityType", set()),
        ("AssetSiteType", set()),
    ],
)
def test_only_wildcards_are_not_persistable(selection_type: str, retrieval_only: set[str]) -> None:
    """4.2.3: "only options marked as persisted can be used for saving, non-persisted options
    are sometimes present to facilitate flexible retrieval"."""
    values = selection_values(selection_type)
    assert {v.name for v in values if not v.is_persistable} == retrieval_only


@pytest.mark.parametrize(
    "selection_type", ["AssetPropertyTypeOption", "AssetMonitoringResourceType"]
)
def test_lists_the_spec_names_without_values_are_empty(selection_type: str) -> None:
    """The spec lists these types in 4.2.3 but gives their values nowhere."""
    assert selection_values(selection_type) == []


@pytest.mark.parametrize(
    ("asked", "canonical"),
    [
        ("PropertyValue", "PropertyValueType"),  # 4.2.3's spelling
        ("AssetGeneration Type", "AssetGenerationType"),  # Table 1's stray space
        ("assettype", "AssetType"),
        ("SiteType", "AssetSiteType"),  # the name Table 1's description uses
        ("MeterType", "AssetMeasurementType"),
    ],
)
def test_selection_type_spellings(asked: str, canonical: str) -> None:
    assert parse_selection_value_type(asked) == canonical
    assert {v.selection_type for v in selection_values(asked)} == {canonical}


def test_unknown_selection_type_is_refused() -> None:
    with pytest.raises(ValidationError) as error:
        selection_values("Colour")
    assert error.value.field == "selectionValueType"
    assert error.value.reason.startswith(
        "unknown selection value type 'Colour'; expected one of AssetType, AssetSubType"
    )


def test_all_selection_values_is_every_list_in_order() -> None:
    """4.2.3: selectionValueType is optional ("Y")."""
    assert selection_values() == [
        value for kind in SelectionValueType for value in selection_values(kind)
    ]


def test_selection_values_are_fresh_lists() -> None:
    first = selection_values("AssetType")
    first.clear()
    assert len(selection_values("AssetType")) == 3


# ----------------------------------------------------------------- validation


def test_insert_fills_defaults_for_a_site() -> None:
    """Table 1: SiteType "By default set to 'NotSpecified'", EntityStatus "By default set to
    'Active'", NonControllable... "Defaults to false for insert"."""
    assert validate_properties("Area", "Site", {"Name": "12 Grosvenor Rd"}, insert=True) == {
        "AssetType": "Area",
        "AssetSubType": "Site",
        "Name": "12 Grosvenor Rd",
        "EntityStatus": "Active",
        "SiteType": "NotSpecified",
        "NonControllableConsumptionProductionDerivedFromMainMeter": False,
        "NominalVoltage": 230.0,
        "PhaseCount": 3,
        "PowerFactor": 1.0,
    }


def test_insert_fills_defaults_for_a_resource() -> None:
    """Table 1: FlexibilityType "By default set to 'None'", IsControllable "By default set
    to 'FALSE'", StorageType "By default set to 'None'"."""
    result = validate_properties("Resource", "Storage", {"Name": "Battery"}, insert=True)
    assert {
        k: result[k]
        for k in (
            "FlexibilityType",
            "IsControllable",
            "ControllableType",
            "StorageType",
            "IsMetered",
            "MeterType",
            "IsMainMeter",
            "IsGateway",
            "IsIoTEnabled",
            "EntityStatus",
        )
    } == {
        "FlexibilityType": "None",
        "IsControllable": False,
        "ControllableType": "None",
        "StorageType": "None",
        "IsMetered": False,
        "MeterType": "NotSpecified",
        "IsMainMeter": False,
        "IsGateway": False,
        "IsIoTEnabled": False,
        "EntityStatus": "Active",
    }
    assert "EfficiencyOfCharging" not in result  # "default values" given without a value


@pytest.mark.parametrize(
    ("subtype", "name", "default"),
    [
        ("SiteAssetGroup", "SiteAssetGroupType", "NotSpecified"),
        ("Charging", "ChargingType", "None"),
        ("Charging", "ChargingOnly", False),
        ("Load", "LoadType", "None"),
        ("Generation", "GenerationType", "None"),
    ],
)
def test_insert_fills_kind_specific_defaults(subtype: str, name: str, default: object) -> None:
    result = validate_properties(
        parse_asset_type("Area" if subtype == "SiteAssetGroup" else "Resource"),
        subtype,
        {"Name": "x"},
        insert=True,
    )
    assert result[name] == default


def test_update_does_not_fill_defaults() -> None:
    """4.2.2 IsMandatory: "applies to Inserts, on updates value will be unchanged if not
    supplied"."""
    assert validate_properties("Area", "Site", {"City": "Reading"}, insert=False) == {
        "City": "Reading"
    }


def test_mandatory_name_missing_on_insert_is_an_error() -> None:
    """Table 1: "Name string TRUE The name of the asset."."""
    with pytest.raises(ValidationError) as error:
        validate_properties("Resource", "Load", {"City": "Oslo"}, insert=True)
    assert list(issues_of(error)) == ["Name"]
    assert "mandatory on insert" in issues_of(error)["Name"]


def test_null_mandatory_on_insert_is_missing() -> None:
    with pytest.raises(ValidationError) as error:
        validate_properties("Resource", "Load", {"Name": None}, insert=True)
    assert "Name" in issues_of(error)


def test_null_on_insert_takes_the_default() -> None:
    result = validate_properties("Resource", "Load", {"Name": "x", "LoadType": None}, insert=True)
    assert result["LoadType"] == "None"


def test_null_on_update_clears_an_optional_property_but_not_a_mandatory_one() -> None:
    assert validate_properties("Resource", "Load", {"City": None}, insert=False) == {"City": None}
    with pytest.raises(ValidationError) as error:
        validate_properties("Resource", "Load", {"Name": None}, insert=False)
    assert issues_of(error) == {"Name": "mandatory and cannot be cleared, got null"}


def test_blank_name_is_refused() -> None:
    with pytest.raises(ValidationError) as error:
        validate_properties("Resource", "Load", {"Name": "  "}, insert=True)
    assert "non-empty" in issues_of(error)["Name"]


def test_names_and_selection_values_match_in_any_case() -> None:
    """Table 1 writes 'FALSE' and 'false' for booleans; names are matched like time series
    names ("can be supplied in any lower/upper case combination")."""
    assert validate_properties(
        "resource",
        "STORAGE",
        {
            "name": "Battery",
            "STORAGETYPE": "battery",
            "isControllable": "TRUE",
            "controllabletype": "onoff",
            "ismainmeter": "False",
        },
        insert=False,
    ) == {
        "Name": "Battery",
        "IsMainMeter": False,
        "IsControllable": True,
        "ControllableType": "OnOff",
        "StorageType": "Battery",
    }


@given(st.sampled_from(properties_for("Resource", "Storage")), st.data())
def test_any_casing_of_a_name_is_canonical(definition: PropertyDef, data: st.DataObject) -> None:
    upper = data.draw(
        st.lists(st.booleans(), min_size=len(definition.name), max_size=len(definition.name))
    )
    scrambled = "".join(
        c.upper() if up else c.lower() for c, up in zip(definition.name, upper, strict=True)
    )
    with pytest.raises(ValidationError) as error:
        validate_properties("Resource", "Storage", {scrambled: object()}, insert=False)
    assert [issue.field for issue in error.value.issues] == [definition.name]


def test_repeated_kind_must_agree() -> None:
    """Table 1: AssetType and AssetSubType are mandatory properties; the caller also passes
    the kind, so a repeated value must name the same kind."""
    result = validate_properties(
        "Resource",
        "Meter",
        {"AssetType": "resource", "AssetSubType": "Metering", "Name": "Main"},
        insert=True,
    )
    assert (result["AssetType"], result["AssetSubType"]) == ("Resource", "Meter")
    with pytest.raises(ValidationError) as error:
        validate_properties(
            "Resource",
            "Meter",
            {"AssetType": "Area", "AssetSubType": "Load", "Name": "Main"},
            insert=True,
        )
    assert set(issues_of(error)) == {"AssetType", "AssetSubType"}
    assert "expected Resource" in issues_of(error)["AssetType"]


def test_a_wildcard_cannot_be_saved() -> None:
    """4.2.3: "only options marked as persisted can be used for saving"."""
    with pytest.raises(ValidationError) as error:
        validate_properties("Resource", "Load", {"AssetType": "All", "Name": "x"}, insert=True)
    assert "'All'" in issues_of(error)["AssetType"]


@pytest.mark.parametrize(
    ("asset_type", "asset_subtype", "field"),
    [
        ("Gadget", "Load", "AssetType"),
        ("Resource", "Gizmo", "AssetSubType"),
        ("Area", "Load", "AssetSubType"),
        ("All", "All", "AssetType"),
    ],
)
def test_the_kind_itself_must_be_concrete_and_consistent(
    asset_type: str, asset_subtype: str, field: str
) -> None:
    with pytest.raises(ValidationError) as error:
        validate_properties(asset_type, asset_subtype, {"Name": "x"}, insert=True)
    assert error.value.field == field


@pytest.mark.parametrize(
    ("subtype", "name", "raw", "expected"),
    [
        ("Storage", "InstalledMaxCapacity", True, "expected an integer, got true (a boolean)"),
        ("Storage", "InstalledMaxCapacity", 10.5, "expected an integer, got 10.5 (a number)"),
        ("Storage", "InstalledMaxCapacity", "10", "expected an integer, got '10' (a string)"),
        ("Storage", "InstalledMaxCapacity", -1, "expected a number >= 0, got -1"),
        ("Storage", "MaxChargingPower", -0.5, "expected a number >= 0, got -0.5"),
        ("Storage", "MaxChargingPower", True, "expected a finite number, got true (a boolean)"),
        ("Storage", "MaxChargingPower", float("nan"), "expected a finite number, got nan"),
        ("Storage", "MaxChargingPower", float("inf"), "expected a finite number, got inf"),
        ("Storage", "MaxChargingPower", "7.4", "expected a finite number, got '7.4'"),
        ("Storage", "EfficiencyOfCharging", 1.2, "expected a number >= 0 and <= 1, got 1.2"),
        ("Storage", "ThresholdDischarge", -0.1, "expected a number >= 0 and <= 1, got -0.1"),
        ("Storage", "IsControllable", "yes", "expected true or false, got 'yes' (a string)"),
        ("Storage", "IsControllable", 1, "expected true or false, got 1 (a number)"),
        ("Storage", "ValidFromTime", "2018-02-23T13:40:32", "naive timestamp"),
        ("Storage", "ValidFromTime", "2018-02-23", "naive timestamp"),
        (
            "Storage",
            "ValidFromTime",
            "yesterday",
            "expected an ISO 8601 date-time in UTC, got 'yesterday'",
        ),
        ("Storage", "ValidFromTime", 1519393232, "expected an ISO 8601 date-time in UTC"),
        ("Storage", "ValidFromTime", datetime(2018, 2, 23), "naive timestamp"),
        ("Storage", "Name", 5, "expected a string, got 5 (a number)"),
        (
            "Storage",
            "StorageType",
            "Flywheel",
            "expected one of None, Battery, EVBattery "
            "(selection list AssetStorageType), got 'Flywheel'",
        ),
        ("Storage", "EntityStatus", "Gone", "expected one of Active, InProgress, Deleted"),
        ("Storage", "StorageType", 3, "expected a string, got 3 (a number)"),
        ("Storage", "Latitude", 91, "expected a number >= -90 and <= 90, got 91"),
        ("Site", "PowerFactor", 0, "expected a number > 0 and <= 1, got 0"),
        ("Site", "PhaseCount", 4, "expected a number >= 1 and <= 3, got 4"),
        ("Site", "NominalVoltage", 0.0, "expected a number > 0, got 0.0"),
        (
            "Site",
            "SiteType",
            "Castle",
            "expected one of NotSpecified, Household, Office, CarPark, Hotel",
        ),
    ],
)
def test_type_errors_name_the_field_and_say_what_was_expected(
    subtype: str, name: str, raw: object, expected: str
) -> None:
    asset_type = "Area" if subtype == "Site" else "Resource"
    with pytest.raises(ValidationError) as error:
        validate_properties(asset_type, subtype, {name: raw}, insert=False)
    assert [issue.field for issue in error.value.issues] == [name]
    assert expected in error.value.reason


@pytest.mark.parametrize(
    ("subtype", "name", "raw", "expected"),
    [
        ("Storage", "InstalledMaxCapacity", 10.0, 10),
        ("Storage", "InstalledMaxCapacity", Decimal("12"), 12),
        ("Storage", "MaxChargingPower", 7, 7.0),
        ("Storage", "Longitude", Decimal("10.75"), 10.75),
        ("Storage", "IsControllable", "FALSE", False),
        ("Storage", "IsMetered", True, True),
        (
            "Storage",
            "ValidFromTime",
            "2018-02-23T13:40:32.3868657Z",
            datetime(2018, 2, 23, 13, 40, 32, 386865, tzinfo=UTC),
        ),
        (
            "Storage",
            "ValidToTime",
            "2018-02-23T14:40:32+01:00",
            datetime(2018, 2, 23, 13, 40, 32, tzinfo=UTC),
        ),
        ("Storage", "FlexibilityType", "shiftableprofile", "ShiftableProfile"),
        ("Storage", "MeterType", "NOTSPECIFIED", "NotSpecified"),
        ("Site", "PhaseCount", 1, 1),
    ],
)
def test_values_are_normalised(subtype: str, name: str, raw: object, expected: object) -> None:
    asset_type = "Area" if subtype == "Site" else "Resource"
    result = validate_properties(asset_type, subtype, {name: raw}, insert=False)
    assert result == {name: expected}
    assert type(result[name]) is type(expected)


def test_aware_datetimes_come_back_in_utc() -> None:
    """3.3.2.2: "All Dates should be supplied in UTC in the ISO 8601 string format"."""
    given_value = datetime.fromisoformat("2018-02-23T15:40:32+02:00")
    result = validate_properties("Area", "Zone", {"ValidFromTime": given_value}, insert=False)
    assert result["ValidFromTime"] == given_value
    assert result["ValidFromTime"].tzinfo is UTC


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(ValidationError) as error:
        validate_properties(
            "Resource",
            "Storage",
            {
                "StorageType": "Flywheel",
                "ThresholdCharge": 1.5,
                "InstalledMinCapacity": -2,
                "IsControllable": "maybe",
                "SiteType": "Household",
                "Colour": "red",
            },
            insert=True,
        )
    assert set(issues_of(error)) == {
        "StorageType",
        "ThresholdCharge",
        "InstalledMinCapacity",
        "IsControllable",
        "SiteType",
        "Colour",
        "Name",
    }
    assert all(isinstance(issue, FieldIssue) for issue in error.value.issues)


def test_a_property_of_another_kind_says_where_it_belongs() -> None:
    with pytest.raises(ValidationError) as error:
        validate_properties("Resource", "Storage", {"ChargingOnly": True}, insert=False)
    assert issues_of(error) == {
        "ChargingOnly": "not a property of Resource/Storage; it applies to Resource/Charging"
    }


def test_the_spec_examples_misspelling_is_an_unknown_property() -> None:
    """4.2.1 Example 1 writes "IsContollerable"; Table 1 and 4.2.6 write "IsControllable"."""
    with pytest.raises(ValidationError) as error:
        validate_properties("Resource", "Storage", {"IsContollerable": True}, insert=False)
    reason = issues_of(error)["IsContollerable"]
    assert reason.startswith("unknown property for Resource/Storage; expected one of")
    assert "IsControllable" in reason


def test_a_name_given_twice_in_different_case_is_refused() -> None:
    with pytest.raises(ValidationError) as error:
        validate_properties("Area", "Site", {"City": "A", "city": "B"}, insert=False)
    assert "given more than once" in issues_of(error)["City"]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"InstalledMinCapacity": 11, "InstalledMaxCapacity": 10}, "InstalledMinCapacity"),
        ({"ThresholdDischarge": 0.9, "ThresholdCharge": 0.2}, "ThresholdDischarge"),
        (
            {"ValidFromTime": "2019-01-01T00:00:00Z", "ValidToTime": "2018-01-01T00:00:00Z"},
            "ValidFromTime",
        ),
    ],
)
def test_lower_limits_may_not_exceed_upper_ones(values: dict[str, object], field: str) -> None:
    """Table 1: InstalledMinCapacity is "The minimum level the storage can be discharged
    to"; ThresholdDischarge is the minimum SOC, ThresholdCharge the maximum."""
    with pytest.raises(ValidationError) as error:
        validate_properties("Resource", "Storage", values, insert=False)
    assert list(issues_of(error)) == [field]


def test_the_save_asset_example_validates() -> None:
    """4.2.6 example call body: a battery storage resource."""
    result = validate_properties(
        "Resource",
        "Storage",
        {
            "AssetType": "Resource",
            "AssetSubType": "Storage",
            "Name": "Battery",
            "StorageType": "Battery",
            "InstalledMaxCapacity": 10,
            "InstalledMinCapacity": 0,
            "IsControllable": True,
            "ControllableType": "OnOff",
            "ValidFromTime": "2018-02-07T17:05:11.2480907Z",
        },
        insert=True,
    )
    assert result["InstalledMaxCapacity"] == 10
    assert result["ControllableType"] == "OnOff"
    assert result["ValidFromTime"] == datetime(2018, 2, 7, 17, 5, 11, 248090, tzinfo=UTC)
    assert result["FlexibilityType"] == "None"


def test_the_zone_example_validates() -> None:
    """4.2.1 Example 1: "an area asset of subtype zone"."""
    result = validate_properties(
        "Area",
        "Zone",
        {
            "AssetType": "Area",
            "AssetSubType": "Zone",
            "Name": "Zone 123",
            "ValidFromTime": "2018-02-23T13:40:32.3868657Z",
        },
        insert=True,
    )
    assert result["Name"] == "Zone 123" and result["EntityStatus"] == "Active"


def test_result_follows_catalogue_order() -> None:
    result = validate_properties("Area", "Site", {"City": "x", "Name": "y"}, insert=False)
    assert list(result) == ["Name", "City"]


@given(st.floats(min_value=0.0, max_value=1.0))
def test_factors_in_range_are_kept(number: float) -> None:
    """Table 1: "The charging efficiency. Factor between (0-1)"."""
    result = validate_properties(
        "Resource", "Charging", {"EfficiencyOfCharging": number}, insert=False
    )
    assert result == {"EfficiencyOfCharging": number}


@given(
    st.one_of(
        st.floats(max_value=-1e-12, allow_nan=False),
        st.floats(min_value=1.0 + 1e-12, allow_nan=False),
    )
)
def test_factors_out_of_range_are_refused(number: float) -> None:
    with pytest.raises(ValidationError) as error:
        validate_properties("Resource", "Storage", {"ThresholdCharge": number}, insert=False)
    assert error.value.field == "ThresholdCharge"


@given(st.integers(min_value=0, max_value=10**12))
def test_integers_round_trip(number: int) -> None:
    assert validate_properties(
        "Resource", "Generation", {"InstalledMaxCapacity": number}, insert=False
    ) == {"InstalledMaxCapacity": number}
