"""CP-API Asset Management API (INVADE D7.2 section 4.2) over HTTP, on SQLite and PostgreSQL.

The spec's example bodies are copied below as printed (JSON text) and posted unchanged.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapter.app import create_app
from adapter.auth import encode_basic_auth
from adapter.keys import DB
from adapter.settings import Settings
from store.accounts import Role, add_account
from store.catalogue import SelectionValueType, selection_values
from store.messages import recent_messages
from store.tenants import add_tenant, get_tenant

SPEC = Path(__file__).resolve().parents[2] / "shared" / "specs" / "invade-d7.2-cp-api-ocmp.txt"

# ------------------------------------------------------------------ spec examples

# 4.2.1.2 Example 1 (also the 4.2.7 example call body and the 4.2.5 example response). The
# PDF text splits it over four pages; each page break repeats or adds closing brackets
# ("] } } ]" after a page's last line, a repeated `"ConnectorType": null,`). Joined here page
# after page without those break artefacts; every field and value is as printed, including
# the misspelt "IsContollerable" and the battery connector's FriendlyName "Zone 123".
EXAMPLE_1 = """
[
  {
    "AssetKey": {
      "SystemIdentifier": "System xyz",
      "ExternalEntityReferenceType": "Zone",
      "Key": null,
      "ExternalKey": "1",
      "FriendlyName": "Zone 123"
    },
    "AssetProperties": {
      "ListOption": "PartialList",
      "AssetPropertyClassificationTypeList": [
        "General"
      ],
      "AssetPropertyList": [
        {
          "PropertyName": "AssetType",
          "PropertyValue": "Area",
          "PropertyValueType": null,
          "AssetPropertyClassificationType": "General"
        },
        {
          "PropertyName": "AssetSubType",
          "PropertyValue": "Zone",
          "PropertyValueType": null,
          "AssetPropertyClassificationType": "General"
        },
        {
          "PropertyName": "Name",
          "PropertyValue": "Zone 123",
          "PropertyValueType": null,
          "AssetPropertyClassificationType": "General"
        },
        {
          "PropertyName": "ValidFromTime",
          "PropertyValue": "2018-02-23T13:40:32.3868657Z",
          "PropertyValueType": null,
          "AssetPropertyClassificationType": "General"
        }
      ]
    },
    "AssetConnectors": null
  },
  {
    "AssetKey": {
      "SystemIdentifier": "System xyz",
      "ExternalEntityReferenceType": "Site",
      "Key": null,
      "ExternalKey": "2",
      "FriendlyName": "12 Grosvenor Rd"
    },
    "AssetProperties": {
      "ListOption": "PartialList",
      "AssetPropertyClassificationTypeList": [
        "General"
      ],
      "AssetPropertyList": [
        {
          "PropertyName": "AssetType",
          "PropertyValue": "Area",
          "PropertyValueType": null,
          "AssetPropertyClassificationType": "General"
    },
    {
      "PropertyName": "AssetSubType",
      "PropertyValue": "Site",
      "PropertyValueType": null,
      "AssetPropertyClassificationType": "General"
    },
    {
      "PropertyName": "Name",
      "PropertyValue": "12 Grosvenor Rd",
      "PropertyValueType": null,
      "AssetPropertyClassificationType": "General"
    },
    {
      "PropertyName": "ValidFromTime",
      "PropertyValue": "2018-02-23T13:40:32.3868657Z",
      "PropertyValueType": null,
      "AssetPropertyClassificationType": "General"
    }
  ]
},
"AssetConnectors": {
  "ListOption": "PartialList",
  "AssetConnectorTypeList": null,
  "ReferenceDirectionList": [
    "Parent"
  ],
  "AssetConnectorList": [
    {
      "ReferenceDirection": "Parent",
      "ConnectorType": null,
      "AssetReferenceKey": {
        "SystemIdentifier": "System xyz",
        "ExternalEntityReferenceType": "Zone",
        "Key": null,
        "ExternalKey": "1",
        "FriendlyName": "Zone 123"
      },
      "ValidFromTime": "2018-02-23T13:40:32.3868657Z",
      "ValidToTime": null,
      "EntityStatus": null
    }
  ]
}
},
{
  "AssetKey": {
    "SystemIdentifier": "System xyz",
    "ExternalEntityReferenceType": "Resource",
    "Key": null,
    "ExternalKey": "3",
    "FriendlyName": "Battery"
  },
  "AssetProperties": {
    "ListOption": "PartialList",
    "AssetPropertyClassificationTypeList": [
      "General",
      "Storage",
      "Controllable"
    ],
    "AssetPropertyList": [
      {
        "PropertyName": "AssetType",
        "PropertyValue": "Resource",
        "PropertyValueType": null,
        "AssetPropertyClassificationType": "General"
      },
      {
        "PropertyName": "AssetSubType",
        "PropertyValue": "Storage",
        "PropertyValueType": null,
        "AssetPropertyClassificationType": "General"
      },
    {
      "PropertyName": "Name",
      "PropertyValue": "Battery",
      "PropertyValueType": null,
      "AssetPropertyClassificationType": "General"
    },
    {
      "PropertyName": "StorageType",
      "PropertyValue": "Battery",
      "PropertyValueType": null,
      "AssetPropertyClassificationType": "Storage"
    },
    {
      "PropertyName": "InstalledMaxCapacity",
      "PropertyValue": 10,
      "PropertyValueType": null,
      "AssetPropertyClassificationType": "Storage"
    },
    {
      "PropertyName": "InstalledMinCapacity",
      "PropertyValue": 0,
      "PropertyValueType": null,
      "AssetPropertyClassificationType": "Storage"
    },
    {
      "PropertyName": "IsContollerable",
      "PropertyValue": true,
      "PropertyValueType": null,
      "AssetPropertyClassificationType": "Controllable"
    },
    {
      "PropertyName": "ControllableType",
      "PropertyValue": "OnOff",
      "PropertyValueType": null,
      "AssetPropertyClassificationType": "Controllable"
    },
    {
      "PropertyName": "ValidFromTime",
      "PropertyValue": "2018-02-23T13:40:32.3868657Z",
      "PropertyValueType": null,
      "AssetPropertyClassificationType": "General"
    }
  ]
},
"AssetConnectors": {
  "ListOption": "PartialList",
  "AssetConnectorTypeList": null,
  "ReferenceDirectionList": [
    "Parent"
  ],
  "AssetConnectorList": [
    {
      "ReferenceDirection": "Parent",
      "ConnectorType": null,
      "AssetReferenceKey": {
        "SystemIdentifier": "System xyz",
        "ExternalEntityReferenceType": "Site",
        "Key": null,
        "ExternalKey": "2",
        "FriendlyName": "Zone 123"
      },
      "ValidFromTime": "2018-02-23T13:40:32.3868657Z",
      "ValidToTime": null,
      "EntityStatus": null
    }
  ]
}
}
]
"""

# 4.2.2 example response ("just a small sample").
SUPPORTED_PROPERTY_LIST_RESPONSE = """
[
  {
    "AssetType": "All",
    "AssetSubType": "All",
    "AssetPropertyClassificationType": "General",
    "PropertyName": "AssetType",
    "PropertyValue": "string",
    "IsMandatory": true,
    "Description": "Asset Type, valid values for property name from selection list(AssetType : Resource,Area)",
    "SelectionValueType": "AssetType"
  },
  {
    "AssetType": "All",
    "AssetSubType": "All",
    "AssetPropertyClassificationType": "General",
    "PropertyName": "AssetSubType",
    "PropertyValue": "string",
    "IsMandatory": true,
    "Description": "Asset Subtype, valid values for property name from selection list(AssetSubType : Generation,Load,Storage,Charging,Metering,Site,Zone,Weather,Market)",
    "SelectionValueType": "AssetSubType"
  }
]
"""  # noqa: E501

# 4.2.3 example response.
SELECTION_VALUE_LIST_RESPONSE = """
[
  {
    "Id": 0,
    "Name": "All",
    "SelectionValueType": "AssetType",
    "IsPersistable": false
  },
  {
    "Id": 1,
    "Name": "Resource",
    "SelectionValueType": "AssetType",
    "IsPersistable": true
  },
  {
    "Id": 2,
    "Name": "Area",
    "SelectionValueType": "AssetType",
    "IsPersistable": true
  }
]
"""

# 4.2.4 example call body, joined over its page break; the key with a trailing blank and
# the comma-joined classification list are as printed.
GET_ASSET_REQUEST = """
{
  "externalEntityReference": {
    "SystemIdentifier": "System 123",
    "ExternalEntityReferenceType": "Resource",
    "ExternalKey": "1234567675",
    "FriendlyName": "Battery"
  },
  "IncludePropertyClassificationTypes": true,
  "RestrictToAssetPropertyClassificationTypes ": [
    "General,Controllable"
  ],
  "IncludeAssetConnectorTypes": true,
  "RestrictToAssetConnectorTypes": [],
  "RestrictToReferenceDirection": "Parent"
}
"""

# 4.2.4 example response, joined over its page break.
GET_ASSET_RESPONSE = """
{
  "assetKey": {
    "systemIdentifier": "System xyz",
    "externalEntityReferenceType": "Resource",
    "externalKey": "1",
    "friendlyName": "Battery"
  },
  "assetPropertyList": [
    {
      "propertyName": "AssetType",
      "propertyValue": "Resource"
    },
    {
      "propertyName": "AssetSubType",
      "propertyValue": "Storage"
    },
    {
      "propertyName": "Name",
      "propertyValue": "Battery"
    },
    {
      "propertyName": "StorageType",
      "propertyValue": "Battery"
    },
    {
      "propertyName": "InstalledMaxCapacity",
      "propertyValue": 10
    },
    {
      "propertyName": "InstalledMinCapacity",
      "propertyValue": 0
    },
    {
      "propertyName": "IsControllable",
      "propertyValue": true
    },
    {
      "propertyName": "ControllableType",
      "propertyValue": "OnOff"
    },
    {
      "propertyName": "ValidFromTime",
      "propertyValue": "2018-02-07T17:05:11.2480907Z"
    }
  ],
  "assetConnectorList": [
    {
      "referenceDirection": "Parent",
      "assetReferencKey": {
        "systemIdentifier": "System xyz",
        "externalEntityReferenceType": "Site",
        "key": "56ed7f60-363c-4638-b422-24aa6d5169cf",
        "externalKey": "1",
        "friendlyName": "Site 123"
      },
      "validFromTime": "2018-02-07T17:05:11.2490947Z"
    }
  ]
}
"""

# 4.2.5 example call body.
GET_ASSET_LIST_REQUEST = """
{
  "AssetType": "Area",
  "AssetSubType": "Site",
  "IncludePropertyClassificationTypes": true,
  "RestrictToAssetPropertyClassificationTypes": [
    "General"
  ],
  "IncludeAssetConnectorTypes": true,
  "RestrictToAssetConnectorTypes": [],
  "RestrictToReferenceDirection": "Parent",
  "ActiveOnly": true,
  "LiveAtDateTime": "2018-02-23T13:55:05.455Z",
  "Search": ""
}
"""

# 4.2.6 example call body (AssetV1), as printed: camelCase, the lists on the asset itself.
SAVE_ASSET_REQUEST = """
{
  "assetKey": {
    "systemIdentifier": "System xyz",
    "externalEntityReferenceType": "Resource",
    "externalKey": "1",
    "friendlyName": "Battery"
  },
  "assetPropertyList": [
    {
      "propertyName": "AssetType",
      "propertyValue": "Resource"
    },
    {
      "propertyName": "AssetSubType",
      "propertyValue": "Storage"
    },
    {
      "propertyName": "Name",
      "propertyValue": "Battery"
    },
    {
      "propertyName": "StorageType",
      "propertyValue": "Battery"
    },
    {
      "propertyName": "InstalledMaxCapacity",
      "propertyValue": 10
    },
    {
      "propertyName": "InstalledMinCapacity",
      "propertyValue": 0
    },
    {
      "propertyName": "IsControllable",
      "propertyValue": true
    },
    {
      "propertyName": "ControllableType",
      "propertyValue": "OnOff"
    },
    {
      "propertyName": "ValidFromTime",
      "propertyValue": "2018-02-07T17:05:11.2480907Z"
    }
  ],
  "assetConnectorList": [
    {
      "referenceDirection": "Parent",
      "assetReferencKey": {
        "systemIdentifier": "System xyz",
        "externalEntityReferenceType": "Site",
        "key": "56ed7f60-363c-4638-b422-24aa6d5169cf",
        "externalKey": "1",
        "friendlyName": "sITE 123"
      },
      "validFromTime": "2018-02-07T17:05:11.2490947Z"
    }
  ]
}
"""

# 4.2.6 example response.
SAVE_ASSET_RESPONSE = """
{
  "AssetKey": {
    "SystemIdentifier": "System xyz",
    "ExternalEntityReferenceType": "Resource",
    "ExternalKey": "1",
    "FriendlyName": "Battery"
  },
  "Success": true,
  "Key": "7911910D-ABBE-457C-AE53-B26D1A6EF47B"
}
"""

# 4.2.7 example response.
SAVE_ASSET_LIST_RESPONSE = """
[
  {
    "AssetKey": {
      "SystemIdentifier": "System xyz",
      "ExternalEntityReferenceType": "Zone",
      "Key": null,
      "ExternalKey": "1",
      "FriendlyName": "Zone 123"
    },
    "Success": true,
    "Key": "0bc96a38-b67a-4637-b5b4-aba0f643f66e",
    "ErrorMessage": null
  },
  {
    "AssetKey": {
      "SystemIdentifier": "System xyz",
      "ExternalEntityReferenceType": "Site",
      "Key": null,
      "ExternalKey": "2",
      "FriendlyName": "12 Grosvenor Rd"
    },
    "Success": true,
    "Key": "1402d633-8e07-4c82-9b41-cb5ded4faba4",
    "ErrorMessage": null
  },
  {
    "AssetKey": {
      "SystemIdentifier": "System xyz",
      "ExternalEntityReferenceType": "Resource",
      "Key": null,
      "ExternalKey": "3",
      "FriendlyName": "Battery"
    },
    "Success": true,
    "Key": "3424a932-e01b-4809-91ee-d9c3f8eaa3ca",
    "ErrorMessage": null
  }
]
"""

SITE_KEY = "56ed7f60-363c-4638-b422-24aa6d5169cf"  # the site the 4.2.4/4.2.6 examples name

# ----------------------------------------------------------------------- harness


@dataclass(frozen=True)
class Party:
    username: str
    password: str
    tenant_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Authorization": encode_basic_auth(self.username, self.password),
            "X-Tenant-Key": self.tenant_key,
        }


@dataclass
class Api:
    client: Any
    a: Party
    b: Party

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        party: Party | None = None,
        params: dict[str, str] | None = None,
        raw: str | None = None,
    ) -> tuple[int, Any]:
        headers = dict((party or self.a).headers)
        data = None
        if raw is not None:
            data, headers["Content-Type"] = raw, "application/json"
        elif body is not None:
            data, headers["Content-Type"] = json.dumps(body), "application/json"
        response = await self.client.request(
            method, path, data=data, headers=headers, params=params
        )
        return response.status, await response.json()

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("POST", path, body, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kwargs)

    async def save(self, asset: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        status, body = await self.post("/api/Asset/SaveAssetV1", asset, **kwargs)
        assert status == 200 and body["Success"] is True, body
        return body

    async def save_list(self, assets: list[Any], **kwargs: Any) -> list[dict[str, Any]]:
        status, body = await self.post("/api/Asset/SaveAssetV1List", assets, **kwargs)
        assert status == 200, body
        return body

    async def fetch(self, reference: dict[str, Any], **options: Any) -> tuple[int, Any]:
        return await self.post(
            "/api/Asset/GetAssetV1", {"ExternalEntityReference": reference, **options}
        )

    async def asset(self, reference: dict[str, Any], **options: Any) -> dict[str, Any]:
        status, body = await self.fetch(reference, **options)
        assert status == 200, body
        return body

    async def listing(self, request: dict[str, Any] | None = None, **kwargs: Any) -> list[Any]:
        status, body = await self.post("/api/Asset/GetAssetV1List", request or {}, **kwargs)
        assert status == 200, body
        return body


@pytest.fixture
async def api(aiohttp_client, db, database_url) -> Api:  # type: ignore[no-untyped-def]
    # `db` migrates the database and, on PostgreSQL, empties it before the app starts.
    app = create_app(replace(Settings(), database_url=database_url, admin_password="admin-pw"))
    client = await aiohttp_client(app)
    async with app[DB].transaction() as tx:
        first, first_key = await add_tenant(tx, "pilot-a")
        await add_account(tx, first, "cpo-a", Role.PARTICIPANT, "pw-a")
        second, second_key = await add_tenant(tx, "pilot-b")
        await add_account(tx, second, "cpo-b", Role.PARTICIPANT, "pw-b")
    return Api(client, Party("cpo-a", "pw-a", first_key), Party("cpo-b", "pw-b", second_key))


def ref(system: str, kind: str, external_key: str) -> dict[str, str]:
    return {
        "SystemIdentifier": system,
        "ExternalEntityReferenceType": kind,
        "ExternalKey": external_key,
    }


def prop(name: str, value: Any, classification: str | None = None) -> dict[str, Any]:
    entry = {"PropertyName": name, "PropertyValue": value}
    if classification:
        entry["AssetPropertyClassificationType"] = classification
    return entry


def asset(
    key: dict[str, Any],
    props: list[dict[str, Any]] | None = None,
    connectors: list[dict[str, Any]] | None = None,
    *,
    list_option: str = "PartialList",
    classifications: list[str] | None = None,
    connector_option: str = "PartialList",
) -> dict[str, Any]:
    body: dict[str, Any] = {"AssetKey": key}
    if props is not None:
        body["AssetProperties"] = {
            "ListOption": list_option,
            "AssetPropertyClassificationTypeList": classifications,
            "AssetPropertyList": props,
        }
    if connectors is not None:
        body["AssetConnectors"] = {"ListOption": connector_option, "AssetConnectorList": connectors}
    return body


def kind(asset_type: str, subtype: str, name: str, *more: dict[str, Any]) -> list[dict[str, Any]]:
    return [prop("AssetType", asset_type), prop("AssetSubType", subtype), prop("Name", name), *more]


def parent(key: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"ReferenceDirection": "Parent", "AssetReferenceKey": key, **fields}


def values_of(answer: dict[str, Any]) -> dict[str, Any]:
    """{PropertyName: PropertyValue} of an AssetV1 answer."""
    return {
        p["PropertyName"]: p["PropertyValue"]
        for p in answer["AssetProperties"]["AssetPropertyList"]
    }


def instant(text: str) -> datetime:
    """An ISO time compared at microsecond precision (the spec prints 7 fraction digits)."""
    head, _, rest = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(rest + '000000')[:6]}+00:00")


def issues_of(result: dict[str, Any]) -> dict[str, str]:
    return {e["Field"]: e["Reason"] for e in result.get("Errors", [])}


SYSTEM = "System xyz"
ZONE = ref(SYSTEM, "Zone", "1")
SITE = ref(SYSTEM, "Site", "2")
BATTERY = ref(SYSTEM, "Resource", "3")
SITE_2 = ref(SYSTEM, "Site", "4")


async def _example_1(api: Api) -> list[dict[str, Any]]:
    return await api.save_list(json.loads(EXAMPLE_1))


async def _example_site(api: Api) -> None:
    """The site the 4.2.4 and 4.2.6 examples connect their battery to."""
    await api.save(
        asset({"Key": SITE_KEY, **ref(SYSTEM, "Site", "1")}, kind("Area", "Site", "Site 123"))
    )


# ------------------------------------------------------------ 4.2.2 property list


def _spec_table_1() -> list[list[str]]:
    text = SPEC.read_text(encoding="utf-8")
    start = text.index("Asset Type\tAsset SubType\tClassification Type")
    end = text.index("**Table 1 - Asset properties")
    rows: list[list[str]] = []
    for line in text[start:end].splitlines()[1:]:
        if line.startswith("\t") and line.strip():
            rows[-1][6] += " " + line.strip()
        elif line.strip():
            rows.append((line.split("\t") + [""] * 8)[:8])
    return rows


@pytest.mark.skipif(not SPEC.exists(), reason=f"spec text not found at {SPEC}")
async def test_supported_property_list_has_every_table_1_row(api: Api) -> None:
    """3.1.1: "This list can be retrieved in JSON format from API method specified in section
    4.2.2 API Method: Get Asset Supported Property List" - every row of Table 1."""
    status, rows = await api.get(
        "/api/Asset/GetAssetSupportedPropertyList",
        params={"assetType": "All", "assetSubType": "All"},
    )
    assert status == 200
    served = {
        (
            r["AssetType"],
            r["AssetSubType"],
            r["AssetPropertyClassificationType"],
            r["PropertyName"],
        ): r
        for r in rows
    }
    table = _spec_table_1()
    assert len(table) == 54
    for cells in table:
        squeeze = ["".join(cell.split()) for cell in cells]
        row = served[tuple(squeeze[:4])]
        assert row["PropertyValueType"] == squeeze[4]
        assert row["IsMandatory"] is (squeeze[5] == "TRUE")
        assert " ".join(row["Description"].split()) == " ".join(cells[6].split())
    assert len(rows) == 54 + 4  # plus flexbridge's marked extension rows
    extensions = [r for r in rows if "flexbridge extension" in r["Description"]]
    assert [r["PropertyName"] for r in extensions] == [
        "NominalVoltage",
        "PhaseCount",
        "PowerFactor",
        "PriceUnit",
    ]


