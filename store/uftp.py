"""UFTP trading state (docs/protocols/uftp-3.1.md): the D-Prognosis revisions of each AGR
per congestion point and Period, the Metering revisions per connection and Period, and the
flex trades: the FlexRequests we send, the FlexOffers AGRs send, the FlexOrders we
place and the FlexReservationUpdates we send under contracts (uftp_contracts.py), each with
its state (TradeStatus). A message's own parts (ISPs, options, prices) are
kept as the message gave them, as JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from store.db import inserted_id
from store.entities import Entity
from store.peers import Peer
from store.tables import (
    entities,
    uftp_flex_offers,
    uftp_flex_orders,
    uftp_flex_requests,
    uftp_meterings,
    uftp_prognoses,
    uftp_reservation_updates,
)
from store.tenants import Tenant
from store.timeutil import from_micros, to_micros, utcnow

# --- revisions: D-Prognoses per congestion point, Meterings per connection ---------------


async def _kept_revision(
    tx: AsyncConnection, table: Table, peer: Peer, entity: Entity, period: date
) -> int | None:
    query = (
        select(table.c.revision)
        .where(
            table.c.peer_id == peer.id,
            table.c.entity_id == entity.id,
            table.c.period == period.isoformat(),
        )
        .with_for_update()
    )
    revision: int | None = (await tx.execute(query)).scalar_one_or_none()
    return revision


async def _keep_revision(
    tx: AsyncConnection,
    table: Table,
    tenant: Tenant,
    peer: Peer,
    entity: Entity,
    period: date,
    *,
    revision: int,
    message_id: str,
    replaces: bool,
) -> None:
    values = {"revision": revision, "message_id": message_id, "received_at": to_micros(utcnow())}
    if replaces:
        await tx.execute(
            update(table)
            .where(
                table.c.peer_id == peer.id,
                table.c.entity_id == entity.id,
                table.c.period == period.isoformat(),
            )
            .values(**values)
        )
        return
    await tx.execute(
        table.insert().values(
            tenant_id=tenant.id,
            peer_id=peer.id,
            entity_id=entity.id,
            period=period.isoformat(),
            **values,
        )
    )


async def prognosis_revision(
    tx: AsyncConnection, peer: Peer, point: Entity, period: date
) -> int | None:
    """The highest revision of the peer's D-Prognosis for the congestion point and Period
    accepted so far, its row locked until the transaction ends (None: none yet)."""
    return await _kept_revision(tx, uftp_prognoses, peer, point, period)


async def prognosis_message(
    tx: AsyncConnection, peer: Peer, point: Entity, period: date
) -> str | None:
    """The MessageID of the peer's D-Prognosis for the congestion point and Period accepted
    last (None: none)."""
    query = select(uftp_prognoses.c.message_id).where(
        uftp_prognoses.c.peer_id == peer.id,
        uftp_prognoses.c.entity_id == point.id,
        uftp_prognoses.c.period == period.isoformat(),
    )
    message_id: str | None = (await tx.execute(query)).scalar_one_or_none()
    return message_id


async def keep_prognosis(
    tx: AsyncConnection,
    tenant: Tenant,
    peer: Peer,
    point: Entity,
    period: date,
    *,
    revision: int,
    message_id: str,
    replaces: bool,
) -> None:
    """Record an accepted revision (`replaces`: one was kept before, as prognosis_revision
    said in this transaction)."""
    await _keep_revision(
        tx,
        uftp_prognoses,
        tenant,
        peer,
        point,
        period,
        revision=revision,
        message_id=message_id,
        replaces=replaces,
    )


async def metering_revision(
    tx: AsyncConnection, peer: Peer, meter: Entity, period: date
) -> int | None:
    """The highest revision of the peer's Metering for the connection (its Meter entity)
    and Period accepted so far, its row locked until the transaction ends (None: none yet)."""
    return await _kept_revision(tx, uftp_meterings, peer, meter, period)


async def keep_metering(
    tx: AsyncConnection,
    tenant: Tenant,
    peer: Peer,
    meter: Entity,
    period: date,
    *,
    revision: int,
    message_id: str,
    replaces: bool,
) -> None:
    """Record an accepted Metering revision (`replaces`: one was kept before, as
    metering_revision said in this transaction)."""
    await _keep_revision(
        tx,
        uftp_meterings,
        tenant,
        peer,
        meter,
        period,
        revision=revision,
        message_id=message_id,
        replaces=replaces,
    )


# --- flex trades ------------------------------------------------------------------------


class TradeStatus(StrEnum):
    """Where a flex message of a trade stands (docs/protocols/uftp-3.1.md, "State")."""

    SENT = "sent"  # ours, not answered yet
    ACCEPTED = "accepted"  # ours, the AGR accepted it; theirs, we accepted it
    REJECTED = "rejected"
    OPEN = "open"  # an offer we accepted, neither ordered, revoked nor expired
    ORDERED = "ordered"
    REVOKED = "revoked"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"  # a request replaced by a newer revision
    SETTLED = "settled"  # an order settled in a FlexSettlement (store/uftp_settlements.py)


@dataclass(frozen=True, slots=True)
class Trade:
    """A row of one of the trade tables, its message-specific columns in `parts`."""

    id: int
    tenant_id: int
    peer_id: int
    entity_id: int
    period: date
    message_id: str
    conversation_id: str
    status: TradeStatus
    created_at: datetime
    parts: dict[str, Any]


TRADE_TABLES = {
    "request": uftp_flex_requests,
    "offer": uftp_flex_offers,
    "order": uftp_flex_orders,
    "reservation": uftp_reservation_updates,  # FlexReservationUpdates (uftp_contracts.py)
}
_COMMON = (
    "id",
    "tenant_id",
    "peer_id",
    "entity_id",
    "period",
    "message_id",
    "conversation_id",
    "status",
    "created_at",
)


def trade_of(columns: Mapping[Any, Any]) -> Trade:
    """The Trade of a row of one of TRADE_TABLES (every column of its table)."""
    data = dict(columns)
    common = {name: data.pop(name) for name in _COMMON}
    for name in ("expires_at",):
        if name in data:
            data[name] = from_micros(data[name])
    return Trade(
        common["id"],
        common["tenant_id"],
        common["peer_id"],
        common["entity_id"],
        date.fromisoformat(common["period"]),
        common["message_id"],
        common["conversation_id"],
        TradeStatus(common["status"]),
        from_micros(common["created_at"]),
        data,
    )


async def add_trade(
    tx: AsyncConnection,
    kind: str,
    tenant: Tenant,
    peer: Peer,
    point: Entity,
    period: date,
    *,
    message_id: str,
    conversation_id: str,
    status: TradeStatus,
    **parts: Any,
) -> Trade:
    """Record a flex request, offer or order (`kind`); expires_at is a datetime."""
    table = TRADE_TABLES[kind]
    values = {k: to_micros(v) if isinstance(v, datetime) else v for k, v in parts.items()}
    result = await tx.execute(
        table.insert().values(
            tenant_id=tenant.id,
            peer_id=peer.id,
            entity_id=point.id,
            period=period.isoformat(),
            message_id=message_id,
            conversation_id=conversation_id,
            status=str(status),
            created_at=to_micros(utcnow()),
            **values,
        )
    )
    row = (await tx.execute(select(table).where(table.c.id == inserted_id(result)))).one()
    return trade_of(row._mapping)


async def find_trade(
    tx: AsyncConnection, kind: str, peer: Peer, message_id: str, *, for_update: bool = False
) -> Trade | None:
    """The peer's flex request, offer or order with this MessageID."""
    table = TRADE_TABLES[kind]
    query = select(table).where(table.c.peer_id == peer.id, table.c.message_id == message_id)
    if for_update:
        query = query.with_for_update()
    row = (await tx.execute(query)).first()
    return None if row is None else trade_of(row._mapping)


