"""FlexOrder (DSO -> AGR): which offers we order, and when (docs/protocols/uftp-3.1.md,
"Order policy").

For each open FlexRequest at a congestion point and Period, the flex still needed per ISP
is its Requested reduction (-MinPower) less what orders placed for it already cover. The
optimizer (optimizer.flex_orders) picks the cheapest options of the request's open offers,
each with an activation factor of at least its MinActivationFactor and at most one option
per offer (options are mutually exclusive), that cover the need. The orders go out as soon
as the offers cover the need in full (the offer that completes the cover places them, in the
transaction that accepts it), else `Market.order_lead` before the earliest of those offers
expires (the clock's tick), with the best cover there is.

An order copies its option's ISPs exactly, names the offer (FlexOfferMessageID) and the
option, and continues the offer's conversation; its Price is the option's Price as offered
("Price mismatch" otherwise: the order must match its offer; the Java library checks
equality), and a partial activation is said by the ActivationFactor alone. What the order
costs the DSO, Price x ActivationFactor, is what the optimizer minimises. The offer is then
ordered (it can no longer be revoked). The order keeps its baseline, the AGR's D-Prognosis
of its ISPs then (baselines.py), for the settlement.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection

from optimizer import FlexOrderOffer, FlexOrderOption, FlexOrderProblem, solve_flex_orders
from protocols.uftp.v3_1.baselines import baseline_now
from protocols.uftp.v3_1.codec import Node
from protocols.uftp.v3_1.flex_requests import OPEN_REQUEST
from protocols.uftp.v3_1.identity import Identity
from protocols.uftp.v3_1.isp import Day
from protocols.uftp.v3_1.market import Market
from protocols.uftp.v3_1.replies import metadata, send_signed
from store.entities import Entity
from store.peers import get_peer
from store.tenants import Tenant
from store.uftp import (
    Trade,
    TradeStatus,
    add_trade,
    set_trade_status,
    trades_at,
)

_CENT = Decimal("0.0001")


def _flex_w(isps: list[dict[str, Any]], count: int, factor: float = 1.0) -> np.ndarray:
    """The reduction per ISP (W, positive) of an option's ISPs: UFTP powers are signed,
    negative towards the grid, so a reduction of consumption is offered as negative power."""
    flex = np.zeros(count)
    for isp in isps:
        for n in range(isp["start"], isp["start"] + isp["duration"]):
            if 1 <= n <= count:
                flex[n - 1] += -isp["power_w"] * factor
    return flex


def _needed(
    request: Trade, orders: list[Trade], offers: dict[tuple[int, str], Trade], count: int
) -> np.ndarray:
    """The request's Requested reduction per ISP less what its orders already cover."""
    needed = np.zeros(count)
    for isp in request.parts["isps"]:
        if isp["disposition"] == "Requested":
            needed[isp["start"] - 1] = -isp["min_w"]
    for order in orders:
        offer = offers.get((order.peer_id, order.parts["flex_offer_message_id"]))
        if offer is not None and offer.parts["flex_request_message_id"] == request.message_id:
            factor = float(order.parts["activation_factor"])
            needed -= _flex_w(order.parts["isps"], count, factor)
    return np.maximum(needed, 0.0)


def _problem(needed: np.ndarray, offers: list[Trade], count: int) -> FlexOrderProblem:
    return FlexOrderProblem(
        needed_w=needed,
        offers=tuple(
            FlexOrderOffer(
                offer.message_id,
                tuple(
                    FlexOrderOption(
                        option["reference"],
                        Decimal(option["price"]),
                        _flex_w(option["isps"], count),
                        Decimal(option["min_activation_factor"]),
                    )
                    for option in offer.parts["options"]
                ),
            )
            for offer in offers
        ),
    )


