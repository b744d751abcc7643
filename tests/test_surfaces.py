"""Protocol surfaces as the adapter mounts them: authentication, roles, and every failure
answered in the protocol's own envelope."""

from __future__ import annotations

from dataclasses import replace

import pytest
from aiohttp import web
from marshmallow import Schema, fields
from sqlalchemy.exc import OperationalError

from adapter.app import create_app
from adapter.auth import encode_basic_auth
from adapter.keys import DB, SETTINGS
from adapter.settings import Settings
from adapter.surfaces import mount
from protocols.common.context import caller_of
from protocols.common.surface import Auth, ProtocolError, Refusal, Surface
from store.accounts import Role, add_account
from store.errors import FieldIssue, NotFound
from store.tenants import add_tenant

routes = web.RouteTableDef()


class _Body(Schema):
    when = fields.AwareDateTime(required=True, data_key="When")


@routes.get("/whoami")
async def whoami(request: web.Request) -> web.Response:
    caller = caller_of(request)
    return web.json_response({"user": caller.account.username, "tenant": caller.tenant.name})


@routes.post("/schema")
async def schema(request: web.Request) -> web.Response:
    _Body().load(await request.json())
    return web.json_response({})


@routes.get("/refuse")
async def refuse(request: web.Request) -> web.Response:
    raise ProtocolError(422, "E-77", "no capacity", [FieldIssue("group_id", "unknown")])


@routes.get("/missing")
async def missing(request: web.Request) -> web.Response:
    raise NotFound("entity", "System 9/Resource/42")


@routes.get("/busy")
async def busy(request: web.Request) -> web.Response:
    raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))


@routes.get("/crash")
async def crash(request: web.Request) -> web.Response:
    raise KeyError("internal detail")


def _render(refusal: Refusal) -> web.Response:
    body = {
        "proto_code": refusal.code,
        "proto_message": refusal.message,
        "rid": refusal.request_id,
        "fields": [i.field for i in refusal.issues],
    }
    return web.json_response(body, status=refusal.status, headers=refusal.headers)


SURFACE = Surface(
    name="Test",
    routes=tuple(routes),
    auth=Auth.BASIC_AND_TENANT_KEY,
    roles=frozenset({Role.PARTICIPANT}),
    realm="Test",
    render_error=_render,
)


@pytest.fixture
async def client(aiohttp_client, tmp_path):  # type: ignore[no-untyped-def]
    app = create_app(
        replace(
            Settings(), database_url=f"sqlite+aiosqlite:///{tmp_path / 's.db'}", admin_password="pw"
        )
    )
    mount(app, [("/test", SURFACE)])
    client = await aiohttp_client(app)
    async with app[DB].transaction() as tx:
        tenant, key = await add_tenant(tx, "pilot")
        await add_account(tx, tenant, "cpo", Role.PARTICIPANT, "pw")
        await add_account(tx, tenant, "reader", Role.READER, "pw")
    client.key = key  # type: ignore[attr-defined]
    return client


def _headers(client, user: str = "cpo") -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": encode_basic_auth(user, "pw"), "X-Tenant-Key": client.key}


async def test_the_caller_reaches_the_handler(client):
    response = await client.get("/test/whoami", headers=_headers(client))
    assert await response.json() == {"user": "cpo", "tenant": "pilot"}