async def test_supported_property_list_answers_the_example_call_in_its_shape(api: Api) -> None:
    """4.2.2 example call `?assetType=All&assetSubType=All`: AssetPropertyType rows; the
    example's first two rows (the type defines PropertyValueType, the example prints
    PropertyValue: both are served)."""
    status, rows = await api.get(
        "/api/Asset/GetAssetSupportedPropertyList?assetType=All&assetSubType=All"
    )
    example = json.loads(SUPPORTED_PROPERTY_LIST_RESPONSE)
    assert status == 200
    for ours, theirs in zip(rows[:2], example, strict=True):
        assert set(ours) == set(theirs) | {"PropertyValueType"}
        for name in (
            "AssetType",
            "AssetSubType",
            "AssetPropertyClassificationType",
            "PropertyName",
            "PropertyValue",
            "IsMandatory",
            "SelectionValueType",
        ):
            assert ours[name] == theirs[name], name
        assert ours["PropertyValueType"] == "string"
    no_filter = await api.get("/api/Asset/GetAssetSupportedPropertyList")
    assert no_filter == (200, rows)  # "Default All types"


async def test_supported_property_list_filters_by_type_and_subtype(api: Api) -> None:
    """4.2.2: "Given asset type (Default All types) and asset subtype (Default All types)
    returns a list of supported properties on each asset by its type and sub type"."""
    _, storage = await api.get(
        "/api/Asset/GetAssetSupportedPropertyList",
        params={"assetType": "Resource", "assetSubType": "Storage"},
    )
    _, metering = await api.get(
        "/api/Asset/GetAssetSupportedPropertyList",
        params={"assetType": "Resource", "assetSubType": "Metering"},
    )
    _, areas = await api.get(
        "/api/Asset/GetAssetSupportedPropertyList", params={"assetType": "Area"}
    )
    names = {r["PropertyName"] for r in storage}
    assert {"AssetType", "Name", "StorageType", "ThresholdCharge", "IsControllable"} <= names
    assert "SiteType" not in names and "ChargingOnly" not in names
    assert {r["PropertyName"] for r in metering} >= {"MeterType", "IsMainMeter"}
    assert "StorageType" not in {r["PropertyName"] for r in metering}
    assert {"SiteType", "SiteAssetGroupType"} <= {r["PropertyName"] for r in areas}
    assert not {r["AssetType"] for r in areas} & {"Resource"}


