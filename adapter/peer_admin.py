"""`flexbridge peer add` and `flexbridge peer list`: the CLI's words around
hub.provisioning (what a new peer's operator is told) and the peer table."""

from __future__ import annotations

from datetime import datetime

from hub.peer_link import is_online
from hub.peer_state import state_of
from hub.provisioning import PROTOCOLS, NewPeer, provision_peer
from store.db import Database
from store.peers import Peer, list_peers
from store.tenants import get_tenant

__all__ = ["PROTOCOLS", "NewPeer", "add", "describe"]


async def add(db: Database, new: NewPeer) -> str:
    """Record the peer and its login; returns what to tell the peer's operator."""
    login = await provision_peer(db, new)
    if login.token is not None:
        shown = login.token if new.token is None else "(as given)"
        return f"{new.protocol} peer {new.name} of {new.tenant}: token {shown}"
    shown = login.password or "" if new.password is None else "(as given)"
    return (
        f"{new.protocol} peer {new.name} of {new.tenant}: "
        f"username {login.username} password {shown}"
    )


def _state(peer: Peer) -> str:
    state = state_of(peer)
    parts = [
        "registered" if state.registered_at else "",
        "handshaken" if state.handshaken_at else "",
        ("online" if is_online(peer) else "offline") if state.offline_mode_at else "",
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
            _when(state_of(p).last_heartbeat_at),
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


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.isoformat().replace("+00:00", "Z")
