"""What a connection may take of a real `flexbridge serve` (adapter/connections.py,
docs/operations.md): slow heads and bodies are cut off and counted while other clients are
served, connections over the cap are refused and counted, and what aiohttp refuses while
parsing, or a target too long to serve, is answered in JSON, in the envelope of the surface
its path names."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from live_server import LiveServer, free_port, wait_for

CLOSE_SECONDS = 60.0  # generous: a cut-off is asserted, never how soon it comes


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[LiveServer]:
    """A started server; `request.param` (indirect) its settings."""
    servers: list[LiveServer] = []

    async def start(settings: dict[str, str]) -> LiveServer:
        server = LiveServer(
            f"sqlite+aiosqlite:///{tmp_path / 'flexbridge.db'}",
            free_port(),
            tmp_path / "serve.log",
            settings,
        )
        servers.append(server)
        await server.start()
        return server

    yield start  # type: ignore[misc]
    for server in servers:
        server.stop()
        assert "Traceback" not in server.output(), server.output()[-4000:]


def _tenant_key(server: LiveServer) -> str:
    found = re.search(r"tenant key: (\S+)", server.output())
    assert found, server.output()
    return found.group(1)


async def _metrics(server: LiveServer) -> str:
    async with aiohttp.ClientSession() as session, session.get(server.base + "/metrics") as got:
        assert got.status == 200
        return await got.text()


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


class SlowClient:
    """A connection that sends `head` and then `trickle` one byte at a time, a few times a
    second, until the server closes it; what the server answered is in `answer`."""

    def __init__(self, port: int, head: bytes, trickle: bytes) -> None:
        self.port, self.head, self.trickle = port, head, trickle
        self.answer = b""
        self.closed = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        feeder = asyncio.create_task(self._feed(writer))
        try:
            self.answer = await reader.read()  # until the server closes
        except ConnectionError:
            pass  # closed with bytes of ours unread: a reset is a close too
        finally:
            feeder.cancel()
            writer.close()
            self.closed.set()

    async def _feed(self, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(self.head)
            while True:
                for byte in self.trickle:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.2)
        except ConnectionError:
            return


async def test_slow_heads_and_bodies_are_cut_off_and_counted_while_others_are_served(serve):
    server = await serve(
        {
            "FLEXBRIDGE_HEADER_READ_TIMEOUT_SECONDS": "5",
            "FLEXBRIDGE_BODY_READ_TIMEOUT_SECONDS": "5",
        }
    )
    basic = base64.b64encode(b"admin:admin-pw").decode()
    save = (
        "POST /api/TimeSeries/SaveTimeSeriesV1 HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nContent-Length: 100000\r\n"
    )
    signed_in = f"{save}Authorization: Basic {basic}\r\nX-Tenant-Key: {_tenant_key(server)}\r\n"
    heads = [
        SlowClient(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n", b"X-Slow: yes\r\n")
        for _ in range(50)
    ]
    # Half of the bodies wait for a handler that reads them, half were answered 401 already
    # and are drained by the server.
    bodies = [
        SlowClient(server.port, f"{signed_in if n % 2 else save}\r\n".encode(), b"[" * 100_000)
        for n in range(50)
    ]

    async def everyone_in_while_served() -> bool:
        return _metric(await _metrics(server), "flexbridge_connections_open") >= 101

    await wait_for(everyone_in_while_served, CLOSE_SECONDS, "the slow 100 and /metrics open")
    await wait_for(
        lambda: all(c.closed.is_set() for c in heads + bodies),
        CLOSE_SECONDS,
        "every slow connection closed by the server",
    )
    # A client still sending when the server closes may lose the answer to the reset of its
    # unread bytes; every answer that arrived is the expected one, and some arrived.
    groups = (
        (heads, b"HTTP/1.1 408 ", b'"code": "request_timeout"'),
        (bodies[1::2], b"HTTP/1.1 408 ", b'"ErrorCode": "request_timeout"'),  # read in CP-API
        (bodies[0::2], b"HTTP/1.1 401 ", b'"ErrorCode": "unauthorized"'),  # drained after
    )
    for clients, status, code in groups:
        answers = [c.answer for c in clients if c.answer]
        assert answers, status
        for answer in answers:
            assert answer.startswith(status) and code in answer, answer[:300]
    text = await _metrics(server)
    assert _metric(text, 'flexbridge_connections_cut_total{phase="headers"}') == 50
    assert _metric(text, 'flexbridge_connections_cut_total{phase="body"}') == 50


async def _held(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A kept-alive connection that has been answered once; None when refused at the cap."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    status = await reader.readline()
    if status.startswith(b"HTTP/1.1 200 "):
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        return reader, writer
    writer.close()
    return None


async def test_connections_over_the_cap_are_refused_at_once_and_counted(serve):
    server = await serve(
        {"FLEXBRIDGE_MAX_CONNECTIONS": "4", "FLEXBRIDGE_HEADER_READ_TIMEOUT_SECONDS": "120"}
    )
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def one_more_held() -> bool:  # the start-up's /health connection may linger a moment
        if (connection := await _held(server.port)) is not None:
            held.append(connection)
        return len(held) == 4

    await wait_for(one_more_held, CLOSE_SECONDS, "4 connections held")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        refused = await asyncio.wait_for(reader.read(), CLOSE_SECONDS)
    except ConnectionError:  # the answer was lost to the reset of our unread request
        refused = b""
    writer.close()
    if refused:
        head, body = refused.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in head
        assert orjson.loads(body)["error"]["code"] == "unavailable"

    held.pop()[1].close()  # a slot frees: a new client is served again
    served: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def served_again() -> bool:
        if (connection := await _held(server.port)) is not None:
            served.append(connection)
        return bool(served)

    await wait_for(served_again, CLOSE_SECONDS, "a connection served once a slot freed")
    reader, writer = served[0]  # asked on it: a new connection might not find a slot yet
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    text = (await asyncio.wait_for(reader.read(), CLOSE_SECONDS)).decode()
    assert text.startswith("HTTP/1.1 200 "), text[:300]
    assert _metric(text, "flexbridge_connections_refused_total") >= 1
    assert _metric(text, "flexbridge_connections_open") == 4  # at the cap, never above it
    for _, connection in (*held, *served):
        connection.close()


async def test_what_cannot_be_served_is_answered_in_the_envelope_of_its_surface(serve):
    server = await serve({})
    long = "x" * 9000
    cases = {  # path -> what the envelope's error code is found under
        f"/api/Asset/GetAssetV1?q={long}": lambda body: body["ErrorCode"],
        f"/iotexternaleh/publishers/gw-1/messages?q={long}": lambda body: body["ErrorCode"],
        f"/ocmp/1.0/heartbeat?q={long}": lambda body: body["errors"][0]["code"],
        f"/health?q={long}": lambda body: body["error"]["code"],
        f"/nowhere?q={long}": lambda body: body["error"]["code"],
        f"/api/Asset/GetAssetV1?q={'x' * 70_000}": lambda body: body["error"]["code"],
    }
    async with aiohttp.ClientSession() as session:
        for path, code_of in cases.items():
            async with session.post(server.base + path, data=b"{}") as answer:
                assert answer.status == 414, path[:60]
                assert answer.content_type == "application/json"
                assert code_of(await answer.json()) == "uri_too_long", path[:60]
        async with session.post(server.base + f"/oscp/co/2.0/heartbeat?q={long}") as answer:
            assert answer.status == 414 and "longer than 8190" in (await answer.json())["message"]
        async with session.get(server.base + "/health", headers={"X-Big": "y" * 9000}) as answer:
            assert answer.status == 431
            assert (await answer.json())["error"]["code"] == "header_too_large"
    # Bytes that are not HTTP get the generic envelope too.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"\x16\x03\x01 not http\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), CLOSE_SECONDS)
    writer.close()
    head, body = answer.split(b"\r\n\r\n", 1)
    assert b" 400 " in head.split(b"\r\n")[0]
    assert orjson.loads(body)["error"]["code"] == "bad_request"