@pytest.mark.parametrize(
    ("params", "field"),
    [({"assetType": "Vehicle"}, "assetType"), ({"assetSubType": "Spaceship"}, "assetSubType")],
)
async def test_unknown_property_list_filter_names_the_parameter(api: Api, params, field) -> None:
    status, body = await api.get("/api/Asset/GetAssetSupportedPropertyList", params=params)
    assert status == 400
    assert [e["Field"] for e in body["Errors"]] == [field]
    assert body["ErrorCode"] == "invalid" and "RequestId" in body


# ------------------------------------------------------------ 4.2.3 selection values


async def test_selection_value_list_example_call(api: Api) -> None:
    """4.2.3 example call, at the path it prints (/api/AssetApi/...), answers the example."""
    status, body = await api.get(
        "/api/AssetApi/GetAssetSelectionValueList?selectionValueType=AssetType"
    )
    assert status == 200
    assert body == json.loads(SELECTION_VALUE_LIST_RESPONSE)


@pytest.mark.parametrize("selection_type", list(SelectionValueType))
async def test_selection_values_for_every_type(api: Api, selection_type: str) -> None:
    """4.2.3: "Given selection value type, the method returns the valid values for that
    selection type"; "only options marked as persisted can be used for saving"."""
    status, body = await api.get(
        "/api/Asset/GetAssetSelectionValueList",
        params={"selectionValueType": selection_type.lower()},
    )
    assert status == 200
    expected = selection_values(selection_type)
    assert [(v["Id"], v["Name"], v["IsPersistable"]) for v in body] == [
        (e.id, e.name, e.is_persistable) for e in expected
    ]
    assert {v["SelectionValueType"] for v in body} <= {str(selection_type)}
    assert all(set(v) == {"Id", "Name", "SelectionValueType", "IsPersistable"} for v in body)


async def test_selection_values_of_every_type_when_none_is_asked(api: Api) -> None:
    """4.2.3: the parameter is optional ("Y"): without it every list is served."""
    status, body = await api.get("/api/Asset/GetAssetSelectionValueList")
    assert status == 200
    assert {v["SelectionValueType"] for v in body} == {
        str(t) for t in SelectionValueType if selection_values(t)
    }
    assert len(body) == len(selection_values())


