"""What both pyoscp test modules share: where the peer lives, the skip when it is missing, the
OSCP 2.0 example messages they send, and polling another process's state with a deadline."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
HARNESS = ROOT / "tests" / "peers" / "pyoscp_fp.py"

# Skipped on a developer's machine without the peers venv; in CI (`make test` makes it) a
# missing venv fails the tests instead of hiding them.
requires_peers_venv = pytest.mark.skipif(
    not PEERS_PYTHON.exists() and not os.environ.get("CI"),
    reason=(
        f"{PEERS_PYTHON.relative_to(ROOT)} is missing (pyoscp lives there): create it with "
        "`python3 -m venv .venv-peers && .venv-peers/bin/pip install -r "
        "tests/peers/requirements-pyoscp.txt`"
    ),
)

TOKEN_A = "token-A-out-of-band"
FP_READY = re.compile(r"pyoscp FP ready on (http://127\.0\.0\.1:\d+)")
DEADLINE = 20.0
TIMEOUT = aiohttp.ClientTimeout(total=15)

HANDSHAKE = {
    "required_behaviour": {"heartbeat_interval": 60, "measurement_configuration": ["CONTINUOUS"]}
}
CAPACITIES = [123.456, 234.567, 345.678, 456.789]
FORECAST = {
    "group_id": "abc123",
    "type": "CONSUMPTION",
    "forecasted_blocks": [
        {
            "capacity": capacity,
            "phase": "ALL",
            "unit": "KW",
            "start_time": f"2022-10-07T00:{15 * i:02d}:00Z",
            "end_time": f"2022-10-07T{(15 * i + 15) // 60:02d}:{(15 * i + 15) % 60:02d}:00Z",
        }
        for i, capacity in enumerate(CAPACITIES)
    ],
}
ASSET_MEASUREMENTS = {
    "group_id": "abc123",
    "measurements": [
        {
            "asset_id": "evse-1",
            "asset_category": "CHARGING",
            "energy_measurement": {
                "value": 123.456,
                "phase": "ALL",
                "unit": "KWH",
                "direction": "IMPORT",
                "measure_time": "2024-01-01T11:22:33.456+08:00",
            },
        }
    ],
}


async def wait_until(check: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Poll `check` (another process's state) until truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
