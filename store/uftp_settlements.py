"""UFTP settlements (docs/protocols/uftp-3.1.md, "Settlement"): each FlexSettlement sent to
an AGR for a month, and in it the settlement of each FlexOrder (price, penalty, net amount,
the figures per ISP), with what the AGR's FlexSettlementResponse said of the message
(accepted or rejected) and of each order (Accepted or Disputed, and why).

An order is settled at most once: the per-order rows are unique per order, and adding a
settlement marks its orders `settled` in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from store.db import inserted_id
from store.peers import Peer
from store.tables import uftp_flex_orders, uftp_order_settlements, uftp_settlements
from store.tenants import Tenant
from store.timeutil import from_micros, to_micros, utcnow
from store.uftp import TradeStatus


class SettlementStatus(StrEnum):
    SENT = "sent"  # queued for the AGR, not answered yet
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class OrderSettlement:
    """One order's settlement: amounts as decimal text, ISPs as
    [{start, baseline_w, ordered_w, actual_w, delivered_w, deficiency_w}]."""

    order_id: int
    order_reference: str
    price: str
    penalty: str
    net_settlement: str
    isps: list[dict[str, Any]]
    disposition: str | None = None  # Accepted | Disputed, once answered
    dispute_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Settlement:
    id: int
    tenant_id: int
    peer_id: int
    month: str  # YYYY-MM
    message_id: str
    conversation_id: str
    currency: str
    status: SettlementStatus
    rejection_reason: str | None
    created_at: datetime
    answered_at: datetime | None
    orders: list[OrderSettlement] = field(default_factory=list)


async def add_settlement(
    tx: AsyncConnection,
    tenant: Tenant,
    peer: Peer,
    month: str,
    *,
    message_id: str,
    conversation_id: str,
    currency: str,
    orders: Sequence[OrderSettlement],
) -> None:
    """Record a FlexSettlement sent and mark its orders settled; an order settled before
    makes the insert fail (IntegrityError), and with it the transaction."""
    result = await tx.execute(
        uftp_settlements.insert().values(
            tenant_id=tenant.id,
            peer_id=peer.id,
            month=month,
            message_id=message_id,
            conversation_id=conversation_id,
            currency=currency,
            status=str(SettlementStatus.SENT),
            created_at=to_micros(utcnow()),
        )
    )
    settlement_id = inserted_id(result)
    await tx.execute(
        uftp_order_settlements.insert(),
        [
            {
                "settlement_id": settlement_id,
                "order_id": o.order_id,
                "order_reference": o.order_reference,
                "price": o.price,
                "penalty": o.penalty,
                "net_settlement": o.net_settlement,
                "isps": o.isps,
            }
            for o in orders
        ],
    )
    await tx.execute(
        update(uftp_flex_orders)
        .where(uftp_flex_orders.c.id.in_([o.order_id for o in orders]))
        .values(status=str(TradeStatus.SETTLED))
    )


def _settlement(row: Any, orders: list[OrderSettlement]) -> Settlement:
    return Settlement(
        row.id,
        row.tenant_id,
        row.peer_id,
        row.month,
        row.message_id,
        row.conversation_id,
        row.currency,
        SettlementStatus(row.status),
        row.rejection_reason,
        from_micros(row.created_at),
        None if row.answered_at is None else from_micros(row.answered_at),
        orders,
    )


async def _orders_of(tx: AsyncConnection, settlement_ids: list[int]) -> dict[int, list[Any]]:
    c = uftp_order_settlements.c
    query = select(uftp_order_settlements).where(c.settlement_id.in_(settlement_ids))
    found: dict[int, list[Any]] = {i: [] for i in settlement_ids}
    for row in await tx.execute(query.order_by(c.id)):
        found[row.settlement_id].append(
            OrderSettlement(
                row.order_id,
                row.order_reference,
                row.price,
                row.penalty,
                row.net_settlement,
                row.isps,
                row.disposition,
                row.dispute_reason,
            )
        )
    return found


async def settlements_of(tx: AsyncConnection, tenant: Tenant, month: str) -> list[Settlement]:
    """The FlexSettlements sent for the month, oldest first, with their orders."""
    c = uftp_settlements.c
    rows = list(
        await tx.execute(
            select(uftp_settlements)
            .where(c.tenant_id == tenant.id, c.month == month)
            .order_by(c.id)
        )
    )
    orders = await _orders_of(tx, [row.id for row in rows])
    return [_settlement(row, orders[row.id]) for row in rows]


async def find_settlement(tx: AsyncConnection, peer: Peer, message_id: str) -> Settlement | None:
    """The FlexSettlement with this MessageID sent to the peer, its row locked."""
    c = uftp_settlements.c
    query = (
        select(uftp_settlements)
        .where(c.peer_id == peer.id, c.message_id == message_id)
        .with_for_update()
    )
    row = (await tx.execute(query)).first()
    if row is None:
        return None
    return _settlement(row, (await _orders_of(tx, [row.id]))[row.id])


async def record_answer(
    tx: AsyncConnection,
    settlement: Settlement,
    *,
    accepted: bool,
    reason: str | None,
    dispositions: dict[str, tuple[str, str | None]],
) -> None:
    """What the AGR answered: the message accepted or rejected (with its reason), and per
    OrderReference its Disposition and DisputeReason."""
    status = SettlementStatus.ACCEPTED if accepted else SettlementStatus.REJECTED
    await tx.execute(
        update(uftp_settlements)
        .where(uftp_settlements.c.id == settlement.id)
        .values(status=str(status), rejection_reason=reason, answered_at=to_micros(utcnow()))
    )
    c = uftp_order_settlements.c
    for reference, (disposition, dispute) in dispositions.items():
        await tx.execute(
            update(uftp_order_settlements)
            .where(c.settlement_id == settlement.id, c.order_reference == reference)
            .values(disposition=disposition, dispute_reason=dispute)
        )