async def test_unknown_selection_type_names_the_parameter(api: Api) -> None:
    status, body = await api.get(
        "/api/Asset/GetAssetSelectionValueList", params={"selectionValueType": "Colour"}
    )
    assert status == 400 and body["Errors"][0]["Field"] == "selectionValueType"


# --------------------------------------------------------------- 4.2.7 save list


async def test_save_asset_list_example_1_as_printed(api: Api) -> None:
    """4.2.7 example call (Example 1) at its printed path: "returns a list of response
    message (corresponding to the supplied list of assets)"; the zone, the site connected to
    it and the battery connected to the site are all saved, in one list."""
    status, results = await api.post("/api/Asset/Asset/SaveAssetListV1", raw=EXAMPLE_1)
    example = json.loads(SAVE_ASSET_LIST_RESPONSE)
    assert status == 200 and len(results) == len(example) == 3
    for ours, theirs in zip(results, example, strict=True):
        assert set(ours) == set(theirs)
        assert ours["AssetKey"] == theirs["AssetKey"]
        assert ours["Success"] is True and ours["ErrorMessage"] is None
        assert uuid.UUID(ours["Key"])
    assert len({r["Key"] for r in results}) == 3
    battery = await api.asset(BATTERY)
    site = await api.asset(SITE)
    assert values_of(battery)["IsControllable"] is True  # printed "IsContollerable"
    assert values_of(battery)["InstalledMaxCapacity"] == 10
    [up] = battery["AssetConnectors"]["AssetConnectorList"]
    assert (up["ReferenceDirection"], up["ConnectorType"]) == ("Parent", "Site")
    assert up["AssetReferenceKey"]["Key"] == results[1]["Key"]
    assert instant(up["ValidFromTime"]) == instant("2018-02-23T13:40:32.3868657Z")
    links = {
        (c["ReferenceDirection"], c["ConnectorType"], c["AssetReferenceKey"]["Key"])
        for c in site["AssetConnectors"]["AssetConnectorList"]
    }
    assert links == {("Parent", "Zone", results[0]["Key"]), ("Child", "Site", results[2]["Key"])}


async def test_asset_saves_are_logged_with_their_outcome(api: Api) -> None:
    """DESIGN.md 2.6: every inbound message is logged with its outcome."""
    await api.save_list([asset(ZONE, kind("Area", "Zone", "Z")), "not an asset"])
    await api.post("/api/Asset/SaveAssetV1", asset(SITE, None), params={"saveType": "Update"})
    async with api.client.server.app[DB].read() as tx:
        tenant = await get_tenant(tx, "pilot-a")
        logged = await recent_messages(tx, tenant)
    assert [(m.message_type, m.status) for m in logged] == [
        ("SaveAssetV1", "refused"),
        ("SaveAssetListV1", "partial"),
    ]
    assert logged[1].detail == "Upsert: 1 of 2 assets saved"
    assert logged[0].detail.startswith("Update asset 2: ")


@pytest.mark.parametrize(
    "path",
    [
        "/api/Asset/SaveAssetV1List",
        "/api/Asset/SaveAssetListV1",
        "/api/asset/asset/saveassetv1list",
    ],
)
async def test_save_asset_list_answers_at_every_spelling(api: Api, path: str) -> None:
    """4.1.1 names the method SaveAssetV1List, 4.2.7 SaveAssetListV1 and /Asset/Asset/."""
    status, results = await api.post(path, [asset(ZONE, kind("Area", "Zone", "Zone 123"))])
    assert status == 200 and results[0]["Success"] is True


async def test_a_bad_item_is_refused_alone_and_nothing_of_it_is_stored(api: Api) -> None:
    """2 (DESIGN.md) / 4.2.7: "Each response includes details of whether the asset was saved
    successfully ... and any error details" - one bad asset does not fail the list."""
    ghost = ref(SYSTEM, "Resource", "ghost")
    results = await api.save_list(
        [
            asset(ZONE, kind("Area", "Zone", "Zone 123")),
            asset(
                ref(SYSTEM, "Resource", "bad"),
                kind("Resource", "Load", "Heater", prop("Colour", "red")),
            ),
            # valid as an asset, refused at its connector: the asset must not stay behind
            asset(
                ghost, kind("Resource", "Load", "Ghost"), [parent(ref(SYSTEM, "Site", "nowhere"))]
            ),
            asset(SITE, kind("Area", "Site", "12 Grosvenor Rd"), [parent(ZONE)]),
        ]
    )
    assert [r["Success"] for r in results] == [True, False, False, True]
    assert results[1]["Key"] is None and "Colour" in results[1]["ErrorMessage"]
    assert "AssetProperties.Colour" in issues_of(results[1])
    assert issues_of(results[2]).keys() == {
        "AssetConnectors.AssetConnectorList[0].AssetReferenceKey"
    }
    assert results[2]["AssetKey"]["ExternalKey"] == "ghost"
    for missing in (ref(SYSTEM, "Resource", "bad"), ghost):
        status, _ = await api.fetch(missing)
        assert status == 404
    names = {values_of(a)["Name"] for a in await api.listing({"ActiveOnly": False})}
    assert names == {"Zone 123", "12 Grosvenor Rd"}
    # saving the ghost again once its site exists works: nothing half-stored blocks it
    retry = await api.save_list([asset(ghost, kind("Resource", "Load", "Ghost"), [parent(SITE)])])
    assert retry[0]["Success"] is True


async def test_items_that_cannot_be_read_are_refused_alone(api: Api) -> None:
    """A malformed item (not an object, a naive time, no AssetKey) gets its own Success
    false with the field path; the good items are kept."""
    results = await api.save_list(
        [
            42,
            {"AssetProperties": {"AssetPropertyList": []}},
            asset(
                SITE, kind("Area", "Site", "S"), [parent(ZONE, ValidFromTime="2018-02-23T13:40:32")]
            ),
            asset(ZONE, kind("Area", "Zone", "Z")),
        ]
    )
    assert [r["Success"] for r in results] == [False, False, False, True]
    assert "AssetV1" in issues_of(results[0])
    assert "AssetKey" in issues_of(results[1]) and results[1]["AssetKey"] is None
    field = "AssetConnectors.AssetConnectorList[0].ValidFromTime"
    assert "naive timestamp" in issues_of(results[2])[field]
    assert field in results[2]["ErrorMessage"]
    assert results[2]["AssetKey"]["ExternalKey"] == "2"


async def test_the_list_body_must_be_an_array(api: Api) -> None:
    status, body = await api.post("/api/Asset/SaveAssetV1List", {"AssetKey": ZONE})
    assert status == 400 and body["Errors"][0]["Field"] == "body"
    status, body = await api.post("/api/Asset/SaveAssetV1List", raw="[{")
    assert status == 400 and "not valid JSON" in body["Errors"][0]["Reason"]


# ------------------------------------------------------------------- 4.2.6 save


async def test_save_asset_example_as_printed(api: Api) -> None:
    """4.2.6 example call at its printed path (camelCase, lists on the asset, the
    `assetReferencKey` spelling, a Key preferred over the ExternalKey) answers the example
    response's shape: the AssetKey as sent, Success and the platform Key."""
    await _example_site(api)
    status, body = await api.post("/api/Asset/Asset/SaveAssetV1", raw=SAVE_ASSET_REQUEST)
    example = json.loads(SAVE_ASSET_RESPONSE)
    assert status == 200
    assert set(example) <= set(body) <= set(example) | {"ErrorMessage"}
    assert {k: v for k, v in body["AssetKey"].items() if k in example["AssetKey"]} == example[
        "AssetKey"
    ]
    assert body["Success"] is True and body["ErrorMessage"] is None
    assert uuid.UUID(body["Key"])
    stored = await api.asset({"Key": body["Key"]})
    assert stored["AssetKey"]["Key"] == body["Key"]


