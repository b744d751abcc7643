"""flexbridge's OSCP 2.0 CO against pyoscp 0.1.0 as the FP, both as real processes.

A `flexbridge serve` subprocess (SQLite, the peer provisioned with `flexbridge peer add`
before it starts) and the pyoscp FP harness (tests/peers/pyoscp_fp.py, in .venv-peers) talk
over HTTP on 127.0.0.1. The test drives the harness's control endpoints and checks both
sides: what pyoscp received and answered, and what flexbridge kept.

The peer is provisioned with the pyoscp-0.1 dialect (docs/protocols/oscp-2.0.md, "Dialects"):
our HandshakeAcknowledge goes to /handshake_acknowledgment (quirk 4) and our heartbeats carry
zone-less UTC times (quirk 1), so pyoscp's own worker takes the session from there.

Both processes live in other processes, so the test waits for their effects by polling
their HTTP state with a deadline; nothing waits a fixed time.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ports import free_port
from pyoscp_peer import (
    ASSET_MEASUREMENTS,
    CAPACITIES,
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

FLEXBRIDGE = Path(sys.executable).parent / "flexbridge"
CO_READY = re.compile(r"flexbridge serving on (http://127\.0\.0\.1:\d+)")

pytestmark = requires_peers_venv


def header(received: dict[str, Any], name: str) -> str | None:
    """A header of a request pyoscp received (Werkzeug spells names its own way)."""
    found = {k.lower(): v for k, v in received["headers"].items()}
    return found.get(name.lower())


async def _ready_line(proc: asyncio.subprocess.Process, pattern: re.Pattern[str]) -> str | None:
    """The first stdout line matching `pattern` (earlier lines are banners), or None."""
    assert proc.stdout is not None
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), deadline - time.monotonic())
        except TimeoutError:
            return None
        if not line:
            return None
        match = pattern.fullmatch(line.decode().strip())
        if match:
            return match.group(1)
    return None


async def _stop(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), DEADLINE)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    return proc.returncode  # type: ignore[return-value]


class Flexbridge:
    """A `flexbridge serve` process on a free port with its own SQLite file."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.co_url = f"{self.url}/oscp/co/2.0"
        self.stderr = tmp_path / "flexbridge.stderr"
        self.env = {
            **os.environ,
            "FLEXBRIDGE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'flexbridge.db'}",
            "FLEXBRIDGE_ADMIN_PASSWORD": "admin-pw-for-the-interop-test",
            "FLEXBRIDGE_PUBLIC_URL": self.url,
            # quirk 3: pyoscp's worker ticks every 5 s; ask it for 10 s
            "FLEXBRIDGE_HEARTBEAT_SECONDS": "10",
            "FLEXBRIDGE_PEER_CLOCK_SECONDS": "0.2",
            "FLEXBRIDGE_OUTBOX_POLL_SECONDS": "0.1",
            "FLEXBRIDGE_RESEND_MINUTES": "0",
        }
        self.proc: asyncio.subprocess.Process | None = None

    async def cli(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            str(FLEXBRIDGE),
            *args,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
        assert proc.returncode == 0, f"flexbridge {' '.join(args)}: {err.decode()}"
        return out.decode()

    async def start(self) -> None:
        with self.stderr.open("wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                str(FLEXBRIDGE),
                "serve",
                "--port",
                str(self.port),
                env=self.env,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
            )
        if await _ready_line(self.proc, CO_READY) != self.url:
            await _stop(self.proc)
            raise AssertionError(
                "flexbridge did not start; stderr:\n" + self.stderr.read_text()[-3000:]
            )


class PyoscpFp:
    """The pyoscp FP harness process and a client for its control endpoints."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc, self.url = proc, url
        self.oscp_url = f"{url}/oscp/fp/2.0"
        self.session = aiohttp.ClientSession(timeout=TIMEOUT)

    @classmethod
    async def start(cls, co_url: str, tmp_path: Path) -> PyoscpFp:
        # pyoscp writes its heartbeat times in local time without a zone; flexbridge reads
        # them as UTC, so the FP runs in UTC (docs/protocols/oscp-2.0.md, "Timestamps").
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env["TZ"] = "UTC"
        with (tmp_path / "pyoscp_fp.stderr").open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                str(PEERS_PYTHON),
                str(HARNESS),
                "--port",
                "0",
                "--co-url",
                co_url,
                "--token",
                TOKEN_A,
                "--background",  # pyoscp's own worker: its acks and heartbeats
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env=env,
            )
        url = await _ready_line(proc, FP_READY)
        if url is None:
            await _stop(proc)
            raise AssertionError(
                "no ready line from the pyoscp harness; stderr:\n"
                + (tmp_path / "pyoscp_fp.stderr").read_text()[-3000:]
            )
        return cls(proc, url)

    async def stop(self) -> int:
        await self.session.close()
        return await _stop(self.proc)

    async def send(self, message: str, body: Any = None) -> tuple[int, str, str]:
        """Have pyoscp send a message to the CO: (CO's status, its body, X-Request-ID)."""
        kwargs = {} if body is None else {"json": body}
        async with self.session.post(f"{self.url}/_send/{message}", **kwargs) as resp:
            return resp.status, await resp.text(), resp.headers.get("X-Sent-Request-ID", "")

    async def get(self, what: str) -> Any:
        async with self.session.get(f"{self.url}/_{what}") as resp:
            assert resp.status == 200
            return await resp.json()

    async def received(self, path: str) -> list[dict[str, Any]]:
        """What reached pyoscp at /oscp/fp/2.0/<path> and has been answered."""
        return [
            r
            for r in await self.get("received")
            if r["path"] == f"/oscp/fp/2.0/{path}" and r["status"] is not None
        ]


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Flexbridge, PyoscpFp]]:
    co = Flexbridge(tmp_path)
    await co.cli("tenant", "add", "pilot")
    await co.cli(
        "peer",
        "add",
        "--tenant",
        "pilot",
        "--protocol",
        "oscp",
        "--name",
        "pyoscp",
        "--token",
        TOKEN_A,
        "--unknown-ids",
        "lenient",  # pyoscp's groups and assets become entities on first sight
        "--dialect",
        "pyoscp-0.1",
    )
    await co.start()
    fp = await PyoscpFp.start(co.co_url, tmp_path)
    try:
        yield co, fp
    finally:
        assert await fp.stop() == 0
        assert co.proc is not None
        assert await _stop(co.proc) == 0, co.stderr.read_text()[-3000:]
        log = co.stderr.read_text()
        assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]


