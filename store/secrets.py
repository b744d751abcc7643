"""Secrets at rest: every password, token and key is stored hashed, never in clear.

Two kinds of secret, two kinds of hash:

- Passwords (basic-auth passwords of CP-API / OCMP accounts, dashboard logins) are chosen by
  people or copied around by them and may have little entropy. They are hashed with scrypt,
  a slow, memory-hard key-derivation function with a random 16-byte salt per hash, so that a
  leaked table cannot be brute-forced cheaply or attacked with precomputed tables. The cost
  parameters are part of the encoded string (``scrypt$n$r$p$salt$hash``) so they can be raised
  later without breaking stored hashes; :func:`needs_rehash` tells when to re-hash on login.
  Because each hash is salted, a password can only be checked against one stored hash, never
  looked up.
- High-entropy secrets that flexbridge generates itself (opaque API tokens, OSCP tokens,
  tenant keys, gateway keys) carry at least 128 random bits. Guessing them is hopeless however
  fast the hash, so slowness buys nothing; what they need is a lookup: the server receives a
  token and must find its owner. They are hashed with plain SHA-256 (no salt), which is
  deterministic and fast, so the hex digest can be an indexed, unique column. Never use
  :func:`hash_token` for anything a person chose.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import unicodedata

from store.errors import ValidationError

_SCHEME = "scrypt"
_SALT_BYTES = 16
_KEY_BYTES = 32
# Current cost: n=2**14, r=8 uses 16 MiB and ~50 ms per hash, the OWASP-recommended floor.
DEFAULT_N = 2**14
DEFAULT_R = 8
DEFAULT_P = 1
# Bounds on parameters read back from storage, so a corrupted or hostile row cannot make a
# login attempt allocate gigabytes or spin for minutes.
_MAX_N = 2**20
_MAX_R = 32
_MAX_P = 16
_MIN_SECRET_BYTES = 16


def _normalise(password: str) -> bytes:
    # surrogatepass: lone surrogates are legal in JSON escapes and must hash, not crash.
    # NFC so that the same visible password typed on two systems (composed vs decomposed
    # accents) gives the same bytes (RFC 8265 OpaqueString profile does the same).
    return unicodedata.normalize("NFC", password).encode("utf-8", "surrogatepass")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    # Room for scrypt's working set (128 * r * (n + p) bytes) plus slack; OpenSSL's default
    # 32 MiB cap would refuse legitimately raised parameters.
    maxmem = 2 * 128 * r * (n + p) + 1024 * 1024
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=maxmem)


def _params_ok(n: int, r: int, p: int) -> bool:
    power_of_two = n > 1 and n & (n - 1) == 0
    return power_of_two and n <= _MAX_N and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P


def hash_password(
    password: str, *, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = DEFAULT_P
) -> str:
    """Return ``scrypt$<n>$<r>$<p>$<b64 salt>$<b64 hash>`` for `password` (fresh random salt)."""
    if not isinstance(password, str):
        raise ValidationError("password", f"expected a string, got {type(password).__name__}")
    if not password:
        raise ValidationError("password", "password is empty")
    if not _params_ok(n, r, p):
        raise ValueError(f"scrypt parameters out of range: n={n} r={r} p={p}")
    salt = secrets.token_bytes(_SALT_BYTES)
    derived = _scrypt(_normalise(password), salt, n, r, p, _KEY_BYTES)
    return f"{_SCHEME}${n}${r}${p}${_b64(salt)}${_b64(derived)}"


def _decode(encoded: str) -> tuple[int, int, int, bytes, bytes] | None:
    """Split an encoded hash into (n, r, p, salt, key); None when it is not one of ours."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        return None
    try:
        n, r, p = (int(part, 10) for part in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        key = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return None
    if not _params_ok(n, r, p) or not salt or not key:
        return None
    return n, r, p, salt, key


def verify_password(password: str, encoded: str | None) -> bool:
    """True when `password` matches `encoded`; False for a mismatch or a malformed encoding.

    Pass ``encoded=None`` when the account does not exist: a full-cost hash is still computed
    so that response time does not reveal which user names exist.
    """
    decoded = _decode(encoded) if isinstance(encoded, str) else None
    if not isinstance(password, str):
        return False
    if decoded is None:
        if encoded is None:
            _scrypt(
                _normalise(password),
                bytes(_SALT_BYTES),
                DEFAULT_N,
                DEFAULT_R,
                DEFAULT_P,
                _KEY_BYTES,
            )
        return False
    n, r, p, salt, key = decoded
    candidate = _scrypt(_normalise(password), salt, n, r, p, len(key))
    return hmac.compare_digest(candidate, key)


def needs_rehash(
    encoded: str, *, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = DEFAULT_P
) -> bool:
    """True when `encoded` is malformed or was made with other cost parameters than these."""
    decoded = _decode(encoded) if isinstance(encoded, str) else None
    return decoded is None or decoded[:3] != (n, r, p)


def new_secret(nbytes: int = 32) -> str:
    """A URL-safe random secret of `nbytes` random bytes (at least 16) for tokens and keys."""
    if nbytes < _MIN_SECRET_BYTES:
        # hash_token's unsalted SHA-256 is only safe for secrets nobody can enumerate.
        raise ValueError(f"a secret needs at least {_MIN_SECRET_BYTES} random bytes, got {nbytes}")
    return secrets.token_urlsafe(nbytes)


def hash_token(token: str) -> str:
    """Hex SHA-256 of a high-entropy token: deterministic, so it can be an indexed column."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(token: str, token_hash: str) -> bool:
    """Constant-time check of `token` against a stored :func:`hash_token` digest."""
    if not token_hash.isascii():
        return False  # compare_digest refuses non-ASCII str; no digest of ours contains any
    return hmac.compare_digest(hash_token(token), token_hash.lower())


def new_password() -> str:
    """A generated password: 24 URL-safe characters (144 random bits), no ':' and no spaces.

    Base64url characters survive basic auth, JSON, shell quoting and copy-paste unchanged.
    """
    return secrets.token_urlsafe(18)
