"""FlexReservationUpdate (DSO -> AGR): "used by the DSO to signal which part of the
contracted flexibility is still reserved" (docs/protocols/uftp-3.1.md, "Contracts").

What is still reserved on an ISP of a Period, for a contract that reserves a reduction
(negative watts): as much of the reservation as the congestion point's overload needs, the
summed D-Prognoses of its AGRs less its MaxCapacity (flex_requests.loads_at), and never
more than an earlier update of the Period left reserved (flex once released may have been
sold elsewhere). Where nothing is known (no D-Prognosis for the Period, or no MaxCapacity on
the ISP) nothing is released; a reservation of positive watts (more consumption) is kept, as
flexbridge plans against an upper limit only.

When: once per contract and Period, `Market.reservation_lead` (default 10 h: 14:00 the day
before) before the Period begins, by the UFTP clock; and on demand (`flexbridge uftp
reservation-update`) at any time before the Period begins. Each update is a new
conversation; its FlexReservationUpdateResponse marks it accepted or rejected
(flex_offers.trade_answered).
"""

from __future__ import annotations

import logging
import uuid
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection

from protocols.uftp.v3_1.codec import Node
from protocols.uftp.v3_1.congestion_points import address_of
from protocols.uftp.v3_1.flex_requests import loads_at, prognosing_agrs
from protocols.uftp.v3_1.identity import Identity, identity_of
from protocols.uftp.v3_1.isp import Day
from protocols.uftp.v3_1.market import Market
from protocols.uftp.v3_1.replies import VERSION, metadata, send_signed
from store.db import Database
from store.entities import Entity, get_entity_by_id
from store.errors import StoreError, ValidationError
from store.peers import Peer, get_peer
from store.tenants import Tenant, list_tenants
from store.uftp import Trade, TradeStatus, add_trade, trades_at
from store.uftp_contracts import Contract, contracts_without_update, lock_contract

log = logging.getLogger(__name__)
# An update that was not rejected is what the AGR holds reserved.
STANDING = (TradeStatus.SENT, TradeStatus.ACCEPTED)


def spans(powers: list[int]) -> list[dict[str, int]]:
    """Per-ISP watts as ISP elements, equal neighbours joined (Start, Duration, Power)."""
    out: list[dict[str, int]] = []
    for n, power in enumerate(powers, start=1):
        if out and out[-1]["power_w"] == power:
            out[-1]["duration"] += 1
        else:
            out.append({"start": n, "duration": 1, "power_w": power})
    return out


def per_isp(isps: list[dict[str, Any]], count: int) -> list[int]:
    """ISP elements back to watts per ISP 1 .. count."""
    powers = [0] * count
    for isp in isps:
        for n in range(isp["start"], min(isp["start"] + isp["duration"], count + 1)):
            powers[n - 1] = isp["power_w"]
    return powers


def smaller(a: int, b: int) -> int:
    """Of two powers of one ISP, the smaller in size (0 when they point opposite ways)."""
    if a == 0 or b == 0 or (a < 0) != (b < 0):
        return 0
    return a if abs(a) <= abs(b) else b


def still_reserved(
    reserved: list[int], need_w: np.ndarray, previous: list[int] | None
) -> list[int]:
    """What stays reserved per ISP: reductions down to the need (NaN: unknown, kept), never
    above the previous update's."""
    kept = []
    for n, power in enumerate(reserved):
        need = need_w[n]
        if power < 0 and not np.isnan(need):
            power = -min(-power, max(0, round(float(need))))
        if previous is not None:
            power = smaller(power, previous[n])
        kept.append(power)
    return kept


async def latest_update(
    tx: AsyncConnection,
    tenant: Tenant,
    contract: Contract,
    point: Entity,
    period: date,
    *,
    every: bool = False,
) -> Trade | None:
    """The contract's last update of the Period that the AGR did not reject (with `every`,
    its last update whatever the answer)."""
    updates = await trades_at(tx, "reservation", tenant, point, period, None if every else STANDING)
    mine = [u for u in updates if u.parts["uftp_contract_id"] == contract.id]
    return mine[-1] if mine else None


async def _need_w(
    tx: AsyncConnection, tenant: Tenant, point: Entity, address: str, day: Day
) -> np.ndarray:
    """The overload per ISP in W (prognosed load less MaxCapacity, at least 0); NaN where
    it is not known."""
    agrs = await prognosing_agrs(tx, tenant, point, address, day.period)
    if not agrs:
        return np.full(day.count, np.nan)
    loads = await loads_at(tx, tenant, point, day, agrs)
    return np.maximum(loads.prognosed - loads.capacity, 0.0) * 1000  # NaN stays NaN