async def test_auth_failures_use_the_protocol_envelope(client):
    missing = await client.get("/test/whoami")
    wrong_role = await client.get("/test/whoami", headers=_headers(client, "reader"))
    assert missing.status == 401 and (await missing.json())["proto_code"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"].startswith('Basic realm="Test"')
    assert wrong_role.status == 403
    assert "role reader may not use Test" in (await wrong_role.json())["proto_message"]


async def test_every_failure_is_answered_in_the_protocol_envelope(client):
    headers = _headers(client)
    refused = await client.get("/test/refuse", headers=headers)
    missing = await client.get("/test/missing", headers=headers)
    crashed = await client.get("/test/crash", headers={**headers, "X-Request-ID": "r-1"})
    bad = await client.post("/test/schema", json={"When": "2026-01-01T00:00:00"}, headers=headers)
    assert (refused.status, await refused.json()) == (
        422,
        {
            "proto_code": "E-77",
            "proto_message": "no capacity",
            "rid": refused.headers["X-Request-ID"],
            "fields": ["group_id"],
        },
    )
    assert (
        missing.status == 404 and "System 9/Resource/42" in (await missing.json())["proto_message"]
    )
    crash_body = await crashed.json()
    assert crashed.status == 500 and crash_body["rid"] == "r-1"
    assert "internal detail" not in await crashed.text()
    assert bad.status == 400 and (await bad.json())["fields"] == ["When"]


async def test_a_busy_database_is_a_retryable_503_not_a_500(client):
    response = await client.get("/test/busy", headers=_headers(client))
    assert response.status == 503 and response.headers["Retry-After"] == "1"
    assert (await response.json())["proto_code"] == "unavailable"


async def test_concurrent_writers_of_one_process_queue_instead_of_failing(client):
    """SQLite has one writer; writers of a process take turns rather than racing SQLite's
    busy handler (which let a starved request fail with 'database is locked')."""
    import asyncio

    from sqlalchemy import text

    db = client.server.app[DB]
    order: list[int] = []

    async def writer(n: int) -> None:
        async with db.transaction() as tx:
            order.append(n)
            await tx.execute(
                text("INSERT INTO app_secrets (name, value) VALUES (:n, 'x')"), {"n": f"w{n}"}
            )
            await asyncio.sleep(0)  # yield while holding the write turn

    await asyncio.gather(*(writer(n) for n in range(30)))
    assert sorted(order) == list(range(30))
    assert db.writer is not None and not db.writer.locked()


async def test_a_declared_oversize_body_is_refused_in_the_protocol_envelope(client):
    """Refused before a byte is read, and before authentication: no login is checked for a
    body that will not be read."""
    limit = client.app[SETTINGS].max_body_bytes
    response = await client.post(
        "/test/schema", data=b"x" * 16, headers={"Content-Length": str(limit + 1)}
    )
    assert response.status == 413
    assert (await response.json())["proto_code"] == "body_too_large"


def test_nesting_is_measured_outside_strings_and_only_for_balanced_text():
    from protocols.common.wire import nested_deeper

    assert nested_deeper(b"[" * 33 + b"]" * 33, 32)
    assert not nested_deeper(b"[" * 32 + b"]" * 32, 32)
    assert not nested_deeper(b'{"a": "[[[[[[[[[[\\"[[[[[", "b": [[1]]}', 3)
    assert nested_deeper(b'{"a": "]]]", "b": [[[1]]]}', 3)
    assert not nested_deeper(b"[{", 1)  # not JSON: orjson words that refusal


async def test_a_wrong_method_or_path_is_answered_before_authentication_in_the_envelope(client):
    """CP-API 5.3.1: event-hub messages are POSTed to .../publishers/<gateway>/messages. A GET
    there is 405 with Allow, as on every surface, whatever credentials come with it (a wrong
    signature was 403 before: authentication ran first); a path a surface does not have is
    its 404. No credential is checked for a request that will not be served."""
    bad_signature = {"Authorization": "SharedAccessSignature sr=x&sig=y&se=1&skn=gw-1"}
    cases = [  # (method, path, headers, where the envelope keeps its code)
        ("GET", "/iotexternaleh/publishers/gw-1/messages", bad_signature, "ErrorCode"),
        ("GET", "/iotexternaleh/publishers/gw-1/messages", {}, "ErrorCode"),
        ("GET", "/api/TimeSeries/SaveTimeSeriesV1", {}, "ErrorCode"),
        ("GET", "/ocmp/1.0/heartbeat", {}, "errors"),
        ("GET", "/test/schema", _headers(client, "reader"), "proto_code"),
    ]
    for method, path, headers, key in cases:
        response = await client.request(method, path, headers=headers)
        body = await response.json()
        assert response.status == 405, (path, body)
        assert response.headers["Allow"] == "POST"
        code = body[key][0]["code"] if key == "errors" else body[key]
        assert code == "method_not_allowed", (path, body)
    oscp = await client.get("/oscp/co/2.0/heartbeat")
    assert oscp.status == 405 and (await oscp.json()) == {"message": "Method Not Allowed"}
    for path in ("/api/Nowhere", "/ocmp/1.0/nowhere", "/test/nowhere"):
        response = await client.get(path)
        assert response.status == 404, path
        assert "WWW-Authenticate" not in response.headers
