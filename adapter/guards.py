"""Request-level authentication: the building blocks of `adapter.auth` applied to a request.

Each protocol surface calls the guards its spec asks for (basic + tenant key, token, JWT)
and turns AuthError/Forbidden into its own envelope. 401 (who are you?) and 403 (you may
not) stay distinct throughout. Every guard asks the brake (`adapter.throttle`) first and
tells it what failed: a locked account or client address is answered 429 before any hash is
computed or token looked up.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from aiohttp import web

from adapter.auth import (
    Claims,
    basic_challenge,
    has_control_char,
    parse_bare_token,
    parse_basic_auth,
    parse_token_auth,
    retry_after,
    token_challenge,
    verify_jwt,
)
from adapter.keys import (
    BRAKE,
    CREDENTIAL_CACHE,
    DB,
    JWT_SECRET,
    LOGIN_CACHE,
    RATE_LIMITER,
    SETTINGS,
)
from adapter.throttle import address_key
from protocols.common.surface import AuthError, Forbidden
from protocols.cpapi.v1 import sas
from store.accounts import (
    Account,
    Login,
    account_for_token,
    edit_login_failures,
    login_name,
    password_hash_of,
)
from store.db import text_limit
from store.errors import NotFound
from store.secrets import hash_token, verify_password
from store.tables import accounts
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
    account, a new tenant key or an unlock by `flexbridge account unlock` takes effect
    within `ttl` (setting `login_cache_seconds`). A locked login is kept too, so that a peer
    hammering a locked account is refused from memory."""

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


def client_address(request: web.Request) -> str:
    """The client as the brake counts it: the socket peer; with `trusted_proxy_hops` = n,
    the n-th X-Forwarded-For entry from the right, the one the outermost of our proxies saw.
    The header alone is never believed: anyone can write it."""
    hops = request.config_dict[SETTINGS].trusted_proxy_hops
    address = request.remote
    if hops:
        entries = [
            entry.strip()
            for value in request.headers.getall("X-Forwarded-For", ())
            for entry in value.split(",")
            if entry.strip()
        ]
        if len(entries) >= hops:
            address = entries[-hops]
    return address_key(address)


def _verified_before(request: web.Request, login: Login, password: str) -> bool:
    cache = request.config_dict[CREDENTIAL_CACHE]
    return cache.key(login.account.username, password, login.password_hash) in cache


async def basic_login(request: web.Request, realm: str = "flexbridge") -> Login:
    """The login named by HTTP basic credentials; AuthError (401) when absent or wrong, 429
    when the account or the client address is locked."""
    brake = request.config_dict[BRAKE]
    address = client_address(request)
    brake.refuse_address(address, "basic")
    try:
        credentials = parse_basic_auth(request.headers.get("Authorization"), realm=realm)
    except AuthError:
        brake.count("basic", "malformed")
        raise
    if credentials is None:
        raise AuthError("basic authentication required", www_authenticate=basic_challenge(realm))
    username, password = credentials
    return await _login(request, address, username, password, "basic", basic_challenge(realm))


async def password_account(request: web.Request, name: str, password: str) -> Account:
    """The account a login body names, by its username or its email, with its password
    (USEF requestAuthToken), braked as basic credentials are: AuthError (401) when wrong,
    429 when locked."""
    brake = request.config_dict[BRAKE]
    address = client_address(request)
    brake.refuse_address(address, "password")
    if not (_storable(name, _EMAIL_LIMIT) and _storable(password, None)):
        brake.count("password", "malformed")  # no account can be named so: nothing to hash
        raise AuthError("unknown user or wrong password")
    async with request.config_dict[DB].read() as tx:
        username = await login_name(tx, name)
    login = await _login(request, address, username, password, "password", None)
    return login.account


_EMAIL_LIMIT = max(text_limit(accounts.c.username), text_limit(accounts.c.email))