async def test_a_pyoscp_fp_session_runs_unattended_in_the_pyoscp_dialect(pair) -> None:
    """pyoscp's own worker and routes against a real flexbridge whose peer has the
    pyoscp-0.1 dialect (docs/protocols/oscp-2.0.md, "Dialects"): nothing is posted to
    flexbridge by hand; pyoscp sends what it has senders for (Register, heartbeats) and the
    harness what it has none for (Handshake, forecasts, measurements: quirk 17)."""
    co, fp = pair

    # Register both ways: pyoscp's Register (token A, body B), flexbridge's back (token C).
    status, body, register_id = await fp.send("register")
    assert (status, body) == (204, "")
    [back] = await wait_until(lambda: fp.received("register"), "flexbridge's Register")
    state = await fp.get("state")
    assert back["status"] == 204, back
    assert header(back, "Authorization") == f"Token {state['token_b']}"
    assert header(back, "X-Correlation-ID") == register_id  # quirk 12
    assert back["body"]["version_url"] == [{"version": "2.0", "base_url": co.co_url}]
    assert state["peer"] == {"base_url": co.co_url, "token": back["body"]["token"]}

    # Handshake; our acknowledgement reaches pyoscp where it listens (quirk 4): 204.
    status, body, _ = await fp.send("handshake", HANDSHAKE)
    assert (status, body) == (204, "")
    [ack] = await wait_until(
        lambda: fp.received("handshake_acknowledgment"), "flexbridge's HandshakeAcknowledge"
    )
    assert ack["status"] == 204, ack
    assert ack["body"] == {"required_behaviour": {"heartbeat_interval": 10}}  # quirks 5, 6
    assert header(ack, "Authorization") == f"Token {state['token_b']}"

    # Our heartbeats, zone-less as pyoscp parses them (quirk 1): 204.
    [ours, *_] = await wait_until(lambda: fp.received("heartbeat"), "flexbridge's heartbeat")
    assert ours["status"] == 204, ours
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", ours["body"]["offline_mode_at"])

    # pyoscp's worker heartbeats flexbridge at the interval our acknowledgement agreed (10 s):
    # each says offline at send time + 3 intervals, and two are one interval apart or more.
    beats = await wait_until(
        lambda: _worker_heartbeats(fp, 2), "two heartbeats from pyoscp's worker", timeout=40
    )
    first, second = (datetime.fromisoformat(b["body"]["offline_mode_at"]) for b in beats[:2])
    assert timedelta(seconds=10) <= second - first <= timedelta(seconds=16)
    listing = await co.cli("peer", "list", "--tenant", "pilot")
    assert re.search(r"pyoscp\s+registered,handshaken,online\s", listing), listing

    # CONSUMPTION forecast in, OPTIMUM out, handed to pyoscp's flexibilityprovider.
    status, body, _ = await fp.send("update_group_capacity_forecast", FORECAST)
    assert (status, body) == (204, "")
    [optimum] = await wait_until(
        lambda: _forecasts(fp), "the OPTIMUM at pyoscp's flexibilityprovider"
    )
    assert optimum["token"] == state["token_b"]
    payload = optimum["payload"]
    assert (payload["group_id"], payload["type"]) == ("abc123", "OPTIMUM")
    assert [b["capacity"] for b in payload["forecasted_blocks"]] == CAPACITIES

    # Measurements are stored: 204; a bad one is a 400 naming the field.
    status, body, _ = await fp.send("update_asset_measurements", ASSET_MEASUREMENTS)
    assert (status, body) == (204, "")
    bad = {**ASSET_MEASUREMENTS, "measurements": [{"asset_id": "evse-1"}]}
    status, body, _ = await fp.send("update_asset_measurements", bad)
    assert status == 400 and "measurements[0].asset_category" in body


async def _worker_heartbeats(fp: PyoscpFp, count: int) -> list[dict[str, Any]]:
    """The heartbeats pyoscp's worker sent flexbridge and flexbridge accepted, once `count`."""
    sent = (await fp.get("state"))["sent"]
    accepted = [e for e in sent if e["url"].endswith("/heartbeat") and e["status"] == 204]
    return accepted if len(accepted) >= count else []


async def _forecasts(fp: PyoscpFp) -> list[dict[str, Any]]:
    return (await fp.get("state"))["forecasts"]