def _order_message(
    identity: Identity,
    offer: Trade,
    option: dict[str, Any],
    factor: Decimal,
    day: Day,
    address: str,
    peer: Any,
) -> Node:
    price = Decimal(option["price"]).quantize(_CENT, ROUND_HALF_UP)  # the offer's, unchanged
    attributes = metadata(
        identity, peer, conversation=offer.conversation_id, version=offer.parts["version"]
    )
    attributes.update(
        {
            "ISP-Duration": f"PT{int(day.isp.total_seconds() // 60)}M",
            "TimeZone": day.zone.key,
            "Period": day.period.isoformat(),
            "CongestionPoint": address,
            "FlexOfferMessageID": offer.message_id,
            "Price": f"{price:.4f}",
            "Currency": offer.parts["currency"],
            "OrderReference": str(uuid.uuid4()),
            "OptionReference": option["reference"],
            "ActivationFactor": f"{factor:.2f}",
        }
    )
    if offer.parts.get("contract_id") is not None:  # an order under the offer's contract
        attributes["ContractID"] = offer.parts["contract_id"]
    children = [
        Node(
            "ISP",
            {"Power": str(i["power_w"]), "Start": str(i["start"]), "Duration": str(i["duration"])},
        )
        for i in option["isps"]
    ]
    return Node("FlexOrder", attributes, children)


async def _order_for(
    tx: AsyncConnection,
    tenant: Tenant,
    point: Entity,
    address: str,
    day: Day,
    identity: Identity,
    request: Trade,
    offers: list[Trade],
    orders: list[Trade],
    market: Market,
    now: datetime,
) -> int:
    mine = [
        o
        for o in offers
        if o.status is TradeStatus.OPEN
        and o.peer_id == request.peer_id
        and o.parts["flex_request_message_id"] == request.message_id
        and o.parts["expires_at"] > now
    ]
    if not mine:
        return 0
    needed = _needed(request, orders, {(o.peer_id, o.message_id): o for o in offers}, day.count)
    if not (needed > 0).any():
        return 0
    plan = await asyncio.to_thread(solve_flex_orders, _problem(needed, mine, day.count))
    covered = not (plan.shortfall_w > 0.5).any()
    earliest = min(o.parts["expires_at"] for o in mine)
    if not covered and now < earliest - market.order_lead:
        return 0  # wait for more offers
    by_id = {o.message_id: o for o in mine}
    placed = 0
    for choice in plan.orders:
        offer = by_id[choice.offer_id]
        option = next(
            o for o in offer.parts["options"] if o["reference"] == choice.option_reference
        )
        peer = await get_peer(tx, tenant, offer.peer_id)
        message = _order_message(
            identity, offer, option, choice.activation_factor, day, address, peer
        )
        message_id = await send_signed(tx, peer, identity, message)
        await add_trade(
            tx,
            "order",
            tenant,
            peer,
            point,
            day.period,
            message_id=message_id,
            conversation_id=offer.conversation_id,
            status=TradeStatus.SENT,
            flex_offer_message_id=offer.message_id,
            option_reference=option["reference"],
            activation_factor=f"{choice.activation_factor:.2f}",
            price=message.attributes["Price"],
            currency=offer.parts["currency"],
            order_reference=message.attributes["OrderReference"],
            isps=option["isps"],
            **await baseline_now(tx, tenant, peer, point, day, option["isps"]),
        )
        await set_trade_status(tx, "offer", offer.id, TradeStatus.ORDERED)
        placed += 1
    return placed


async def place_orders(
    tx: AsyncConnection,
    tenant: Tenant,
    point: Entity,
    address: str,
    period: date,
    market: Market,
    identity: Identity,
    now: datetime,
) -> int:
    """Place the FlexOrders the congestion point's open requests and offers call for now;
    how many were placed."""
    # Every offer, not only the open ones: an ordered offer's order still covers its request.
    offers = await trades_at(tx, "offer", tenant, point, period)
    if not any(o.status is TradeStatus.OPEN for o in offers):
        return 0
    day = Day(period, market.time_zone, market.isp)
    orders = await trades_at(
        tx, "order", tenant, point, period, (TradeStatus.SENT, TradeStatus.ACCEPTED)
    )
    placed = 0
    for request in await trades_at(tx, "request", tenant, point, period, OPEN_REQUEST):
        placed += await _order_for(
            tx, tenant, point, address, day, identity, request, offers, orders, market, now
        )
    return placed
