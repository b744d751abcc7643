"""Who may call an endpoint (A.1 roles, A.4 listing): its service is reserved for some USEF
market roles, and the caller's account must hold one of them (`flexbridge account add
--usef-roles`), else 403 INVALID_SENDER naming both. A flexbridge admin may call every one,
as an operator looking into a tenant must."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from protocols.common.context import caller_of
from protocols.common.surface import Forbidden
from protocols.usef.v1_v2_0.versions import Service
from store.accounts import Account, Role

Handler = Callable[[web.Request], Awaitable[web.Response]]


def may_call(account: Account, service: Service) -> bool:
    return account.role is Role.ADMIN or bool(set(account.usef_roles) & set(service.access))


def reserved(service: Service, handler: Handler) -> Handler:
    """`handler`, for callers holding one of the roles its service is for."""

    async def checked(request: web.Request) -> web.Response:
        account = caller_of(request).account
        if not may_call(account, service):
            held = ", ".join(account.usef_roles) or "in no USEF role"
            raise Forbidden(
                f"You are {held} while this service is reserved for {', '.join(service.access)}."
            )
        return await handler(request)

    return checked
