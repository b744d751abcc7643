"""Mounting protocol surfaces: authentication and error answers, wired around the routes.

Each protocol version exports a `Surface`; `mount` puts its routes in a sub-application
whose middleware authenticates the caller the way the surface asks, checks its role and
rate budget, and turns whatever a handler raises into the protocol's own error answer.

Surfaces mounted at one prefix (the CP-API and the USEF API both at /api by default) share
one sub-application, as aiohttp lets only one claim a prefix: a request a route matches is
that route's surface's; one no route matches (404, 405) is the surface's that has a route
beginning with the request's first path segment under the prefix, else the first mounted
there. A handler marked `public` is served without authentication.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from adapter.guards import (
    basic_login,
    enforce_rate_limit,
    gateway_account,
    signed_account,
    tenant_for,
    token_account,
)
from adapter.middlewares import refuse_declared_oversize, refuse_long_target
from adapter.refusals import refusal_of
from protocols.common.context import CALLER, Caller
from protocols.common.surface import Auth, Forbidden, Surface, is_public


async def _authenticate(request: web.Request, surface: Surface) -> Caller:
    if surface.auth is Auth.BASIC_AND_TENANT_KEY:
        login = await basic_login(request, realm=surface.realm)
        account, tenant = login.account, await tenant_for(request, login)
    elif surface.auth is Auth.BASIC_TENANT_KEY_OPTIONAL:
        login = await basic_login(request, realm=surface.realm)
        account, tenant = login.account, await tenant_for(request, login, key_required=False)
    elif surface.auth is Auth.SHARED_ACCESS_SIGNATURE:
        account = await gateway_account(request)
        tenant = account.tenant
    elif surface.auth is Auth.TOKEN:
        account = await token_account(request, "Token", surface.realm, unknown_is_forbidden=True)
        tenant = account.tenant
    elif surface.auth is Auth.BARE_TOKEN:
        account = await token_account(request, "Bearer", surface.realm, bare=True)
        tenant = account.tenant
    elif surface.auth is Auth.SIGNED_BODY and surface.authenticate is not None:
        account = await signed_account(request, surface.authenticate)
        tenant = account.tenant
    else:  # pragma: no cover - a Surface with a scheme this adapter does not know
        raise RuntimeError(f"unknown auth scheme {surface.auth}")
    if account.role not in surface.roles:
        raise Forbidden(f"role {account.role} may not use {surface.name}")
    enforce_rate_limit(request, account)
    return Caller(account, tenant)


class _Dispatch:
    """Which of the surfaces sharing a sub-application a request belongs to."""

    def __init__(self, surfaces: Sequence[Surface], routes: dict[int, Surface]) -> None:
        self.default = surfaces[0]
        self.routes = routes  # id(route) -> its surface
        self.first_segments = {
            segment: surface
            for surface in reversed(surfaces)
            for segment in _first_segments(surface)
        }

    def surface_of(self, request: web.Request, prefix: str) -> Surface:
        route = request.match_info.route
        found = self.routes.get(id(route))
        if found is not None:
            return found
        rest = request.path[len(prefix) :].lstrip("/")
        return self.first_segments.get(rest.split("/", 1)[0].lower(), self.default)


def _first_segments(surface: Surface) -> set[str]:
    """The literal first path segments of a surface's routes, in lower case."""
    segments = set()
    for route in surface.routes:
        path = getattr(route, "path", None)
        if isinstance(path, str) and "{" not in (first := path.lstrip("/").split("/", 1)[0]):
            segments.add(first.lower())
    return segments


def surface_middleware(prefix: str, dispatch: _Dispatch) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        surface = dispatch.surface_of(request, prefix)
        try:
            # What the request is refused for whoever sends it comes before authentication:
            # a path the surface does not have (404), a method its path does not take (405,
            # with Allow), a target too long, a body too large. No credential is checked
            # for a request that will not be served.
            refuse_long_target(request)
            if (unroutable := request.match_info.http_exception) is not None:
                raise unroutable
            refuse_declared_oversize(request)
            if not is_public(request.match_info.handler):
                request[CALLER] = await _authenticate(request, surface)
            return await handler(request)
        except Exception as exc:
            refusal = refusal_of(exc, request, surface.name)
            if refusal is None:
                raise
            return surface.render_error(refusal)

    return middleware


def mount(app: web.Application, mounts: Sequence[tuple[str, Surface]]) -> None:
    """Each (prefix, surface) onto `app`, surfaces of one prefix in one sub-application."""
    by_prefix: dict[str, list[Surface]] = {}
    for prefix, surface in mounts:
        by_prefix.setdefault(prefix.rstrip("/") or "/", []).append(surface)
    for prefix, surfaces in by_prefix.items():
        routes: dict[int, Surface] = {}
        sub = web.Application()
        for surface in surfaces:
            for route in sub.router.add_routes(surface.routes):
                routes[id(route)] = surface
        sub.middlewares.append(surface_middleware(prefix, _Dispatch(surfaces, routes)))
        app.add_subapp(prefix, sub)
