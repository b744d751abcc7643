"""Peers provisioned out of band (`flexbridge peer add`, the conformance kit): a peer of a
protocol that handshakes and beats, and the account of role `peer` it logs in with: for
OCMP a username and password (basic authentication), for OSCP a token
(`Authorization: Token`, the out-of-band token A of OSCP 2.0's registration); for UFTP no
login at all: its messages are signed, and the peer's role and public keys verify them (its
account, with a password nobody is told, only carries its rate budget and message log).
What is generated is returned once; only hashes are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.peer_state import UnknownIds, edit
from store.accounts import Role, add_account, record_token
from store.db import Database
from store.errors import NotFound
from store.peers import Peer, add_peer, find_peer, get_peer, update_peer
from store.secrets import new_secret
from store.tenants import get_tenant

PROTOCOLS = ("ocmp", "oscp", "uftp")
TOKEN_PROTOCOLS = frozenset({"oscp"})
SIGNING_PROTOCOLS = frozenset({"uftp"})


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
    dialect: str | None = None  # one of the protocol surface's dialects (checked by the caller)
    role: str | None = None  # UFTP: the role the peer signs as (AGR, CRO)
    public_keys: tuple[str, ...] = ()  # UFTP: keys that verify it (checked by the caller)


@dataclass(frozen=True, slots=True)
class Login:
    """What the peer's operator is told: the username, and the password or the token that
    was generated (None when it was given)."""

    username: str
    password: str | None
    token: str | None


async def provision_peer(db: Database, new: NewPeer) -> Login:
    """Record the peer and its login."""
    if new.protocol not in PROTOCOLS:
        raise ValueError(f"--protocol: {new.protocol!r} is not one of {', '.join(PROTOCOLS)}")
    async with db.transaction() as tx:
        tenant = await get_tenant(tx, new.tenant)
        username = new.username or f"{new.protocol}-{new.tenant}-{new.name}"
        account, password = await add_account(tx, tenant, username, Role.PEER, new.password)
        token = None
        if new.protocol in TOKEN_PROTOCOLS:
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
        async with edit(tx, peer) as state:
            state.unknown_ids, state.dialect = new.unknown_ids, new.dialect
            state.role, state.public_keys = new.role, list(new.public_keys)
    if new.protocol in SIGNING_PROTOCOLS:
        return Login(username, None, None)
    return Login(username, password, token)


@dataclass(frozen=True, slots=True)
class PeerChange:
    """What `flexbridge peer update` changes; None leaves a setting as it is."""

    tenant: str
    protocol: str
    name: str
    base_url: str | None = None
    unknown_ids: UnknownIds | None = None
    dialect: str | None = None
    public_keys: tuple[str, ...] | None = None  # UFTP: replaces the keys (a rotation: two)


async def change_peer(db: Database, change: PeerChange) -> Peer:
    """Change how a provisioned peer is treated; NotFound when there is no such peer."""
    async with db.transaction() as tx:
        tenant = await get_tenant(tx, change.tenant)
        peer = await find_peer(tx, tenant, change.protocol, change.name)
        if peer is None:
            raise NotFound(f"{change.protocol} peer", change.name)
        if change.base_url is not None:
            peer = await update_peer(tx, tenant, peer, base_url=change.base_url)
        async with edit(tx, peer) as state:
            if change.unknown_ids is not None:
                state.unknown_ids = change.unknown_ids
            if change.dialect is not None:
                state.dialect = change.dialect
            if change.public_keys is not None:
                state.public_keys = list(change.public_keys)
        return await get_peer(tx, tenant, peer.id)
