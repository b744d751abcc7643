"""The message log: the audit trail of every inbound and outbound message, and the
idempotency key store (a repeated message id is recognised, not applied twice)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from store.db import inserted_id
from store.tables import messages
from store.tenants import Tenant
from store.timeutil import from_micros, to_micros, utcnow


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


@dataclass(frozen=True, slots=True)
class LoggedMessage:
    id: int
    protocol: str
    message_type: str
    direction: Direction
    status: str
    message_id: str | None
    peer_id: int | None
    detail: str | None
    created_at: datetime


def dedup_key(tenant: Tenant, protocol: str, peer: str, message_id: str) -> str:
    return f"{tenant.id}|{protocol}|{peer}|{message_id}"


async def log_message(
    tx: AsyncConnection,
    tenant: Tenant | None,
    *,
    protocol: str,
    message_type: str,
    direction: Direction,
    status: str,
    peer_id: int | None = None,
    message_id: str | None = None,
    correlation_id: str | None = None,
    payload: bytes | None = None,
    detail: str | None = None,
    dedup: str | None = None,
) -> int:
    result = await tx.execute(
        insert(messages).values(
            tenant_id=None if tenant is None else tenant.id,
            peer_id=peer_id,
            protocol=protocol,
            message_type=message_type,
            direction=str(direction),
            message_id=message_id,
            correlation_id=correlation_id,
            status=status,
            detail=detail,
            payload=payload,
            dedup_key=dedup,
            created_at=to_micros(utcnow()),
        )
    )
    return inserted_id(result)


async def claim_message(
    tx: AsyncConnection,
    tenant: Tenant,
    *,
    protocol: str,
    peer: str,
    message_id: str,
    message_type: str,
    payload: bytes | None = None,
    peer_id: int | None = None,
) -> int | None:
    """Record an inbound message id inside the transaction that applies the message; the
    log row's id.

    Returns None when that id was applied before: the caller answers as before and changes
    nothing. Because the record commits with the message's effects, a message that failed
    half-way left no record and may be sent again.
    """
    key = dedup_key(tenant, protocol, peer, message_id)
    if (await tx.execute(select(messages.c.id).where(messages.c.dedup_key == key))).first():
        return None
    try:
        async with tx.begin_nested():
            return await log_message(
                tx,
                tenant,
                protocol=protocol,
                message_type=message_type,
                direction=Direction.IN,
                status="applied",
                peer_id=peer_id,
                message_id=message_id,
                payload=payload,
                dedup=key,
            )
    except IntegrityError:  # the same id in a concurrent request
        return None


async def claimed_payload(
    tx: AsyncConnection, tenant: Tenant, *, protocol: str, peer: str, message_id: str
) -> bytes | None:
    """The body of the message first claimed under this id (None: none, or kept without)."""
    key = dedup_key(tenant, protocol, peer, message_id)
    query = select(messages.c.payload).where(messages.c.dedup_key == key)
    payload: bytes | None = (await tx.execute(query)).scalar_one_or_none()
    return payload


async def set_outcome(tx: AsyncConnection, row: int, status: str, detail: str | None) -> None:
    """What became of a claimed message (claim_message logs it as applied)."""
    await tx.execute(
        update(messages).where(messages.c.id == row).values(status=status, detail=detail)
    )


async def recent_messages(
    tx: AsyncConnection, tenant: Tenant, limit: int = 100
) -> list[LoggedMessage]:
    query = (
        select(messages)
        .where(messages.c.tenant_id == tenant.id)
        .order_by(messages.c.id.desc())
        .limit(limit)
    )
    return [
        LoggedMessage(
            r.id,
            r.protocol,
            r.message_type,
            Direction(r.direction),
            r.status,
            r.message_id,
            r.peer_id,
            r.detail,
            from_micros(r.created_at),
        )
        for r in await tx.execute(query)
    ]
