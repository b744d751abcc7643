"""What a FlexSettlement says of an AGR's contracts for a month: its ContractSettlement
elements (docs/protocols/uftp-3.1.md, "Contracts"). Called by the FlexSettlement sender:

    settlements = await contract_settlements(tx, tenant, agr, month, market)
    children = [contract_settlement_node(s) for s in settlements]

One ContractSettlement per contract of the AGR (active or removed) that ran on a day of the
month, with a Period for each such day (up to the day it was removed) and, per ISP, in signed
watts as UFTP writes them (negative: consumption reduced):

- ReservedPower: reserved and not released, i.e. the last FlexReservationUpdate of the Period
  the AGR did not reject, else the contract's reservation;
- RequestedPower: of that, what the last FlexRequest of the Period carrying the ContractID
  requested ("the lowest amount of flex power for this ISP": the smaller of the two, 0 on an
  ISP the request left Available); omitted when there was no such request;
- AvailablePower: always omitted (the schema lets the DSO include it "if this is relevant
  for settlement"; our requests bound nothing beyond the requested reduction);
- OfferedPower: of the requested, what the AGR's offers naming the ContractID (not revoked)
  covered, the best option per ISP ("the one that is most compliant"); omitted when there
  was no request or no such offer;
- OrderedPower: what FlexOrders (not rejected) of offers naming the ContractID ordered,
  power x ActivationFactor, whole watts; omitted when there was no such order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from protocols.uftp.v3_1.codec import Node
from protocols.uftp.v3_1.congestion_points import address_of
from protocols.uftp.v3_1.isp import Day
from protocols.uftp.v3_1.market import Market
from protocols.uftp.v3_1.reservations import STANDING, per_isp, smaller
from store.entities import Entity, get_entity_by_id
from store.peers import Peer
from store.tenants import Tenant
from store.uftp import Trade, TradeStatus, trades_at
from store.uftp_contracts import Contract, contracts_of


@dataclass(frozen=True, slots=True)
class ContractIsp:
    """One ISP of a ContractSettlement Period (None: the attribute is omitted)."""

    start: int
    reserved_w: int
    requested_w: int | None = None
    available_w: int | None = None
    offered_w: int | None = None
    ordered_w: int | None = None


@dataclass(frozen=True, slots=True)
class ContractPeriod:
    period: date
    isps: tuple[ContractIsp, ...]


@dataclass(frozen=True, slots=True)
class ContractSettlement:
    contract_id: str
    congestion_point: str  # EA1 address (not part of the element; for the caller's checks)
    periods: tuple[ContractPeriod, ...]


def _days(contract: Contract, month: date, market: Market) -> list[date]:
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    last = min(contract.valid_to, following - timedelta(days=1))
    if contract.removed_at is not None:
        last = min(last, contract.removed_at.astimezone(market.time_zone).date())
    day = max(first, contract.valid_from)
    days = []
    while day <= last:
        days.append(day)
        day += timedelta(days=1)
    return days


def _requested(request: Trade, reserved: list[int]) -> list[int]:
    asked = [0] * len(reserved)
    for isp in request.parts["isps"]:
        if isp["disposition"] == "Requested" and isp["start"] <= len(reserved):
            asked[isp["start"] - 1] = isp["min_w"]
    return [smaller(a, r) for a, r in zip(asked, reserved, strict=True)]


def _offered(offers: list[Trade], requested: list[int]) -> list[int]:
    best = [0] * len(requested)
    for offer in offers:
        for option in offer.parts["options"]:
            for n, power in enumerate(per_isp(option["isps"], len(requested))):
                covered = smaller(power, requested[n])
                if abs(covered) > abs(best[n]):
                    best[n] = covered
    return best


def _ordered(orders: list[Trade], count: int) -> list[int]:
    total = [Decimal(0)] * count
    for order in orders:
        factor = Decimal(order.parts["activation_factor"])
        for n, power in enumerate(per_isp(order.parts["isps"], count)):
            total[n] += power * factor
    return [int(w.to_integral_value()) for w in total]


# Not rejected: settled ones too, or a second FlexSettlement of a month (one run with
# --force, then another) would say less was ordered under the contract than the first did.
_ORDERS_COUNTED = (*STANDING, TradeStatus.SETTLED)


async def _period(
    tx: AsyncConnection,
    tenant: Tenant,
    agr: Peer,
    contract: Contract,
    point: Entity,
    day: Day,
) -> ContractPeriod:
    def linked(trades: list[Trade]) -> list[Trade]:
        return [
            t
            for t in trades
            if t.peer_id == agr.id and t.parts.get("contract_id") == contract.contract_id
        ]

    updates = [
        u
        for u in await trades_at(tx, "reservation", tenant, point, day.period, STANDING)
        if u.parts["uftp_contract_id"] == contract.id
    ]
    reserved = (
        per_isp(updates[-1].parts["isps"], day.count) if updates else contract.reserved(day.count)
    )
    requests = [
        r
        for r in linked(await trades_at(tx, "request", tenant, point, day.period))
        if r.status is not TradeStatus.REJECTED
    ]
    named = linked(await trades_at(tx, "offer", tenant, point, day.period))
    offers = [o for o in named if o.status is not TradeStatus.REVOKED]
    named_ids = {o.message_id for o in named}
    orders = [
        o
        for o in await trades_at(tx, "order", tenant, point, day.period, _ORDERS_COUNTED)
        if o.peer_id == agr.id and o.parts["flex_offer_message_id"] in named_ids
    ]
    requested = _requested(requests[-1], reserved) if requests else None
    offered = _offered(offers, requested) if requested is not None and offers else None
    ordered = _ordered(orders, day.count) if orders else None
    isps = tuple(
        ContractIsp(
            n + 1,
            reserved[n],
            None if requested is None else requested[n],
            None,
            None if offered is None else offered[n],
            None if ordered is None else ordered[n],
        )
        for n in range(day.count)
    )
    return ContractPeriod(day.period, isps)


async def contract_settlements(
    tx: AsyncConnection, tenant: Tenant, agr: Peer, month: date, market: Market
) -> list[ContractSettlement]:
    """The ContractSettlements of the AGR's contracts for the month (any day of it names
    it), oldest contract first; empty when the AGR had no contract running that month."""
    settlements = []
    for contract in await contracts_of(tx, tenant, peer=agr):
        days = _days(contract, month, market)
        if not days:
            continue
        point = await get_entity_by_id(tx, tenant, contract.entity_id)
        periods = [
            await _period(tx, tenant, agr, contract, point, Day(d, market.time_zone, market.isp))
            for d in days
        ]
        address = await address_of(tx, tenant, point)
        settlements.append(ContractSettlement(contract.contract_id, address, tuple(periods)))
    return settlements


_ATTRIBUTES = (
    ("ReservedPower", "reserved_w"),
    ("RequestedPower", "requested_w"),
    ("AvailablePower", "available_w"),
    ("OfferedPower", "offered_w"),
    ("OrderedPower", "ordered_w"),
)


def _isp_nodes(isps: tuple[ContractIsp, ...]) -> list[Node]:
    """ISP elements, neighbours with the same values joined into one with a Duration."""
    runs: list[tuple[ContractIsp, int]] = []
    for isp in isps:
        last = runs[-1][0] if runs else None
        if last is not None and all(getattr(last, f) == getattr(isp, f) for _, f in _ATTRIBUTES):
            runs[-1] = (last, runs[-1][1] + 1)
        else:
            runs.append((isp, 1))
    nodes = []
    for isp, duration in runs:
        attributes = {"Start": str(isp.start), "Duration": str(duration)}
        for name, field in _ATTRIBUTES:
            value = getattr(isp, field)
            if value is not None:
                attributes[name] = str(value)
        nodes.append(Node("ISP", attributes))
    return nodes


def contract_settlement_node(settlement: ContractSettlement) -> Node:
    """The ContractSettlement element of a FlexSettlement."""
    periods = [
        Node("Period", {"Period": p.period.isoformat()}, _isp_nodes(p.isps))
        for p in settlement.periods
    ]
    return Node("ContractSettlement", {"ContractID": settlement.contract_id}, periods)