def _message(
    identity: Identity,
    peer: Peer,
    contract: Contract,
    address: str,
    day: Day,
    isps: list[dict[str, int]],
) -> Node:
    attributes = metadata(identity, peer, conversation=str(uuid.uuid4()), version=VERSION)
    attributes.update(
        {
            "ISP-Duration": f"PT{int(day.isp.total_seconds() // 60)}M",
            "TimeZone": day.zone.key,
            "Period": day.period.isoformat(),
            "CongestionPoint": address,
            "ContractID": contract.contract_id,
            "Reference": str(uuid.uuid4()),
        }
    )
    children = [
        Node(
            "ISP",
            {"Power": str(i["power_w"]), "Start": str(i["start"]), "Duration": str(i["duration"])},
        )
        for i in isps
    ]
    return Node("FlexReservationUpdate", attributes, children)


async def send_reservation_update(
    tx: AsyncConnection,
    tenant: Tenant,
    contract: Contract,
    period: date,
    market: Market,
    identity: Identity,
    now: datetime,
) -> Trade:
    """Queue the contract's FlexReservationUpdate for the Period (signed, through the
    outbox); the update as recorded. ValidationError when the contract does not run on the
    Period or the Period has begun ("arrives after the deadline")."""
    if not contract.runs_on(period):
        raise ValidationError(
            "--period", f"contract {contract.contract_id} does not run on {period}"
        )
    day = Day(period, market.time_zone, market.isp)
    if day.start <= now:
        raise ValidationError("--period", f"{period} has begun: nothing can be released")
    point = await get_entity_by_id(tx, tenant, contract.entity_id)
    address = await address_of(tx, tenant, point)
    peer = await get_peer(tx, tenant, contract.peer_id)
    previous = await latest_update(tx, tenant, contract, point, period)
    powers = still_reserved(
        contract.reserved(day.count),
        await _need_w(tx, tenant, point, address, day),
        None if previous is None else per_isp(previous.parts["isps"], day.count),
    )
    isps = spans(powers)
    message = _message(identity, peer, contract, address, day, isps)
    message_id = await send_signed(tx, peer, identity, message)
    return await add_trade(
        tx,
        "reservation",
        tenant,
        peer,
        point,
        period,
        message_id=message_id,
        conversation_id=message.attributes["ConversationID"],
        status=TradeStatus.SENT,
        uftp_contract_id=contract.id,
        reference=message.attributes["Reference"],
        isps=isps,
    )


def due_periods(now: datetime, market: Market) -> list[date]:
    """The Periods whose update time has come and which have not begun."""
    today = now.astimezone(market.time_zone).date()
    days = int(market.reservation_lead / timedelta(days=1)) + 2
    periods = []
    for offset in range(1, days + 1):
        day = Day(today + timedelta(days=offset), market.time_zone, market.isp)
        if day.start - market.reservation_lead <= now < day.start:
            periods.append(day.period)
    return periods


async def release_due(db: Database, now: datetime, market: Market) -> int:
    """The clock's part: each contract running on a due Period and without an update for
    it gets one; how many were sent. Each in its own transaction with the contract's row
    locked (skipped when another process holds it), so processes sharing a database do not
    both send."""
    sent = 0
    for period in due_periods(now, market):
        async with db.read() as tx:
            due = await contracts_without_update(tx, period)
            tenants = {t.id: t for t in await list_tenants(tx)} if due else {}
        for contract in due:
            tenant = tenants.get(contract.tenant_id)
            if tenant is None:
                continue
            try:
                sent += await _release(db, tenant, contract, period, market, now)
            except StoreError as exc:  # this contract's data, not the others'
                log.warning("contract %s: no FlexReservationUpdate: %s", contract.contract_id, exc)
    return sent


async def _release(
    db: Database, tenant: Tenant, contract: Contract, period: date, market: Market, now: datetime
) -> int:
    async with db.transaction() as tx:
        if not await lock_contract(tx, contract):
            return 0
        point = await get_entity_by_id(tx, tenant, contract.entity_id)
        if await latest_update(tx, tenant, contract, point, period, every=True) is not None:
            return 0  # another process sent it after our read
        identity = await identity_of(tx, tenant, market.domain)
        await send_reservation_update(tx, tenant, contract, period, market, identity, now)
        return 1
