"""UFTP trades and D-Prognoses as listed (`flexbridge uftp list`), each with its state at
a given moment (docs/protocols/uftp-3.1.md, "State").

A listed state is a reading of the stored state, the trades it links to and `now`; nothing
is written to make it, so an offer past its ExpirationDateTime reads `expired` from that
moment on without a job flipping it. In order of precedence:

- request: rejected; ordered (an order placed on one of its offers and not rejected);
  superseded; offered (one of its offers open and unexpired); expired; else open;
- offer: open, expired (open past its ExpirationDateTime), ordered, revoked;
- order: ordered (sent, not answered yet), accepted, rejected, settled;
- prognosis: accepted (only accepted revisions are kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Table, and_, case, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from store.peers import Peer
from store.tables import peers, uftp_flex_offers, uftp_flex_orders, uftp_prognoses
from store.tenants import Tenant
from store.timeutil import from_micros, to_micros
from store.uftp import TRADE_TABLES, Trade, TradeStatus, trade_of

KINDS = ("request", "offer", "order", "prognosis")


class ListedState(StrEnum):
    OPEN = "open"
    OFFERED = "offered"
    ORDERED = "ordered"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    REVOKED = "revoked"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    SETTLED = "settled"


@dataclass(frozen=True, slots=True)
class Listed:
    """A trade (a prognosis as a Trade: no conversation, its revision in parts) as listed."""

    trade: Trade
    state: ListedState
    agr: str  # the peer's domain


_S = TradeStatus
_PLACED = (str(_S.SENT), str(_S.ACCEPTED), str(_S.SETTLED))  # orders not rejected


def _request_state(now: int) -> ColumnElement[str]:
    requests = TRADE_TABLES["request"]
    offers = uftp_flex_offers.alias("answering")
    orders = uftp_flex_orders.alias("placed")
    answers = and_(
        offers.c.peer_id == requests.c.peer_id,
        offers.c.flex_request_message_id == requests.c.message_id,
    )
    ordered = (
        select(literal(1))
        .where(
            answers,
            orders.c.peer_id == offers.c.peer_id,
            orders.c.flex_offer_message_id == offers.c.message_id,
            orders.c.status.in_(_PLACED),
        )
        .exists()
    )
    offered = (
        select(literal(1))
        .where(answers, offers.c.status == str(_S.OPEN), offers.c.expires_at > now)
        .exists()
    )
    status = requests.c.status
    return case(
        (status == str(_S.REJECTED), str(ListedState.REJECTED)),
        (ordered, str(ListedState.ORDERED)),
        (status == str(_S.SUPERSEDED), str(ListedState.SUPERSEDED)),
        (offered, str(ListedState.OFFERED)),
        (requests.c.expires_at <= now, str(ListedState.EXPIRED)),
        else_=str(ListedState.OPEN),
    )


def _state(kind: str, now: int) -> ColumnElement[str]:
    if kind == "request":
        return _request_state(now)
    if kind == "offer":
        offers = uftp_flex_offers
        lapsed = and_(offers.c.status == str(_S.OPEN), offers.c.expires_at <= now)
        return case((lapsed, str(ListedState.EXPIRED)), else_=offers.c.status)
    if kind == "order":
        status = uftp_flex_orders.c.status
        return case((status == str(_S.SENT), str(ListedState.ORDERED)), else_=status)
    return literal(str(ListedState.ACCEPTED))


def _table(kind: str) -> Table:
    return uftp_prognoses if kind == "prognosis" else TRADE_TABLES[kind]


def _listed(kind: str, row: Any) -> Listed:
    data = dict(row._mapping)
    state, agr = ListedState(data.pop("listed_state")), data.pop("agr")
    if kind != "prognosis":
        return Listed(trade_of(data), state, agr)
    trade = Trade(
        data["id"],
        data["tenant_id"],
        data["peer_id"],
        data["entity_id"],
        date.fromisoformat(data["period"]),
        data["message_id"],
        "",
        TradeStatus.ACCEPTED,
        from_micros(data["received_at"]),
        {"revision": data["revision"]},
    )
    return Listed(trade, state, agr)


async def listed(
    tx: AsyncConnection,
    kind: str,
    tenant: Tenant,
    *,
    now: datetime,
    limit: int,
    peer: Peer | None = None,
    entity_id: int | None = None,
    state: ListedState | None = None,
) -> list[Listed]:
    """The tenant's newest `limit` trades of a kind (KINDS) in their state at `now`, of one
    AGR, congestion point and listed state where given."""
    table = _table(kind)
    listed_state = _state(kind, to_micros(now))
    query = (
        select(table, listed_state.label("listed_state"), peers.c.name.label("agr"))
        .join(peers, peers.c.id == table.c.peer_id)
        .where(table.c.tenant_id == tenant.id)
        .order_by(table.c.id.desc())
        .limit(limit)
    )
    if peer is not None:
        query = query.where(table.c.peer_id == peer.id)
    if entity_id is not None:
        query = query.where(table.c.entity_id == entity_id)
    if state is not None:
        query = query.where(listed_state == str(state))
    return [_listed(kind, row) for row in await tx.execute(query)]
