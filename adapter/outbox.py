"""The delivery worker: sends outbox rows to peers, with retries, backoff and a deadline.

A 2xx answer marks the row sent. A network error, a timeout, 408, 425, 429 or a 5xx is
retried (as is a status the protocol's surface calls temporary: UFTP's 404 and 419)
after min(cap, base * 2**attempts) seconds, scaled by a random factor in [0.5, 1]
so that many rows failing together do not retry together. Any other 4xx means the peer
refuses this message: retrying cannot help, so the row is dead-lettered at once, as is a
row whose next try would fall after its deadline. A row claimed when its deadline has
already passed is dead-lettered without being sent: the peer no longer expects it. Every
attempt and every dead letter is in the message log and the metrics.

A peer's messages go one at a time, oldest first, and a superseded one is never sent
(store.outbox); a message that leaves the queue lets the peer's next one go at once, not at
the next poll, so that a backlog after an outage drains at the peer's pace. The worker's
name is stable for a process slot (host and port): starting again, it releases the claims
it held when it was stopped, and while it sends it renews their leases every third of a
lease, so a crashed worker's messages are taken over within one short lease by any other
process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import uuid
from collections.abc import Mapping
from datetime import timedelta

import aiohttp

from adapter.auth import encode_basic_auth
from adapter.metrics import Metrics
from adapter.settings import Settings
from store import outbox as outbox_store
from store.db import Database
from store.messages import Direction, log_message
from store.outbox import OutboxItem
from store.peers import OutboundAuth
from store.secret_box import SecretUnreadable
from store.tenants import Tenant
from store.timeutil import from_micros, utcnow

log = logging.getLogger("flexbridge.outbox")

_RETRYABLE = frozenset({408, 425, 429})


def backoff_seconds(attempts: int, base: float, cap: float, rng: random.Random) -> float:
    """Delay before retry number `attempts + 1`: exponential, capped, with jitter."""
    return min(cap, base * (2 ** min(attempts, 30))) * rng.uniform(0.5, 1.0)


def _auth_headers(item: OutboxItem) -> dict[str, str]:
    if item.auth is OutboundAuth.TOKEN and item.secret:
        return {"Authorization": f"Token {item.secret}"}
    if item.auth is OutboundAuth.BEARER and item.secret:
        return {"Authorization": f"Bearer {item.secret}"}
    if item.auth is OutboundAuth.BASIC and item.username is not None:
        return {"Authorization": encode_basic_auth(item.username, item.secret or "")}
    return {}


class DeliveryWorker:
    """One per process; owned by the app's cleanup context, which starts and stops it."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        metrics: Metrics,
        session: aiohttp.ClientSession,
        rng: random.Random | None = None,
        name: str | None = None,
        temporary: Mapping[str, frozenset[int]] | None = None,
    ) -> None:
        self.db = db
        # Per protocol, answers its peers give to mean "later" beyond _RETRYABLE (UFTP: 404).
        self.temporary = dict(temporary or {})
        self.settings = settings
        self.metrics = metrics
        self.session = session
        self.rng = rng or random.Random()
        # One name per process slot, so that a restart finds its own claims (release_claims).
        self.name = name or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-delivery")

    async def stop(self) -> None:
        """Finish the batch in hand, then stop; unclaimed rows wait for the next start."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task

    def wake(self) -> None:
        """Deliver now rather than at the next poll (call after committing new rows)."""
        self._wake.set()

    async def _run(self) -> None:
        try:
            released = await outbox_store.release_claims(self.db, self.name)
        except Exception:  # no database yet: the leases expire instead
            log.exception("outbox: could not release the claims of %s", self.name)
            released = 0
        if released:
            log.warning("outbox: %d message(s) in flight at the last stop are due again", released)
        while not self._stopping.is_set():
            # Cleared before polling, so a wake() that arrives during the poll is not lost.
            self._wake.clear()
            try:
                claimed, finished = await self._deliver_batch()
            except Exception:  # a database hiccup must not end delivery for good
                log.exception("outbox poll failed")
                claimed = finished = 0
            # More may be due right away: the batch was full, or a message that left the
            # queue was the head of its peer's, and the peer's next one is due now, not at
            # the next poll (after an outage a peer's backlog drains at the peer's pace).
            if claimed == self.settings.outbox_batch or finished:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.outbox_poll_seconds)

    async def deliver_due(self) -> int:
        """Claim and send one batch; returns how many rows were claimed."""
        claimed, _ = await self._deliver_batch()
        return claimed

    async def _deliver_batch(self) -> tuple[int, int]:
        """Claim and send one batch: how many rows were claimed, and how many of them left
        the queue (sent or dead-lettered)."""
        items = await outbox_store.claim_due(
            self.db,
            self.name,
            limit=self.settings.outbox_batch,
            lease=timedelta(seconds=self.settings.outbox_lease_seconds),
        )
        # Every send is awaited here, and one failing (say, the database refusing mark_sent)
        # neither abandons nor cancels its siblings: their rows are finished as usual, and the
        # failed row keeps its claim until the lease expires, then is tried again.
        renewing = asyncio.create_task(self._renew([item.id for item in items]))
        try:
            results = await asyncio.gather(
                *(self._deliver(item) for item in items), return_exceptions=True
            )
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
        for item, result in zip(items, results, strict=True):
            if isinstance(result, BaseException):
                log.error(
                    "outbox message %s to %s: delivery failed",
                    item.message_id,
                    item.peer_name,
                    exc_info=result,
                )
        return len(items), sum(result is True for result in results)

    async def _renew(self, ids: list[int]) -> None:
        """Keep the leases of the rows in hand alive while they are being sent."""
        lease = timedelta(seconds=self.settings.outbox_lease_seconds)
        while ids:
            await asyncio.sleep(lease.total_seconds() / 3)
            try:
                await outbox_store.renew(self.db, self.name, ids, lease)
            except Exception:  # the next renewal, or the lease, takes over
                log.warning("outbox: lease renewal failed", exc_info=True)

    async def _send(self, item: OutboxItem) -> tuple[int | None, str]:
        try:
            authorization = _auth_headers(item)
        except SecretUnreadable as exc:
            # Not sent, and retried like a peer that is down: the operator who gives the
            # right key (docs/security.md) sees the message go out. One line, no traceback.
            log.error("outbox message %s not sent: %s", item.message_id, exc)
            return None, str(exc)
        headers = {"X-Request-ID": item.message_id, **item.headers, **authorization}
        timeout = aiohttp.ClientTimeout(total=self.settings.outbox_timeout_seconds)
        try:
            async with self.session.request(
                item.method, item.url, data=item.body, headers=headers, timeout=timeout
            ) as response:
                text = await response.text(errors="replace")
                return response.status, text[:500]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}"

    async def _deliver(self, item: OutboxItem) -> bool:
        """Send one row; whether it left the queue (sent or dead-lettered)."""
        if from_micros(item.deadline_at) <= utcnow():
            await self._bury(item, "deadline passed before delivery", attempted=False)
            return True
        status, detail = await self._send(item)
        if status is not None and 200 <= status < 300:
            await outbox_store.mark_sent(self.db, item, self.name)
            await self._record(item, "sent", f"HTTP {status}")
            return True
        error = f"HTTP {status}: {detail}" if status is not None else detail
        retryable = (
            status is None
            or status >= 500
            or status in _RETRYABLE
            or status in self.temporary.get(item.protocol, ())
        )
        delay = backoff_seconds(
            item.attempts,
            self.settings.outbox_backoff_base_seconds,
            self.settings.outbox_backoff_cap_seconds,
            self.rng,
        )
        next_at = utcnow() + timedelta(seconds=delay)
        if retryable and next_at < from_micros(item.deadline_at):
            await outbox_store.reschedule(self.db, item, self.name, error, next_at)
            await self._record(item, "retry", error)
            return False
        await self._bury(item, error)
        return True

    async def _bury(self, item: OutboxItem, error: str, *, attempted: bool = True) -> None:
        await outbox_store.bury(self.db, item, self.name, error, attempted=attempted)
        await self._record(item, "dead", error)
        log.warning(
            "outbox message %s to %s dead-lettered: %s", item.message_id, item.peer_name, error
        )

    async def _record(self, item: OutboxItem, result: str, detail: str) -> None:
        self.metrics.deliveries.labels(item.protocol, result).inc()
        self.metrics.message(item.protocol, item.message_type, "out", result)
        async with self.db.transaction() as tx:
            await log_message(
                tx,
                Tenant(item.tenant_id, ""),
                protocol=item.protocol,
                message_type=item.message_type,
                direction=Direction.OUT,
                status=result,
                peer_id=item.peer_id,
                message_id=item.message_id,
                detail=detail[:1000],
                payload=item.body if result == "sent" else None,
            )
