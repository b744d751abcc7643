"""Secrets the application makes for itself once and keeps: the JWT signing key (clear, it
never leaves the server), a tenant's UFTP signing key (sealed by its maker,
store/secret_box.py)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from store.secret_box import SecretBox, SecretUnreadable, is_sealed
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


async def get_secret(tx: AsyncConnection, name: str) -> str | None:
    """The secret kept under `name`, or None when none was made yet."""
    query = select(app_secrets.c.value).where(app_secrets.c.name == name)
    stored: str | None = (await tx.execute(query)).scalar_one_or_none()
    return stored


async def reseal_app_secrets(tx: AsyncConnection, box: SecretBox) -> tuple[int, list[str]]:
    """Seal again, under the first key of `box`, every secret kept sealed; how many were
    rewritten and a line for each no key opens (left as it is)."""
    query = select(app_secrets.c.name, app_secrets.c.value).with_for_update()
    rewritten, unreadable = 0, []
    for name, value in (await tx.execute(query)).all():
        if not is_sealed(value):
            continue
        try:
            sealed = box.reseal(value, name)
        except SecretUnreadable as exc:
            unreadable.append(str(exc))
            continue
        await tx.execute(update(app_secrets).where(app_secrets.c.name == name).values(value=sealed))
        rewritten += 1
    return rewritten, unreadable
