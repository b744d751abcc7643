"""The application shell: health, metrics, error envelope, limits, auth guards, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web

from adapter.app import create_app
from adapter.auth import encode_basic_auth
from adapter.guards import basic_login, enforce_rate_limit, tenant_of
from adapter.keys import BACKGROUND, DB
from adapter.settings import Settings
from store.accounts import Role, add_account
from store.errors import ValidationError
from store.migrate import head_revision
from store.tenants import add_tenant


def _settings(tmp_path, **changes) -> Settings:  # type: ignore[no-untyped-def]
    return replace(
        Settings(),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'app.db'}",
        admin_password="admin-pass",
        **changes,
    )


async def _boom(request: web.Request) -> web.Response:
    raise RuntimeError("secret internals /etc/passwd")


async def _invalid(request: web.Request) -> web.Response:
    raise ValidationError("start", "naive timestamp")


async def _echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read())


async def _whoami(request: web.Request) -> web.Response:
    # AuthError and Forbidden escape: the root error middleware answers 401/403.
    login = await basic_login(request)
    account, tenant = login.account, tenant_of(request, login)
    enforce_rate_limit(request, account)
    return web.json_response({"account": account.username, "tenant": tenant.name})


def _app(tmp_path, **changes) -> web.Application:  # type: ignore[no-untyped-def]
    app = create_app(_settings(tmp_path, **changes))
    app.router.add_get("/test/boom", _boom)
    app.router.add_get("/test/invalid", _invalid)
    app.router.add_post("/test/echo", _echo)
    app.router.add_get("/test/whoami", _whoami)
    return app


async def test_health_reports_database_and_version(aiohttp_client, tmp_path):
    client = await aiohttp_client(_app(tmp_path))
    response = await client.get("/health")
    body = await response.json()
    assert response.status == 200
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["version"] and body["schema"] == head_revision()


async def _stop_workers(app: web.Application) -> None:
    """The background workers would reopen the SQLite file the test removes."""
    await app[BACKGROUND].stop()


async def test_health_says_unavailable_when_the_database_is_gone(aiohttp_client, tmp_path):
    app = _app(tmp_path)
    client = await aiohttp_client(app)
    await _stop_workers(app)
    await app[DB].engine.dispose()
    (tmp_path / "app.db").unlink()
    (tmp_path / "app.db").mkdir()  # a directory where the file was: unopenable
    response = await client.get("/health")
    assert response.status == 503
    assert (await response.json())["status"] == "unavailable"


async def test_metrics_still_answer_when_the_database_is_gone(aiohttp_client, tmp_path, caplog):
    app = _app(tmp_path)
    client = await aiohttp_client(app)
    assert (await client.get("/health")).status == 200
    await _stop_workers(app)
    await app[DB].engine.dispose()
    (tmp_path / "app.db").unlink()
    (tmp_path / "app.db").mkdir()  # a directory where the file was: unopenable
    with caplog.at_level(logging.WARNING, logger="flexbridge.health"):
        response = await client.get("/metrics")
    text = await response.text()
    assert response.status == 200
    assert 'flexbridge_http_requests_total{method="GET",route="/health",status="200"} 1.0' in text
    assert "database unreachable" in caplog.text


async def test_unknown_route_gets_the_json_envelope_with_the_request_id(aiohttp_client, tmp_path):
    client = await aiohttp_client(_app(tmp_path))
    response = await client.get("/nowhere", headers={"X-Request-ID": "req-42"})
    body = await response.json()
    assert response.status == 404
    assert body == {"error": {"code": "not_found", "message": "Not Found", "request_id": "req-42"}}
    assert response.headers["X-Request-ID"] == "req-42"


async def test_a_request_id_is_made_when_none_is_given(aiohttp_client, tmp_path):
    client = await aiohttp_client(_app(tmp_path))
    first = await client.get("/health")
    second = await client.get("/health")
    assert len(first.headers["X-Request-ID"]) == 36
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


async def test_unexpected_error_is_generic_with_an_id_in_the_log(aiohttp_client, tmp_path, caplog):
    client = await aiohttp_client(_app(tmp_path))
    with caplog.at_level(logging.ERROR, logger="flexbridge.http"):
        response = await client.get("/test/boom")
    body = await response.json()
    assert response.status == 500
    assert body["error"]["code"] == "internal_error"
    assert "passwd" not in await response.text() and "Traceback" not in await response.text()
    error_id = body["error"]["message"].split("error id ")[1].split()[0]
    assert error_id in caplog.text and "secret internals" in caplog.text


async def test_store_validation_errors_name_the_field(aiohttp_client, tmp_path):
    client = await aiohttp_client(_app(tmp_path))
    response = await client.get("/test/invalid")
    body = await response.json()
    assert response.status == 400
    assert body["error"]["issues"] == [{"field": "start", "reason": "naive timestamp"}]


@pytest.mark.parametrize("declared", [True, False])
async def test_body_over_the_limit_is_refused_with_413(aiohttp_client, tmp_path, declared):
    client = await aiohttp_client(_app(tmp_path, max_body_bytes=1000))
    small = await client.post("/test/echo", data=b"x" * 1000)
    assert small.status == 200 and len(await small.read()) == 1000

    async def chunks():  # type: ignore[no-untyped-def]
        yield b"x" * 1001

    data = b"x" * 1001 if declared else chunks()
    big = await client.post("/test/echo", data=data)
    assert big.status == 413
    assert (await big.json())["error"]["code"] == "body_too_large"


async def test_metrics_count_requests_by_route_and_show_outbox_depth(aiohttp_client, tmp_path):
    client = await aiohttp_client(_app(tmp_path))
    for _ in range(3):
        await client.get("/health")
    text = await (await client.get("/metrics")).text()
    assert 'flexbridge_http_requests_total{method="GET",route="/health",status="200"} 3.0' in text
    assert 'flexbridge_outbox_messages{status="pending"} 0.0' in text
    assert "flexbridge_http_request_seconds_bucket" in text


async def test_first_start_creates_default_tenant_and_admin_once(aiohttp_client, tmp_path, capsys):
    await aiohttp_client(_app(tmp_path))
    first = capsys.readouterr().out
    assert "tenant:     default" in first and "username:   admin" in first
    assert "(from FLEXBRIDGE_ADMIN_PASSWORD)" in first
    await aiohttp_client(_app(tmp_path))
    assert "first start" not in capsys.readouterr().out


async def _account_with_key(app: web.Application) -> tuple[str, str]:
    async with app[DB].transaction() as tx:
        tenant, key = await add_tenant(tx, "pilot")
        _other, other_key = await add_tenant(tx, "other")
        await add_account(tx, tenant, "cpo", Role.PARTICIPANT, "pw")
    return key, other_key


async def test_basic_auth_and_tenant_key_keep_401_and_403_apart(aiohttp_client, tmp_path):
    """CP-API 4.1.3: basic authentication per participant plus the tenant key header."""
    app = _app(tmp_path)
    client = await aiohttp_client(app)
    key, other_key = await _account_with_key(app)
    good = encode_basic_auth("cpo", "pw")

    missing = await client.get("/test/whoami")
    wrong = await client.get(
        "/test/whoami",
        headers={"Authorization": encode_basic_auth("cpo", "nope"), "X-Tenant-Key": key},
    )
    unknown = await client.get(
        "/test/whoami",
        headers={"Authorization": encode_basic_auth("ghost", "pw"), "X-Tenant-Key": key},
    )
    no_key = await client.get("/test/whoami", headers={"Authorization": good})
    foreign = await client.get(
        "/test/whoami", headers={"Authorization": good, "X-Tenant-Key": other_key}
    )
    ok = await client.get("/test/whoami", headers={"Authorization": good, "X-Tenant-Key": key})

    assert [r.status for r in (missing, wrong, unknown, no_key, foreign, ok)] == [
        401,
        401,
        401,
        401,
        403,
        200,
    ]
    assert missing.headers["WWW-Authenticate"].startswith("Basic")
    assert "WWW-Authenticate" not in foreign.headers
    assert (await missing.json())["error"] == {
        "code": "unauthorized",
        "message": "basic authentication required",
        "request_id": missing.headers["X-Request-ID"],
    }
    assert (await wrong.json())["error"]["message"] == "unknown user or wrong password"
    assert (await no_key.json())["error"]["message"] == "header X-Tenant-Key (tenant key) required"
    assert (await foreign.json())["error"]["code"] == "forbidden"
    assert (await foreign.json())["error"]["message"] == (
        "the tenant key in X-Tenant-Key is not this account's"
    )
    assert await ok.json() == {"account": "cpo", "tenant": "pilot"}


async def test_rate_limit_per_account_answers_429_with_retry_after(aiohttp_client, tmp_path):
    app = _app(tmp_path, rate_limit_per_second=0.5, rate_limit_burst=2)
    client = await aiohttp_client(app)
    key, _ = await _account_with_key(app)
    headers = {"Authorization": encode_basic_auth("cpo", "pw"), "X-Tenant-Key": key}
    statuses = [await client.get("/test/whoami", headers=headers) for _ in range(3)]
    assert [r.status for r in statuses] == [200, 200, 429]
    assert statuses[2].headers["Retry-After"] == "2"
    assert (await statuses[2].json())["error"]["code"] == "rate_limited"


async def _refuses_connections(port: int) -> bool:
    """True when a new TCP connection to `port` on localhost is refused."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:  # accepted into the backlog just as the listener closed
        return False
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return False


