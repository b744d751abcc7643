"""UFTP trading state (docs/protocols/uftp-3.1.md): the D-Prognosis revisions of each AGR
per congestion point and Period."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from store.entities import Entity
from store.peers import Peer
from store.tables import uftp_prognoses
from store.tenants import Tenant
from store.timeutil import to_micros, utcnow


async def prognosis_revision(
    tx: AsyncConnection, peer: Peer, point: Entity, period: date
) -> int | None:
    """The highest revision of the peer's D-Prognosis for the congestion point and Period
    accepted so far, its row locked until the transaction ends (None: none yet)."""
    query = (
        select(uftp_prognoses.c.revision)
        .where(
            uftp_prognoses.c.peer_id == peer.id,
            uftp_prognoses.c.entity_id == point.id,
            uftp_prognoses.c.period == period.isoformat(),
        )
        .with_for_update()
    )
    revision: int | None = (await tx.execute(query)).scalar_one_or_none()
    return revision


async def keep_prognosis(
    tx: AsyncConnection,
    tenant: Tenant,
    peer: Peer,
    point: Entity,
    period: date,
    *,
    revision: int,
    message_id: str,
    replaces: bool,
) -> None:
    """Record an accepted revision (`replaces`: one was kept before, as prognosis_revision
    said in this transaction)."""
    values = {"revision": revision, "message_id": message_id, "received_at": to_micros(utcnow())}
    if replaces:
        await tx.execute(
            update(uftp_prognoses)
            .where(
                uftp_prognoses.c.peer_id == peer.id,
                uftp_prognoses.c.entity_id == point.id,
                uftp_prognoses.c.period == period.isoformat(),
            )
            .values(**values)
        )
        return
    await tx.execute(
        uftp_prognoses.insert().values(
            tenant_id=tenant.id,
            peer_id=peer.id,
            entity_id=point.id,
            period=period.isoformat(),
            **values,
        )
    )
