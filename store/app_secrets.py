"""Secrets the application makes for itself once and keeps (the JWT signing key)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from store.tables import app_secrets


async def get_or_create_secret(tx: AsyncConnection, name: str, make: Callable[[], str]) -> str:
    query = select(app_secrets.c.value).where(app_secrets.c.name == name)
    stored: str | None = (await tx.execute(query)).scalar_one_or_none()
    if stored is not None:
        return stored
    value = make()
    try:
        async with tx.begin_nested():
            await tx.execute(app_secrets.insert().values(name=name, value=value))
    except IntegrityError:  # another process made it first: use theirs
        theirs: str = (await tx.execute(query)).scalar_one()
        return theirs
    return value
