"""The pyoscp peer harness (tests/peers/pyoscp_fp.py) against a stub Capacity Optimizer.

pyoscp 0.1.0 (a third-party OSCP 2.0 library) plays the Flexibility Provider in a subprocess
running in its own venv, .venv-peers; the CO here is a small aiohttp stub that records what it
receives and answers a Register with its own Register, as OSCP 2.0 says. These tests prove the
harness before flexbridge's real CO exists, and pin the pyoscp behaviour that
docs/protocols/pyoscp-quirks.md describes, so a changed peer is noticed.

Skipped when .venv-peers is missing (the Makefile creates it from
tests/peers/requirements-pyoscp.txt).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from pyoscp_peer import (
    ASSET_MEASUREMENTS,
    DEADLINE,
    FORECAST,
    FP_READY,
    HANDSHAKE,
    HARNESS,
    PEERS_PYTHON,
    TIMEOUT,
    TOKEN_A,
    requires_peers_venv,
    wait_until,
)

PYOSCP_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{11}")  # secrets.token_urlsafe(8)
PYOSCP_HEARTBEAT_TIME = "%Y-%m-%d %H:%M:%S"  # zone-less local time

pytestmark = requires_peers_venv


class StubCO:
    """A minimal OSCP 2.0 CO at /oscp/co/2.0: records every request, answers 204.

    On a Register without X-Correlation-ID it answers 204 first, then sends its own Register
    to the initiator's base_url: Authorization Token B (from the body), X-Correlation-ID = the
    initiator's X-Request-ID, body token C and the selected version.
    """

    def __init__(self) -> None:
        self.base_url = ""
        self.token_c = "token-C-" + secrets.token_urlsafe(8)
        self.received: list[dict[str, Any]] = []
        self.answers: dict[str, tuple[int, dict]] = {}  # message -> (status, JSON body)
        self.reply_to_register = True
        self.reply_with_correlation = True
        self.register_back: list[dict[str, Any]] = []  # what each Register back got
        self._tasks: set[asyncio.Task] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/oscp/co/2.0/{message}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        message = request.match_info["message"]
        body = await request.json() if request.can_read_body else None
        self.received.append(
            {
                "message": message,
                "path": request.path,
                "headers": dict(request.headers),
                "body": body,
            }
        )
        if message in self.answers:
            status, answer = self.answers[message]
            return web.json_response(answer, status=status)
        is_reply = "X-Correlation-ID" in request.headers
        if message == "register" and not is_reply and self.reply_to_register:
            task = asyncio.create_task(
                self._register_back(request.headers.get("X-Request-ID"), body)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.Response(status=204)

    async def _register_back(self, request_id: str | None, body: dict) -> None:
        chosen = next(v for v in body["version_url"] if v["version"] == "2.0")
        headers = {"Authorization": f"Token {body['token']}", "X-Request-ID": secrets.token_hex(8)}
        if self.reply_with_correlation and request_id:
            headers["X-Correlation-ID"] = request_id
        payload = {
            "token": self.token_c,
            "version_url": [{"version": "2.0", "base_url": self.base_url}],
        }
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as session,
            session.post(f"{chosen['base_url']}/register", json=payload, headers=headers) as resp,
        ):
            self.register_back.append(
                {"status": resp.status, "body": await resp.text(), "headers": headers}
            )

    def got(self, message: str) -> list[dict[str, Any]]:
        return [r for r in self.received if r["message"] == message]

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class PeerFP:
    """The harness subprocess and an HTTP client for it."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str, stderr: Path) -> None:
        self.proc = proc
        self.url = url
        self.oscp_url = f"{url}/oscp/fp/2.0"
        self.stderr = stderr
        self.session = aiohttp.ClientSession(timeout=TIMEOUT)

    @classmethod
    async def start(cls, co_url: str, tmp_path: Path, *extra: str) -> PeerFP:
        stderr = tmp_path / "pyoscp_fp.stderr"
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        with stderr.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                str(PEERS_PYTHON),
                str(HARNESS),
                "--port",
                "0",
                "--co-url",
                co_url,
                "--token",
                TOKEN_A,
                *extra,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env=env,
            )
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), DEADLINE)
        except TimeoutError:
            line = b""
        match = FP_READY.fullmatch(line.decode().strip())
        if not match:
            proc.kill()
            await proc.wait()
            raise AssertionError(
                f"no ready line from the harness (got {line!r}); stderr:\n"
                + stderr.read_text(errors="replace")[-3000:]
            )
        return cls(proc, match.group(1), stderr)

    async def stop(self) -> int:
        await self.session.close()
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), DEADLINE)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode

    async def send(self, message: str, body: Any = None) -> tuple[int, str, str]:
        """POST /_send/<message>: (status the CO answered, its body, X-Request-ID we sent)."""
        kwargs = {} if body is None else {"json": body}
        async with self.session.post(f"{self.url}/_send/{message}", **kwargs) as resp:
            return resp.status, await resp.text(), resp.headers.get("X-Sent-Request-ID", "")

    async def get(self, what: str) -> Any:
        async with self.session.get(f"{self.url}/_{what}") as resp:
            assert resp.status == 200
            return await resp.json()

    async def post_oscp(
        self, message: str, body: Any, token: str | None, **headers: str
    ) -> tuple[int, str]:
        """A CO's call into pyoscp: POST /oscp/fp/2.0/<message>."""
        sent = {"X-Request-ID": secrets.token_hex(8), **headers}
        if token is not None:
            sent.setdefault("Authorization", f"Token {token}")
        async with self.session.post(f"{self.oscp_url}/{message}", json=body, headers=sent) as resp:
            return resp.status, await resp.text()


