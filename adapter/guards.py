"""Request-level authentication: the building blocks of `adapter.auth` applied to a request.

Each protocol surface calls the guards its spec asks for (basic + tenant key, token, JWT)
and turns AuthError/Forbidden into its own envelope. 401 (who are you?) and 403 (you may
not) stay distinct throughout.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections import OrderedDict

from aiohttp import web

from adapter.auth import (
    Claims,
    basic_challenge,
    parse_basic_auth,
    parse_token_auth,
    retry_after,
    token_challenge,
    verify_jwt,
)
from adapter.keys import CREDENTIAL_CACHE, DB, JWT_SECRET, LOGIN_CACHE, RATE_LIMITER, SETTINGS
from protocols.common.surface import AuthError, Forbidden
from protocols.cpapi.v1 import sas
from store.accounts import Account, Login, account_for_token, password_hash_of
from store.secrets import hash_token, verify_password
from store.tenants import Tenant


class CredentialCache:
    """Recently verified basic credentials, so that basic auth on every request does not pay
    scrypt (~50 ms of CPU) each time. Entries are keyed by a SHA-256 of the username, the
    password and the stored hash, so a changed password never matches an old entry."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._max = max_entries
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    @staticmethod
    def key(username: str, password: str, stored_hash: str) -> bytes:
        return hashlib.sha256("\0".join((username, password, stored_hash)).encode()).digest()

    def __contains__(self, key: bytes) -> bool:
        if key in self._seen:
            self._seen.move_to_end(key)
            return True
        return False

    def add(self, key: bytes) -> None:
        self._seen[key] = None
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)


class LoginCache:
    """Logins read from the database in the last `ttl` seconds, by username: a peer sending
    heartbeats every few milliseconds would otherwise pay a database read per request for an
    answer that changes when an operator edits an account. A changed password, a removed
    account or a new tenant key takes effect within `ttl` (setting `login_cache_seconds`)."""

    def __init__(self, ttl: float, max_entries: int = 4096) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._logins: OrderedDict[str, tuple[float, Login]] = OrderedDict()

    def get(self, username: str) -> Login | None:
        found = self._logins.get(username)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def put(self, username: str, login: Login) -> None:
        if self._ttl <= 0:
            return
        self._logins[username] = (time.monotonic() + self._ttl, login)
        self._logins.move_to_end(username)
        while len(self._logins) > self._max:
            self._logins.popitem(last=False)


async def _login_of(request: web.Request, username: str) -> Login | None:
    cache = request.config_dict[LOGIN_CACHE]
    login = cache.get(username)
    if login is None:
        async with request.config_dict[DB].read() as tx:
            login = await password_hash_of(tx, username)
    return login


async def basic_login(request: web.Request, realm: str = "flexbridge") -> Login:
    """The login named by HTTP basic credentials; AuthError (401) when absent or wrong."""
    credentials = parse_basic_auth(request.headers.get("Authorization"), realm=realm)
    if credentials is None:
        raise AuthError("basic authentication required", www_authenticate=basic_challenge(realm))
    username, password = credentials
    found = await _login_of(request, username)
    loop = asyncio.get_running_loop()
    if found is None:
        # Pay the same scrypt cost as for a known user, so timing does not reveal usernames.
        await loop.run_in_executor(None, verify_password, password, None)
        raise AuthError("unknown user or wrong password", www_authenticate=basic_challenge(realm))
    cache = request.config_dict[CREDENTIAL_CACHE]
    key = cache.key(username, password, found.password_hash)
    if key not in cache:
        if not await loop.run_in_executor(None, verify_password, password, found.password_hash):
            raise AuthError(
                "unknown user or wrong password", www_authenticate=basic_challenge(realm)
            )
        cache.add(key)
    request.config_dict[LOGIN_CACHE].put(username, found)  # only logins that verified
    return found


