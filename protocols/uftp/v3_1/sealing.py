"""UFTP's cryptographic scheme CS1: a message is signed, not encrypted ("seal" means sign),
with Ed25519 in libsodium's combined form: the sealed bytes are the 64-byte signature
followed by the message itself (`crypto_sign`), and opening them (`crypto_sign_open`)
verifies and returns the message in one step, so an unverified message cannot be read by
mistake.

Keys travel as libsodium writes them: a public key is base64 of its 32 raw bytes, a private
key base64 of libsodium's 64-byte secret key (the 32-byte seed followed by the public key).
`cryptography` needs only the seed; the public half is checked against it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

SIGNATURE_BYTES = 64
PUBLIC_KEY_BYTES = 32
SECRET_KEY_BYTES = 64  # libsodium: seed || public key


class BadKey(ValueError):
    """A key that is not base64 of the right number of bytes (the reason says which)."""


class BadSignature(Exception):
    """Sealed bytes that no given key opens."""


def _decode(text: str, size: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadKey(f"{what}: not base64") from exc
    if len(raw) != size:
        raise BadKey(f"{what}: {len(raw)} bytes, not {size}")
    return raw


def public_key(text: str) -> Ed25519PublicKey:
    """A raw base64 32-byte public key (a DNS `cs1.` record is not one: strip it first)."""
    return Ed25519PublicKey.from_public_bytes(_decode(text, PUBLIC_KEY_BYTES, "public key"))


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """Our own key pair, as libsodium writes it."""

    private: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_secret(cls, text: str) -> SigningKey:
        raw = _decode(text, SECRET_KEY_BYTES, "private key")
        key = cls(Ed25519PrivateKey.from_private_bytes(raw[:32]))
        if _raw_public(key.private.public_key()) != raw[32:]:
            raise BadKey("private key: its second half is not the public key of its seed")
        return key

    @property
    def secret(self) -> str:
        """base64 of libsodium's 64-byte secret key (seed || public key)."""
        seed = self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return base64.b64encode(seed + _raw_public(self.private.public_key())).decode()

    @property
    def public(self) -> str:
        """base64 of the 32-byte public key: what a peer configures to verify us."""
        return base64.b64encode(_raw_public(self.private.public_key())).decode()

    def seal(self, message: bytes) -> bytes:
        return self.private.sign(message) + message


def open_sealed(sealed: bytes, keys: list[Ed25519PublicKey]) -> bytes:
    """The message inside `sealed`, verified over the exact bytes received with the first
    key that opens it (a peer may have two during a rotation); BadSignature when none does."""
    if len(sealed) <= SIGNATURE_BYTES:
        raise BadSignature("shorter than a signature")
    signature, message = sealed[:SIGNATURE_BYTES], sealed[SIGNATURE_BYTES:]
    for key in keys:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            continue
        return message
    raise BadSignature("no key of the sender verifies the signature")
