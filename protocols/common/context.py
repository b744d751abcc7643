"""What a protocol handler may use of the running application.

The adapter owns the application and wires protocols onto it; protocols never import the
adapter. These keys are the meeting point: the adapter stores the database and the caller
here, handlers read them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiohttp import web

from protocols.common.peer_link import HeartbeatLedger
from store.accounts import Account
from store.db import Database
from store.tenants import Tenant


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the request, after the surface's authentication."""

    account: Account
    tenant: Tenant


@dataclass(frozen=True, slots=True)
class Hub:
    """What the adapter tells protocols about the running server."""

    public_url: str  # how peers reach this server, e.g. https://flexbridge.example
    heartbeat_seconds: float  # the heartbeat interval we ask of peers
    resend_after: timedelta  # optimal forecasts are re-sent on new inputs at most this often
    wake_outbox: Callable[[], None]  # after a commit that queued messages: send them now
    solve: Callable[[Any], Awaitable[Any]]  # GroupProblem -> GroupPlan, off the event loop
    # What protocols do with each series of a written plan (CP-API: section 6 messages).
    plan_hooks: tuple[Callable[..., Awaitable[Any]], ...] = ()
    # Heartbeats written in the last second, by account.
    heartbeats: HeartbeatLedger = field(default_factory=HeartbeatLedger)


DB = web.AppKey("db", Database)
HUB = web.AppKey("hub", Hub)
CALLER = web.RequestKey("caller", Caller)
REQUEST_ID = web.RequestKey("request_id", str)


def request_id_of(request: web.Request) -> str | None:
    return request.get(REQUEST_ID)


def caller_of(request: web.Request) -> Caller:
    return request[CALLER]


def database_of(request: web.Request) -> Database:
    return request.config_dict[DB]


def hub_of(request: web.Request) -> Hub:
    return request.config_dict[HUB]
