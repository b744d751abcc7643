"""UFTP exchanges: a message we send a peer outside a trade, and the answer it gave
(docs/protocols/uftp-3.1.md, "The CRO" and "TestMessage"): DSOPortfolioUpdate and
DSOPortfolioQuery to a CRO, TestMessage to any UFTP peer.

An exchange is `sent` until answered; a response with a Result makes it `accepted` or
`rejected` (with the reason), a TestMessageResponse, which has no Result, `answered`. Only
the first answer counts: a response to an exchange already answered changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from store.db import inserted_id
from store.peers import Peer
from store.tables import uftp_exchanges
from store.tenants import Tenant
from store.timeutil import from_micros, to_micros, utcnow

MAX_REASON = 2000  # characters of a RejectionReason kept (its column)


class ExchangeStatus(StrEnum):
    SENT = "sent"  # queued for the peer, not answered yet
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ANSWERED = "answered"  # a TestMessageResponse came


@dataclass(frozen=True, slots=True)
class Exchange:
    id: int
    tenant_id: int
    peer_id: int
    kind: str  # the message type we sent
    message_id: str
    conversation_id: str
    status: ExchangeStatus
    request: dict[str, Any]
    answer: dict[str, Any] | None
    rejection_reason: str | None
    created_at: datetime
    answered_at: datetime | None


def _exchange(row: Any) -> Exchange:
    return Exchange(
        row.id,
        row.tenant_id,
        row.peer_id,
        row.kind,
        row.message_id,
        row.conversation_id,
        ExchangeStatus(row.status),
        row.request,
        row.answer,
        row.rejection_reason,
        from_micros(row.created_at),
        None if row.answered_at is None else from_micros(row.answered_at),
    )


async def add_exchange(
    tx: AsyncConnection,
    tenant: Tenant,
    peer: Peer,
    kind: str,
    *,
    message_id: str,
    conversation_id: str,
    request: Mapping[str, Any],
) -> Exchange:
    """Record a message sent (status `sent`)."""
    result = await tx.execute(
        uftp_exchanges.insert().values(
            tenant_id=tenant.id,
            peer_id=peer.id,
            kind=kind,
            message_id=message_id,
            conversation_id=conversation_id,
            status=str(ExchangeStatus.SENT),
            request=dict(request),
            created_at=to_micros(utcnow()),
        )
    )
    query = select(uftp_exchanges).where(uftp_exchanges.c.id == inserted_id(result))
    return _exchange((await tx.execute(query)).one())


async def find_exchange(
    tx: AsyncConnection,
    peer: Peer,
    kind: str,
    *,
    message_id: str | None = None,
    conversation_id: str | None = None,
) -> Exchange | None:
    """The peer's exchange of this kind with this MessageID (or, for a TestMessage, whose
    response names no message, this ConversationID), not answered yet; its row locked."""
    c = uftp_exchanges.c
    query = select(uftp_exchanges).where(
        c.peer_id == peer.id, c.kind == kind, c.status == str(ExchangeStatus.SENT)
    )
    if message_id is not None:
        query = query.where(c.message_id == message_id)
    if conversation_id is not None:
        query = query.where(c.conversation_id == conversation_id)
    row = (await tx.execute(query.order_by(c.id).limit(1).with_for_update())).first()
    return None if row is None else _exchange(row)


async def get_exchange(tx: AsyncConnection, exchange_id: int) -> Exchange:
    row = (await tx.execute(select(uftp_exchanges).where(uftp_exchanges.c.id == exchange_id))).one()
    return _exchange(row)


async def record_answer(
    tx: AsyncConnection,
    exchange: Exchange,
    status: ExchangeStatus,
    *,
    reason: str | None = None,
    answer: Mapping[str, Any] | None = None,
) -> None:
    """What the peer answered; only a `sent` exchange takes an answer."""
    await tx.execute(
        update(uftp_exchanges)
        .where(
            uftp_exchanges.c.id == exchange.id,
            uftp_exchanges.c.status == str(ExchangeStatus.SENT),
        )
        .values(
            status=str(status),
            rejection_reason=None if reason is None else reason[:MAX_REASON],
            answer=None if answer is None else dict(answer),
            answered_at=to_micros(utcnow()),
        )
    )
