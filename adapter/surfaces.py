"""Mounting protocol surfaces: authentication and error answers, wired around the routes.

Each protocol version exports a `Surface`; `mount` puts its routes in a sub-application
whose middleware authenticates the caller the way the surface asks, checks its role and
rate budget, and turns whatever a handler raises into the protocol's own error answer.
"""

from __future__ import annotations

import logging
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from marshmallow import ValidationError as SchemaError
from sqlalchemy.exc import OperationalError

from adapter.auth import AuthError, Forbidden
from adapter.guards import basic_account, enforce_rate_limit, gateway_account, tenant_of
from protocols.common.context import CALLER, Caller, request_id_of
from protocols.common.surface import Auth, ProtocolError, Surface
from protocols.common.wire import marshmallow_issues
from store.errors import Conflict, NotFound, StoreError, ValidationError

log = logging.getLogger("flexbridge.surface")


async def _authenticate(request: web.Request, surface: Surface) -> Caller:
    if surface.auth is Auth.BASIC_AND_TENANT_KEY:
        account = await basic_account(request, realm=surface.realm)
        tenant = await tenant_of(request, account)
    elif surface.auth is Auth.SHARED_ACCESS_SIGNATURE:
        account = await gateway_account(request)
        tenant = account.tenant
    else:  # pragma: no cover - a Surface with a scheme this adapter does not know
        raise RuntimeError(f"unknown auth scheme {surface.auth}")
    if account.role not in surface.roles:
        raise Forbidden(f"role {account.role} may not use {surface.name}")
    enforce_rate_limit(request, account)
    return Caller(account, tenant)


def _store_status(exc: StoreError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    return 400


def surface_middleware(surface: Surface) -> Middleware:
    render = surface.render_error

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = request_id_of(request)
        try:
            request[CALLER] = await _authenticate(request, surface)
            return await handler(request)
        except AuthError as exc:
            headers = {"WWW-Authenticate": exc.www_authenticate} if exc.www_authenticate else None
            code = "forbidden" if exc.status == 403 else "unauthorized"
            return render(exc.status, code, exc.reason, rid, (), headers)
        except ProtocolError as exc:
            return render(exc.status, exc.code, exc.message, rid, exc.issues, None)
        except SchemaError as exc:
            issues = marshmallow_issues(exc.messages)
            return render(
                400,
                "invalid",
                f"the request does not match the {surface.name} types",
                rid,
                issues,
                None,
            )
        except StoreError as exc:
            issues = exc.issues if isinstance(exc, ValidationError) else ()
            return render(_store_status(exc), exc.code, str(exc), rid, issues, None)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {
                k: v for k, v in exc.headers.items() if k.lower() in {"retry-after", "allow"}
            }
            code = "rate_limited" if exc.status == 429 else "http_error"
            return render(exc.status, code, exc.text or exc.reason, rid, (), headers)
        except OperationalError as exc:  # busy or unreachable database: retryable, not a bug
            log.warning("%s: database unavailable on %s: %s", surface.name, request.path, exc.orig)
            return render(
                503,
                "unavailable",
                "the database is busy or unavailable; retry",
                rid,
                (),
                {"Retry-After": "1"},
            )
        except Exception:
            error_id = str(uuid.uuid4())
            log.exception(
                "%s error %s on %s %s (request %s)",
                surface.name,
                error_id,
                request.method,
                request.path,
                rid,
            )
            return render(
                500, "internal_error", f"unexpected error; quote error id {error_id}", rid, (), None
            )

    return middleware


def mount(app: web.Application, prefix: str, surface: Surface) -> None:
    sub = web.Application(middlewares=[surface_middleware(surface)])
    sub.add_routes(surface.routes)
    app.add_subapp(prefix, sub)
