"""The outbox: outbound messages queued in the transaction that caused them.

Rows are claimed with a lease: `claimed_until` is set in the claiming transaction, so a
process that dies mid-send leaves a claim that expires and another process retries the
message; the claimer renews the lease while it sends (`renew`) and releases what it held
when it starts again (`release_claims`), so a lease can be short. On PostgreSQL the claim
selects with FOR UPDATE SKIP LOCKED, so two processes polling at once never take the same
row; SQLite has one writer at a time and ignores it.

Order and supersession: a peer's messages are delivered oldest first, one at a time (a
message is claimable only when no older one to the same peer is pending), so after an
outage they arrive in the order they were made. A message may name a `topic`; queuing one
supersedes every undelivered, unclaimed message to the same peer with the same topic (a
newer capacity forecast of one group, a newer heartbeat): it is kept with status
`superseded` and never sent late.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from store.db import Database, inserted_id
from store.peers import OutboundAuth, Peer, peer_label
from store.secret_box import SecretBox, open_secret
from store.tables import outbox, peers, tenants
from store.tenants import Tenant
from store.timeutil import MICROSECOND, to_micros, utcnow


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"  # gave up at the deadline; kept for the log and the operator
    SUPERSEDED = "superseded"  # a newer message of its topic was queued before it went


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    tenant_id: int
    peer_id: int
    peer_name: str
    url: str
    auth: OutboundAuth
    username: str | None
    stored_secret: str | None  # as the peers table has it (store/secret_box.py)
    protocol: str
    message_type: str
    method: str
    headers: Mapping[str, str]
    body: bytes | None
    message_id: str
    attempts: int
    deadline_at: int
    tenant_name: str = ""
    box: SecretBox | None = field(default=None, repr=False, compare=False)

    @property
    def secret(self) -> str | None:
        """Opened when the message is sent: a secret no key opens fails this peer's
        delivery (SecretUnreadable) and no other message of the batch."""
        owner = peer_label(self.protocol, self.peer_name, self.tenant_name)
        return open_secret(self.box, self.stored_secret, owner)


async def enqueue(
    tx: AsyncConnection,
    tenant: Tenant,
    peer: Peer,
    *,
    protocol: str,
    message_type: str,
    path: str,
    body: bytes | None,
    headers: Mapping[str, str] | None = None,
    method: str = "POST",
    message_id: str | None = None,
    deadline: timedelta = timedelta(hours=24),
    not_before: datetime | None = None,
    topic: str | None = None,
) -> int:
    """Queue a message for `peer`; it is sent after the surrounding transaction commits.
    With a `topic`, undelivered messages of that topic to the peer are superseded."""
    now = utcnow()
    if topic is not None:
        await _supersede(tx, peer, topic, to_micros(now))
    result = await tx.execute(
        insert(outbox).values(
            tenant_id=tenant.id,
            peer_id=peer.id,
            protocol=protocol,
            message_type=message_type,
            method=method,
            path=path,
            headers=dict(headers or {}),
            body=body,
            message_id=message_id or str(uuid.uuid4()),
            topic=topic,
            status=str(OutboxStatus.PENDING),
            attempts=0,
            next_attempt_at=to_micros(not_before or now),
            deadline_at=to_micros(now + deadline),
            created_at=to_micros(now),
        )
    )
    return inserted_id(result)


async def _supersede(tx: AsyncConnection, peer: Peer, topic: str, now_us: int) -> None:
    """A message in flight (claimed, lease alive) is left to finish: it goes before the new
    one, so the order still holds."""
    await tx.execute(
        update(outbox)
        .where(
            outbox.c.peer_id == peer.id,
            outbox.c.topic == topic,
            outbox.c.status == str(OutboxStatus.PENDING),
            or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < now_us),
        )
        .values(status=str(OutboxStatus.SUPERSEDED), last_error="superseded by a newer message")
    )


def to_micros_delta(delta: timedelta) -> int:
    """A duration in whole microseconds, exactly (no float rounding on long leases)."""
    return delta // MICROSECOND


def _join_url(base: str | None, path: str) -> str:
    if path.startswith(("http://", "https://")):
        return path
    if not path:  # the peer's URL is the endpoint itself
        return base or ""
    return (base or "").rstrip("/") + "/" + path.lstrip("/")


def _item(row: Any, box: SecretBox | None) -> OutboxItem:
    return OutboxItem(
        row.id,
        row.tenant_id,
        row.peer_id,
        row.peer_name,
        _join_url(row.base_url, row.path),
        OutboundAuth(row.auth_kind),
        row.out_username,
        row.out_secret,
        row.protocol,
        row.message_type,
        row.method,
        dict(row.headers),
        row.body,
        row.message_id,
        row.attempts,
        row.deadline_at,
        row.tenant_name,
        box,
    )


async def claim_due(
    db: Database, worker: str, *, limit: int, lease: timedelta, now: datetime | None = None
) -> list[OutboxItem]:
    """Claim up to `limit` messages that are due and not leased by a live worker."""
    now_us = to_micros(now or utcnow())
    older = outbox.alias("older")
    older_pending = (
        select(older.c.id)
        .where(
            older.c.peer_id == outbox.c.peer_id,
            older.c.status == str(OutboxStatus.PENDING),
            older.c.id < outbox.c.id,
        )
        .exists()
    )
    due = (
        select(outbox.c.id)
        .where(
            outbox.c.status == str(OutboxStatus.PENDING),
            outbox.c.next_attempt_at <= now_us,
            or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < now_us),
            ~older_pending,  # one message per peer at a time, oldest first
        )
        .order_by(outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    async with db.transaction() as tx:
        claimed = (
            (
                await tx.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(due.scalar_subquery()))
                    .values(claimed_by=worker, claimed_until=now_us + to_micros_delta(lease))
                    .returning(outbox.c.id)
                )
            )
            .scalars()
            .all()
        )
        if not claimed:
            return []
        rows = await tx.execute(
            select(
                outbox,
                peers.c.name.label("peer_name"),
                peers.c.base_url,
                peers.c.auth_kind,
                peers.c.out_username,
                peers.c.out_secret,
                tenants.c.name.label("tenant_name"),
            )
            .join(peers, peers.c.id == outbox.c.peer_id)
            .join(tenants, tenants.c.id == outbox.c.tenant_id)
            .where(outbox.c.id.in_(claimed))
            .order_by(outbox.c.id)
        )
        return [_item(row, db.secrets) for row in rows]


async def renew(db: Database, worker: str, ids: list[int], lease: timedelta) -> int:
    """Extend the lease of the rows `worker` holds among `ids` (it is still sending them)."""
    if not ids:
        return 0
    until = to_micros(utcnow()) + to_micros_delta(lease)
    async with db.transaction() as tx:
        result = await tx.execute(
            update(outbox)
            .where(outbox.c.id.in_(ids), outbox.c.claimed_by == worker)
            .values(claimed_until=until)
        )
        return result.rowcount


async def release_claims(db: Database, worker: str) -> int:
    """Give back every claim `worker` holds: a process starting again under its name was
    stopped mid-send; its messages are due again at once, not when the lease runs out."""
    async with db.transaction() as tx:
        result = await tx.execute(
            update(outbox)
            .where(outbox.c.claimed_by == worker, outbox.c.status == str(OutboxStatus.PENDING))
            .values(claimed_by=None, claimed_until=None)
        )
        return result.rowcount


async def _finish(db: Database, item: OutboxItem, worker: str, **changes: Any) -> bool:
    """Apply `changes` only while we still hold the claim (a lease that expired is not ours)."""
    async with db.transaction() as tx:
        result = await tx.execute(
            update(outbox)
            .where(
                outbox.c.id == item.id,
                outbox.c.claimed_by == worker,
                outbox.c.status == str(OutboxStatus.PENDING),
            )
            .values(claimed_by=None, claimed_until=None, **changes)
        )
        return result.rowcount == 1


async def mark_sent(
    db: Database, item: OutboxItem, worker: str, now: datetime | None = None
) -> bool:
    return await _finish(
        db,
        item,
        worker,
        status=str(OutboxStatus.SENT),
        attempts=item.attempts + 1,
        sent_at=to_micros(now or utcnow()),
        last_error=None,
    )


async def reschedule(db: Database, item: OutboxItem, worker: str, error: str, at: datetime) -> bool:
    return await _finish(
        db,
        item,
        worker,
        attempts=item.attempts + 1,
        last_error=error[:2000],
        next_attempt_at=to_micros(at),
    )


async def bury(
    db: Database, item: OutboxItem, worker: str, error: str, *, attempted: bool = True
) -> bool:
    """Dead-letter a row; `attempted=False` when it was given up without being sent."""
    return await _finish(
        db,
        item,
        worker,
        status=str(OutboxStatus.DEAD),
        attempts=item.attempts + (1 if attempted else 0),
        last_error=error[:2000],
    )


async def outbox_depth(tx: AsyncConnection) -> dict[str, int]:
    """Rows per status, every status present (zero when none)."""
    counts = {str(status): 0 for status in OutboxStatus}
    query = select(outbox.c.status, func.count()).group_by(outbox.c.status)
    counts.update({status: n for status, n in await tx.execute(query)})
    return counts


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    id: int
    peer_id: int
    message_type: str
    status: OutboxStatus
    attempts: int
    last_error: str | None
    message_id: str


async def list_outbox(
    tx: AsyncConnection, tenant: Tenant, *, status: OutboxStatus | None = None, limit: int = 100
) -> list[OutboxRecord]:
    query = (
        select(outbox)
        .where(outbox.c.tenant_id == tenant.id)
        .order_by(outbox.c.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(outbox.c.status == str(status))
    return [
        OutboxRecord(
            r.id,
            r.peer_id,
            r.message_type,
            OutboxStatus(r.status),
            r.attempts,
            r.last_error,
            r.message_id,
        )
        for r in await tx.execute(query)
    ]
