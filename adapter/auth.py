"""Authentication building blocks each protocol surface picks from (DESIGN.md section 7).

HTTP-agnostic and database-free: header parsers, a JWT issuer/verifier and a rate limiter.
Middlewares look credentials up in the store and turn :class:`AuthError` into a response:

- 401 (``AuthError``): the caller is not authenticated: credentials missing, malformed or
  wrong. A 401 must carry a ``WWW-Authenticate`` challenge (RFC 9110 section 15.5.2), so the
  error holds one; a surface may replace it with its own scheme's challenge.
- 403 (``Forbidden``): the caller IS authenticated but not allowed this: a tenant key that is
  not the account's, another tenant's data. Re-authenticating would not help, so no challenge.

Which scheme each surface uses: basic auth + tenant key (CP-API, OCMP), ``Token`` (OSCP),
``Bearer`` JWT (ETRM API), a bare token in ``Authorization`` (FlexMeasures-style USEF API).
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import jwt

from protocols.common.surface import AuthError

DEFAULT_REALM = "flexbridge"
JWT_ALGORITHM = "HS256"
# RFC 7518 section 3.2: an HS256 key must be at least as long as the hash output (256 bits).
MIN_JWT_SECRET_BYTES = 32
# Claims issue_jwt sets or verify_jwt checks; `extra` may not override them.
RESERVED_CLAIMS = frozenset({"sub", "tenant", "iat", "exp", "nbf", "aud"})


# --- errors ---------------------------------------------------------------------------------


def _quote(value: str) -> str:
    """RFC 9110 quoted-string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def basic_challenge(realm: str = DEFAULT_REALM) -> str:
    """``Basic realm="..."``; charset UTF-8 tells clients how we decode (RFC 7617 2.1)."""
    return f'Basic realm={_quote(realm)}, charset="UTF-8"'


def token_challenge(
    scheme: str,
    realm: str = DEFAULT_REALM,
    *,
    error: str | None = None,
    description: str | None = None,
) -> str:
    """A challenge for a token scheme (``Bearer`` per RFC 6750 section 3, OSCP ``Token``)."""
    params = [f"realm={_quote(realm)}"]
    if error:
        params.append(f"error={_quote(error)}")
    if description:
        params.append(f"error_description={_quote(description)}")
    return f"{scheme} " + ", ".join(params)


# --- header parsing -------------------------------------------------------------------------


def _split_scheme(header: str | None) -> tuple[str, str] | None:
    """``"Scheme credentials"`` -> (lowercased scheme, stripped credentials)."""
    if not header or not header.strip():
        return None
    # split() with no separator: any run of spaces or tabs separates scheme and credentials.
    parts = header.split(None, 1)
    return parts[0].lower(), parts[1].strip() if len(parts) == 2 else ""


