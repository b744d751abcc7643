"""The USEF API of FlexMeasures 0.3 (v1 to v2_0) over real HTTP: the versions, tokens,
getService, version gating, the envelopes, and getConnection.

Rules quoted in docstrings are from shared/specs/wave2-requirements.md part A (A.1 common
rules, A.3 status catalogue, A.4 endpoints, A.6 version matrix, A.8 decisions).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from adapter.app import create_app
from adapter.keys import DB
from adapter.settings import Settings, SettingsError, load_settings
from store.accounts import Role, account_for_token, add_account
from store.catalogue import AssetSubType, AssetType
from store.entities import create_entity
from store.references import USEF_SYSTEM, ExternalRef, add_reference, references_of
from store.tenants import add_tenant, get_tenant
from store.timeutil import utcnow

EMAIL, PASSWORD = "prosumer@example.com", "prosumer-password-1"
VERSIONS = ["v1", "v1_1", "v1_2", "v1_3", "v2_0"]


class Usef:
    def __init__(self, client: Any, app: Any) -> None:
        self.client, self.app = client, app
        self.unaddressed: Any = None

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        response = await self.client.request(method, f"/api{path}", **kwargs)
        assert response.content_type == "application/json", await response.text()
        return response.status, await response.json()

    async def token(self, email: str = EMAIL, password: str = PASSWORD) -> str:
        status, body = await self.call(
            "POST", "/requestAuthToken", json={"email": email, "password": password}
        )
        assert status == 200, body
        token: str = body["auth_token"]
        return token


async def _resource(tx: Any, tenant: Any, name: str, address: str | None) -> Any:
    entity = await create_entity(
        tx, tenant, AssetType.RESOURCE, AssetSubType.CHARGING, {"Name": name}
    )
    if address is not None:
        await add_reference(tx, tenant, entity, ExternalRef("usef", "ea1", address))
    return entity


@pytest.fixture
async def usef(db, database_url, aiohttp_client):  # type: ignore[no-untyped-def]
    settings = replace(Settings(), database_url=database_url, admin_password="admin-pw")
    app = create_app(settings)
    client = await aiohttp_client(app)
    async with app[DB].transaction() as tx:
        grid, _ = await add_tenant(tx, "grid")
        other, _ = await add_tenant(tx, "other")
        await add_account(
            tx, grid, "prosumer", Role.PARTICIPANT, PASSWORD, email=EMAIL, usef_roles=["Prosumer"]
        )
        await add_account(tx, grid, "norole@example.com", Role.PARTICIPANT, PASSWORD)
        await add_account(tx, other, "other@example.com", Role.PARTICIPANT, PASSWORD)
        await _resource(tx, grid, "CS 1", "ea1.2026-12.example.flexbridge:1:1")
        await _resource(tx, grid, "CS 2", "ea1.2026-12.example.flexbridge:1:2")
        unaddressed = await _resource(tx, grid, "CS unaddressed", None)
        area = await create_entity(
            tx, grid, AssetType.AREA, AssetSubType.FLEXIBILITY_AREA, {"Name": "congestion"}
        )
        await add_reference(
            tx, grid, area, ExternalRef("usef", "ea1", "ea1.2026-12.example.dso:cp-1")
        )
        await _resource(tx, other, "Theirs", "ea1.2026-12.example.flexbridge:2:1")
    usef = Usef(client, app)
    usef.unaddressed = unaddressed
    return usef


async def test_the_root_lists_the_versions_and_names_the_token_endpoint(usef):
    """A.4: GET /api/ -> {"message", "versions": [v1 ... v2_0], "flexmeasures_version"},
    public; A.9: v3_0 is not listed, as it is not served."""
    status, body = await usef.call("GET", "/")
    assert status == 200
    assert body["versions"] == VERSIONS
    assert body["flexmeasures_version"] == "0.3.0"
    assert "/api/requestAuthToken" in body["message"]


async def test_a_token_from_request_auth_token_opens_the_api_for_its_lifetime(usef):
    """A.1: POST /api/requestAuthToken {"email", "password"} -> 200 {"auth_token",
    "user_id"}; the token alone in Authorization, `Bearer` tolerated (A.8.13)."""
    status, body = await usef.call(
        "POST", "/requestAuthToken", json={"email": EMAIL, "password": PASSWORD}
    )
    assert status == 200 and body["type"] == "RequestAuthTokenResponse"
    token = body["auth_token"]
    async with usef.app[DB].read() as tx:
        account = await account_for_token(tx, token)
    assert account is not None and account.id == body["user_id"]
    for header in (token, f"Bearer {token}"):
        status, answer = await usef.call(
            "GET", "/v1_1/getConnection", headers={"Authorization": header}
        )
        assert status == 200, answer


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"email": EMAIL, "password": "wrong"}, 401, "UNAUTHORIZED"),
        ({"email": "nobody@example.com", "password": PASSWORD}, 401, "UNAUTHORIZED"),
        # No account can be named so; PostgreSQL would refuse the NUL (found by the fuzz).
        ({"email": "nul\x00@example.com", "password": PASSWORD}, 401, "UNAUTHORIZED"),
        ({"email": "a" * 300 + "@example.com", "password": PASSWORD}, 401, "UNAUTHORIZED"),
        ({"email": EMAIL}, 400, "REQUIRED_INFO_MISSING"),
        ({"password": PASSWORD}, 400, "REQUIRED_INFO_MISSING"),
        ({"email": EMAIL, "password": 7}, 400, "REQUIRED_INFO_MISSING"),
    ],
)
async def test_a_refused_login_says_why_and_issues_no_token(usef, payload, status, code):
    """An unknown email is 401 like a wrong password (FlexMeasures answers 404, which would
    tell a guesser which accounts exist: docs/protocols/usef-api.md)."""
    answer, body = await usef.call("POST", "/requestAuthToken", json=payload)
    assert (answer, body["status"], body["result"]) == (status, code, "Rejected")
    assert body["type"] == "RequestAuthTokenResponse"
    assert "auth_token" not in body


async def test_a_login_body_that_is_not_json_is_400(usef):
    status, body = await usef.call("POST", "/requestAuthToken", data=b"{email")
    assert (status, body["status"]) == (400, "INVALID_REQUEST")
    assert "not JSON" in body["message"]


async def test_a_peer_account_gets_no_token(usef):
    """The API serves participants (and admins): a protocol peer's account is refused."""
    async with usef.app[DB].transaction() as tx:
        await add_account(tx, await get_tenant(tx, "grid"), "cpo@example.com", Role.PEER, PASSWORD)
    status, body = await usef.call(
        "POST", "/requestAuthToken", json={"email": "cpo@example.com", "password": PASSWORD}
    )
    assert (status, body["status"]) == (403, "INVALID_SENDER")
    assert "peer" in body["message"]


