"""getService (A.4), public in every version: the endpoints this version serves, each with
the USEF roles it is for; `access` keeps those for one role (INVALID_ROLE when none is)."""

from __future__ import annotations

from collections.abc import Collection

from aiohttp import web

from protocols.common.surface import public
from protocols.usef.v1_v2_0.envelope import processed
from protocols.usef.v1_v2_0.errors import UsefError
from protocols.usef.v1_v2_0.fields import fields_of, version_of
from protocols.usef.v1_v2_0.versions import NUMBERS, SERVICES


def listing(version: str, served: Collection[str], access: str | None) -> list[dict[str, object]]:
    return [
        {"name": s.name, "access": list(s.access), "description": s.description}
        for s in SERVICES
        if s.name in served and s.in_version(version) and (access is None or access in s.access)
    ]


def get_service(served: Collection[str]) -> web.RouteTableDef:
    """The getService route of every version, listing the endpoints in `served`."""
    routes = web.RouteTableDef()

    @public
    async def handler(request: web.Request) -> web.Response:
        version = version_of(request)
        access = (await fields_of(request)).get("access")
        if access is not None and not isinstance(access, str):
            raise UsefError("INVALID_ROLE", role=repr(access)[:80])
        services = listing(version, served, access)
        if access is not None and not services:
            raise UsefError("INVALID_ROLE", role=access[:80])
        return processed("getService", version=NUMBERS[version], services=services)

    for version in NUMBERS:
        routes.get(f"/{version}/getService")(handler)
    return routes
