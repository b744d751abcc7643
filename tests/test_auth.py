"""adapter.auth: header parsing, HS256 JWTs, 401 vs 403, rate limiting."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from adapter.auth import (
    Claims,
    RateLimiter,
    issue_jwt,
    parse_bare_token,
    parse_basic_auth,
    parse_token_auth,
    retry_after,
    verify_jwt,
)
from protocols.common.surface import AuthError, Forbidden

SECRET = "0123456789abcdef0123456789abcdef-test-secret"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode("ascii")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def forge(header: dict[str, object], payload: dict[str, object], key: bytes | None) -> str:
    """A JWT built by hand, signed with HMAC-SHA256 under `key` (or unsigned)."""
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    signature = (
        b"" if key is None else hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    )
    return signing_input + "." + b64url(signature)


def auth_reason(secret: str, token: str, **kwargs: object) -> str:
    with pytest.raises(AuthError) as info:
        verify_jwt(secret, token, **kwargs)  # type: ignore[arg-type]
    assert info.value.status == 401
    return info.value.reason


# --- errors -----------------------------------------------------------------------------


def test_auth_error_is_401_with_challenge_and_forbidden_is_403_without() -> None:
    error = AuthError("wrong password", www_authenticate='Basic realm="flexbridge"')
    forbidden = Forbidden("tenant key is not this account's")
    assert (error.status, error.www_authenticate) == (401, 'Basic realm="flexbridge"')
    assert (forbidden.status, forbidden.www_authenticate) == (403, None)
    assert isinstance(forbidden, AuthError)
    assert forbidden.reason == "tenant key is not this account's"


# --- basic auth -------------------------------------------------------------------------


def test_basic_auth_rfc7617_example() -> None:
    """RFC 7617 section 2: user-id "Aladdin", password "open sesame" ->
    "Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==" ."""
    assert parse_basic_auth("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==") == ("Aladdin", "open sesame")


def test_basic_auth_utf8_rfc7617_example() -> None:
    """RFC 7617 section 2.1: user-id "test", password "123£" encoded as UTF-8 ->
    "dGVzdDoxMjPCow==" ."""
    assert parse_basic_auth("Basic dGVzdDoxMjPCow==") == ("test", "123\u00a3")


def test_basic_auth_latin1_fallback() -> None:
    assert parse_basic_auth(basic(b"test:123\xa3")) == ("test", "123\u00a3")


def test_basic_auth_password_may_contain_colons() -> None:
    """RFC 7617: "a user-id containing a colon character is invalid", so the FIRST colon
    splits and the password keeps the rest."""
    assert parse_basic_auth(basic(b"user:pa:ss:word:")) == ("user", "pa:ss:word:")
    assert parse_basic_auth(basic(b"user:")) == ("user", "")


@pytest.mark.parametrize("scheme", ["Basic", "basic", "BASIC"])
def test_basic_auth_scheme_is_case_insensitive(scheme: str) -> None:
    """RFC 7617: "the scheme name is case-insensitive"."""
    header = f"{scheme}   QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    assert parse_basic_auth(header) == ("Aladdin", "open sesame")


@pytest.mark.parametrize(
    "header", [None, "", "   ", "Bearer abc", "Token abc", "Basically QWxhZGRpbjpvcGVuIHNlc2FtZQ=="]
)
def test_basic_auth_absent_or_other_scheme_is_none(header: str | None) -> None:
    assert parse_basic_auth(header) is None


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Basic not*base64", "malformed basic credentials: not base64"),
        ("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ", "malformed basic credentials: not base64"),
        (basic(b"no-colon-here"), "malformed basic credentials: no ':' after the user id"),
        ("Basic", "malformed basic credentials: no ':' after the user id"),
        (basic(b"user:pass\nword"), "malformed basic credentials: control character"),
    ],
)
def test_basic_auth_malformed_raises_401_with_basic_challenge(header: str, reason: str) -> None:
    with pytest.raises(AuthError) as info:
        parse_basic_auth(header)
    assert info.value.reason == reason
    assert info.value.status == 401
    assert info.value.www_authenticate == 'Basic realm="flexbridge", charset="UTF-8"'


# --- token auth -------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["Token abc123", "token abc123", "TOKEN  abc123 "])
def test_oscp_token_scheme_is_case_insensitive(header: str) -> None:
    """OSCP: "Authorization: Token <token> (scheme case-insensitive)"."""
    assert parse_token_auth(header, "Token") == "abc123"


def test_bearer_token() -> None:
    assert parse_token_auth("Bearer eyJ.abc.def", "Bearer") == "eyJ.abc.def"
    assert parse_token_auth("bearer eyJ.abc.def", "Bearer") == "eyJ.abc.def"


@pytest.mark.parametrize(
    "header", [None, "", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Bearer abc", "Tokens abc"]
)
def test_token_absent_or_other_scheme_is_none(header: str | None) -> None:
    assert parse_token_auth(header, "Token") is None


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Token", "empty token"),
        ("Token    ", "empty token"),
        ("Token abc def", "malformed token"),
        ("Token ab\u00e9", "malformed token"),
    ],
)
def test_token_malformed_raises_401(header: str, reason: str) -> None:
    with pytest.raises(AuthError) as info:
        parse_token_auth(header, "Token")
    assert info.value.reason == reason
    assert info.value.www_authenticate == 'Token realm="flexbridge", error="invalid_token"'


def test_bare_token_as_flexmeasures_sends_it() -> None:
    """FlexMeasures USEF API: "Authorization": "<token>" (no scheme)."""
    assert parse_bare_token(" abc.def-123 ") == "abc.def-123"
    assert parse_bare_token(None) is None
    assert parse_bare_token("") is None
    with pytest.raises(AuthError):
        parse_bare_token("two words")


# --- JWT --------------------------------------------------------------------------------


def test_jwt_round_trip() -> None:
    token = issue_jwt(
        SECRET, "alice", "tenant-1", timedelta(hours=1), now=T0, extra={"role": "scada"}
    )
    claims = verify_jwt(SECRET, token, now=T0 + timedelta(minutes=5))
    assert claims == Claims(
        subject="alice",
        tenant="tenant-1",
        expires_at=T0 + timedelta(hours=1),
        extra={"role": "scada"},
        issued_at=T0,
    )
    with pytest.raises(TypeError):
        claims.extra["role"] = "admin"  # type: ignore[index]


def test_jwt_carries_iat_exp_sub_tenant_and_is_hs256() -> None:
    token = issue_jwt(SECRET, "alice", "tenant-1", timedelta(hours=1), now=T0)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload == {
        "sub": "alice",
        "tenant": "tenant-1",
        "iat": int(T0.timestamp()),
        "exp": int((T0 + timedelta(hours=1)).timestamp()),
    }


def test_jwt_expiry_with_leeway() -> None:
    token = issue_jwt(SECRET, "alice", "t", timedelta(hours=1), now=T0)
    end = T0 + timedelta(hours=1)
    assert verify_jwt(SECRET, token, now=end + timedelta(seconds=29)).subject == "alice"
    assert auth_reason(SECRET, token, now=end + timedelta(seconds=30)) == "token expired"
    assert auth_reason(SECRET, token, now=end, leeway=timedelta(0)) == "token expired"


def test_jwt_expired_sets_bearer_challenge() -> None:
    """RFC 6750 section 3.1: invalid_token for an "expired, revoked, malformed, or invalid"
    access token."""
    token = issue_jwt(SECRET, "alice", "t", timedelta(seconds=1), now=T0)
    with pytest.raises(AuthError) as info:
        verify_jwt(SECRET, token, now=T0 + timedelta(hours=1))
    assert info.value.www_authenticate == (
        'Bearer realm="flexbridge", error="invalid_token", error_description="token expired"'
    )


def test_jwt_issued_in_the_future_is_refused() -> None:
    token = issue_jwt(SECRET, "alice", "t", timedelta(hours=1), now=T0 + timedelta(minutes=5))
    assert auth_reason(SECRET, token, now=T0) == "token issued in the future"


def test_jwt_tampered_signature() -> None:
    token = issue_jwt(SECRET, "alice", "t", timedelta(hours=1), now=T0)
    head, body, signature = token.split(".")
    # Flip a middle character: the last one of a base64url HMAC may only hold padding bits.
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert auth_reason(SECRET, f"{head}.{body}.{flipped}", now=T0) == "bad signature"


def test_jwt_tampered_payload() -> None:
    token = issue_jwt(SECRET, "alice", "tenant-1", timedelta(hours=1), now=T0)
    head, _, signature = token.split(".")
    forged_body = b64url(
        json.dumps(
            {
                "sub": "alice",
                "tenant": "tenant-2",
                "iat": int(T0.timestamp()),
                "exp": int(T0.timestamp()) + 3600,
            }
        ).encode()
    )
    assert auth_reason(SECRET, f"{head}.{forged_body}.{signature}", now=T0) == "bad signature"


def test_jwt_wrong_secret() -> None:
    token = issue_jwt(SECRET, "alice", "t", timedelta(hours=1), now=T0)
    assert auth_reason("another-secret-of-at-least-32-bytes!!", token, now=T0) == "bad signature"


def test_jwt_alg_none_is_refused() -> None:
    """RFC 8725 section 3.1: libraries MUST let the caller specify the supported algorithms
    and MUST NOT use any other; an unsigned "none" token must never verify."""
    payload = {
        "sub": "alice",
        "tenant": "t",
        "iat": int(T0.timestamp()),
        "exp": int(T0.timestamp()) + 3600,
    }
    unsigned = forge({"alg": "none", "typ": "JWT"}, payload, None)
    assert auth_reason(SECRET, unsigned, now=T0) == "algorithm not allowed"
    also_unsigned = jwt.encode(payload, None, algorithm="none")
    assert auth_reason(SECRET, also_unsigned, now=T0) == "algorithm not allowed"


@pytest.mark.parametrize("alg", ["RS256", "HS512", "ES256"])
def test_jwt_other_algorithms_are_refused(alg: str) -> None:
    """Algorithm confusion: a token whose header names another algorithm, even if HMAC-signed
    with our secret, is refused because verification pins HS256."""
    payload = {
        "sub": "alice",
        "tenant": "t",
        "iat": int(T0.timestamp()),
        "exp": int(T0.timestamp()) + 3600,
    }
    token = forge({"alg": alg, "typ": "JWT"}, payload, SECRET.encode())
    assert auth_reason(SECRET, token, now=T0) == "algorithm not allowed"


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c", "a.b.c.d"])
def test_jwt_malformed(token: str) -> None:
    assert auth_reason(SECRET, token, now=T0) == "malformed token"


@pytest.mark.parametrize(
    ("missing", "reason"),
    [
        ("sub", "missing claim sub"),
        ("tenant", "missing claim tenant"),
        ("exp", "missing claim exp"),
    ],
)
def test_jwt_missing_claims(missing: str, reason: str) -> None:
    payload = {
        "sub": "alice",
        "tenant": "t",
        "iat": int(T0.timestamp()),
        "exp": int(T0.timestamp()) + 3600,
    }
    del payload[missing]
    token = jwt.encode(payload, SECRET, algorithm="HS256")
    assert auth_reason(SECRET, token, now=T0) == reason


@pytest.mark.parametrize(
    ("claim", "value"), [("sub", 42), ("tenant", ""), ("exp", "soon"), ("exp", True)]
)
def test_jwt_malformed_claims(claim: str, value: object) -> None:
    payload: dict[str, object] = {
        "sub": "alice",
        "tenant": "t",
        "exp": int(T0.timestamp()) + 3600,
        claim: value,
    }
    token = jwt.encode(payload, SECRET, algorithm="HS256")
    assert auth_reason(SECRET, token, now=T0) == f"malformed claim {claim}"


def test_issue_jwt_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        issue_jwt("short", "alice", "t", timedelta(hours=1))
    with pytest.raises(ValueError, match="ttl"):
        issue_jwt(SECRET, "alice", "t", timedelta(0))
    with pytest.raises(ValueError, match="extra claims"):
        issue_jwt(SECRET, "alice", "t", timedelta(hours=1), extra={"tenant": "other"})
    with pytest.raises(ValueError, match="timezone-aware"):
        issue_jwt(SECRET, "alice", "t", timedelta(hours=1), now=datetime(2024, 1, 1))


def test_verify_jwt_without_now_uses_the_clock() -> None:
    token = issue_jwt(SECRET, "alice", "t", timedelta(minutes=5))
    assert verify_jwt(SECRET, token).tenant == "t"


# --- rate limiter -----------------------------------------------------------------------


def test_rate_limiter_allows_burst_then_asks_to_wait_the_right_time() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.check("acct", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.check("acct", now=0.0) == pytest.approx(0.5)
    assert limiter.check("acct", now=0.25) == pytest.approx(0.25)


def test_rate_limiter_refused_requests_take_nothing() -> None:
    limiter = RateLimiter(rate=1.0, burst=1)
    assert limiter.check("acct", now=0.0) == 0.0
    assert [limiter.check("acct", now=0.0) for _ in range(5)] == [pytest.approx(1.0)] * 5
    assert limiter.check("acct", now=1.0) == 0.0


def test_rate_limiter_refills_but_not_beyond_burst() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    for _ in range(3):
        limiter.check("acct", now=0.0)
    assert limiter.check("acct", now=0.5) == 0.0  # one token back after 1/rate seconds
    assert limiter.check("acct", now=0.5) == pytest.approx(0.5)
    assert [limiter.check("acct", now=1000.0) for _ in range(4)] == [
        0.0,
        0.0,
        0.0,
        pytest.approx(0.5),
    ]


def test_rate_limiter_keeps_keys_separate() -> None:
    limiter = RateLimiter(rate=1.0, burst=2)
    limiter.check("a", now=0.0)
    limiter.check("a", now=0.0)
    assert limiter.check("a", now=0.0) > 0
    assert limiter.check("b", now=0.0) == 0.0
    assert limiter.check("b", now=0.0) == 0.0


def test_rate_limiter_stays_bounded() -> None:
    limiter = RateLimiter(rate=1.0, burst=5, max_keys=3)
    for i in range(1000):
        limiter.check(f"key-{i}", now=i * 0.001)
        assert len(limiter) <= 3
    assert len(limiter) == 3


def test_rate_limiter_drops_full_idle_buckets_first() -> None:
    """A bucket idle long enough to be full again equals no bucket: dropping it is free."""
    limiter = RateLimiter(rate=1.0, burst=2, max_keys=3)
    limiter.check("idle-1", now=0.0)  # full again at t=1.0
    limiter.check("idle-2", now=0.1)  # full again at t=1.1
    limiter.check("hot", now=0.5)
    limiter.check("hot", now=0.5)  # empty; 1.5 tokens by t=2.0
    limiter.check("new", now=2.0)  # both full buckets go, not just one
    assert len(limiter) == 2
    assert limiter.check("hot", now=2.0) == 0.0
    assert limiter.check("hot", now=2.0) == pytest.approx(0.5)  # its state was kept


def test_rate_limiter_evicts_least_recently_used_when_all_are_refilling() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_keys=2)
    limiter.check("a", now=0.0)
    limiter.check("b", now=0.0)
    limiter.check("a", now=0.0)  # refused, but "a" is now the most recent
    limiter.check("c", now=0.0)  # evicts "b"
    assert len(limiter) == 2
    assert limiter.check("a", now=0.0) == pytest.approx(1.0)  # "a" kept its empty bucket


def test_rate_limiter_uses_injected_clock() -> None:
    ticks = [0.0]
    limiter = RateLimiter(rate=1.0, burst=1, clock=lambda: ticks[0])
    assert limiter.check("a") == 0.0
    assert limiter.check("a") == pytest.approx(1.0)
    ticks[0] = 1.0
    assert limiter.check("a") == 0.0


def test_rate_limiter_survives_a_clock_stepping_back() -> None:
    limiter = RateLimiter(rate=1.0, burst=1)
    assert limiter.check("a", now=10.0) == 0.0
    assert limiter.check("a", now=5.0) == pytest.approx(1.0)


def test_rate_limiter_refuses_bad_configuration() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate=0, burst=1)
    with pytest.raises(ValueError):
        RateLimiter(rate=1, burst=0)
    with pytest.raises(ValueError):
        RateLimiter(rate=1, burst=2).check("a", now=0.0, cost=3)


@pytest.mark.parametrize(("wait", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2"), (59.5, "60")])
def test_retry_after_rounds_up_to_whole_seconds(wait: float, header: str) -> None:
    assert retry_after(wait) == header


def test_the_login_cache_forgets_a_login_after_its_time(monkeypatch):
    from adapter import guards
    from store.accounts import Account, Login, Role
    from store.tenants import Tenant

    now = [100.0]
    monkeypatch.setattr(guards.time, "monotonic", lambda: now[0])
    login = Login(Account(1, Tenant(1, "t"), "cpo", Role.PEER), "hash", "key-hash")
    cache = guards.LoginCache(ttl=5.0)
    cache.put("cpo", login)
    assert cache.get("cpo") == login and cache.get("other") is None
    now[0] += 5.5
    assert cache.get("cpo") is None
    off = guards.LoginCache(ttl=0)
    off.put("cpo", login)
    assert off.get("cpo") is None


async def test_a_changed_password_takes_effect_at_once_without_the_login_cache(
    aiohttp_client, tmp_path
):
    from dataclasses import replace as _replace

    from sqlalchemy import update

    from adapter.app import create_app
    from adapter.auth import encode_basic_auth
    from adapter.keys import DB
    from adapter.settings import Settings
    from store.accounts import Role, add_account
    from store.secrets import hash_password
    from store.tables import accounts
    from store.tenants import add_tenant

    settings = _replace(
        Settings(),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}",
        admin_password="admin-pw",
        login_cache_seconds=0,
    )
    app = create_app(settings)
    client = await aiohttp_client(app)
    async with app[DB].transaction() as tx:
        tenant, key = await add_tenant(tx, "t")
        await add_account(tx, tenant, "cpo", Role.PARTICIPANT, "old-pw")

    async def status(password: str) -> int:
        headers = {"Authorization": encode_basic_auth("cpo", password), "X-Tenant-Key": key}
        response = await client.post("/api/Asset/GetAssetV1List", json={}, headers=headers)
        return response.status

    assert await status("old-pw") == 200
    async with app[DB].transaction() as tx:
        await tx.execute(
            update(accounts)
            .where(accounts.c.username == "cpo")
            .values(password_hash=hash_password("new-pw"))
        )
    assert await status("old-pw") == 401
    assert await status("new-pw") == 200
