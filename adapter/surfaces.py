"""Mounting protocol surfaces: authentication and error answers, wired around the routes.

Each protocol version exports a `Surface`; `mount` puts its routes in a sub-application
whose middleware authenticates the caller the way the surface asks, checks its role and
rate budget, and turns whatever a handler raises into the protocol's own error answer.
"""

from __future__ import annotations

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
from protocols.common.surface import Auth, Forbidden, Surface


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
    elif surface.auth is Auth.SIGNED_BODY and surface.authenticate is not None:
        account = await signed_account(request, surface.authenticate)
        tenant = account.tenant
    else:  # pragma: no cover - a Surface with a scheme this adapter does not know
        raise RuntimeError(f"unknown auth scheme {surface.auth}")
    if account.role not in surface.roles:
        raise Forbidden(f"role {account.role} may not use {surface.name}")
    enforce_rate_limit(request, account)
    return Caller(account, tenant)


def surface_middleware(surface: Surface) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            # What the request is refused for whoever sends it comes before authentication:
            # a path the surface does not have (404), a method its path does not take (405,
            # with Allow), a target too long, a body too large. No credential is checked
            # for a request that will not be served.
            refuse_long_target(request)
            if (unroutable := request.match_info.http_exception) is not None:
                raise unroutable
            refuse_declared_oversize(request)
            request[CALLER] = await _authenticate(request, surface)
            return await handler(request)
        except Exception as exc:
            refusal = refusal_of(exc, request, surface.name)
            if refusal is None:
                raise
            return surface.render_error(refusal)

    return middleware


def mount(app: web.Application, prefix: str, surface: Surface) -> None:
    sub = web.Application(middlewares=[surface_middleware(surface)])
    sub.add_routes(surface.routes)
    app.add_subapp(prefix, sub)