def _storable(text: str, limit: int | None) -> bool:
    """Text a login may hold: no control character or lone surrogate (PostgreSQL refuses
    NUL), within the column's length."""
    if (limit is not None and len(text) > limit) or has_control_char(text):
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def _login(
    request: web.Request,
    address: str,
    username: str,
    password: str,
    scheme: str,
    challenge: str | None,
) -> Login:
    known = _verified_from_cache(request, username, password, scheme)
    if known is not None:
        return known  # heartbeats at 200/s: no database read, no hash
    async with request.config_dict[BRAKE].checks.turn(username):
        return await _check_password(request, address, username, password, scheme, challenge)


def _verified_from_cache(
    request: web.Request, username: str, password: str, scheme: str
) -> Login | None:
    """The login, when it was read lately and this password verified for it; 429 when the
    login read lately is locked."""
    known = request.config_dict[LOGIN_CACHE].get(username)
    if known is None:
        return None
    request.config_dict[BRAKE].refuse_account(known.failures, scheme)
    return known if _verified_before(request, known, password) else None


async def _check_password(
    request: web.Request,
    address: str,
    username: str,
    password: str,
    scheme: str,
    challenge: str | None,
) -> Login:
    """The slow path, one at a time per username: read the login afresh, refuse it when
    locked, else hash. The check before ours may have just verified or locked it."""
    known = _verified_from_cache(request, username, password, scheme)
    if known is not None:
        return known
    brake = request.config_dict[BRAKE]
    logins = request.config_dict[LOGIN_CACHE]
    async with request.config_dict[DB].read() as tx:
        found = await password_hash_of(tx, username)
    loop = asyncio.get_running_loop()
    refused = AuthError("unknown user or wrong password", www_authenticate=challenge)
    if found is None:
        brake.refuse_username(username, scheme)
        # Pay the same scrypt cost as for a known user, so timing does not reveal usernames.
        await loop.run_in_executor(None, verify_password, password, None)
        brake.username_failed(username, address)
        brake.failed(address, scheme, "unknown_user")
        raise refused
    logins.put(username, found)
    brake.refuse_account(found.failures, scheme)
    if not _verified_before(request, found, password):
        if not await loop.run_in_executor(None, verify_password, password, found.password_hash):
            await _account_failed(request, found, address, scheme, "wrong_password")
            raise refused
        cache = request.config_dict[CREDENTIAL_CACHE]
        cache.add(cache.key(username, password, found.password_hash))
    return found


async def _account_failed(
    request: web.Request, login: Login, address: str, scheme: str, reason: str
) -> None:
    """Count a failure of the account in the database (every process sees it) and of the
    client address; the login cache learns the new count, and so a lock, at once."""
    brake = request.config_dict[BRAKE]
    now = brake.clock()
    try:
        async with request.config_dict[DB].transaction() as tx:
            before, after = await edit_login_failures(
                tx, login.account, lambda failures: brake.accounts.after_failure(failures, now)
            )
    except NotFound:  # removed since it was read: nothing left to lock
        brake.failed(address, scheme, reason)
        return
    brake.account_failed(login.account, before, after, address, scheme, now)
    brake.failed(address, scheme, reason)
    request.config_dict[LOGIN_CACHE].put(login.account.username, login._replace(failures=after))


