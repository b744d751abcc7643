"""Peers: the counterparts flexbridge sends to (CPOs, DSOs, aggregators) and how to reach them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from store.app_secrets import reseal_app_secrets
from store.db import inserted_id, secrets_of
from store.errors import Conflict, NotFound, ValidationError
from store.secret_box import SecretBox, SecretUnreadable, open_secret, seal_secret
from store.tables import peers, tenants
from store.tenants import Tenant
from store.timeutil import from_micros, to_micros, utcnow

_URL = re.compile(r"https?://[^\s/$.?#][^\s]*", re.IGNORECASE)


class OutboundAuth(StrEnum):
    """How flexbridge authenticates toward the peer."""

    NONE = "none"
    BASIC = "basic"
    TOKEN = "token"  # OSCP: "Authorization: Token <token>"
    BEARER = "bearer"


@dataclass(frozen=True, slots=True)
class Peer:
    id: int
    tenant: Tenant
    protocol: str
    name: str
    base_url: str | None
    auth: OutboundAuth
    username: str | None
    # The column as stored: sealed (store/secret_box.py), or clear text from before sealing.
    stored_secret: str | None
    account_id: int | None
    state: Mapping[str, Any] = field(default_factory=dict)
    last_seen_at: datetime | None = None
    box: SecretBox | None = field(default=None, repr=False, compare=False)

    @property
    def has_secret(self) -> bool:
        return bool(self.stored_secret)

    @property
    def secret(self) -> str | None:
        """The credential we present to the peer, opened when asked for: a peer whose secret
        no key opens can still be read, listed and heard from; only sending to it fails."""
        owner = peer_label(self.protocol, self.name, self.tenant.name)
        return open_secret(self.box, self.stored_secret, owner)


def peer_label(protocol: str, name: str, tenant: str = "") -> str:
    """How an error names a peer."""
    return f"{protocol} peer {name!r}" + (f" of tenant {tenant!r}" if tenant else "")


def _peer(row: Any, tenant: Tenant, box: SecretBox | None) -> Peer:
    return Peer(
        row.id,
        tenant,
        row.protocol,
        row.name,
        row.base_url,
        OutboundAuth(row.auth_kind),
        row.out_username,
        row.out_secret,
        row.account_id,
        dict(row.state),
        None if row.last_seen_at is None else from_micros(row.last_seen_at),
        box,
    )


def check_base_url(url: str | None, field_name: str = "base_url") -> str | None:
    if url is None:
        return None
    if not _URL.fullmatch(url):
        raise ValidationError(field_name, f"{url!r} is not an http(s) URL")
    return url.rstrip("/")


async def add_peer(
    tx: AsyncConnection,
    tenant: Tenant,
    *,
    protocol: str,
    name: str,
    base_url: str | None,
    auth: OutboundAuth = OutboundAuth.NONE,
    username: str | None = None,
    secret: str | None = None,
    account_id: int | None = None,
) -> Peer:
    if not name:
        raise ValidationError("name", "required")
    base_url = check_base_url(base_url)
    box = secrets_of(tx)
    stored = seal_secret(box, secret)
    try:
        result = await tx.execute(
            insert(peers).values(
                tenant_id=tenant.id,
                protocol=protocol,
                name=name,
                base_url=base_url,
                auth_kind=str(auth),
                out_username=username,
                out_secret=stored,
                account_id=account_id,
                state={},
                created_at=to_micros(utcnow()),
            )
        )
    except IntegrityError:
        raise Conflict(f"{protocol} peer {name!r} already exists") from None
    return Peer(
        inserted_id(result),
        tenant,
        protocol,
        name,
        base_url,
        auth,
        username,
        stored,
        account_id,
        {},
        box=box,
    )


async def get_peer(
    tx: AsyncConnection, tenant: Tenant, peer_id: int, *, for_update: bool = False
) -> Peer:
    query = select(peers).where(peers.c.id == peer_id, peers.c.tenant_id == tenant.id)
    if for_update:
        query = query.with_for_update()
    row = (await tx.execute(query)).first()
    if row is None:
        raise NotFound("peer", f"#{peer_id}")
    return _peer(row, tenant, secrets_of(tx))


async def find_peer(tx: AsyncConnection, tenant: Tenant, protocol: str, name: str) -> Peer | None:
    query = select(peers).where(
        peers.c.tenant_id == tenant.id, peers.c.protocol == protocol, peers.c.name == name
    )
    row = (await tx.execute(query)).first()
    return None if row is None else _peer(row, tenant, secrets_of(tx))


async def peer_for_account(
    tx: AsyncConnection, tenant: Tenant, protocol: str, account_id: int, *, for_update: bool = False
) -> Peer | None:
    """The peer an account speaks for; `for_update` locks its row (PostgreSQL) so that a
    state written from this copy (`replace_state`) loses no concurrent change."""
    query = select(peers).where(
        peers.c.tenant_id == tenant.id,
        peers.c.protocol == protocol,
        peers.c.account_id == account_id,
    )
    if for_update:
        query = query.with_for_update()
    row = (await tx.execute(query)).first()
    return None if row is None else _peer(row, tenant, secrets_of(tx))


async def list_peers(
    tx: AsyncConnection, tenant: Tenant, protocol: str | None = None
) -> list[Peer]:
    query = select(peers).where(peers.c.tenant_id == tenant.id).order_by(peers.c.id)
    if protocol is not None:
        query = query.where(peers.c.protocol == protocol)
    box = secrets_of(tx)
    return [_peer(row, tenant, box) for row in await tx.execute(query)]


async def peers_named(tx: AsyncConnection, protocol: str, name: str) -> list[Peer]:
    """Every tenant's peer of `protocol` called `name`: for a protocol whose endpoint is
    shared by every tenant and whose messages name their sender (UFTP's SenderDomain)."""
    query = (
        select(peers, tenants.c.name.label("tenant_name"))
        .join(tenants, tenants.c.id == peers.c.tenant_id)
        .where(peers.c.protocol == protocol, peers.c.name == name)
        .order_by(peers.c.id)
    )
    box = secrets_of(tx)
    rows = await tx.execute(query)
    return [_peer(row, Tenant(row.tenant_id, row.tenant_name), box) for row in rows]


async def peers_of_protocol(tx: AsyncConnection, protocol: str) -> list[Peer]:
    """Every tenant's peers of one protocol: for the clock that sends heartbeats."""
    query = (
        select(peers, tenants.c.name.label("tenant_name"))
        .join(tenants, tenants.c.id == peers.c.tenant_id)
        .where(peers.c.protocol == protocol)
        .order_by(peers.c.id)
    )
    box = secrets_of(tx)
    rows = await tx.execute(query)
    return [_peer(row, Tenant(row.tenant_id, row.tenant_name), box) for row in rows]


async def replace_state(
    tx: AsyncConnection,
    tenant: Tenant,
    locked: Peer,
    state: Mapping[str, Any],
    *,
    seen: datetime | None = None,
) -> Peer:
    """Write the whole `state` (hub.peer_state's JSON) of a peer read in this transaction
    with its row locked: one statement, for the hot paths (a heartbeat)."""
    changes: dict[str, Any] = {"state": dict(state)}
    if seen is not None:
        changes["last_seen_at"] = to_micros(seen)
    await tx.execute(
        update(peers)
        .where(peers.c.id == locked.id, peers.c.tenant_id == tenant.id)
        .values(**changes)
    )
    return replace(locked, state=dict(state), last_seen_at=seen or locked.last_seen_at)


async def update_peer(
    tx: AsyncConnection,
    tenant: Tenant,
    peer: Peer,
    *,
    base_url: str | None = None,
    auth: OutboundAuth | None = None,
    username: str | None = None,
    secret: str | None = None,
    seen: datetime | None = None,
) -> Peer:
    """Change how we reach the peer, where given (its state: hub.peer_state)."""
    changes: dict[str, Any] = {}
    if base_url is not None:
        changes["base_url"] = check_base_url(base_url)
    if auth is not None:
        changes["auth_kind"] = str(auth)
    if username is not None:
        changes["out_username"] = username
    if secret is not None:
        changes["out_secret"] = seal_secret(secrets_of(tx), secret)
    if seen is not None:
        changes["last_seen_at"] = to_micros(seen)
    if changes:
        await tx.execute(
            update(peers)
            .where(peers.c.id == peer.id, peers.c.tenant_id == tenant.id)
            .values(**changes)
        )
    return await get_peer(tx, tenant, peer.id)


async def reseal_secrets(tx: AsyncConnection, box: SecretBox) -> tuple[int, list[str]]:
    """Seal every stored peer secret under the first key of `box` (clear text from before
    sealing too): how many were rewritten, and one line for each that no key opens, which is
    left as it is while the others are rewritten."""
    query = (
        select(peers.c.id, peers.c.protocol, peers.c.name, peers.c.out_secret, tenants.c.name)
        .join(tenants, tenants.c.id == peers.c.tenant_id)
        .where(peers.c.out_secret.is_not(None), peers.c.out_secret != "")
        .order_by(peers.c.id)
        .with_for_update(of=peers)
    )
    rewritten = 0
    unreadable: list[str] = []
    for peer_id, protocol, name, stored, tenant_name in (await tx.execute(query)).all():
        try:
            sealed = box.reseal(stored, peer_label(protocol, name, tenant_name))
        except SecretUnreadable as exc:
            unreadable.append(str(exc))
            continue
        await tx.execute(update(peers).where(peers.c.id == peer_id).values(out_secret=sealed))
        rewritten += 1
    more, unread = await reseal_app_secrets(tx, box)
    return rewritten + more, unreadable + unread
