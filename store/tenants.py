"""Tenants: the wall between pilots. Every other repository function takes one."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from store.db import inserted_id
from store.errors import Conflict, NotFound, ValidationError
from store.secrets import hash_token, new_secret
from store.tables import tenants
from store.timeutil import to_micros, utcnow

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True, slots=True)
class Tenant:
    id: int
    name: str


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name or ""):
        raise ValidationError(
            "name", "1-100 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )


async def add_tenant(tx: AsyncConnection, name: str) -> tuple[Tenant, str]:
    """Create a tenant; returns it with its tenant key (shown once, stored hashed)."""
    _check_name(name)
    key = new_secret()
    try:
        result = await tx.execute(
            insert(tenants).values(
                name=name, key_hash=hash_token(key), created_at=to_micros(utcnow())
            )
        )
    except IntegrityError:
        raise Conflict(f"tenant {name!r} already exists") from None
    return Tenant(inserted_id(result), name), key


async def get_tenant(tx: AsyncConnection, name: str) -> Tenant:
    row = (
        await tx.execute(select(tenants.c.id, tenants.c.name).where(tenants.c.name == name))
    ).first()
    if row is None:
        raise NotFound("tenant", name)
    return Tenant(row.id, row.name)


async def tenant_for_key(tx: AsyncConnection, key: str) -> Tenant | None:
    query = select(tenants.c.id, tenants.c.name).where(tenants.c.key_hash == hash_token(key))
    row = (await tx.execute(query)).first()
    return None if row is None else Tenant(row.id, row.name)


async def list_tenants(tx: AsyncConnection) -> list[Tenant]:
    rows = await tx.execute(select(tenants.c.id, tenants.c.name).order_by(tenants.c.id))
    return [Tenant(row.id, row.name) for row in rows]


async def count_tenants(tx: AsyncConnection) -> int:
    return (await tx.execute(select(func.count()).select_from(tenants))).scalar_one()
