"""What the fault tests share: a real `flexbridge serve` process on a free port (killed with
SIGKILL or stopped with SIGTERM, started again on the same port and database), a real
`flexbridge worker` process beside it, an OCMP CPO endpoint in the test's own event loop that
records what flexbridge sends it, and waiting on a condition with a deadline.

The server runs this checkout's code (`python -m adapter.cli` from the repository root), with
no FLEXBRIDGE_* variable of the caller's environment but the ones a test gives it, and seals
peer secrets with the tests' key (conftest.TEST_KEY), so that the `db` fixture reads what it
wrote.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from conftest import TEST_KEY
from ports import free_port

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 60.0
STOP_SECONDS = 40.0  # the server's shutdown_timeout is 30 s


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]], seconds: float, what: str
) -> float:
    """Poll `condition` until it holds; returns the seconds it took. Fails naming `what`."""
    started = time.monotonic()
    while True:
        held = condition()
        if not isinstance(held, bool):
            held = await held
        if held:
            return time.monotonic() - started
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds:.0f} s: {what}")
        await asyncio.sleep(0.05)


def _environment(database_url: str, settings: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment without its FLEXBRIDGE_* variables, plus the test's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEXBRIDGE_")}
    return env | {
        "FLEXBRIDGE_DATABASE_URL": database_url,
        "FLEXBRIDGE_SECRET_KEYS": TEST_KEY,
        "FLEXBRIDGE_ADMIN_PASSWORD": "admin-pw",
        # Many clients of one account: the per-account budget is not what is tested.
        "FLEXBRIDGE_RATE_LIMIT_PER_SECOND": "100000",
        "FLEXBRIDGE_RATE_LIMIT_BURST": "100000",
        **settings,
    }


class _LiveProcess:
    """A flexbridge command in its own process group, its output appended to `log`."""

    def __init__(self, database_url: str, log: Path, settings: Mapping[str, str]) -> None:
        self.log = log
        self.env = _environment(database_url, settings)
        self.process: subprocess.Popen[bytes] | None = None

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def _spawn(self, banner: str, arguments: list[str]) -> None:
        with self.log.open("ab") as out:
            out.write(f"\n===== {banner}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "adapter.cli", *arguments],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the solver's processes too
            )

    def _alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"flexbridge exited with {self.process.returncode}:\n{self.output()[-4000:]}"
            )

    def kill(self) -> None:
        """SIGKILL the process and every process it started (the solver pool), as a machine
        that loses power would: nothing of theirs runs another instruction."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int | None:
        """SIGTERM, as an operator stops it; killed when it does not stop in time."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
        return self.process.returncode


class LiveServer(_LiveProcess):
    """`flexbridge serve` on `port` and `database_url`, its output in `log` (appended to by
    every start, so that one file tells the whole story of a test)."""

    def __init__(
        self, database_url: str, port: int, log: Path, settings: Mapping[str, str] = {}
    ) -> None:
        super().__init__(database_url, log, settings)
        self.port = port

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start and wait until /health answers 200."""
        self._spawn(f"flexbridge serve on port {self.port}", ["serve", "--port", str(self.port)])
        async with aiohttp.ClientSession() as session:
            await wait_for(lambda: self._healthy(session), STARTUP_SECONDS, self._not_up())

    def _not_up(self) -> str:
        return f"flexbridge serve answering /health on port {self.port}"

    async def _healthy(self, session: aiohttp.ClientSession) -> bool:
        self._alive()
        try:
            async with session.get(self.base + "/health") as answer:
                return answer.status == 200
        except aiohttp.ClientError:
            return False


class LiveWorker(_LiveProcess):
    """`flexbridge worker --name NAME` on `database_url`: plan jobs, deliveries and the peer
    clock, no HTTP; its output in `log`."""

    def __init__(
        self, database_url: str, name: str, log: Path, settings: Mapping[str, str] = {}
    ) -> None:
        super().__init__(database_url, log, settings)
        self.name = name

    async def start(self) -> None:
        """Start and wait until it says it runs (it has started its work by then)."""
        self._spawn(f"flexbridge worker {self.name}", ["worker", "--name", self.name])
        running = f"flexbridge worker {self.name} running on"

        def up() -> bool:
            self._alive()
            return running in self.output()

        await wait_for(up, STARTUP_SECONDS, f"flexbridge worker {self.name} running")


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request flexbridge sent the CPO, and how the CPO answered it (None: never, the
    sender went away first)."""

    message: str  # the path's last part: handshake, heartbeat, update_group_...
    request_id: str
    body: Any
    status: int | None
    at: float = 0.0  # time.monotonic() when it came in


class CpoEndpoint:
    """An OCMP CPO's endpoint on a real port. It answers 204, or 503 while `unavailable`;
    `stop()` closes its socket (connections refused) until `start()` again. With `hold` on,
    optimal forecasts are not answered until `release()`: they stay in flight."""

    OPTIMAL = "update_group_optimal_capacity_forecast"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.arrivals: list[Arrival] = []
        self.attempts: list[Arrival] = []  # every request, answered or not
        self.unavailable = False
        self.hold = False
        self.held: list[str] = []  # request ids waiting for release()
        self._gate = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cpo"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/cpo/{message}", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def release(self) -> None:
        """Answer every held optimal forecast (204)."""
        self._gate.set()
        self._gate = asyncio.Event()

    def accepted(self, message: str | None = None) -> list[Arrival]:
        """What the CPO took (answered 2xx), in the order it arrived."""
        return [
            a
            for a in self.arrivals
            if a.status is not None and 200 <= a.status < 300 and message in (None, a.message)
        ]

    def attempted(self, request_id: str) -> int:
        return sum(a.request_id == request_id for a in self.attempts)

    async def _receive(self, request: web.Request) -> web.Response:
        message = request.match_info["message"]
        body = orjson.loads(await request.read())
        request_id = request.headers.get("X-Request-ID", "")
        came = time.monotonic()
        self.attempts.append(Arrival(message, request_id, body, None, came))
        status = 503 if self.unavailable else 204
        if self.hold and message == self.OPTIMAL and status == 204:
            self.held.append(request_id)
            try:
                await self._gate.wait()
            finally:
                self.held.remove(request_id)
            if request.transport is None or request.transport.is_closing():
                status = None  # the sender went away while it was held: it saw no answer
        self.arrivals.append(Arrival(message, request_id, body, status, came))
        return web.Response(status=status or 204)