async def test_get_asset_answers_the_example_response(api: Api) -> None:
    """4.2.4 example response: after the 4.2.6 example save, the battery reads back with the
    same properties, values and parent connector (in the AssetV1 shape of 4.2.1)."""
    await _example_site(api)
    await api.post("/api/Asset/SaveAssetV1", raw=SAVE_ASSET_REQUEST)
    example = json.loads(GET_ASSET_RESPONSE)
    body = await api.asset(ref(SYSTEM, "Resource", "1"))
    assert set(body) == {"AssetKey", "AssetProperties", "AssetConnectors"}
    for name, value in example["assetKey"].items():
        assert body["AssetKey"][name[0].upper() + name[1:]] == value
    ours = values_of(body)
    for entry in example["assetPropertyList"]:
        name, value = entry["propertyName"], entry["propertyValue"]
        if name == "ValidFromTime":
            assert instant(ours[name]) == instant(value)
        else:
            assert ours[name] == value, name
    kinds = {p["PropertyName"]: p for p in body["AssetProperties"]["AssetPropertyList"]}
    assert kinds["InstalledMaxCapacity"]["PropertyValueType"] == "int"
    assert kinds["InstalledMaxCapacity"]["AssetPropertyClassificationType"] == "Storage"
    [theirs] = example["assetConnectorList"]
    [connector] = body["AssetConnectors"]["AssetConnectorList"]
    assert connector["ReferenceDirection"] == theirs["referenceDirection"]
    assert connector["AssetReferenceKey"]["Key"] == theirs["assetReferencKey"]["key"]
    assert (
        connector["AssetReferenceKey"]["FriendlyName"] == theirs["assetReferencKey"]["friendlyName"]
    )
    assert instant(connector["ValidFromTime"]) == instant(theirs["validFromTime"])


async def test_get_asset_example_request_as_printed(api: Api) -> None:
    """4.2.4 example call at its printed path, with its "RestrictToAssetPropertyClassification
    Types " key (trailing blank) and "General,Controllable" in one string: General and
    Controllable properties only, Parent connectors only."""
    await _example_site(api)
    saved = json.loads(SAVE_ASSET_REQUEST)
    saved["assetKey"] = ref("System 123", "Resource", "1234567675")
    await api.save(saved)
    child = await api.save(
        asset(ref("System 123", "Resource", "child"), kind("Resource", "Meter", "M"))
    )
    status, body = await api.post("/api/Asset/Asset/GetAssetV1", raw=GET_ASSET_REQUEST)
    assert status == 200
    assert body["AssetKey"]["SystemIdentifier"] == "System 123"
    assert body["AssetKey"]["ExternalKey"] == "1234567675"
    assert body["AssetKey"]["FriendlyName"] == "Battery"
    properties = body["AssetProperties"]
    assert properties["AssetPropertyClassificationTypeList"] == ["General", "Controllable"]
    classes = {p["AssetPropertyClassificationType"] for p in properties["AssetPropertyList"]}
    assert classes == {"General", "Controllable"}
    values = values_of(body)
    assert values["IsControllable"] is True and values["ControllableType"] == "OnOff"
    assert "StorageType" not in values and "InstalledMaxCapacity" not in values
    connectors = body["AssetConnectors"]
    assert connectors["ReferenceDirectionList"] == ["Parent"]
    assert [c["AssetReferenceKey"]["Key"] for c in connectors["AssetConnectorList"]] == [SITE_KEY]
    assert child["Success"] is True


async def test_get_asset_list_example_as_printed(api: Api) -> None:
    """4.2.5 example call at its printed path after Example 1: the one site, live at the
    time asked, with its General properties and its parent connector (to the zone)."""
    await _example_1(api)
    status, body = await api.post("/api/Asset/Asset/GetAssetListV1", raw=GET_ASSET_LIST_REQUEST)
    assert status == 200
    [site] = body
    assert (
        site["AssetKey"]["ExternalKey"] == "2"
        and site["AssetKey"]["FriendlyName"] == "12 Grosvenor Rd"
    )
    assert site["AssetProperties"]["AssetPropertyClassificationTypeList"] == ["General"]
    assert values_of(site)["AssetSubType"] == "Site"
    assert {
        p["AssetPropertyClassificationType"] for p in site["AssetProperties"]["AssetPropertyList"]
    } == {"General"}
    [zone] = site["AssetConnectors"]["AssetConnectorList"]
    assert (zone["ReferenceDirection"], zone["AssetReferenceKey"]["ExternalKey"]) == ("Parent", "1")
    before = json.loads(GET_ASSET_LIST_REQUEST) | {"LiveAtDateTime": "2018-02-23T13:00:00Z"}
    assert await api.listing(before) == []  # not yet valid then


async def test_save_then_get_round_trip(api: Api) -> None:
    """4.2.1: "AssetV1 is utilized as the common data structure for getting and saving
    assets": a GetAssetV1 answer posted back to SaveAssetV1 changes nothing."""
    await api.save(asset(SITE, kind("Area", "Site", "Site")))
    battery = asset(
        BATTERY,
        kind(
            "Resource",
            "Storage",
            "Battery",
            prop("StorageType", "battery"),
            prop("InstalledMaxCapacity", 13),
            prop("ThresholdCharge", 0.9),
            prop("Latitude", 51.45),
            prop("ValidFromTime", "2026-01-01T00:00:00+01:00"),
        ),
        [parent(SITE, ValidFromTime="2026-01-01T00:00:00Z", ValidToTime="2027-01-01T00:00:00Z")],
    )
    saved = await api.save(battery)
    first = await api.asset(BATTERY)
    assert values_of(first)["StorageType"] == "Battery"  # canonical spelling
    assert values_of(first)["ValidFromTime"] == "2025-12-31T23:00:00Z"  # UTC
    assert values_of(first)["ThresholdCharge"] == 0.9
    again = await api.save(first)
    assert again["Key"] == saved["Key"] == first["AssetKey"]["Key"]
    assert await api.asset(BATTERY) == first
    [connector] = first["AssetConnectors"]["AssetConnectorList"]
    assert (
        connector["ValidToTime"] == "2027-01-01T00:00:00Z" and connector["EntityStatus"] == "Active"
    )


# ----------------------------------------------------------- keys and references


async def test_a_platform_key_creates_with_that_key_then_updates(api: Api) -> None:
    """4.1.2: "The external facing API will support the maintenance of data by the client of
    the API providing either the platform key (entity GUID) or by providing a system name,
    the entity type and its unique identifier"."""
    key = str(uuid.uuid4())
    created = await api.save(asset({"Key": key.upper()}, kind("Area", "Zone", "Z1")))
    updated = await api.save(asset({"Key": key}, [prop("Name", "Z2")]))
    assert created["Key"] == updated["Key"] == key
    assert values_of(await api.asset({"Key": key}))["Name"] == "Z2"


async def test_a_key_with_an_external_key_records_the_cross_reference(api: Api) -> None:
    """4.1.2: "Internally, the IIP will hold a mapping table between each external system's
    key and the platform key for each entity"."""
    key = str(uuid.uuid4())
    await api.save(
        asset({"Key": key, **ref("System 2", "Site", "Abcd")}, kind("Area", "Site", "Site Abcd"))
    )
    await api.save(
        asset({"Key": key, **ref("System 1", "Site", "12344534457")}, [prop("Name", "Site 123")])
    )
    by_first = await api.asset(ref("System 1", "Site", "12344534457"))
    by_second = await api.asset(ref("System 2", "Site", "Abcd"))
    assert by_first["AssetKey"]["Key"] == by_second["AssetKey"]["Key"] == key
    assert by_second["AssetKey"]["SystemIdentifier"] == "System 2"  # the asker's reference
    assert values_of(by_second)["Name"] == "Site 123"


async def test_an_external_key_without_its_system_is_refused(api: Api) -> None:
    """4.2.1: "ExternalKey (string, optional): External key, if supplied the System
    Identifier should also be supplied"."""
    status, body = await api.post(
        "/api/Asset/SaveAssetV1",
        asset(
            {"ExternalEntityReferenceType": "Zone", "ExternalKey": "9"}, kind("Area", "Zone", "Z")
        ),
    )
    assert status == 400 and body["Success"] is False
    assert "AssetKey.SystemIdentifier" in issues_of(body)
    status, body = await api.fetch({"FriendlyName": "nothing else"})
    assert status == 400 and body["Errors"][0]["Field"].startswith("ExternalEntityReference.")


@pytest.mark.parametrize(
    ("save_type", "exists", "status"),
    [("Insert", True, 409), ("Update", False, 404), ("insert", False, 200), ("Update", True, 200)],
)
async def test_save_type(api: Api, save_type: str, exists: bool, status: int) -> None:
    """4.2.6 saveType: "'Upsert': will update if exists else will insert, 'Insert', 'Update'"."""
    if exists:
        await api.save(asset(ZONE, kind("Area", "Zone", "Z")))
    answer, body = await api.post(
        "/api/Asset/SaveAssetV1",
        asset(ZONE, kind("Area", "Zone", "Z")),
        params={"saveType": save_type},
    )
    assert answer == status and body["Success"] is (status == 200)
    if status != 200:
        assert "AssetKey" in issues_of(body)
    bad, body = await api.post("/api/Asset/SaveAssetV1", asset(ZONE), params={"saveType": "Merge"})
    assert bad == 400 and body["Errors"][0]["Field"] == "saveType"


# ------------------------------------------------------------------- properties