async def token_account(
    request: web.Request,
    scheme: str = "Bearer",
    realm: str = "flexbridge",
    *,
    unknown_is_forbidden: bool = False,
    bare: bool = False,
) -> Account:
    """The account owning an opaque token sent as `Authorization: <scheme> <token>`, or
    with `bare` as the whole header value (the USEF API), `<scheme> <token>` tolerated.

    No token (or another scheme): 401. An unknown, expired or revoked token: 401 as RFC 6750
    has it, or 403 where the protocol says so (`unknown_is_forbidden`; OSCP 2.0). A token
    names no account until it is found, so failures lock the client address only."""
    brake = request.config_dict[BRAKE]
    label = scheme.lower()
    address = client_address(request)
    brake.refuse_address(address, label)
    try:
        header = request.headers.get("Authorization")
        token = parse_token_auth(header, scheme, realm=realm)
        if token is None and bare:
            token = parse_bare_token(header, scheme=scheme, realm=realm)
    except AuthError:
        brake.count(label, "malformed")
        raise
    if token is None:
        raise AuthError(
            f"header Authorization: {scheme} <token> required",
            www_authenticate=token_challenge(scheme, realm),
        )
    async with request.config_dict[DB].read() as tx:
        account = await account_for_token(tx, token)
    if account is None:
        brake.failed(address, label, "unknown_token")
        if unknown_is_forbidden:
            raise Forbidden("unknown token")
        raise AuthError(
            "unknown or expired token",
            www_authenticate=token_challenge(scheme, realm, error="invalid_token"),
        )
    return account


async def signed_account(
    request: web.Request, verify: Callable[[web.Request], Awaitable[Account]]
) -> Account:
    """The account of the peer whose key verified the request's signed body (`verify`, the
    surface's). A signature names no account until it is verified, so a failure locks the
    client address only, as an unknown token does."""
    brake = request.config_dict[BRAKE]
    address = client_address(request)
    brake.refuse_address(address, "signature")
    try:
        return await verify(request)
    except AuthError:
        brake.failed(address, "signature", "bad_signature")
        raise


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


async def tenant_for(request: web.Request, login: Login, *, key_required: bool = True) -> Tenant:
    """The tenant of a basic login, as `tenant_of` (key required) or
    `tenant_of_optional_key` decide it; a wrong tenant key counts as a failed login of the
    account and of the client address, so guessing keys with a known password locks too."""
    try:
        if key_required:
            return tenant_of(request, login)
        return tenant_of_optional_key(request, login)
    except Forbidden:
        address = client_address(request)
        await _account_failed(request, login, address, "tenant_key", "wrong_tenant_key")
        raise


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
    "client_address",
    "enforce_rate_limit",
    "jwt_claims",
    "tenant_for",
    "tenant_of",
    "tenant_of_optional_key",
    "token_account",
]


async def gateway_account(request: web.Request) -> Account:
    """The gateway (event-hub publisher) a SharedAccessSignature was issued to.

    The signature must be one flexbridge issued (found by hash), unexpired, for the resource
    of this request, and the publisher in the path must be that gateway's own: "A device
    cannot impersonate another device" (CP-API 5.2.1). Failures lock the client address: a
    signature names no account until it is found, and counting them against the gateway
    named in the path would let anyone lock a gateway out by its public id.
    """
    brake = request.config_dict[BRAKE]
    address = client_address(request)
    brake.refuse_address(address, "sas")
    header = request.headers.get("Authorization")
    try:
        signature = sas.parse_token(header)
    except AuthError:
        if header and header.strip():
            brake.count("sas", "malformed")
        raise
    if signature.expiry <= brake.clock().timestamp():
        brake.count("sas", "expired")
        raise AuthError("SharedAccessSignature expired", www_authenticate=sas.SCHEME)
    async with request.config_dict[DB].read() as tx:
        account = await account_for_token(tx, signature.signature)
    if account is None:
        brake.failed(address, "sas", "unknown_signature")
        raise AuthError("unknown SharedAccessSignature", www_authenticate=sas.SCHEME)
    publisher = request.path.removesuffix("/messages")
    try:
        resource = sas.resource_path(signature.resource)
    except ValueError:
        brake.count("sas", "malformed")
        raise AuthError("sr is not a resource URI", www_authenticate=sas.SCHEME) from None
    if resource != publisher.rstrip("/").lower():
        brake.failed(address, "sas", "wrong_publisher")
        raise AuthError(
            "the SharedAccessSignature is for another publisher", www_authenticate=sas.SCHEME
        )
    if request.match_info.get("gateway_id") != account.username:
        brake.failed(address, "sas", "impersonation")
        raise Forbidden("a device cannot impersonate another device")
    return account