async def token_account(
    request: web.Request,
    scheme: str = "Bearer",
    realm: str = "flexbridge",
    *,
    unknown_is_forbidden: bool = False,
) -> Account:
    """The account owning an opaque token sent as `Authorization: <scheme> <token>`.

    No token (or another scheme): 401. An unknown, expired or revoked token: 401 as RFC 6750
    has it, or 403 where the protocol says so (`unknown_is_forbidden`; OSCP 2.0)."""
    token = parse_token_auth(request.headers.get("Authorization"), scheme, realm=realm)
    if token is None:
        raise AuthError(
            f"header Authorization: {scheme} <token> required",
            www_authenticate=token_challenge(scheme, realm),
        )
    async with request.config_dict[DB].read() as tx:
        account = await account_for_token(tx, token)
    if account is None:
        if unknown_is_forbidden:
            raise Forbidden("unknown token")
        raise AuthError(
            "unknown or expired token",
            www_authenticate=token_challenge(scheme, realm, error="invalid_token"),
        )
    return account


def jwt_claims(request: web.Request, realm: str = "flexbridge") -> Claims:
    """Claims of a valid HS256 bearer JWT; AuthError names why one is refused."""
    token = parse_token_auth(request.headers.get("Authorization"), "Bearer", realm=realm)
    if token is None:
        raise AuthError("bearer token required", www_authenticate=token_challenge("Bearer", realm))
    return verify_jwt(request.config_dict[JWT_SECRET], token)


def tenant_of(request: web.Request, login: Login) -> Tenant:
    """CP-API 4.1.3.4: "The tenant Key must be provided in the header to each API call."

    Missing -> 401 (the credentials are incomplete); a key that is not the account's tenant's
    -> 403 (the caller is known but may not reach that tenant). Checked against the hash read
    with the login, so a request costs one database read for both.
    """
    header = request.config_dict[SETTINGS].tenant_key_header
    key = request.headers.get(header)
    if not key:
        raise AuthError(
            f"header {header} (tenant key) required", www_authenticate=basic_challenge()
        )
    if not hmac.compare_digest(hash_token(key), login.tenant_key_hash):
        raise Forbidden(f"the tenant key in {header} is not this account's")
    return login.account.tenant


def tenant_of_optional_key(request: web.Request, login: Login) -> Tenant:
    """OCMP: "Communication will be over HTTPS using basic authentication" (section 7), so
    the login alone names the tenant (its account's). A tenant key sent anyway is checked as
    `tenant_of` checks it: one that is not the account's tenant's is 403, never ignored, so a
    CPO misconfigured for another tenant learns of it."""
    if not request.headers.get(request.config_dict[SETTINGS].tenant_key_header):
        return login.account.tenant
    return tenant_of(request, login)


def enforce_rate_limit(request: web.Request, account: Account) -> None:
    """Per-account budget; 429 with Retry-After when spent."""
    wait = request.config_dict[RATE_LIMITER].check(f"account:{account.id}")
    if wait > 0:
        raise web.HTTPTooManyRequests(
            text=f"rate limit of account {account.username!r} reached",
            headers={"Retry-After": retry_after(wait)},
        )


__all__ = [
    "AuthError",
    "CredentialCache",
    "Forbidden",
    "basic_login",
    "enforce_rate_limit",
    "jwt_claims",
    "tenant_of",
    "tenant_of_optional_key",
    "token_account",
]


async def gateway_account(request: web.Request) -> Account:
    """The gateway (event-hub publisher) a SharedAccessSignature was issued to.

    The signature must be one flexbridge issued (found by hash), unexpired, for the resource
    of this request, and the publisher in the path must be that gateway's own: "A device
    cannot impersonate another device" (CP-API 5.2.1).
    """
    signature = sas.parse_token(request.headers.get("Authorization"))
    if signature.expiry <= time.time():
        raise AuthError("SharedAccessSignature expired", www_authenticate=sas.SCHEME)
    async with request.config_dict[DB].read() as tx:
        account = await account_for_token(tx, signature.signature)
    if account is None:
        raise AuthError("unknown SharedAccessSignature", www_authenticate=sas.SCHEME)
    publisher = request.path.removesuffix("/messages")
    try:
        resource = sas.resource_path(signature.resource)
    except ValueError:
        raise AuthError("sr is not a resource URI", www_authenticate=sas.SCHEME) from None
    if resource != publisher.rstrip("/").lower():
        raise AuthError(
            "the SharedAccessSignature is for another publisher", www_authenticate=sas.SCHEME
        )
    if request.match_info.get("gateway_id") != account.username:
        raise Forbidden("a device cannot impersonate another device")
    return account
