"""Bilateral contracts as the operator keeps them (`flexbridge uftp contract add|list|remove`,
`flexbridge uftp reservation-update`; docs/protocols/uftp-3.1.md, "Contracts").

A contract names its AGR (a uftp peer of role AGR) and its congestion point by EA1 address;
the AGR must be active at the congestion point (`uftp congestion-point add --agr`), else its
offers under the contract would be "Invalid CongestionPoint" anyway. The rules of the
contract itself (ContractID, validity, reserved powers) are the store's
(store/uftp_contracts.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from hub.peer_state import state_of
from protocols.uftp.v3_1.congestion_points import address_of
from protocols.uftp.v3_1.identity import identity_of
from protocols.uftp.v3_1.market import Market
from protocols.uftp.v3_1.reservations import send_reservation_update
from protocols.uftp.v3_1.transport import PROTOCOL
from store.addresses import EA1Address
from store.db import Database
from store.entities import get_entity_by_id
from store.errors import NotFound, ValidationError
from store.peers import find_peer, get_peer
from store.references import find, parse_address
from store.tenants import get_tenant
from store.timeutil import utcnow
from store.uftp import Trade
from store.uftp_contracts import (
    Contract,
    NewContract,
    add_contract,
    contracts_of,
    get_contract,
    remove_contract,
)


@dataclass(frozen=True, slots=True)
class ContractView:
    """A contract with its AGR and congestion point by name, for the operator."""

    contract: Contract
    agr: str
    congestion_point: str


async def add(
    db: Database, tenant_name: str, agr: str, point_address: str, new: NewContract
) -> ContractView:
    address = parse_address(point_address, "--congestion-point")
    if not isinstance(address, EA1Address):
        raise ValidationError("--congestion-point", "a congestion point is named by an EA1 address")
    async with db.transaction() as tx:
        tenant = await get_tenant(tx, tenant_name)
        peer = await find_peer(tx, tenant, PROTOCOL, agr)
        if peer is None:
            raise NotFound("uftp peer", agr)
        point = await find(tx, tenant, address)
        if point is None:
            raise NotFound("congestion point", str(address))
        if str(address) not in state_of(peer).congestion_points:
            raise ValidationError(
                "--agr",
                f"{agr} is not active at {address} (uftp congestion-point add --agr {agr})",
            )
        contract = await add_contract(tx, tenant, peer, point, new)
    return ContractView(contract, peer.name, str(address))


async def listing(db: Database, tenant_name: str, agr: str | None = None) -> list[ContractView]:
    async with db.read() as tx:
        tenant = await get_tenant(tx, tenant_name)
        peer = None
        if agr is not None:
            peer = await find_peer(tx, tenant, PROTOCOL, agr)
            if peer is None:
                raise NotFound("uftp peer", agr)
        views = []
        for contract in await contracts_of(tx, tenant, peer=peer):
            owner = await get_peer(tx, tenant, contract.peer_id)
            point = await get_entity_by_id(tx, tenant, contract.entity_id)
            views.append(ContractView(contract, owner.name, await address_of(tx, tenant, point)))
    return views


async def remove(db: Database, tenant_name: str, contract_id: str) -> Contract:
    async with db.transaction() as tx:
        return await remove_contract(tx, await get_tenant(tx, tenant_name), contract_id)


async def reservation_update(
    db: Database, tenant_name: str, contract_id: str, period: date, market: Market
) -> Trade:
    """Queue the contract's FlexReservationUpdate for the Period now (delivered by the
    outbox of whichever flexbridge process runs on this database)."""
    async with db.transaction() as tx:
        tenant = await get_tenant(tx, tenant_name)
        contract = await get_contract(tx, tenant, contract_id)
        identity = await identity_of(tx, tenant, market.domain)
        return await send_reservation_update(
            tx, tenant, contract, period, market, identity, utcnow()
        )