async def _until_refused(port: int, interval: float = 0.05) -> None:
    """Poll, one check per `interval`, until a new connection to `port` is refused."""
    while True:
        await asyncio.sleep(interval)
        if await _refuses_connections(port):
            return


async def test_shutdown_lets_in_flight_requests_finish(tmp_path, unused_tcp_port):
    """Graceful shutdown: a request being handled when shutdown starts still gets its answer.

    The handler is released only once shutdown is visibly under way (the port refuses new
    connections, seen by a poll at least one interval after shutdown began), so a shutdown
    timeout shorter than that (0.001 s) cancels the handler and this test fails.
    """
    app = _app(tmp_path)
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        entered.set()
        await release.wait()
        return web.Response(text="finished")

    app.router.add_get("/test/slow", slow)
    runner = web.AppRunner(app, shutdown_timeout=10)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    async with aiohttp.ClientSession() as session:
        assert not await _refuses_connections(unused_tcp_port)
        request = asyncio.create_task(session.get(f"http://127.0.0.1:{unused_tcp_port}/test/slow"))
        await asyncio.wait_for(entered.wait(), timeout=10)
        shutdown = asyncio.create_task(runner.cleanup())
        try:
            await asyncio.wait_for(_until_refused(unused_tcp_port), timeout=10)
            assert not request.done()  # still in flight after the server stopped listening
        finally:
            release.set()
            await asyncio.wait_for(shutdown, timeout=10)
        response = await asyncio.wait_for(request, timeout=10)
        assert response.status == 200 and await response.text() == "finished"
