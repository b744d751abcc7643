"""Bilateral UFTP contracts (docs/protocols/uftp-3.1.md, "Contracts"): flexibility an AGR
reserves for the DSO at one congestion point, for every Period (local date) from valid_from
to valid_to inclusive, either the same power on every ISP or a pattern of ISPs repeated each
day (ISPs it does not name reserve nothing). Powers are signed watts as UFTP writes them:
negative is consumption reduced, the flex that relieves an overloaded congestion point.

A contract is `active` until it is removed; a removed one is kept (its updates and the
settlement of the days it ran refer to it) but no message may name it any more. Two active
contracts of one AGR at one congestion point never overlap in time, so a Period has at most
one contract per AGR and congestion point.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from itertools import pairwise
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from store.db import inserted_id
from store.entities import Entity
from store.errors import Conflict, NotFound, ValidationError, check_fits
from store.peers import Peer
from store.tables import uftp_contracts, uftp_reservation_updates
from store.tenants import Tenant
from store.timeutil import from_micros, to_micros, utcnow

MAX_ID = 200  # characters of a ContractID (its column)
MAX_POWER_W = 10**12  # a terawatt: beyond any congestion point, and within BigInteger
# Periods whose day, in any zone, datetime can hold (as protocols/uftp/v3_1/days.py).
_FIRST, _LAST = date(2, 1, 1), date(9998, 12, 31)


class ContractStatus(StrEnum):
    ACTIVE = "active"
    REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class ReservedSpan:
    """ISPs start .. start + duration - 1 of every Period reserve power_w each."""

    start: int
    duration: int
    power_w: int


@dataclass(frozen=True, slots=True)
class Contract:
    id: int
    tenant_id: int
    peer_id: int
    entity_id: int
    contract_id: str  # ContractID on the wire
    valid_from: date
    valid_to: date
    reserved_w: int | None  # the same on every ISP, or None for a pattern
    reserved_isps: tuple[ReservedSpan, ...]  # the pattern (empty for a constant)
    status: ContractStatus
    created_at: datetime
    removed_at: datetime | None

    def runs_on(self, period: date) -> bool:
        """Whether the contract reserves flex on this Period (and may be named for it)."""
        return self.status is ContractStatus.ACTIVE and self.valid_from <= period <= self.valid_to

    def reserved(self, count: int) -> list[int]:
        """The reserved watts of ISPs 1 .. count of a Period (92, 96 or 100 of PT15M): a
        pattern's ISPs beyond the day's count are not part of it."""
        if self.reserved_w is not None:
            return [self.reserved_w] * count
        powers = [0] * count
        for span in self.reserved_isps:
            for n in range(span.start, min(span.start + span.duration, count + 1)):
                powers[n - 1] = span.power_w
        return powers


@dataclass(frozen=True, slots=True)
class NewContract:
    contract_id: str
    valid_from: date
    valid_to: date
    reserved_w: int | None = None
    reserved_isps: tuple[ReservedSpan, ...] = ()


def _contract(row: Any) -> Contract:
    m = row._mapping
    return Contract(
        m["id"],
        m["tenant_id"],
        m["peer_id"],
        m["entity_id"],
        m["contract_id"],
        date.fromisoformat(m["valid_from"]),
        date.fromisoformat(m["valid_to"]),
        m["reserved_w"],
        tuple(ReservedSpan(**s) for s in m["reserved_isps"] or ()),
        ContractStatus(m["status"]),
        from_micros(m["created_at"]),
        None if m["removed_at"] is None else from_micros(m["removed_at"]),
    )


def _check(new: NewContract) -> None:
    text = new.contract_id
    if not text.strip() or text != text.strip():
        raise ValidationError("--contract", "a ContractID, without leading or trailing spaces")
    check_fits("--contract", text, MAX_ID)
    if any(not c.isprintable() for c in text):
        raise ValidationError("--contract", "printable characters only")
    if not _FIRST <= new.valid_from <= new.valid_to <= _LAST:
        if new.valid_to < new.valid_from:
            raise ValidationError("--to", "the last Period is before the first")
        raise ValidationError("--from", f"Periods from {_FIRST} to {_LAST}")
    if new.valid_to < new.valid_from:
        raise ValidationError("--to", "the last Period is before the first")
    if (new.reserved_w is None) == (not new.reserved_isps):
        raise ValidationError("--reserved-w", "either a constant power or ISPs, not both")
    powers = [new.reserved_w] if new.reserved_w is not None else []
    powers += [s.power_w for s in new.reserved_isps]
    if any(abs(w) > MAX_POWER_W for w in powers):
        raise ValidationError("--reserved-w", f"at most {MAX_POWER_W} W either way")
    spans = sorted(new.reserved_isps, key=lambda s: s.start)
    if any(s.start < 1 or s.duration < 1 or s.start + s.duration - 1 > 100 for s in spans):
        raise ValidationError("--isp", "ISPs are numbered 1 to 100 (the longest day of PT15M)")
    if any(b.start < a.start + a.duration for a, b in pairwise(spans)):
        raise ValidationError("--isp", "ISPs overlap")


async def add_contract(
    tx: AsyncConnection, tenant: Tenant, peer: Peer, point: Entity, new: NewContract
) -> Contract:
    """Record a contract of `peer` (an AGR) at the congestion point `point`."""
    _check(new)
    if await find_contract(tx, tenant, new.contract_id) is not None:
        raise Conflict(f"contract {new.contract_id} exists already (ContractIDs are unique)")
    for other in await contracts_of(tx, tenant, peer=peer, point=point):
        if (
            other.status is ContractStatus.ACTIVE
            and other.valid_from <= new.valid_to
            and new.valid_from <= other.valid_to
        ):
            raise Conflict(
                f"contract {other.contract_id} of {peer.name} at this congestion point runs "
                f"from {other.valid_from} to {other.valid_to}: active contracts may not overlap"
            )
    result = await tx.execute(
        uftp_contracts.insert().values(
            tenant_id=tenant.id,
            peer_id=peer.id,
            entity_id=point.id,
            contract_id=new.contract_id,
            valid_from=new.valid_from.isoformat(),
            valid_to=new.valid_to.isoformat(),
            reserved_w=new.reserved_w,
            reserved_isps=(
                [
                    {"start": s.start, "duration": s.duration, "power_w": s.power_w}
                    for s in sorted(new.reserved_isps, key=lambda s: s.start)
                ]
                or None
            ),
            status=str(ContractStatus.ACTIVE),
            created_at=to_micros(utcnow()),
        )
    )
    query = select(uftp_contracts).where(uftp_contracts.c.id == inserted_id(result))
    return _contract((await tx.execute(query)).one())


async def find_contract(tx: AsyncConnection, tenant: Tenant, contract_id: str) -> Contract | None:
    """The tenant's contract with this ContractID, whatever its state."""
    query = select(uftp_contracts).where(
        uftp_contracts.c.tenant_id == tenant.id, uftp_contracts.c.contract_id == contract_id
    )
    row = (await tx.execute(query)).first()
    return None if row is None else _contract(row)


