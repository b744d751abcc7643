"""store.secrets: scrypt password hashes and SHA-256 token hashes."""

from __future__ import annotations

import base64
import hashlib

import pytest

from store import secrets as sec
from store.errors import ValidationError

# Cheap parameters where the test is about encoding, not cost; the default is tested too.
FAST = {"n": 2**4, "r": 1, "p": 1}


def test_password_round_trip_with_default_parameters() -> None:
    encoded = sec.hash_password("correct horse battery staple")
    assert encoded.startswith("scrypt$16384$8$1$")
    assert sec.verify_password("correct horse battery staple", encoded) is True


def test_wrong_password_is_false() -> None:
    encoded = sec.hash_password("s3cret", **FAST)
    assert sec.verify_password("s3cret!", encoded) is False
    assert sec.verify_password("S3cret", encoded) is False


def test_two_hashes_of_one_password_differ_by_salt() -> None:
    first = sec.hash_password("same", **FAST)
    second = sec.hash_password("same", **FAST)
    assert first != second
    assert first.split("$")[4] != second.split("$")[4]  # the salts
    assert sec.verify_password("same", first) and sec.verify_password("same", second)


def test_encoding_holds_parameters_salt_and_hash() -> None:
    encoded = sec.hash_password("pw", n=2**5, r=2, p=1)
    scheme, n, r, p, salt, key = encoded.split("$")
    assert (scheme, n, r, p) == ("scrypt", "32", "2", "1")
    salt_bytes, key_bytes = base64.b64decode(salt), base64.b64decode(key)
    assert len(salt_bytes) == 16
    assert hashlib.scrypt(b"pw", salt=salt_bytes, n=32, r=2, p=1, dklen=32) == key_bytes


def test_changed_parameters_still_verify_and_ask_for_rehash() -> None:
    """Parameters live in the string, so old hashes stay valid after the default changes."""
    old = sec.hash_password("pw", **FAST)
    assert sec.verify_password("pw", old)
    assert sec.needs_rehash(old) is True
    assert sec.needs_rehash(old, **FAST) is False


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "garbage",
        "bcrypt$16$8$1$AAAA$AAAA",  # another scheme
        "scrypt$16$1$1$AAAA",  # too few fields
        "scrypt$16$1$1$AAAA$AAAA$AAAA",  # too many fields
        "scrypt$abc$1$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",  # n not a number
        "scrypt$15$1$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",  # n not a power of two
        "scrypt$1073741824$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",  # n absurdly large
        "scrypt$16$0$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",  # r zero
        "scrypt$16$1$1$not*base64$AAAA",  # bad base64 salt
        "scrypt$16$1$1$AAAAAAAAAAAAAAAAAAAAAA==$",  # empty hash
    ],
)
def test_malformed_encodings_are_false_not_exceptions(encoded: str) -> None:
    assert sec.verify_password("pw", encoded) is False
    assert sec.needs_rehash(encoded) is True


def test_unknown_account_is_false_and_still_pays_the_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """encoded=None stands for "no such user": False, after a full-cost scrypt so the
    response time does not tell which user names exist."""
    calls: list[tuple[int, int, int]] = []
    real = sec._scrypt

    def counting(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
        calls.append((n, r, p))
        return real(password, salt, n, r, p, dklen)

    monkeypatch.setattr(sec, "_scrypt", counting)
    assert sec.verify_password("anything", None) is False
    assert calls == [(sec.DEFAULT_N, sec.DEFAULT_R, sec.DEFAULT_P)]


def test_non_string_password_is_false() -> None:
    encoded = sec.hash_password("pw", **FAST)
    assert sec.verify_password(b"pw", encoded) is False  # type: ignore[arg-type]


def test_unicode_password_is_normalised_nfc() -> None:
    """A composed and a decomposed 'é' are the same password to the person typing it."""
    encoded = sec.hash_password("caf\u00e9", **FAST)
    assert sec.verify_password("cafe\u0301", encoded) is True


def test_empty_password_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        sec.hash_password("", **FAST)
    assert (info.value.field, info.value.reason) == ("password", "password is empty")


def test_out_of_range_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="scrypt parameters"):
        sec.hash_password("pw", n=1000, r=1, p=1)


def test_new_secret_is_url_safe_random_and_long_enough() -> None:
    one, two = sec.new_secret(), sec.new_secret()
    assert one != two
    assert len(one) >= 43  # 32 bytes base64url without padding
    assert set(one) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    with pytest.raises(ValueError):
        sec.new_secret(8)


def test_hash_token_is_hex_sha256_and_deterministic() -> None:
    token = sec.new_secret()
    assert sec.hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert sec.hash_token(token) == sec.hash_token(token)  # usable as an indexed lookup key
    assert len(sec.hash_token(token)) == 64


def test_token_matches() -> None:
    token = sec.new_secret()
    stored = sec.hash_token(token)
    assert sec.token_matches(token, stored) is True
    assert sec.token_matches(token, stored.upper()) is True
    assert sec.token_matches(token + "x", stored) is False
    assert sec.token_matches(token, "\u00e9" * 64) is False


def test_new_password_is_random_and_basic_auth_safe() -> None:
    one, two = sec.new_password(), sec.new_password()
    assert one != two
    assert len(one) == 24
    assert ":" not in one and " " not in one
    assert sec.verify_password(one, sec.hash_password(one, **FAST))


def test_lone_surrogate_hashes_instead_of_crashing() -> None:
    """JSON allows "\\ud800" escapes, so such a string can reach us as a password or token."""
    encoded = sec.hash_password("x\ud800", **FAST)
    assert sec.verify_password("x\ud800", encoded) is True
    assert sec.verify_password("x\ud801", encoded) is False
    assert sec.hash_token("x\ud800") != sec.hash_token("x\ud801")