def has_control_char(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def encode_basic_auth(user_id: str, password: str) -> str:
    """RFC 7617 ``Authorization`` value for outbound requests (UTF-8, as we advertise)."""
    if ":" in user_id:
        raise ValueError("a basic-auth user id cannot contain ':'")
    return "Basic " + base64.b64encode(f"{user_id}:{password}".encode()).decode("ascii")


def parse_basic_auth(header: str | None, *, realm: str = DEFAULT_REALM) -> tuple[str, str] | None:
    """RFC 7617 basic credentials -> (user id, password); None if absent or another scheme.

    The user id ends at the FIRST colon; the password may contain colons. Bytes are decoded
    as UTF-8 (what we advertise), falling back to ISO-8859-1 for older clients.
    """
    split = _split_scheme(header)
    if split is None or split[0] != "basic":
        return None
    challenge = basic_challenge(realm)
    try:
        raw = base64.b64decode(split[1], validate=True)
    except (binascii.Error, ValueError):
        raise AuthError(
            "malformed basic credentials: not base64", www_authenticate=challenge
        ) from None
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        decoded = raw.decode("latin-1")
    user_id, colon, password = decoded.partition(":")
    if not colon:
        raise AuthError(
            "malformed basic credentials: no ':' after the user id", www_authenticate=challenge
        )
    if has_control_char(decoded):
        raise AuthError(
            "malformed basic credentials: control character", www_authenticate=challenge
        )
    return user_id, password


def _parse_token(credentials: str, challenge: str) -> str:
    # Opaque tokens are one run of visible ASCII (RFC 6750 b64token is a subset): anything
    # with inner spaces or non-ASCII is malformed, not a token with a different value.
    if not credentials:
        raise AuthError("empty token", www_authenticate=challenge)
    if not all("\x21" <= c <= "\x7e" for c in credentials):
        raise AuthError("malformed token", www_authenticate=challenge)
    return credentials


def parse_token_auth(header: str | None, scheme: str, *, realm: str = DEFAULT_REALM) -> str | None:
    """``<scheme> <token>`` -> token (scheme case-insensitive, e.g. ``Token``, ``Bearer``).

    None when the header is absent or uses another scheme; AuthError when it is ours but the
    token is empty or malformed.
    """
    split = _split_scheme(header)
    if split is None or split[0] != scheme.lower():
        return None
    return _parse_token(split[1], token_challenge(scheme, realm, error="invalid_token"))


def parse_bare_token(
    header: str | None, *, scheme: str = "Token", realm: str = DEFAULT_REALM
) -> str | None:
    """A token sent as the whole header value (FlexMeasures USEF API: ``Authorization: <token>``).

    None when absent; `scheme` only names the challenge sent back on a malformed value.
    """
    if header is None or not header.strip():
        return None
    return _parse_token(header.strip(), token_challenge(scheme, realm, error="invalid_token"))


# --- JWT ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says; `extra` holds the claims outside RESERVED_CLAIMS."""

    subject: str
    tenant: str
    expires_at: datetime
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    issued_at: datetime | None = None


def _aware(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


def _check_secret(secret: str) -> bytes:
    key = secret.encode("utf-8")
    if len(key) < MIN_JWT_SECRET_BYTES:
        # A configuration error, not the caller's fault: fail loudly rather than mint weak tokens.
        raise ValueError(f"JWT secret must be at least {MIN_JWT_SECRET_BYTES} bytes")
    return key


def issue_jwt(
    secret: str,
    subject: str,
    tenant: str,
    ttl: timedelta,
    *,
    now: datetime | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """An HS256 JWT with ``sub``, ``tenant``, ``iat`` and ``exp`` (= iat + ttl) claims."""
    if ttl <= timedelta(0):
        raise ValueError("ttl must be positive")
    clash = RESERVED_CLAIMS.intersection(extra or {})
    if clash:
        raise ValueError(f"extra claims may not set {sorted(clash)}")
    issued = _aware(now)
    payload = {
        **(extra or {}),
        "sub": subject,
        "tenant": tenant,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    return jwt.encode(payload, _check_secret(secret), algorithm=JWT_ALGORITHM)


_DECODE_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.InvalidAudienceError, "token has an audience"),
    (jwt.DecodeError, "malformed token"),
)


def _decode(key: bytes, token: str) -> dict[str, Any]:
    """Signature and structure only; time claims are checked by us against an injectable `now`."""
    # Claim checks are ours too (sub type: PyJWT >= 2.10 checks it with its own error),
    # so reasons do not change with the PyJWT version.
    options: jwt.types.Options = {
        "verify_exp": False,
        "verify_iat": False,
        "verify_nbf": False,
        "verify_sub": False,
        "verify_jti": False,
        "require": ["sub", "exp"],
    }
    # algorithms is pinned: the header's "alg" is attacker-controlled, so "none" and
    # RS256-public-key-as-HMAC-secret confusion must never be honoured.
    try:
        return jwt.decode(token, key, algorithms=[JWT_ALGORITHM], options=options)
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"missing claim {exc.claim}") from None
    except jwt.InvalidTokenError as exc:
        reason = next((r for kind, r in _DECODE_REASONS if isinstance(exc, kind)), "invalid token")
        raise AuthError(reason) from None


def _timestamp(payload: Mapping[str, Any], name: str) -> datetime | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AuthError(f"malformed claim {name}")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise AuthError(f"malformed claim {name}") from None


def _check_times(
    payload: Mapping[str, Any], now: datetime, leeway: timedelta
) -> tuple[datetime, datetime | None]:
    expires_at = _timestamp(payload, "exp")
    if expires_at is None:  # _decode requires "exp"; this also narrows the type
        raise AuthError("missing claim exp")
    if now >= expires_at + leeway:
        raise AuthError("token expired")
    not_before = _timestamp(payload, "nbf")
    if not_before is not None and now + leeway < not_before:
        raise AuthError("token not yet valid")
    issued_at = _timestamp(payload, "iat")
    if issued_at is not None and now + leeway < issued_at:
        raise AuthError("token issued in the future")
    return expires_at, issued_at


def verify_jwt(
    secret: str,
    token: str,
    *,
    leeway: timedelta = timedelta(seconds=30),
    now: datetime | None = None,
    realm: str = DEFAULT_REALM,
) -> Claims:
    """Verify an HS256 token from :func:`issue_jwt`; AuthError (401) with the reason if not."""
    key = _check_secret(secret)
    try:
        payload = _decode(key, token)
        expires_at, issued_at = _check_times(payload, _aware(now), leeway)
        for name in ("sub", "tenant"):
            if name not in payload:
                raise AuthError(f"missing claim {name}")
            if not isinstance(payload[name], str) or not payload[name]:
                raise AuthError(f"malformed claim {name}")
    except AuthError as exc:
        challenge = token_challenge("Bearer", realm, error="invalid_token", description=exc.reason)
        raise AuthError(exc.reason, www_authenticate=challenge) from None
    extra = {k: v for k, v in payload.items() if k not in RESERVED_CLAIMS}
    return Claims(
        subject=payload["sub"],
        tenant=payload["tenant"],
        expires_at=expires_at,
        extra=MappingProxyType(extra),
        issued_at=issued_at,
    )


# --- rate limiting --------------------------------------------------------------------------


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Per-key token buckets: `burst` requests at once, refilled at `rate` per second.

    Memory is bounded by `max_keys`. A bucket idle long enough to be full again is the same
    as no bucket, so those are dropped first (lossless); only if every remaining bucket is
    still refilling is the least recently used one dropped, which at worst hands that key a
    fresh burst. Keep one instance per surface in app state; it is not shared across
    processes (each process limits on its own).
    """

    # Float refill arithmetic may land a hair under a whole token; don't make callers wait
    # for a femtosecond.
    _EPSILON = 1e-9

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate must be > 0, burst >= 1 and max_keys >= 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        # Insertion order doubles as recency order: a used key is moved to the end.
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _refilled(self, bucket: _Bucket, now: float) -> float:
        # max(0, ...): a clock that steps back must not drain the bucket.
        elapsed = max(0.0, now - bucket.updated)
        return min(self.burst, bucket.tokens + elapsed * self.rate)

    def _make_room(self, now: float) -> None:
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if self._refilled(oldest, now) < self.burst - self._EPSILON:
                break
            self._buckets.popitem(last=False)
        while len(self._buckets) >= self.max_keys:
            self._buckets.popitem(last=False)

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[key] = _Bucket(tokens=self.burst, updated=now)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def check(self, key: str, now: float | None = None, *, cost: float = 1.0) -> float:
        """Take `cost` tokens for `key`: 0.0 if allowed, else the seconds until it would be.

        A refused request takes nothing, so a client retrying too early is not punished more.
        """
        if not 0 < cost <= self.burst:
            raise ValueError(f"cost must be in (0, burst={self.burst}]")
        now = self._clock() if now is None else now
        bucket = self._bucket(key, now)
        bucket.tokens = self._refilled(bucket, now)
        bucket.updated = now
        if bucket.tokens >= cost - self._EPSILON:
            bucket.tokens = max(0.0, bucket.tokens - cost)
            return 0.0
        return (cost - bucket.tokens) / self.rate


def retry_after(wait: float) -> str:
    """A ``Retry-After`` header value (whole seconds, rounded up, at least 1)."""
    return str(max(1, math.ceil(wait)))
