"""`flexbridge peer add` and `flexbridge peer list`: peers provisioned out of band.

A peer gets an account of role `peer` in its tenant, the login it uses with us: for OCMP a
username and password (basic authentication), for OSCP a token (`Authorization: Token`, the
out-of-band token A of OSCP 2.0's registration). What is generated is printed once; only
hashes are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.common.capacity import UnknownIds
from protocols.common.peer_link import is_online
from store.accounts import Role, add_account, record_token
from store.db import Database
from store.peers import Peer, add_peer, list_peers, update_peer
from store.secrets import new_secret
from store.tenants import get_tenant

PROTOCOLS = ("ocmp", "oscp")


@dataclass(frozen=True, slots=True)
class NewPeer:
    tenant: str
    protocol: str
    name: str
    base_url: str | None
    username: str | None = None
    password: str | None = None
    token: str | None = None
    unknown_ids: UnknownIds = UnknownIds.STRICT


async def add(db: Database, new: NewPeer) -> str:
    """Record the peer and its login; returns what to tell the peer's operator."""
    if new.protocol not in PROTOCOLS:
        raise ValueError(f"--protocol: {new.protocol!r} is not one of {', '.join(PROTOCOLS)}")
    async with db.transaction() as tx:
        tenant = await get_tenant(tx, new.tenant)
        username = new.username or f"{new.protocol}-{new.tenant}-{new.name}"
        account, password = await add_account(tx, tenant, username, Role.PEER, new.password)
        token = None
        if new.protocol == "oscp":
            token = new.token or new_secret()
            await record_token(tx, account, token, None)
        peer = await add_peer(
            tx,
            tenant,
            protocol=new.protocol,
            name=new.name,
            base_url=new.base_url,
            account_id=account.id,
        )
        await update_peer(tx, tenant, peer, state={"unknown_ids": str(new.unknown_ids)})
    if token is not None:
        shown = token if new.token is None else "(as given)"
        return f"{new.protocol} peer {new.name} of {new.tenant}: token {shown}"
    shown = password if new.password is None else "(as given)"
    return f"{new.protocol} peer {new.name} of {new.tenant}: username {username} password {shown}"


def _state(peer: Peer) -> str:
    state = peer.state
    parts = [
        "registered" if state.get("registered_at") else "",
        "handshaken" if state.get("handshaken_at") else "",
        ("online" if is_online(peer) else "offline") if state.get("offline_mode_at") else "",
    ]
    return ",".join(p for p in parts if p) or "new"


async def describe(db: Database, tenant_name: str) -> str:
    """One line per peer: protocol, name, state, last heartbeat, endpoint."""
    async with db.read() as tx:
        tenant = await get_tenant(tx, tenant_name)
        peers = await list_peers(tx, tenant)
    rows = [("PROTOCOL", "NAME", "STATE", "LAST HEARTBEAT", "ENDPOINT")]
    rows += [
        (
            p.protocol,
            p.name,
            _state(p),
            p.state.get("last_heartbeat_at") or "-",
            p.base_url or "-",
        )
        for p in peers
        if p.protocol in PROTOCOLS
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