@pytest.mark.parametrize("header", [None, "", "not-a-token", "Bearer not-a-token", "Basic YTpi"])
async def test_without_a_valid_token_the_answer_is_401_in_the_envelope(usef, header):
    """A.1: 401 {"type", "status": "UNAUTHORIZED", "message": "You could not be properly
    authenticated for this content or functionality."}"""
    headers = {} if header is None else {"Authorization": header}
    status, body = await usef.call("GET", "/v1_1/getConnection", headers=headers)
    assert status == 401
    assert body["type"] == "GetConnectionResponse" and body["status"] == "UNAUTHORIZED"
    assert body["message"].startswith(
        "You could not be properly authenticated for this content or functionality."
    )


@pytest.mark.parametrize("version", VERSIONS)
async def test_get_service_lists_what_the_version_serves_and_is_public(usef, version):
    """A.4: getService is public in every version: type GetServiceResponse, `version`
    "1.0" ... "2.0", services with name, access and description."""
    status, body = await usef.call("GET", f"/{version}/getService")
    assert status == 200
    assert body["type"] == "GetServiceResponse" and body["status"] == "PROCESSED"
    assert body["version"] == {"v1": "1.0", "v1_1": "1.1", "v1_2": "1.2"}.get(
        version, {"v1_3": "1.3", "v2_0": "2.0"}.get(version)
    )
    names = [s["name"] for s in body["services"]]
    later = ["getConnection", "getPrognosis", "postPrognosis", "postPriceData"]
    assert names == ["getMeterData", "postMeterData", *([] if version == "v1" else later)]
    for service in body["services"]:
        assert service["access"] and service["description"]


