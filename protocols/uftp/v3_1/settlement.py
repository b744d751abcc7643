"""FlexSettlement (DSO -> AGR, monthly) and the FlexSettlementResponse to it
(docs/protocols/uftp-3.1.md, "Settlement"; `flexbridge uftp settle`).

"The FlexSettlement message is sent by DSOs on a regular basis (typically monthly) to AGRs,
in order to initiate settlement. It includes a list of all FlexOrders placed by the
originating party during the settlement period." For a month (in the market's zone) every
FlexOrder the AGR accepted whose Period lies in it, and is not settled yet, is settled:
one FlexSettlement per AGR (and currency), one FlexOrderSettlement per order, the figures
of settlement_rules.py per ISP from

    BaselinePower   the AGR's D-Prognosis when the order was placed (baselines.py)
    ActualPower     the AGR's Metering of the congestion point's connections: per ISP the sum
                    over the Meters of their NetEnergy (Power profile) as average power, or
                    Consumption - Production where a meter has no NetEnergy

and the ContractSettlements of contract_settlement.py (with no contract, one that reserves
nothing: `nothing_reserved`). The orders are marked settled and
the messages queued in one transaction: a second run settles only orders not settled
before and reports what was sent already.

A FlexSettlementResponse records Accepted or Rejected for the message and each
FlexOrderSettlementStatus's Disposition (Accepted | Disputed) and DisputeReason, matched by
OrderReference; one for a FlexSettlement we did not send is kept in the message log only
(a response is never answered).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from protocols.uftp.v3_1.baselines import isp_numbers, prognosed_w
from protocols.uftp.v3_1.codec import Node
from protocols.uftp.v3_1.congestion_points import address_of
from protocols.uftp.v3_1.contract_settlement import (
    contract_settlement_node,
    contract_settlements,
)
from protocols.uftp.v3_1.handling import Accepted, Received
from protocols.uftp.v3_1.identity import Identity, identity_of
from protocols.uftp.v3_1.isp import Day
from protocols.uftp.v3_1.market import Market
from protocols.uftp.v3_1.replies import VERSION, metadata, send_signed
from protocols.uftp.v3_1.settlement_rules import IspFigures, amounts, ordered_w, settle_isp
from protocols.uftp.v3_1.sources import source_of
from store.catalogue import ConnectorType
from store.db import Database
from store.entities import Entity, connectors_of, get_entity_by_id
from store.errors import ValidationError
from store.peers import Peer, get_peer
from store.series import find_series
from store.series_types import SeriesType
from store.tenants import Tenant, get_tenant
from store.uftp import Trade, TradeStatus, orders_between
from store.uftp_settlements import (
    OrderSettlement,
    Settlement,
    add_settlement,
    find_settlement,
    record_answer,
    settlements_of,
)
from store.values import read_values

_HOUR = timedelta(hours=1)


# --- the month ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Month:
    first: date
    last: date

    @property
    def label(self) -> str:
        return self.first.strftime("%Y-%m")


def month_named(text: str) -> Month:
    """YYYY-MM, a month of years 2..9998 (whose days every zone can hold)."""
    try:
        first = date.fromisoformat(f"{text.strip()}-01")
    except ValueError:
        raise ValidationError("--month", f"{text!r} is not a month YYYY-MM") from None
    if not 2 <= first.year <= 9998 or len(text.strip()) != 7:
        raise ValidationError("--month", f"{text!r} is not a month YYYY-MM of years 2-9998")
    following = (first + timedelta(days=32)).replace(day=1)
    return Month(first, following - timedelta(days=1))


# --- what was metered and ordered ----------------------------------------------------------


async def _meter_w(
    tx: AsyncConnection, tenant: Tenant, meter: Entity, day: Day, source: str
) -> dict[int, float]:
    """A meter's average power (W) per ISP number: NetEnergy, else Consumption - Production."""
    hours = day.isp / _HOUR
    found: dict[SeriesType, dict[int, float]] = {}
    for kind in (SeriesType.NET_ENERGY, SeriesType.CONSUMPTION, SeriesType.PRODUCTION):
        series = await find_series(tx, tenant, meter, kind)
        rows = []
        if series is not None and series.resolution == day.isp:
            sources = [source] if kind is SeriesType.NET_ENERGY else [source, "derived"]
            rows = await read_values(tx, tenant, series, day.start, day.end, sources=sources)
        found[kind] = {
            (p.start - day.start) // day.isp + 1: p.value * 1000 / hours
            for p in rows
            if p.value is not None
        }
    net = dict(found[SeriesType.NET_ENERGY])
    used, made = found[SeriesType.CONSUMPTION], found[SeriesType.PRODUCTION]
    for n in (used.keys() | made.keys()) - net.keys():
        net[n] = used.get(n, 0.0) - made.get(n, 0.0)
    return net