async def test_errors_name_the_field_and_the_reason(api: Api) -> None:
    """4.2.1 SaveAssetResponseV1: "ErrorMessage (string, optional): any error message
    details" - an unknown property, a value outside its selection list and a naive
    ValidFromTime are each named."""
    status, body = await api.post(
        "/api/Asset/SaveAssetV1",
        asset(
            BATTERY,
            kind(
                "Resource",
                "Storage",
                "B",
                prop("Colour", "red"),
                prop("StorageType", "Flywheel"),
                prop("ValidFromTime", "2018-02-23T13:40:32"),
            ),
        ),
    )
    assert status == 400 and body["Success"] is False and body["Key"] is None
    issues = issues_of(body)
    assert "unknown property" in issues["AssetProperties.Colour"]
    assert "AssetStorageType" in issues["AssetProperties.StorageType"]
    assert "Flywheel" in issues["AssetProperties.StorageType"]
    assert "naive timestamp" in issues["AssetProperties.ValidFromTime"]
    for field in issues:
        assert field in body["ErrorMessage"]
    assert (await api.fetch(BATTERY))[0] == 404


async def test_asset_type_and_subtype_are_mandatory_on_insert(api: Api) -> None:
    """Table 1: AssetType and AssetSubType "Is Mandatory TRUE"; IsMandatory "applies to
    Inserts, on updates value will be unchanged if not supplied"."""
    status, body = await api.post("/api/Asset/SaveAssetV1", asset(ZONE, [prop("Name", "Z")]))
    assert status == 400
    assert {"AssetProperties.AssetType", "AssetProperties.AssetSubType"} <= issues_of(body).keys()
    await api.save(asset(ZONE, kind("Area", "Zone", "Z")))
    await api.save(asset(ZONE, [prop("Description", "later")]))
    assert values_of(await api.asset(ZONE))["Name"] == "Z"
    status, body = await api.post(
        "/api/Asset/SaveAssetV1", asset(ZONE, [prop("AssetSubType", "Site")])
    )
    assert status == 400 and "AssetProperties.AssetSubType" in issues_of(body)


async def test_metering_is_the_meter_subtype(api: Api) -> None:
    """4.2.2 lists 'Metering' where Table 1 says Meter."""
    await api.save(
        asset(
            ref(SYSTEM, "Resource", "m"),
            kind("Resource", "Metering", "Main meter", prop("IsMainMeter", True)),
        )
    )
    body = await api.asset(ref(SYSTEM, "Resource", "m"))
    assert values_of(body)["AssetSubType"] == "Meter" and values_of(body)["IsMainMeter"] is True


async def test_full_list_reverts_what_it_leaves_out(api: Api) -> None:
    """4.2.6: "The supplied asset includes control arguments to indicate which property
    classification types are supplied ... so partial updating of data can be achieved":
    FullList restores the defaults of the classifications it covers, PartialList and
    NotSupplied leave the rest alone."""
    await api.save(
        asset(
            BATTERY,
            kind(
                "Resource",
                "Storage",
                "B",
                prop("Description", "kept"),
                prop("StorageType", "Battery"),
                prop("InstalledMaxCapacity", 10),
                prop("InstalledMinCapacity", 2),
            ),
        )
    )
    await api.save(asset(BATTERY, [prop("InstalledMaxCapacity", 11)]))
    partial = values_of(await api.asset(BATTERY))
    assert (partial["InstalledMaxCapacity"], partial["StorageType"]) == (11, "Battery")
    await api.save(asset(BATTERY, [prop("Name", "ignored")], list_option="NotSupplied"))
    assert values_of(await api.asset(BATTERY))["Name"] == "B"
    await api.save(
        asset(
            BATTERY,
            [prop("InstalledMaxCapacity", 12)],
            list_option="FullList",
            classifications=["Storage"],
        )
    )
    full = values_of(await api.asset(BATTERY))
    assert full["InstalledMaxCapacity"] == 12
    assert full["StorageType"] == "None"  # Table 1: "By default set to 'None'"
    assert "InstalledMinCapacity" not in full  # no default: cleared
    assert (full["Description"], full["Name"]) == ("kept", "B")  # General not covered


async def test_full_list_leaves_mandatory_properties_unchanged(api: Api) -> None:
    """Table 1 IsMandatory: "on updates value will be unchanged if not supplied"."""
    await api.save(
        asset(
            ZONE,
            kind("Area", "Zone", "Z", prop("Description", "d"), prop("EntityStatus", "InProgress")),
        )
    )
    await api.save(asset(ZONE, [prop("City", "Oslo")], list_option="FullList"))
    values = values_of(await api.asset(ZONE))
    assert (values["Name"], values["EntityStatus"], values["City"]) == ("Z", "InProgress", "Oslo")
    assert "Description" not in values


async def test_classifications_must_agree(api: Api) -> None:
    """4.2.1: AssetPropertyClassificationTypeList is the "list of Property Types included";
    a property's AssetPropertyClassificationType, if given, is the catalogue's."""
    status, body = await api.post(
        "/api/Asset/SaveAssetV1",
        asset(
            BATTERY,
            kind(
                "Resource",
                "Storage",
                "B",
                prop("StorageType", "Battery", "Load"),
                prop("IsControllable", True),
            ),
            classifications=["General", "Storage"],
        ),
    )
    assert status == 400
    issues = issues_of(body)
    assert "not Load" in issues["AssetProperties.StorageType"]
    assert (
        "outside the AssetPropertyClassificationTypeList"
        in issues["AssetProperties.IsControllable"]
    )
    meter = asset(
        ref(SYSTEM, "Resource", "m"),
        kind("Resource", "Meter", "M", prop("IsMainMeter", True, "Monitoring")),
        classifications=["General", "Geographical Location", "Monitoring"],
    )
    await api.save(meter)  # Meter and Monitoring are one classification; blanks ignored


async def test_a_duplicate_property_is_refused(api: Api) -> None:
    status, body = await api.post(
        "/api/Asset/SaveAssetV1",
        asset(ZONE, kind("Area", "Zone", "Z", prop("city", "A"), prop("City", "B"))),
    )
    assert status == 400 and "given more than once" in issues_of(body)["AssetProperties.City"]


# -------------------------------------------------------------------- connectors


async def test_one_active_parent_per_type_is_a_per_item_error(api: Api) -> None:
    """3.1: "Validation ensures a resource asset has only one active connection to one site
    or site asset group over any period of time"."""
    other = ref(SYSTEM, "Site", "other")
    await api.save_list(
        [
            asset(SITE, kind("Area", "Site", "S1")),
            asset(other, kind("Area", "Site", "S2")),
            asset(
                BATTERY,
                kind("Resource", "Storage", "B"),
                [parent(SITE, ValidToTime="2027-01-01T00:00:00Z")],
            ),
        ]
    )
    results = await api.save_list(
        [
            asset(
                ref(SYSTEM, "Resource", "pv"), kind("Resource", "Generation", "PV"), [parent(other)]
            ),
            asset(
                BATTERY,
                [prop("Name", "renamed")],
                [parent(other, ValidFromTime="2026-06-01T00:00:00Z")],
            ),
            asset(BATTERY, None, [parent(other, ValidFromTime="2027-01-01T00:00:00Z")]),
        ]
    )
    assert [r["Success"] for r in results] == [True, False, True]
    issue = issues_of(results[1])["AssetConnectors.AssetConnectorList[0]"]
    assert "already has an active Site parent" in issue
    assert results[1]["ErrorMessage"].startswith("AssetConnectors.AssetConnectorList[0]:")
    status, body = await api.post(
        "/api/Asset/SaveAssetV1",
        asset(BATTERY, None, [parent(other, ValidFromTime="2026-06-01T00:00:00Z")]),
    )
    assert status == 409 and body["Success"] is False
    battery = await api.asset(BATTERY)
    assert values_of(battery)["Name"] == "B"  # the refused item's rename was not kept
    parents = [
        c["AssetReferenceKey"]["FriendlyName"]
        for c in battery["AssetConnectors"]["AssetConnectorList"]
    ]
    assert parents == ["S1", "S2"]  # S2 only from 2027, after S1 ends