async def test_get_service_access_keeps_one_roles_services_or_is_invalid_role(usef):
    """A.3 INVALID_ROLE: "No known services for specified role %s." """
    status, body = await usef.call("GET", "/v1/getService", params={"access": "MDC"})
    assert status == 200
    assert [s["name"] for s in body["services"]] == ["getMeterData", "postMeterData"]
    status, body = await usef.call("GET", "/v1_1/getService", params={"access": "Plumber"})
    assert (status, body["status"]) == (400, "INVALID_ROLE")
    assert body["message"] == "No known services for specified role Plumber."


async def test_an_endpoint_a_version_lacks_is_404_saying_which_versions_have_it(usef):
    """A.6: getConnection is v1_1 and later; issue item 1: an endpoint a version lacks is
    404 in the JSON envelope."""
    token = await usef.token()
    status, body = await usef.call("GET", "/v1/getConnection", headers={"Authorization": token})
    assert status == 404
    assert body["type"] == "GetConnectionResponse" and body["result"] == "Rejected"
    assert body["message"] == "getConnection is not in API v1: v1_1 and later have it."


async def test_a_wrong_method_is_405_invalid_method_with_allow(usef):
    """A.3: INVALID_METHOD (405) "Request method %s not supported." (A.8.10: JSON, not
    Flask's HTML page); checked before the token."""
    response = await usef.client.post("/api/v2_0/getService")
    body = await response.json()
    assert response.status == 405 and "GET" in response.headers["Allow"]
    assert body["status"] == "INVALID_METHOD"
    assert body["message"].startswith("Request method POST not supported.")


async def test_the_cp_api_still_answers_beside_the_usef_api_on_the_same_prefix(usef):
    """Both mount at /api by default: a CP-API path gets the CP-API's answer."""
    response = await usef.client.post("/api/Asset/GetAssetV1", json={})
    assert response.status == 401
    assert "ErrorCode" in await response.json()


async def test_get_connection_lists_the_tenants_resources_newest_first(usef):
    """A.4: connections [EA ...] and names [...] in the same order, newest to oldest; only
    the caller's tenant; areas (congestion points) are no connections. A resource without
    an address gets `<authority>:<tenant id>:<entity id>`, the authority made from
    public_url's host with this month (issue item 5), and keeps it."""
    token = await usef.token()
    async with usef.app[DB].read() as tx:
        grid = await get_tenant(tx, "grid")
    authority = f"ea1.{utcnow():%Y-%m}.1.0.0.127"
    minted = f"{authority}:{grid.id}:{usef.unaddressed.id}"
    for version in VERSIONS[1:]:
        status, body = await usef.call(
            "GET", f"/{version}/getConnection", headers={"Authorization": token}
        )
        assert status == 200 and body["type"] == "GetConnectionResponse"
        assert body["connections"] == [
            minted,
            "ea1.2026-12.example.flexbridge:1:2",
            "ea1.2026-12.example.flexbridge:1:1",
        ]
        assert body["names"] == ["CS unaddressed", "CS 2", "CS 1"]
    async with usef.app[DB].read() as tx:
        refs = await references_of(tx, grid, usef.unaddressed, USEF_SYSTEM)
    assert [r.external_key for r in refs] == [minted]  # minted once, not per call


