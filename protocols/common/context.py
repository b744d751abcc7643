"""What a protocol handler may use of the running application.

The adapter owns the application and wires protocols onto it; protocols never import the
adapter. These keys are the meeting point: the adapter stores the database, the hub's
runtime (hub.runtime.Hub), the limits of work per request (hub.limits.Limits), its password
check and the caller here, handlers read them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from hub.inbound import Arrival, Message, receive
from hub.limits import Limits
from hub.runtime import Hub
from store.accounts import Account
from store.db import Database
from store.tenants import Tenant


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the request, after the surface's authentication."""

    account: Account
    tenant: Tenant


DB = web.AppKey("db", Database)
HUB = web.AppKey("hub", Hub)
LIMITS = web.AppKey("limits", Limits)
CALLER = web.RequestKey("caller", Caller)
# The account of a username and password sent in a body (a surface's own login route, the
# USEF API's requestAuthToken), checked by the adapter with its brake on guessing:
# AuthError when wrong, 429 while the account or the client address is locked.
PasswordLogin = Callable[[web.Request, str, str], Awaitable[Account]]
PASSWORD_LOGIN: web.AppKey[PasswordLogin] = web.AppKey("password_login")
REQUEST_ID = web.RequestKey("request_id", str)


def request_id_of(request: web.Request) -> str | None:
    return request.get(REQUEST_ID)


def caller_of(request: web.Request) -> Caller:
    return request[CALLER]


def login_with_password(request: web.Request, username: str, password: str) -> Awaitable[Account]:
    return request.config_dict[PASSWORD_LOGIN](request, username, password)


def database_of(request: web.Request) -> Database:
    return request.config_dict[DB]


def hub_of(request: web.Request) -> Hub:
    return request.config_dict[HUB]


_DEFAULT_LIMITS = Limits()


def limits_of(request: web.Request) -> Limits:
    """The limits the application was configured with (the defaults where it set none)."""
    return request.config_dict.get(LIMITS, _DEFAULT_LIMITS)


@asynccontextmanager
async def open_message(
    request: web.Request,
    protocol: str,
    message_type: str,
    *,
    message_id: str | None,
    from_peer: bool = True,
) -> AsyncIterator[Message]:
    """The request opened as an inbound message (hub.inbound.receive): the caller's tenant,
    its account (whose peer sent it, when `from_peer`) and the body as received."""
    caller = caller_of(request)
    arrival = Arrival(
        protocol,
        message_type,
        caller.tenant,
        await request.read(),
        message_id=message_id,
        account=caller.account if from_peer else None,
    )
    async with receive(database_of(request), arrival) as message:
        yield message