async def test_connector_types_derive_from_the_parent_kind(api: Api) -> None:
    """4.2.1 AssetConnector.ConnectorType: "if not supplied will derive"; 3.1: "a site should
    always be connected to a price area, a weather area and a flexibility area"."""
    areas = [
        (ref(SYSTEM, "Area", "price"), "PriceArea", "Price"),
        (ref(SYSTEM, "Weather", "weather"), "WeatherArea", "Weather"),
        (ref(SYSTEM, "Area", "flex"), "FlexibilityArea", "Flexibility"),
        (ref(SYSTEM, "Area", "market"), "Market", "Market"),
    ]
    results = await api.save_list(
        [asset(key, kind("Area", subtype, subtype)) for key, subtype, _ in areas]
        + [
            asset(
                SITE,
                kind("Area", "Site", "Site"),
                [{"AssetReferenceKey": key} for key, _, _ in areas],
            ),
            asset(
                ref(SYSTEM, "SiteAssetGroup", "ev"),
                kind("Area", "SiteAssetGroup", "EV system"),
                [parent(SITE)],
            ),
            asset(
                ref(SYSTEM, "Resource", "cp"),
                kind("Resource", "Charging", "CP"),
                [parent(ref(SYSTEM, "SiteAssetGroup", "ev"))],
            ),
        ]
    )
    assert all(r["Success"] for r in results), results
    site = await api.asset(SITE, RestrictToReferenceDirection="Parent")
    derived = {
        c["AssetReferenceKey"]["ExternalKey"]: (c["ReferenceDirection"], c["ConnectorType"])
        for c in site["AssetConnectors"]["AssetConnectorList"]
    }
    assert derived == {key["ExternalKey"]: ("Parent", word) for key, _, word in areas}
    charger = await api.asset(ref(SYSTEM, "Resource", "cp"))
    [up] = charger["AssetConnectors"]["AssetConnectorList"]
    assert up["ConnectorType"] == "SiteAssetGroup"
    only_weather = await api.asset(SITE, RestrictToAssetConnectorTypes=["Weather"])
    assert [c["ConnectorType"] for c in only_weather["AssetConnectors"]["AssetConnectorList"]] == [
        "Weather"
    ]


async def test_site_asset_group_topology(api: Api) -> None:
    """3.1: "Validation will restrict the Site Asset groups parent to always be a Site and its
    children must always be resource assets"."""
    group = ref(SYSTEM, "SiteAssetGroup", "g")
    results = await api.save_list(
        [
            asset(ZONE, kind("Area", "Zone", "Z")),
            asset(group, kind("Area", "SiteAssetGroup", "G"), [parent(ZONE, ConnectorType="Zone")]),
            asset(group, kind("Area", "SiteAssetGroup", "G")),
            asset(SITE, kind("Area", "Site", "S"), [parent(group, ConnectorType="SiteAssetGroup")]),
        ]
    )
    assert [r["Success"] for r in results] == [True, False, True, False]
    assert (
        "always a Site"
        in issues_of(results[1])["AssetConnectors.AssetConnectorList[0].AssetReferenceKey"]
    )
    assert (
        "always resources"
        in issues_of(results[3])["AssetConnectors.AssetConnectorList[0].AssetReferenceKey"]
    )


async def test_connector_rules_name_the_field(api: Api) -> None:
    await api.save_list(
        [asset(ZONE, kind("Area", "Zone", "Z")), asset(SITE, kind("Area", "Site", "S"))]
    )
    other_zone = ref(SYSTEM, "Zone", "z2")
    results = await api.save_list(
        [
            asset(other_zone, kind("Area", "Zone", "Z2"), [{"AssetReferenceKey": ZONE}]),
            asset(
                BATTERY,
                kind("Resource", "Storage", "B"),
                [
                    parent(
                        SITE,
                        ValidFromTime="2026-02-01T00:00:00Z",
                        ValidToTime="2026-01-01T00:00:00Z",
                    )
                ],
            ),
            asset(SITE, None, [parent(SITE)]),
            {
                "AssetKey": SITE,
                "AssetConnectors": {
                    "AssetConnectorTypeList": ["Weather"],
                    "AssetConnectorList": [parent(ZONE)],
                },
            },
        ]
    )
    assert not any(r["Success"] for r in results)
    path = "AssetConnectors.AssetConnectorList[0]"
    assert "cannot be derived" in issues_of(results[0])[f"{path}.ReferenceDirection"]
    assert "after ValidFromTime" in issues_of(results[1])[f"{path}.ValidToTime"]
    assert "itself" in issues_of(results[2])[f"{path}.AssetReferenceKey"]
    assert "outside the AssetConnectorTypeList" in issues_of(results[3])[f"{path}.ConnectorType"]


async def test_saving_a_connector_again_adds_nothing(api: Api) -> None:
    await api.save_list([asset(SITE, kind("Area", "Site", "S"))])
    inactive = parent(SITE, EntityStatus="InProgress", ConnectorType="Site")
    for _ in range(2):
        await api.save(asset(BATTERY, kind("Resource", "Storage", "B"), [inactive]))
    [connector] = (await api.asset(BATTERY))["AssetConnectors"]["AssetConnectorList"]
    assert connector["EntityStatus"] == "InProgress"
    deleted = parent(SITE, EntityStatus="Deleted", ConnectorType="Site")
    await api.save(asset(BATTERY, None, [deleted]))
    [connector] = (await api.asset(BATTERY))["AssetConnectors"]["AssetConnectorList"]
    assert connector["EntityStatus"] == "Deleted"


async def test_a_connector_made_active_again_is_checked_like_a_new_one(api: Api) -> None:
    """3.1: one active parent per type at a time, also when a status changes."""
    await api.save_list(
        [asset(SITE, kind("Area", "Site", "S")), asset(SITE_2, kind("Area", "Site", "T"))]
    )
    await api.save(
        asset(BATTERY, kind("Resource", "Storage", "B"), [parent(SITE, EntityStatus="InProgress")])
    )
    await api.save(asset(BATTERY, None, [parent(SITE_2)]))
    status, body = await api.post(
        "/api/Asset/SaveAssetV1", asset(BATTERY, None, [parent(SITE, EntityStatus="Active")])
    )
    assert status == 409
    assert (
        "active Site parent"
        in issues_of(body)["AssetConnectors.AssetConnectorList[0].EntityStatus"]
    )


async def test_full_list_connectors_end_the_connectors_left_out(api: Api) -> None:
    """FullList: the list is the whole of its scope, so a connector left out ends now (its
    ValidToTime is set; history is kept). Outside the scope nothing changes."""
    await api.save_list(
        [
            asset(ZONE, kind("Area", "Zone", "Z")),
            asset(SITE, kind("Area", "Site", "S"), [parent(ZONE)]),
            asset(BATTERY, kind("Resource", "Storage", "B"), [parent(SITE)]),
        ]
    )
    scoped = asset(SITE, [prop("Name", "S3")], [parent(ZONE)], connector_option="FullList")
    scoped["AssetConnectors"]["ReferenceDirectionList"] = ["Parent"]
    await api.save(scoped)  # the battery (a child) is outside the Parent-only scope
    [link] = (await api.asset(BATTERY))["AssetConnectors"]["AssetConnectorList"]
    assert link.get("ValidToTime") is None
    before = datetime.now(UTC)
    await api.save(asset(SITE, None, [parent(ZONE)], connector_option="FullList"))
    [link] = (await api.asset(BATTERY))["AssetConnectors"]["AssetConnectorList"]
    ended = datetime.fromisoformat(link["ValidToTime"])
    assert before <= ended <= datetime.now(UTC)
    [zone_link] = [
        c
        for c in (await api.asset(SITE))["AssetConnectors"]["AssetConnectorList"]
        if c["ReferenceDirection"] == "Parent"
    ]
    assert zone_link.get("ValidToTime") is None
    # The battery may take another site from now on: the old link no longer overlaps.
    await api.save_list([asset(SITE_2, kind("Area", "Site", "T"))])
    await api.save(asset(BATTERY, None, [parent(SITE_2, ValidFromTime=link["ValidToTime"])]))


# ----------------------------------------------------------------- reading options


async def test_include_false_answers_not_supplied(api: Api) -> None:
    """4.2.4: "The request options supplied will also control which properties and
    connectors are returned"; an answer without them saves back as a no-op."""
    await _example_1(api)
    body = await api.asset(
        SITE, IncludePropertyClassificationTypes=False, IncludeAssetConnectorTypes=False
    )
    assert body["AssetProperties"] == {
        "ListOption": "NotSupplied",
        "AssetPropertyClassificationTypeList": [],
        "AssetPropertyList": [],
    }
    assert body["AssetConnectors"]["ListOption"] == "NotSupplied"
    assert body["AssetConnectors"]["AssetConnectorList"] == []
    await api.save(body)
    assert values_of(await api.asset(SITE))["Name"] == "12 Grosvenor Rd"