@pytest.fixture
async def stub_co(aiohttp_server) -> AsyncIterator[StubCO]:
    stub = StubCO()
    server = await aiohttp_server(stub.app())
    stub.base_url = str(server.make_url("/oscp/co/2.0"))
    yield stub
    await stub.close()


@pytest.fixture
async def start_fp(stub_co: StubCO, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[PeerFP] = []

    async def start(*extra: str) -> PeerFP:
        fp = await PeerFP.start(stub_co.base_url, tmp_path, *extra)
        started.append(fp)
        return fp

    yield start
    for fp in started:
        await fp.stop()


async def register(fp: PeerFP, stub: StubCO) -> tuple[str, str]:
    """FP-initiated registration; returns (token B, X-Request-ID of the FP's Register)."""
    status, body, request_id = await fp.send("register")
    assert (status, body) == (204, "")
    await wait_until(lambda: stub.register_back, "the stub CO's Register back to the FP")
    assert stub.register_back[0]["status"] == 204, stub.register_back[0]
    token_b = stub.got("register")[0]["body"]["token"]
    return token_b, request_id


async def test_fp_registers_handshakes_and_sends_to_the_co(stub_co: StubCO, start_fp) -> None:
    fp = await start_fp()
    token_b, register_id = await register(fp, stub_co)

    # 1. FP -> CO Register: out-of-band token A in the header, token B + FP base_url in the body
    [reg] = stub_co.got("register")
    assert reg["path"] == "/oscp/co/2.0/register"
    assert reg["headers"]["Authorization"] == f"Token {TOKEN_A}"
    assert reg["headers"]["X-Request-ID"] == register_id
    assert PYOSCP_REQUEST_ID.fullmatch(register_id)
    assert "X-Correlation-ID" not in reg["headers"]
    assert len(token_b) >= 32 and token_b != TOKEN_A
    assert reg["body"] == {
        "token": token_b,
        "version_url": [{"version": "2.0", "base_url": fp.oscp_url}],
    }

    # 2. CO -> FP Register (token B in the header, token C in the body): pyoscp accepted it
    received = await fp.get("received")
    [back] = [r for r in received if r["path"] == "/oscp/fp/2.0/register"]
    assert back["status"] == 204
    back_headers = CIMultiDict(back["headers"])  # WSGI title-cases names: X-Correlation-Id
    assert back_headers["Authorization"] == f"Token {token_b}"
    assert back_headers["X-Correlation-ID"] == register_id
    assert back["body"]["token"] == stub_co.token_c
    state = await fp.get("state")
    assert state["token_b"] == token_b
    assert state["peer"] == {"base_url": stub_co.base_url, "token": stub_co.token_c}

    # 3. everything after the registration goes with token C, headers from createOscpHeader
    sends = [
        ("handshake", HANDSHAKE),
        ("heartbeat", {"heartbeat_interval": 60}),
        ("update_group_capacity_forecast", FORECAST),
        ("update_asset_measurements", ASSET_MEASUREMENTS),
    ]
    for message, body in sends:
        status, answer, request_id = await fp.send(message, body)
        assert (status, answer) == (204, ""), message
        [got] = stub_co.got(message)
        assert got["path"] == f"/oscp/co/2.0/{message}"
        assert got["headers"]["Authorization"] == f"Token {stub_co.token_c}", message
        assert got["headers"]["X-Request-ID"] == request_id, message
        assert PYOSCP_REQUEST_ID.fullmatch(request_id), message
        assert got["headers"]["Content-Type"] == "application/json", message
        if message != "heartbeat":
            assert got["body"] == body, message

    # pyoscp's heartbeat: zone-less local time, now + 3 x interval
    [heartbeat] = stub_co.got("heartbeat")
    assert list(heartbeat["body"]) == ["offline_mode_at"]
    offline_at = datetime.strptime(heartbeat["body"]["offline_mode_at"], PYOSCP_HEARTBEAT_TIME)
    assert abs(offline_at - (datetime.now() + timedelta(seconds=180))) < timedelta(seconds=30)


async def test_control_endpoints_relay_the_co_answer(stub_co: StubCO, start_fp) -> None:
    fp = await start_fp()
    await register(fp, stub_co)
    stub_co.answers["update_asset_measurements"] = (400, {"message": "measurements: too short"})
    status, body, _ = await fp.send(
        "update_asset_measurements", {"group_id": "g", "measurements": []}
    )
    assert status == 400
    assert body == '{"message": "measurements: too short"}'
    stub_co.answers["heartbeat"] = (403, {"message": "unknown token"})
    status, body, _ = await fp.send("heartbeat")
    assert (status, body) == (403, '{"message": "unknown token"}')


async def test_control_endpoint_reports_an_unreachable_co(stub_co: StubCO, start_fp) -> None:
    fp = await start_fp()
    status, body, _ = await fp.send("register", {"co_url": "http://127.0.0.1:9/oscp/co/2.0"})
    assert status == 502
    assert "ConnectionError" in body


async def test_pyoscp_fp_as_seen_by_a_co(stub_co: StubCO, start_fp) -> None:
    """What pyoscp's FP endpoints answer a CO: the quirks a CO must live with."""
    fp = await start_fp()
    token_b, _ = await register(fp, stub_co)
    ok_heartbeat = {"offline_mode_at": "2022-08-21 13:36:24"}
    optimum = {**FORECAST, "type": "OPTIMUM"}
    cases = [
        # heartbeat: only zone-less "%Y-%m-%d %H:%M:%S" works; RFC 3339 ends in a 500
        ("heartbeat", ok_heartbeat, token_b, {}, 204),
        ("heartbeat", {"offline_mode_at": "2022-08-21T13:36:24.491Z"}, token_b, {}, 500),
        ("heartbeat", {"offline_mode_at": "2022-08-21T13:36:24Z"}, token_b, {}, 500),
        ("heartbeat", {"offline_mode_at": "2022-08-21T13:36:24+08:00"}, token_b, {}, 500),
        ("heartbeat", {"offline_mode_at": "2022-08-21 13:36:24.5"}, token_b, {}, 500),
        ("heartbeat", {}, token_b, {}, 500),
        # authentication: "Token " is stripped case-sensitively; the token itself is looked up
        ("heartbeat", ok_heartbeat, None, {}, 401),
        ("heartbeat", ok_heartbeat, "not-a-token", {}, 403),
        ("heartbeat", ok_heartbeat, None, {"Authorization": f"token {token_b}"}, 403),
        ("heartbeat", ok_heartbeat, None, {"Authorization": f"Bearer {token_b}"}, 403),
        ("heartbeat", ok_heartbeat, None, {"Authorization": token_b}, 204),
        # the acknowledgement path is /handshake_acknowledgment, and required_behaviour is a must
        (
            "handshake_acknowledgment",
            {"required_behaviour": {"heartbeat_interval": 30}},
            token_b,
            {},
            204,
        ),
        ("handshake_acknowledgment", {"required_behaviour": {}}, token_b, {}, 204),
        ("handshake_acknowledgment", {}, token_b, {}, 500),
        (
            "handshake_acknowledge",
            {"required_behaviour": {"heartbeat_interval": 30}},
            token_b,
            {},
            404,
        ),
        ("handshake", {}, token_b, {}, 500),
        ("handshake", {"required_behaviour": {"heartbeat_interval": 1.5}}, token_b, {}, 400),
        # forecasts from the CO (OPTIMUM) reach pyoscp's flexibilityprovider
        ("update_group_capacity_forecast", optimum, token_b, {}, 204),
        ("update_group_capacity_forecast", {**optimum, "type": "optimum"}, token_b, {}, 400),
        # body validation (flask-restx, validate=True) runs before authentication
        ("update_group_capacity_forecast", {**optimum, "type": "optimum"}, "bad", {}, 400),
        ("update_group_capacity_forecast", optimum, "bad", {}, 403),
    ]
    wrong = []
    for message, body, token, headers, expected in cases:
        status, answer = await fp.post_oscp(message, body, token, **headers)
        if status != expected:
            wrong.append((message, body, token, headers, expected, status, answer))
    assert not wrong, "\n".join(map(repr, wrong))

    state = await fp.get("state")
    assert {"token": token_b, "payload": optimum} in state["forecasts"]


async def test_co_register_reply_without_correlation_makes_pyoscp_register_again(
    stub_co: StubCO, start_fp
) -> None:
    """pyoscp tells a Register reply from a new registration only by X-Correlation-ID."""
    stub_co.reply_with_correlation = False
    fp = await start_fp()
    token_b, _ = await register(fp, stub_co)
    # pyoscp took the reply for a fresh registration: it replaced token B by a new token D
    # and sent a Register of its own to the CO, authorised with token C
    again = await wait_until(lambda: stub_co.got("register")[1:], "pyoscp's second Register")
    assert again[0]["headers"]["Authorization"] == f"Token {stub_co.token_c}"
    assert (
        again[0]["headers"]["X-Correlation-ID"]
        == stub_co.register_back[0]["headers"]["X-Request-ID"]
    )
    token_d = again[0]["body"]["token"]
    assert token_d not in (token_b, TOKEN_A)
    status, _ = await fp.post_oscp("heartbeat", {"offline_mode_at": "2022-08-21 13:36:24"}, token_b)
    assert status == 403
    status, _ = await fp.post_oscp("heartbeat", {"offline_mode_at": "2022-08-21 13:36:24"}, token_d)
    assert status == 204


async def test_co_initiated_registration(stub_co: StubCO, start_fp) -> None:
    """The CO registers at pyoscp: pyoscp sends its Register back BEFORE answering 204."""
    token_x = "token-X-" + secrets.token_urlsafe(8)
    token_y = "token-Y-" + secrets.token_urlsafe(8)
    fp = await start_fp("--accept-token", token_x)
    request_id = secrets.token_hex(8)
    body = {"token": token_y, "version_url": [{"version": "2.0", "base_url": stub_co.base_url}]}
    status, answer = await fp.post_oscp("register", body, token_x, **{"X-Request-ID": request_id})
    assert (status, answer) == (204, "")
    # already there when the 204 came: pyoscp posted synchronously inside the request
    [reply] = stub_co.got("register")
    assert reply["headers"]["Authorization"] == f"Token {token_y}"
    assert reply["headers"]["X-Correlation-ID"] == request_id
    assert reply["body"]["version_url"] == [{"version": "2.0", "base_url": fp.oscp_url}]
    token_c = reply["body"]["token"]
    heartbeat = {"offline_mode_at": "2022-08-21 13:36:24"}
    assert (await fp.post_oscp("heartbeat", heartbeat, token_x))[0] == 403  # X was replaced
    assert (await fp.post_oscp("heartbeat", heartbeat, token_c))[0] == 204
    # the harness now talks to the CO with token Y
    status, _, _ = await fp.send("heartbeat")
    assert status == 204
    assert stub_co.got("heartbeat")[0]["headers"]["Authorization"] == f"Token {token_y}"


async def test_pyoscp_worker_heartbeats_once_the_co_acknowledges(stub_co: StubCO, start_fp) -> None:
    """With --background, pyoscp's own worker sends heartbeats at the interval the CO asked."""
    fp = await start_fp("--background")
    token_b, _ = await register(fp, stub_co)
    assert (await fp.send("handshake", HANDSHAKE))[0] == 204
    ack = {"required_behaviour": {"heartbeat_interval": 1}}
    assert (await fp.post_oscp("handshake_acknowledgment", ack, token_b))[0] == 204
    # pyoscp's worker ticks every 5 s (fixed in RegistrationDictMan)
    [beat, *_] = await wait_until(lambda: stub_co.got("heartbeat"), "a heartbeat from the worker")
    assert beat["headers"]["Authorization"] == f"Token {stub_co.token_c}"
    offline_at = datetime.strptime(beat["body"]["offline_mode_at"], PYOSCP_HEARTBEAT_TIME)
    assert abs(offline_at - (datetime.now() + timedelta(seconds=3))) < timedelta(seconds=10)


async def test_harness_exits_cleanly_on_sigterm(stub_co: StubCO, tmp_path: Path) -> None:
    fp = await PeerFP.start(stub_co.base_url, tmp_path)
    try:
        assert (await fp.get("received")) == []
    finally:
        returncode = await fp.stop()
    assert returncode == 0, fp.stderr.read_text(errors="replace")[-3000:]
