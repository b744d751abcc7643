"""The runner's peer endpoint: an HTTP server that records every message the server under
test sends (OCMP handshakes, heartbeats, optimal forecasts, OSCP registers, acknowledgements,
CP-API section 6 messages, UFTP's signed messages) and answers each with 204 No Content, or
the status its path is given in `statuses` (UFTP: 200). A body is read as JSON, or by the
reader its path is given in `readers` (UFTP: verified and read as XML, conformance.uftp)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(slots=True)
class Received:
    seq: int
    at: float  # time.monotonic()
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any = None
    json_error: str | None = None
    used: bool = field(default=False)

    def describe(self) -> str:
        return f"#{self.seq} {self.method} {self.path}"


class PeerEndpoint:
    """Listens on host:port (0: a free port); `url` is what the server is told to use."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, url: str | None = None) -> None:
        self.host, self.port = host, port
        self._advertised = url
        self.received: list[Received] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.listeners: list[Callable[[Received], None]] = []
        self.readers: dict[str, Callable[[bytes], Any]] = {}
        self.statuses: dict[str, int] = {}

    @property
    def url(self) -> str:
        return (self._advertised or f"http://{self.host}:{self.port}").rstrip("/")

    async def _receive(self, request: web.Request) -> web.Response:
        raw = await request.read()
        message = Received(
            len(self.received) + 1,
            time.monotonic(),
            request.method,
            request.path,
            {k: v for k, v in request.headers.items()},
            raw,
        )
        reader = self.readers.get(request.path)
        if reader is not None:
            message.body = reader(raw)
        elif raw:
            try:
                message.body = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                message.json_error = str(exc)
        async with self._changed:
            self.received.append(message)
            self._changed.notify_all()
        for listener in self.listeners:
            listener(message)
        return web.Response(status=self.statuses.get(request.path, 204))

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        if self.port == 0:  # the port the OS chose
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def mark(self) -> int:
        """A position: messages after it are those received from now on."""
        return len(self.received)

    async def wait_for(
        self, accept: Callable[[Received], bool], since: int, deadline: float
    ) -> Received | None:
        """The first unused message after `since` that `accept`s, waiting until the monotonic
        `deadline` at the latest (woken by each arrival, never by a fixed pause)."""
        checked = since
        async with self._changed:
            while True:
                for message in self.received[checked:]:
                    if not message.used and accept(message):
                        message.used = True
                        return message
                checked = len(self.received)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    return None

    def since(self, mark: int) -> list[Received]:
        return self.received[mark:]
