"""Secrets the application makes for itself once and keeps (the JWT signing key)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from store.tables import app_secrets


async def get_or_create_secret(tx: AsyncConnection, name: str, make: Callable[[], str]) -> str:
    query = select(app_secrets.c.value).where(app_secrets.c.name == name)
    value = (await tx.execute(query)).scalar_one_or_none()
    if value is not None:
        return value
    value = make()
    try:
        async with tx.begin_nested():
            await tx.execute(app_secrets.insert().values(name=name, value=value))
    except IntegrityError:  # another process made it first: use theirs
        return (await tx.execute(query)).scalar_one()
    return value
