"""The naming authority flexbridge mints its EA1 addresses under (A.7, issue item 5):
the setting `usef_naming_authority` (`ea1.<YYYY-MM>.<reversed domain>`), else
`ea1.<YYYY-MM>.<reversed host of public_url>` with the month it was first needed, made once
and kept (so that addresses minted later share it), like the JWT key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from store.addresses import build_ea1
from store.app_secrets import get_or_create_secret


@dataclass(frozen=True, slots=True)
class Naming:
    authority: str | None  # the setting; None: the default below
    host: str  # of public_url


NAMING = web.AppKey("usef_naming", Naming)
_KEPT = "usef-naming-authority"


def default_authority(host: str, today: date) -> str:
    """`ea1.<YYYY-MM>.<reversed host>`: the EA1 address of `host` without its local part."""
    return str(build_ea1(host, "-", year=today.year, month=today.month)).rsplit(":", 1)[0]


async def authority_of(tx: AsyncConnection, naming: Naming, today: date) -> str:
    if naming.authority:
        return naming.authority
    return await get_or_create_secret(tx, _KEPT, lambda: default_authority(naming.host, today))
