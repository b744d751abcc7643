"""What a protocol handler may use of the running application.

The adapter owns the application and wires protocols onto it; protocols never import the
adapter. These keys are the meeting point: the adapter stores the database and the caller
here, handlers read them.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from store.accounts import Account
from store.db import Database
from store.tenants import Tenant


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the request, after the surface's authentication."""

    account: Account
    tenant: Tenant


DB = web.AppKey("db", Database)
CALLER = web.RequestKey("caller", Caller)
REQUEST_ID = web.RequestKey("request_id", str)


def request_id_of(request: web.Request) -> str | None:
    return request.get(REQUEST_ID)


def caller_of(request: web.Request) -> Caller:
    return request[CALLER]


def database_of(request: web.Request) -> Database:
    return request.config_dict[DB]