async def test_the_naming_authority_setting_names_the_minted_addresses(
    db, database_url, aiohttp_client
):  # type: ignore[no-untyped-def]
    settings = replace(
        Settings(),
        database_url=database_url,
        admin_password="admin-pw",
        usef_naming_authority="ea1.2020-01.io.example",
    )
    app = create_app(settings)
    client = await aiohttp_client(app)
    async with app[DB].transaction() as tx:
        tenant, _ = await add_tenant(tx, "grid")
        await add_account(tx, tenant, EMAIL, Role.PARTICIPANT, PASSWORD, usef_roles=["MDC"])
        charger = await _resource(tx, tenant, "CS", None)
    usef = Usef(client, app)
    status, body = await usef.call(
        "GET", "/v2_0/getConnection", headers={"Authorization": await usef.token()}
    )
    assert status == 200
    assert body["connections"] == [f"ea1.2020-01.io.example:{tenant.id}:{charger.id}"]


@pytest.mark.parametrize("authority", ["ea1.2020-13.io.example", "io.example", "ea1.2020-01"])
def test_a_naming_authority_that_is_no_ea1_authority_stops_the_start(authority):
    with pytest.raises(SettingsError, match="usef_naming_authority"):
        load_settings({"usef_naming_authority": authority}, environ={})


async def test_get_connection_type_may_be_left_out_but_not_wrong(usef):
    """A.8.17: "Accept a missing type. If present, it must equal GetConnectionRequest."
    (GET fields come from the query string, A.1.)"""
    token = await usef.token()
    headers = {"Authorization": token}
    ok, _ = await usef.call(
        "GET", "/v2_0/getConnection", headers=headers, params={"type": "GetConnectionRequest"}
    )
    status, body = await usef.call(
        "GET", "/v2_0/getConnection", headers=headers, params={"type": "GetMeterDataRequest"}
    )
    assert ok == 200
    assert (status, body["status"]) == (400, "INVALID_MESSAGE_TYPE")
    assert body["message"] == "Request message should specify type 'GetConnectionRequest'."


async def test_a_login_names_the_account_by_its_email_or_its_username(usef):
    """Issue item 7: "login by email (or username)"."""
    by_email = await usef.token(EMAIL)
    by_username = await usef.token("prosumer")
    async with usef.app[DB].read() as tx:
        first = await account_for_token(tx, by_email)
        second = await account_for_token(tx, by_username)
    assert first is not None and second is not None
    assert first.id == second.id and first.username == "prosumer"


async def test_a_service_is_for_the_usef_roles_it_names(usef):
    """A.3 INVALID_SENDER (403): "You don't have the right role to access this service.
    You are <a role> while this service is reserved for <Roles>."; A.4: getConnection is
    for the six market roles."""
    token = await usef.token("norole@example.com")
    status, body = await usef.call("GET", "/v1_1/getConnection", headers={"Authorization": token})
    assert (status, body["status"]) == (403, "INVALID_SENDER")
    assert body["type"] == "GetConnectionResponse"
    assert body["message"] == (
        "You don't have the right role to access this service. You are in no USEF role "
        "while this service is reserved for Aggregator, Supplier, MDC, DSO, Prosumer, ESCo."
    )


async def test_a_flexbridge_admin_may_call_every_service(usef):
    status, body = await usef.call(
        "GET",
        "/v2_0/getConnection",
        headers={"Authorization": await usef.token("admin", "admin-pw")},
    )
    assert status == 200, body


async def test_a_wrong_method_on_the_root_is_answered_as_the_root(usef):
    """`type` on every answer: the root's is VersionsResponse, its errors' too."""
    response = await usef.client.post("/api/", json={})
    body = await response.json()
    assert response.status == 405
    assert (body["type"], body["status"]) == ("VersionsResponse", "INVALID_METHOD")
