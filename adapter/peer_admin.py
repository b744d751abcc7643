"""`flexbridge peer add|update|list`: the CLI's words around hub.provisioning (what a new
peer's operator is told, which dialects a protocol has) and the peer table."""

from __future__ import annotations

from datetime import datetime

from hub.peer_link import is_online
from hub.peer_state import state_of
from hub.provisioning import PROTOCOLS, NewPeer, PeerChange, change_peer, provision_peer
from protocols.ocmp import v1_0 as ocmp
from protocols.oscp import v2_0 as oscp
from protocols.uftp.v3_1.sealing import BadKey, public_key
from store.db import Database
from store.peers import Peer, list_peers
from store.tenants import get_tenant

__all__ = ["PROTOCOLS", "NewPeer", "PeerChange", "add", "describe", "update"]

# The dialects a peer of each protocol may be given (its surface declares them).
DIALECTS = {"ocmp": ocmp.SURFACE.dialects, "oscp": oscp.CO_SURFACE.dialects}
# The roles a UFTP peer of a DSO may sign as.
UFTP_ROLES = ("AGR", "CRO")


def _check_dialect(protocol: str, dialect: str | None) -> None:
    known = DIALECTS.get(protocol, frozenset())
    if dialect is not None and dialect not in known:
        named = ", ".join(sorted(known)) or "none"
        raise ValueError(f"--dialect: {protocol} has no dialect {dialect!r} (it has: {named})")


def _check_signing(protocol: str, role: str | None, public_keys: tuple[str, ...]) -> None:
    """UFTP peers need a role and a key; other peers may have neither."""
    if protocol != "uftp":
        if role is not None or public_keys:
            raise ValueError(f"--role, --public-key: only for uftp peers, not {protocol}")
        return
    if role not in UFTP_ROLES:
        raise ValueError(f"--role: a uftp peer is one of {', '.join(UFTP_ROLES)}, not {role!r}")
    _check_keys(public_keys)


def _check_keys(public_keys: tuple[str, ...]) -> None:
    if not 1 <= len(public_keys) <= 2:
        raise ValueError("--public-key: one, or two while the peer rotates its key")
    for key in public_keys:
        try:
            public_key(key)
        except BadKey as exc:
            raise ValueError(f"--public-key {key!r}: {exc} (raw base64 of 32 bytes)") from None


async def add(db: Database, new: NewPeer) -> str:
    """Record the peer and its login; returns what to tell the peer's operator."""
    _check_dialect(new.protocol, new.dialect)
    _check_signing(new.protocol, new.role, new.public_keys)
    login = await provision_peer(db, new)
    if new.protocol == "uftp":
        return (
            f"uftp peer {new.name} of {new.tenant}: {new.role}, "
            f"{len(new.public_keys)} public key(s); give it ours: flexbridge uftp key "
            f"--tenant {new.tenant}"
        )
    if login.token is not None:
        shown = login.token if new.token is None else "(as given)"
        return f"{new.protocol} peer {new.name} of {new.tenant}: token {shown}"
    shown = login.password or "" if new.password is None else "(as given)"
    return (
        f"{new.protocol} peer {new.name} of {new.tenant}: "
        f"username {login.username} password {shown}"
    )


async def update(db: Database, change: PeerChange) -> str:
    _check_dialect(change.protocol, change.dialect)
    if change.public_keys is not None:
        if change.protocol != "uftp":
            raise ValueError(f"--public-key: only for uftp peers, not {change.protocol}")
        _check_keys(change.public_keys)
    peer = await change_peer(db, change)
    state = state_of(peer)
    return (
        f"{peer.protocol} peer {peer.name} of {change.tenant}: "
        f"dialect {state.dialect or 'standard'}, unknown ids {state.unknown_ids}"
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