async def get_contract(tx: AsyncConnection, tenant: Tenant, contract_id: str) -> Contract:
    contract = await find_contract(tx, tenant, contract_id)
    if contract is None:
        raise NotFound("uftp contract", contract_id)
    return contract


async def contracts_of(
    tx: AsyncConnection,
    tenant: Tenant,
    *,
    peer: Peer | None = None,
    point: Entity | None = None,
    period: date | None = None,
) -> list[Contract]:
    """The tenant's contracts, oldest first; of one AGR, at one congestion point, and, with
    `period`, only those active on it."""
    query = select(uftp_contracts).where(uftp_contracts.c.tenant_id == tenant.id)
    if peer is not None:
        query = query.where(uftp_contracts.c.peer_id == peer.id)
    if point is not None:
        query = query.where(uftp_contracts.c.entity_id == point.id)
    if period is not None:
        day = period.isoformat()
        query = query.where(
            uftp_contracts.c.status == str(ContractStatus.ACTIVE),
            uftp_contracts.c.valid_from <= day,
            uftp_contracts.c.valid_to >= day,
        )
    rows = await tx.execute(query.order_by(uftp_contracts.c.id))
    return [_contract(row) for row in rows]


async def contracts_without_update(tx: AsyncConnection, period: date) -> list[Contract]:
    """Every tenant's contracts active on the Period that have no FlexReservationUpdate for
    it yet (for the reservation clock: one query, whatever the number of contracts)."""
    day = period.isoformat()
    updated = select(uftp_reservation_updates.c.id).where(
        uftp_reservation_updates.c.uftp_contract_id == uftp_contracts.c.id,
        uftp_reservation_updates.c.period == day,
    )
    query = (
        select(uftp_contracts)
        .where(
            uftp_contracts.c.status == str(ContractStatus.ACTIVE),
            uftp_contracts.c.valid_from <= day,
            uftp_contracts.c.valid_to >= day,
            ~updated.exists(),
        )
        .order_by(uftp_contracts.c.id)
    )
    return [_contract(row) for row in await tx.execute(query)]


async def lock_contract(tx: AsyncConnection, contract: Contract) -> bool:
    """Lock the contract's row for this transaction; False when another transaction holds
    it (PostgreSQL; SQLite has one writer anyway)."""
    query = (
        select(uftp_contracts.c.id)
        .where(uftp_contracts.c.id == contract.id)
        .with_for_update(skip_locked=True)
    )
    return bool((await tx.execute(query)).first())


async def remove_contract(tx: AsyncConnection, tenant: Tenant, contract_id: str) -> Contract:
    """Mark the contract removed (kept for its updates and settlement); removing one twice
    is no error."""
    contract = await get_contract(tx, tenant, contract_id)
    if contract.status is ContractStatus.REMOVED:
        return contract
    await tx.execute(
        update(uftp_contracts)
        .where(uftp_contracts.c.id == contract.id)
        .values(status=str(ContractStatus.REMOVED), removed_at=to_micros(utcnow()))
    )
    return await get_contract(tx, tenant, contract_id)