async def trades_at(
    tx: AsyncConnection,
    kind: str,
    tenant: Tenant,
    point: Entity,
    period: date,
    statuses: Sequence[TradeStatus] | None = None,
) -> list[Trade]:
    """The trades of a kind at a congestion point for a Period, oldest first."""
    table = TRADE_TABLES[kind]
    query = (
        select(table)
        .where(
            table.c.tenant_id == tenant.id,
            table.c.entity_id == point.id,
            table.c.period == period.isoformat(),
        )
        .order_by(table.c.id)
    )
    if statuses is not None:
        query = query.where(table.c.status.in_([str(s) for s in statuses]))
    return [trade_of(row._mapping) for row in await tx.execute(query)]


async def orders_between(
    tx: AsyncConnection,
    tenant: Tenant,
    first: date,
    last: date,
    statuses: Sequence[TradeStatus],
    *,
    for_update: bool = False,
) -> list[Trade]:
    """The tenant's orders of these statuses for Periods first..last, at every congestion
    point, oldest first."""
    table = uftp_flex_orders
    query = (
        select(table)
        .where(
            table.c.tenant_id == tenant.id,
            table.c.period >= first.isoformat(),
            table.c.period <= last.isoformat(),
            table.c.status.in_([str(s) for s in statuses]),
        )
        .order_by(table.c.id)
    )
    if for_update:
        query = query.with_for_update()
    return [trade_of(row._mapping) for row in await tx.execute(query)]