async def actual_w(
    tx: AsyncConnection, tenant: Tenant, peer: Peer, point: Entity, day: Day
) -> dict[int, int]:
    """What the AGR metered at the congestion point's connections, per ISP number (W)."""
    links = await connectors_of(
        tx, tenant, point, direction="child", connector_type=ConnectorType.FLEXIBILITY, at=day.start
    )
    total: dict[int, float] = defaultdict(float)
    for link in links:
        for n, watts in (await _meter_w(tx, tenant, link.child, day, source_of(peer.name))).items():
            total[n] += watts
    return {n: round(w) for n, w in total.items()}


@dataclass(frozen=True, slots=True)
class Settled:
    """One order's settlement, as sent and stored."""

    order: Trade
    address: str
    day: Day
    isps: list[IspFigures]
    price: Decimal
    penalty: Decimal
    net: Decimal
    prognosis_id: str | None  # the D-PrognosisMessageID, where known
    unmetered: int  # ISPs without Metering: nothing shown delivered
    unbaselined: int  # ISPs without a baseline: nothing shown delivered


async def settle_order(
    tx: AsyncConnection, tenant: Tenant, peer: Peer, order: Trade, market: Market
) -> Settled:
    point = await get_entity_by_id(tx, tenant, order.entity_id)
    day = Day(order.period, market.time_zone, market.isp)
    numbers = isp_numbers(order.parts["isps"])
    baseline = order.parts.get("baseline")
    prognosis_id = order.parts.get("d_prognosis_message_id")
    if baseline is None:  # placed before orders kept their baseline: the prognosis now
        baseline = await prognosed_w(tx, tenant, peer, point, day, numbers)
    metered = await actual_w(tx, tenant, peer, point, day)
    factor = Decimal(order.parts["activation_factor"])
    isps = []
    for element in order.parts["isps"]:
        ordered = ordered_w(element["power_w"], factor)
        for n in range(element["start"], element["start"] + element["duration"]):
            isps.append(settle_isp(n, ordered, baseline.get(str(n)), metered.get(n)))
    due = amounts(Decimal(order.parts["price"]), factor, isps)
    address = await address_of(tx, tenant, point)
    unmetered = sum(1 for n in numbers if n not in metered)
    unbaselined = sum(1 for n in numbers if str(n) not in baseline)
    return Settled(
        order, address, day, isps, due.price, due.penalty, due.net, prognosis_id,
        unmetered, unbaselined,
    )  # fmt: skip


# --- the message -------------------------------------------------------------------------


def _amount(value: Decimal) -> str:
    return f"{value:.4f}"


def _order_node(settled: Settled) -> Node:
    attributes = {
        "OrderReference": settled.order.parts["order_reference"],
        "Period": settled.day.period.isoformat(),
    }
    if settled.prognosis_id:
        attributes["D-PrognosisMessageID"] = settled.prognosis_id
    attributes.update(
        {
            "CongestionPoint": settled.address,
            "Price": _amount(settled.price),
            "Penalty": _amount(settled.penalty),
            "NetSettlement": _amount(settled.net),
        }
    )
    isps = [
        Node(
            "ISP",
            {
                "Start": str(i.start),
                "Duration": "1",
                "BaselinePower": str(i.baseline_w),
                "OrderedFlexPower": str(i.ordered_w),
                "ActualPower": str(i.actual_w),
                "DeliveredFlexPower": str(i.delivered_w),
                "PowerDeficiency": str(i.deficiency_w),
            },
        )
        for i in settled.isps
    ]
    return Node("FlexOrderSettlement", attributes, isps)


def nothing_reserved(days: Sequence[Day]) -> Node:
    """The ContractSettlement of an AGR without contracts: the 3.x schema (and
    shapeshifter-uftp 2.4.0) need at least one although the prose has "0...n, only in case of
    bilateral contracts"; this one has no ContractID (it is optional) and, for each day
    settled, one ISP element over the day with ReservedPower 0: nothing was reserved."""
    periods = [
        Node(
            "Period",
            {"Period": day.period.isoformat()},
            [Node("ISP", {"Start": "1", "Duration": str(day.count), "ReservedPower": "0"})],
        )
        for day in days
    ]
    return Node("ContractSettlement", {}, periods)


def settlement_message(
    identity: Identity,
    peer: Peer,
    month: Month,
    currency: str,
    orders: Sequence[Settled],
    contracts: Sequence[Node],
) -> Node:
    attributes = metadata(identity, peer, conversation=str(uuid.uuid4()), version=VERSION)
    # FlexSettlement extends the response type in 3.0 and 3.1: Result is required.
    attributes["Result"] = "Accepted"
    attributes.update(
        {
            "PeriodStart": month.first.isoformat(),
            "PeriodEnd": month.last.isoformat(),
            "Currency": currency,
        }
    )
    if not contracts:
        days = {s.day.period: s.day for s in orders}
        contracts = [nothing_reserved([days[p] for p in sorted(days)])]
    children = [_order_node(s) for s in orders] + list(contracts)
    return Node("FlexSettlement", attributes, children)


