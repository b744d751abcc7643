"""FlexRequest (DSO -> AGR): asked for when a congestion point is expected to be overloaded.

Expected load per ISP = the sum of every AGR's D-Prognosis (d_prognosis.py: NetEnergy per
AGR source) as average power; capacity = the congestion point's MaxCapacity (kW, set by
any protocol). Where load exceeds capacity the ISP is Requested: MinPower = -(overload in
W), MaxPower = 0, a reduction of consumption of up to the overload (the spec's direction
rule: never MinPower < 0 < MaxPower); every other ISP of the Period is Available with
MinPower = 0 and MaxPower = the headroom (W), what the AGR may add there.

A D-Prognosis is checked in the transaction that accepts it (clock.at_once), so the
request it makes necessary follows its response at once; and the UFTP clock checks every
congestion point with a D-Prognosis for today or later every `Market.congestion_check` (5 s),
which catches a MaxCapacity lowered through any protocol within that time. A request is
sent again (Revision + 1, the previous one superseded) only when the requested ISPs change;
it goes to every AGR that sent a D-Prognosis for the Period, in a new conversation that its
offers and our orders continue, with the ContractID of the AGR's contract at the congestion
point when one runs on the Period. What is requested is also the congestion point's
RequestedFlexibility series (flex_series.py), written with the requests' state.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.peer_state import state_of
from protocols.uftp.v3_1.codec import Node, timestamp
from protocols.uftp.v3_1.flex_series import write_requested
from protocols.uftp.v3_1.identity import Identity
from protocols.uftp.v3_1.isp import Day
from protocols.uftp.v3_1.market import Market
from protocols.uftp.v3_1.replies import VERSION, metadata, send_signed
from protocols.uftp.v3_1.sources import source_of
from store.entities import Entity
from store.peers import Peer, get_peer
from store.series import find_series
from store.series_types import SeriesType
from store.tenants import Tenant
from store.uftp import (
    TradeStatus,
    add_trade,
    prognosis_senders,
    set_trade_status,
    trades_at,
)
from store.uftp_contracts import contracts_of
from store.values import read_values

_HOUR = timedelta(hours=1)
# How long an AGR has to offer at least; requests for ISPs sooner than this expire then.
MIN_OFFER_TIME = timedelta(minutes=15)
OPEN_REQUEST = (TradeStatus.SENT, TradeStatus.ACCEPTED)


@dataclass(frozen=True, slots=True)
class Loads:
    """Per ISP of the day, in kW: the summed prognoses and the capacity (NaN: none)."""

    prognosed: np.ndarray
    capacity: np.ndarray


async def loads_at(
    tx: AsyncConnection, tenant: Tenant, point: Entity, day: Day, agrs: list[Peer]
) -> Loads:
    prognosed = np.zeros(day.count)
    series = await find_series(tx, tenant, point, SeriesType.NET_ENERGY)
    if series is not None:
        for peer in agrs:
            rows = await read_values(
                tx, tenant, series, day.start, day.end, sources=[source_of(peer.name)]
            )
            for p in rows:
                if p.value is not None:
                    prognosed[(p.start - day.start) // day.isp] += p.value / (day.isp / _HOUR)
    capacity = np.full(day.count, np.nan)
    limits = await find_series(tx, tenant, point, SeriesType.MAX_CAPACITY)
    if limits is not None:
        for p in await read_values(tx, tenant, limits, day.start, day.end, resolution=day.isp):
            if p.value is not None:
                capacity[(p.start - day.start) // day.isp] = p.value
    return Loads(prognosed, capacity)


async def prognosing_agrs(
    tx: AsyncConnection, tenant: Tenant, point: Entity, address: str, period: date
) -> list[Peer]:
    """The AGRs with an accepted D-Prognosis for the congestion point and Period that are
    still active there."""
    agrs = [
        await get_peer(tx, tenant, peer_id)
        for peer_id in await prognosis_senders(tx, tenant, point, period)
    ]
    return [a for a in agrs if address in state_of(a).congestion_points]


def request_isps(loads: Loads) -> list[dict[str, Any]]:
    """The ISPs of the request (empty when nothing is overloaded), as stored and sent."""
    overload = np.where(np.isnan(loads.capacity), 0.0, loads.prognosed - loads.capacity)
    if not (overload > 0.0005).any():  # below half a watt is no overload
        return []
    headroom = np.where(np.isnan(loads.capacity), 0.0, np.maximum(-overload, 0.0))
    isps = []
    for n, (over, room) in enumerate(zip(overload, headroom, strict=True), start=1):
        if over > 0.0005:
            isps.append(
                {"start": n, "disposition": "Requested", "min_w": -round(over * 1000), "max_w": 0}
            )
        else:
            isps.append(
                {"start": n, "disposition": "Available", "min_w": 0, "max_w": round(room * 1000)}
            )
    return isps


def _expiry(day: Day, isps: list[dict[str, Any]], now: datetime) -> datetime:
    first = min(i["start"] for i in isps if i["disposition"] == "Requested")
    start, _ = day.interval(first)
    return min(max(start, now + MIN_OFFER_TIME), day.end)


def _message(
    identity: Identity,
    peer: Peer,
    point: str,
    day: Day,
    revision: int,
    expires: datetime,
    isps: list[dict[str, Any]],
    conversation: str,
    contract_id: str | None,
) -> Node:
    attributes = metadata(identity, peer, conversation=conversation, version=VERSION)
    if contract_id is not None:  # the AGR's contract here (docs: "Contracts")
        attributes["ContractID"] = contract_id
    attributes.update(
        {
            "ISP-Duration": "PT15M" if day.isp == timedelta(minutes=15) else _duration(day.isp),
            "TimeZone": day.zone.key,
            "Period": day.period.isoformat(),
            "CongestionPoint": point,
            "Revision": str(revision),
            "ExpirationDateTime": timestamp(expires),
        }
    )
    children = [
        Node(
            "ISP",
            {
                "Disposition": i["disposition"],
                "MinPower": str(i["min_w"]),
                "MaxPower": str(i["max_w"]),
                "Start": str(i["start"]),
                "Duration": "1",
            },
        )
        for i in isps
    ]
    return Node("FlexRequest", attributes, children)


def _duration(isp: timedelta) -> str:
    return f"PT{int(isp.total_seconds() // 60)}M"


async def check_congestion(
    tx: AsyncConnection,
    tenant: Tenant,
    point: Entity,
    address: str,
    period: date,
    market: Market,
    identity: Identity,
    now: datetime,
) -> int:
    """Send FlexRequests for the congestion point's Period when its requested ISPs changed;
    how many were sent."""
    day = Day(period, market.time_zone, market.isp)
    if day.end <= now:
        return 0
    agrs = await prognosing_agrs(tx, tenant, point, address, period)
    isps = request_isps(await loads_at(tx, tenant, point, day, agrs))
    open_requests = await trades_at(tx, "request", tenant, point, period, OPEN_REQUEST)
    if isps == (open_requests[-1].parts["isps"] if open_requests else []):
        return 0
    for old in open_requests:
        await set_trade_status(tx, "request", old.id, TradeStatus.SUPERSEDED)
    await write_requested(tx, tenant, point, day, isps, identity)
    if not isps:
        return 0
    every = await trades_at(tx, "request", tenant, point, period)
    revision = max((t.parts["revision"] for t in every), default=0) + 1
    expires = _expiry(day, isps, now)
    for agr in agrs:
        conversation = str(uuid.uuid4())
        contracts = await contracts_of(tx, tenant, peer=agr, point=point, period=period)
        contract_id = contracts[0].contract_id if contracts else None
        message = _message(
            identity, agr, address, day, revision, expires, isps, conversation, contract_id
        )
        message_id = await send_signed(tx, agr, identity, message)
        await add_trade(
            tx,
            "request",
            tenant,
            agr,
            point,
            period,
            message_id=message_id,
            conversation_id=conversation,
            status=TradeStatus.SENT,
            revision=revision,
            expires_at=expires,
            isps=isps,
            contract_id=contract_id,
        )
    return len(agrs)