async def set_trade_status(
    tx: AsyncConnection, kind: str, trade_id: int, status: TradeStatus, **parts: Any
) -> None:
    """Set a trade's status, and with it any of its kind's own columns."""
    table = TRADE_TABLES[kind]
    await tx.execute(
        update(table).where(table.c.id == trade_id).values(status=str(status), **parts)
    )


@dataclass(frozen=True, slots=True)
class Forecast:
    """A congestion point and Period with prognoses still to come (for the congestion check)."""

    tenant_id: int
    entity_id: int
    period: date


async def periods_ahead(tx: AsyncConnection, since: date) -> list[Forecast]:
    """Every tenant's congestion points and Periods from `since` on with a D-Prognosis."""
    query = (
        select(uftp_prognoses.c.tenant_id, uftp_prognoses.c.entity_id, uftp_prognoses.c.period)
        .where(uftp_prognoses.c.period >= since.isoformat())
        .distinct()
        .order_by(uftp_prognoses.c.tenant_id, uftp_prognoses.c.entity_id, uftp_prognoses.c.period)
    )
    return [Forecast(t, e, date.fromisoformat(p)) for t, e, p in await tx.execute(query)]


async def prognosis_senders(
    tx: AsyncConnection, tenant: Tenant, point: Entity, period: date
) -> list[int]:
    """The peers (ids) with an accepted D-Prognosis for the congestion point and Period."""
    query = select(uftp_prognoses.c.peer_id).where(
        uftp_prognoses.c.tenant_id == tenant.id,
        uftp_prognoses.c.entity_id == point.id,
        uftp_prognoses.c.period == period.isoformat(),
    )
    return [peer_id for (peer_id,) in await tx.execute(query)]


async def lock_forecast(tx: AsyncConnection, forecast: Forecast, *, wait: bool = False) -> bool:
    """Take the UFTP turn of a forecast's congestion point for this transaction: whoever
    makes its FlexRequests or FlexOrders holds it (the clock's sweep, the prognosis or offer
    that calls for them). False when, unless `wait`, another transaction holds it
    (PostgreSQL; SQLite has one writer anyway). The lock is the congestion point's entity
    row, which no message writes: locking the prognosis rows instead let two prognoses,
    each holding its own row, wait for each other's."""
    query = (
        select(entities.c.id)
        .where(entities.c.id == forecast.entity_id, entities.c.tenant_id == forecast.tenant_id)
        .with_for_update(skip_locked=not wait)
    )
    return bool((await tx.execute(query)).first())
