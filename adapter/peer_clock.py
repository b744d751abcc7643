"""The peer clock: runs every mounted surface's `clock` (heartbeats that are due, peers gone
offline, optimal forecasts to re-send) about once per `peer_clock_seconds`, and keeps the
online-peers gauge. One failing clock is logged and retried next time; it never stops the
others or the server.

Stopping lets the tick in hand finish, like the other workers: a tick cancelled inside a
write transaction would fail the commit it shares with other writers (store/group_commit.py)
and leave them, and the shutdown, with its CancelledError."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from adapter.metrics import Metrics
from hub.peer_link import is_online
from hub.runtime import Hub
from protocols.common.surface import Surface
from store.db import Database
from store.peers import peers_of_protocol

log = logging.getLogger("flexbridge.clock")


class PeerClock:
    def __init__(
        self,
        db: Database,
        hub: Hub,
        metrics: Metrics,
        surfaces: Sequence[Surface],
        protocols: Sequence[str],
        period: float,
    ) -> None:
        self.db, self.hub, self.metrics = db, hub, metrics
        self.clocks = [(s.name, s.clock) for s in surfaces if s.clock is not None]
        self.protocols = tuple(protocols)
        self.period = period
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="peer clock")

    async def stop(self) -> None:
        """Finish the tick in hand, then stop."""
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def tick(self) -> None:
        now = datetime.now(UTC)
        for name, clock in self.clocks:
            try:
                await clock(self.db, self.hub, now)
            except Exception:
                log.exception("%s clock failed; retried at the next tick", name)
        try:
            await self._count_online()
        except Exception:  # the database away for a moment: the gauge waits for the next tick
            log.warning("peer clock could not count online peers", exc_info=True)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.period)

    async def _count_online(self) -> None:
        async with self.db.read() as tx:
            for protocol in self.protocols:
                states = Counter(
                    "online" if is_online(p) else "offline"
                    for p in await peers_of_protocol(tx, protocol)
                )
                for state in ("online", "offline"):
                    self.metrics.peers.labels(protocol, state).set(states[state])