async def test_get_asset_list_filters(api: Api) -> None:
    """4.2.5: "Given asset list request, with search criteria, the method returns the list of
    Assets that match the supplied criteria"."""
    await _example_1(api)
    await api.save_list(
        [
            asset(
                ref(SYSTEM, "Resource", "old"),
                kind("Resource", "Load", "Old heater", prop("EntityStatus", "Deleted")),
            ),
            asset(
                ref(SYSTEM, "Resource", "new"),
                kind("Resource", "Load", "New heater", prop("EntityStatus", "InProgress")),
            ),
        ]
    )

    async def names(**request: Any) -> list[str]:
        return [values_of(a)["Name"] for a in await api.listing(request)]

    assert await names() == ["Zone 123", "12 Grosvenor Rd", "Battery", "New heater"]
    assert await names(ActiveOnly=True) == ["Zone 123", "12 Grosvenor Rd", "Battery"]
    assert len(await names(ActiveOnly=False)) == 5
    assert await names(AssetSubType="AllResourceTypes", Search="HEATER") == ["New heater"]
    assert await names(AssetType="Area", AssetSubType="AllAreaTypes") == [
        "Zone 123",
        "12 Grosvenor Rd",
    ]
    assert await names(AssetType="Resource", AssetSubType="Storage") == ["Battery"]
    status, body = await api.post(
        "/api/Asset/GetAssetV1List", {"AssetType": "Resource", "AssetSubType": "Zone"}
    )
    assert status == 400 and body["Errors"][0]["Field"] == "AssetSubType"
    status, body = await api.post(
        "/api/Asset/GetAssetV1List", {"LiveAtDateTime": "2018-02-23T13:55:05"}
    )
    assert status == 400 and body["Errors"][0]["Field"] == "LiveAtDateTime"


async def test_get_asset_list_pages(api: Api) -> None:
    """4.2.5: pageNum "(default 1)", pageSize "(default 10000, minimum 1000)"."""
    await _example_1(api)
    first = await api.listing({}, params={"pageNum": "1", "pageSize": "2"})
    assert len(first) == 3  # 2 is below the minimum page size of 1000
    assert await api.listing({}, params={"pageNum": "2"}) == []
    status, body = await api.post("/api/Asset/GetAssetV1List", {}, params={"pageNum": "0"})
    assert status == 400 and body["Errors"][0]["Field"] == "pageNum"


async def test_malformed_requests_are_answered_in_the_error_envelope(api: Api) -> None:
    status, body = await api.post("/api/Asset/GetAssetV1", raw="not json")
    assert status == 400 and set(body) >= {"Message", "ErrorCode", "Errors", "RequestId"}
    status, body = await api.post("/api/Asset/GetAssetV1", {"IncludeAssetConnectorTypes": True})
    assert status == 400 and body["Errors"][0]["Field"] == "ExternalEntityReference"
    status, body = await api.post(
        "/api/Asset/GetAssetV1",
        {
            "ExternalEntityReference": {"Key": str(uuid.uuid4())},
            "RestrictToReferenceDirection": "Sideways",
        },
    )
    assert status == 400 and body["Errors"][0]["Field"] == "RestrictToReferenceDirection"
    status, body = await api.fetch({"Key": str(uuid.uuid4())})
    assert status == 404 and body["ErrorCode"] == "not_found"


# ---------------------------------------------------------- security and tenants

ENDPOINTS = [
    ("GET", "/api/Asset/GetAssetSupportedPropertyList"),
    ("GET", "/api/Asset/GetAssetSelectionValueList"),
    ("POST", "/api/Asset/GetAssetV1"),
    ("POST", "/api/Asset/GetAssetV1List"),
    ("POST", "/api/Asset/SaveAssetV1"),
    ("POST", "/api/Asset/SaveAssetV1List"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_every_method_needs_credentials(api: Api, method: str, path: str) -> None:
    """4.1.3.2: "Each request must be authenticated using basic authentication"."""
    response = await api.client.request(method, path, headers={"X-Tenant-Key": api.a.tenant_key})
    body = await response.json()
    assert response.status == 401 and body["ErrorCode"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_another_tenants_key_is_forbidden(api: Api, method: str, path: str) -> None:
    """4.1.3.4: "each user name is associated to one tenant key"."""
    mixed = Party(api.a.username, api.a.password, api.b.tenant_key)
    status, body = await api.call(method, path, {}, party=mixed)
    assert status == 403 and body["ErrorCode"] == "forbidden"


async def test_tenants_never_see_or_change_each_others_assets(api: Api) -> None:
    """4.1.3.3: "API calls from a participant will only have access to its own data";
    4.1.3.4: "the data between the pilots is totally segregated"."""
    results = await _example_1(api)
    site_key, battery_key = results[1]["Key"], results[2]["Key"]
    b = api.b
    # GetAssetV1: by platform key and by cross-reference
    assert (await api.fetch({"Key": site_key}))[0] == 200
    status, body = await api.post(
        "/api/Asset/GetAssetV1", {"ExternalEntityReference": {"Key": site_key}}, party=b
    )
    assert status == 404 and "12 Grosvenor" not in json.dumps(body)
    assert (await api.post("/api/Asset/GetAssetV1", {"ExternalEntityReference": SITE}, party=b))[
        0
    ] == 404
    # GetAssetV1List
    assert (await api.post("/api/Asset/GetAssetV1List", {}, party=b)) == (200, [])
    # SaveAssetV1 with A's platform key: refused, A's asset untouched
    status, body = await api.post(
        "/api/Asset/SaveAssetV1", asset({"Key": site_key}, [prop("Name", "hijacked")]), party=b
    )
    assert (
        status in (400, 409) and body["Success"] is False and "12 Grosvenor" not in json.dumps(body)
    )
    assert values_of(await api.asset(SITE))["Name"] == "12 Grosvenor Rd"
    # SaveAssetV1 with the same external reference: B gets an asset of its own
    mine = (
        await api.post(
            "/api/Asset/SaveAssetV1", asset(SITE, kind("Area", "Site", "B's site")), party=b
        )
    )[1]
    assert mine["Success"] is True and mine["Key"] != site_key
    assert values_of(await api.asset(SITE))["Name"] == "12 Grosvenor Rd"
    # SaveAssetV1List: a connector to A's battery is a reference to nothing
    status, listed = await api.post(
        "/api/Asset/SaveAssetV1List",
        [
            asset(
                ref("B", "Resource", "x"),
                kind("Resource", "Load", "L"),
                [{"ReferenceDirection": "Child", "AssetReferenceKey": {"Key": battery_key}}],
            )
        ],
        party=b,
    )
    assert status == 200 and listed[0]["Success"] is False
    assert f"no asset {battery_key}" in listed[0]["ErrorMessage"]
    battery = await api.asset(BATTERY)
    assert len(battery["AssetConnectors"]["AssetConnectorList"]) == 1
    # the catalogue is the same for every tenant
    assert (await api.get("/api/Asset/GetAssetSelectionValueList", party=b)) == await api.get(
        "/api/Asset/GetAssetSelectionValueList"
    )
    assert (await api.get("/api/Asset/GetAssetSupportedPropertyList", party=b))[0] == 200


async def test_a_participant_is_its_tenant_so_the_tenants_accounts_share_its_assets(
    api: Api,
) -> None:
    """4.1.3.3: "API calls from a participant will only have access to its own data";
    4.1.3.4: "each pilot will be set up with its own tenant key and each user name is
    associated to one tenant key"; 4.1.2: "the IIP will hold a mapping table between each
    external system's key and the platform key for each entity". A participant is the pilot
    its tenant key names: every account of the tenant reaches the assets any of them saved
    (two systems may name one asset), and no account of another tenant reaches them."""
    async with api.client.app[DB].transaction() as tx:
        tenant = await get_tenant(tx, "pilot-a")
        await add_account(tx, tenant, "scada-a", Role.PARTICIPANT, "pw-s")
    scada = Party("scada-a", "pw-s", api.a.tenant_key)
    saved = await api.save(asset(SITE, kind("Area", "Site", "Site of pilot A")))
    # The second account reads it by key, by the first's cross-reference and in the list ...
    by_key = {"ExternalEntityReference": {"Key": saved["Key"]}}
    assert (await api.post("/api/Asset/GetAssetV1", by_key, party=scada))[0] == 200
    status, found = await api.post(
        "/api/Asset/GetAssetV1", {"ExternalEntityReference": SITE}, party=scada
    )
    assert status == 200 and values_of(found)["Name"] == "Site of pilot A"
    listed = await api.listing(party=scada)
    assert [a["AssetKey"]["Key"] for a in listed] == [saved["Key"]]
    # ... names it in its own system and changes it; the first account sees the change.
    scada_ref = ref("SCADA", "Site", "s-1")
    await api.save(
        asset({"Key": saved["Key"], **scada_ref}, [prop("Name", "Renamed")]), party=scada
    )
    assert values_of(await api.asset(scada_ref))["Name"] == "Renamed"
    # Another tenant's participant reaches none of it.
    assert (await api.post("/api/Asset/GetAssetV1", by_key, party=api.b))[0] == 404
    assert (
        await api.post("/api/Asset/GetAssetV1", {"ExternalEntityReference": scada_ref}, party=api.b)
    )[0] == 404
    assert await api.listing(party=api.b) == []
