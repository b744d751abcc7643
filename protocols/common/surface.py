"""How a protocol describes itself to the adapter that mounts it.

A protocol version exports one `Surface`: its routes, how its peers authenticate (the
adapter runs that), which roles may call it, and how its errors look on the wire (the
adapter calls `render_error` for anything a handler raises, so every failure is answered in
the protocol's own envelope).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from aiohttp import web

from hub.optimum import SendOptimum
from hub.runtime import Hub, PlanHook
from store.accounts import Account, Role
from store.db import Database
from store.errors import FieldIssue

_H = TypeVar("_H", bound=Callable[..., Awaitable[web.StreamResponse]])


class Auth(StrEnum):
    """Authentication schemes the adapter knows (DESIGN.md section 7)."""

    BASIC_AND_TENANT_KEY = "basic+tenant-key"  # CP-API 4.1.3: the key on every call
    # OCMP (section 7: "basic authentication"): the account names the tenant; a key that is
    # sent is checked all the same.
    BASIC_TENANT_KEY_OPTIONAL = "basic+optional-tenant-key"
    SHARED_ACCESS_SIGNATURE = "sas"  # CP-API 5.2.1 event hub: one token per gateway
    TOKEN = "token"  # OSCP 2.0: "Authorization: Token <token>"
    # UFTP: the body is signed; the surface's own `authenticate` verifies it and names the
    # signer's account (the adapter still brakes guessing and applies the rate budget).
    SIGNED_BODY = "signed-body"
    # The USEF API (FlexMeasures 0.3): "Authorization: <token>", the token alone, from
    # requestAuthToken; "Bearer <token>" tolerated.
    BARE_TOKEN = "bare-token"


class ProtocolError(Exception):
    """A refusal in the protocol's own terms: HTTP status, protocol code, words, fields."""

    def __init__(
        self, status: int, code: str, message: str, issues: Sequence[FieldIssue] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.issues = tuple(issues)


class AuthError(Exception):
    """Not authenticated (HTTP 401): missing, malformed or wrong credentials. Raised by the
    adapter's authentication of a surface and by a protocol's own credential parsing."""

    status = 401

    def __init__(self, reason: str, *, www_authenticate: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.www_authenticate = www_authenticate


class Forbidden(AuthError):
    """Authenticated but not allowed (HTTP 403); carries no challenge."""

    status = 403

    def __init__(self, reason: str) -> None:
        super().__init__(reason, www_authenticate=None)


@dataclass(frozen=True, slots=True)
class Refusal:
    """What a failure means on the wire (the adapter decides, adapter.refusals), for the
    surface to answer in its own envelope."""

    status: int
    code: str
    message: str
    issues: Sequence[FieldIssue] = ()
    headers: Mapping[str, str] | None = None
    request_id: str | None = None  # the X-Request-ID answered
    # The request's, for an envelope that names them (the USEF API's `type`, INVALID_METHOD).
    method: str = ""
    path: str = ""


def public(handler: _H) -> _H:
    """Mark a handler that is served without authentication (a version listing, a login)."""
    setattr(handler, _PUBLIC, True)
    return handler


def is_public(handler: object) -> bool:
    return getattr(handler, _PUBLIC, False) is True


_PUBLIC = "__flexbridge_public__"


# A refusal -> the protocol's error answer.
ErrorRenderer = Callable[[Refusal], web.Response]


@dataclass(frozen=True, slots=True)
class Surface:
    name: str
    routes: tuple[web.AbstractRouteDef, ...]
    auth: Auth
    roles: frozenset[Role]
    realm: str
    render_error: ErrorRenderer
    # Run by the adapter's clock about every second: heartbeats, offline peers, re-sends.
    clock: Callable[[Database, Hub, datetime], Awaitable[None]] | None = None
    # Called with each series of a plan the hub writes (tx, tenant, entity, series, points).
    on_plan: PlanHook | None = None
    # Named sets of per-peer wire choices a peer of this surface may be given (`--dialect`).
    dialects: frozenset[str] = frozenset()
    # The protocol its peers have in the peer table, and how it sends such a peer a group's
    # optimum once a plan job has made it (a surface that answers capacity limits).
    peer_protocol: str | None = None
    send_optimum: SendOptimum | None = None
    # Auth.SIGNED_BODY: the account whose peer signed the request (AuthError when no key
    # of the sender verifies it).
    authenticate: Callable[[web.Request], Awaitable[Account]] | None = None
    # Answers of this protocol's peers that mean "try again later" beyond the outbox's own
    # (timeouts, 408, 425, 429, 5xx): UFTP's 404 and 419.
    retry_statuses: frozenset[int] = frozenset()