# --- the monthly run -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    peer: str
    message_id: str
    currency: str
    orders: list[Settled]

    def total(self, what: str) -> Decimal:
        return sum((getattr(s, what) for s in self.orders), Decimal(0))


@dataclass(frozen=True, slots=True)
class MonthReport:
    month: Month
    sent: list[Sent] = field(default_factory=list)
    before: list[Settlement] = field(default_factory=list)  # sent by earlier runs
    peers: dict[int, str] = field(default_factory=dict)  # names of the peers of `before`
    unanswered: int = 0  # orders of the month the AGR never answered: not settled
    later: int = 0  # accepted orders of Periods not over (with force): not settled yet


async def _send_for(
    tx: AsyncConnection,
    tenant: Tenant,
    identity: Identity,
    peer: Peer,
    month: Month,
    market: Market,
    currency: str,
    orders: list[Trade],
) -> Sent:
    settled = [await settle_order(tx, tenant, peer, order, market) for order in orders]
    contracts = await contract_settlements(tx, tenant, peer, month.first, market)
    nodes = [contract_settlement_node(c) for c in contracts]
    message = settlement_message(identity, peer, month, currency, settled, nodes)
    message_id = await send_signed(tx, peer, identity, message)
    stored = [
        OrderSettlement(
            s.order.id,
            s.order.parts["order_reference"],
            _amount(s.price),
            _amount(s.penalty),
            _amount(s.net),
            [i.stored() for i in s.isps],
        )
        for s in settled
    ]
    await add_settlement(
        tx,
        tenant,
        peer,
        month.label,
        message_id=message_id,
        conversation_id=message.attributes["ConversationID"],
        currency=currency,
        orders=stored,
    )
    return Sent(peer.name, message_id, currency, settled)


async def settle_month(
    db: Database, market: Market, tenant_name: str, month: Month, *, now: datetime, force: bool
) -> MonthReport:
    """Settle the tenant's accepted, unsettled orders of the month, one FlexSettlement per AGR
    and currency. A month not over is refused unless `force`; then only orders of Periods
    that are over are settled."""
    end = Day(month.last, market.time_zone, market.isp).end
    if end > now and not force:
        raise ValidationError(
            "--month",
            f"{month.label} is not over until {end.astimezone(market.time_zone):%Y-%m-%d %H:%M}"
            f" {market.time_zone.key}; settle it then, or pass --force to settle the days over",
        )
    async with db.transaction() as tx:
        tenant = await get_tenant(tx, tenant_name)
        before = await settlements_of(tx, tenant, month.label)
        peers = {s.peer_id: (await get_peer(tx, tenant, s.peer_id)).name for s in before}
        accepted = await orders_between(
            tx, tenant, month.first, month.last, [TradeStatus.ACCEPTED], for_update=True
        )
        due = [o for o in accepted if Day(o.period, market.time_zone, market.isp).end <= now]
        unanswered = await orders_between(tx, tenant, month.first, month.last, [TradeStatus.SENT])
        groups: dict[tuple[int, str], list[Trade]] = defaultdict(list)
        for order in due:
            groups[(order.peer_id, order.parts["currency"])].append(order)
        sent = []
        if groups:
            identity = await identity_of(tx, tenant, market.domain)
            for (peer_id, currency), orders in sorted(groups.items()):
                peer = await get_peer(tx, tenant, peer_id)
                sent.append(
                    await _send_for(tx, tenant, identity, peer, month, market, currency, orders)
                )
    return MonthReport(month, sent, before, peers, len(unanswered), len(accepted) - len(due))


# --- the answer ----------------------------------------------------------------------------


async def settlement_answered(received: Received) -> Accepted:
    """FlexSettlementResponse: "the AGR should accept and dispute individual items via
    FlexOrderSettlementStatus Disposition="Disputed"" (Disposition: "whether the AGR accepts
    the order settlement details provided by the DSO (and will invoice accordingly), or
    disputes these details"). A status without OrderReference applies when the settlement
    has one order."""
    inner = received.inner
    reference = inner.attr("FlexSettlementMessageID") or ""
    settlement = await find_settlement(received.tx, received.peer, reference)
    if settlement is None:
        return Accepted()
    ours = [o.order_reference for o in settlement.orders]
    dispositions: dict[str, tuple[str, str | None]] = {}
    for status in inner.root.iter("FlexOrderSettlementStatus"):
        named = (status.attrib.get("OrderReference") or "").strip()
        order = named or (ours[0] if len(ours) == 1 else "")
        if order in ours:
            reason = status.attrib.get("DisputeReason")
            dispositions[order] = (status.attrib["Disposition"].strip(), reason)
    await record_answer(
        received.tx,
        settlement,
        accepted=inner.attr("Result") == "Accepted",
        reason=inner.attr("RejectionReason"),
        dispositions=dispositions,
    )
    return Accepted()
