"""Sealed secrets: the credentials flexbridge presents to peers, encrypted at rest.

A password or token we send to a peer must be usable, so it cannot be hashed as the ones
peers send us are (store/secrets.py); it is encrypted instead, with Fernet (AES-128-CBC and
HMAC-SHA256, from `cryptography`), under keys that live in the configuration or a key file,
never in the database: a copy of the database alone reveals none of these secrets.

The keys are a list (MultiFernet): the first seals, every one opens. That is the rotation:
put a new key first, keep the old ones after it, re-seal every stored value under the new
key (`rotate`), then drop the old ones (docs/security.md says it step by step).

A stored value is `fernet:<token>`. A value without the prefix was written in clear before
secrets were sealed: it is read as it is and sealed by the next rotation. An empty value means
"no secret" and is kept empty.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from store.errors import StoreError, check_fits

PREFIX = "fernet:"
# The longest secret accepted; its sealed form (about 4/3 of it plus 100) fits the column.
MAX_SECRET_CHARS = 500


class SecretUnreadable(StoreError):
    """A sealed value that none of the keys opens; the message is one line naming the peer."""

    code = "secret_unreadable"

    def __init__(self, owner: str, reason: str) -> None:
        self.owner = owner
        super().__init__(
            f"the secret stored for {owner} {reason}; give the key it was sealed with in "
            "secret_keys (or the key file), or provision that secret again"
        )


class SecretsLeftUnread(StoreError):
    """A rotation that rewrote what it could and left the values no key opens."""

    code = "secrets_left_unread"

    def __init__(self, rewritten: int, unreadable: list[str]) -> None:
        lines = [f"{rewritten} peer secret(s) sealed with the first key; left as they were:"]
        super().__init__("\n".join(lines + unreadable))


class SecretsUnavailable(StoreError):
    """A secret to store, and a database opened without keys to seal it (never in clear)."""

    code = "no_secret_keys"

    def __init__(self) -> None:
        super().__init__("no secret keys are configured: a secret for a peer cannot be stored")


class SecretBox:
    """The keys of one deployment: seals with the first, opens with any."""

    __slots__ = ("_fernet", "_primary")

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if not keys:
            raise ValueError("a SecretBox needs at least one key")
        # Fernet raises ValueError for a key that is not 32 url-safe base64-encoded bytes.
        fernets = [Fernet(key) for key in keys]
        self._primary = fernets[0]
        self._fernet = MultiFernet(fernets)

    def seal(self, secret: str) -> str:
        """What the column stores for `secret`, sealed under the first key."""
        check_fits("secret", secret, MAX_SECRET_CHARS)
        return PREFIX + self._primary.encrypt(secret.encode()).decode("ascii")

    def open(self, sealed: str, owner: str) -> str:
        """The secret of a value `seal` made, under any of the keys."""
        try:
            return self._fernet.decrypt(_token(sealed)).decode()
        except InvalidToken:
            raise SecretUnreadable(owner, "opens with none of the keys") from None

    def reseal(self, stored: str, owner: str) -> str:
        """`stored` sealed under the first key; clear text from before is sealed too."""
        if not stored.startswith(PREFIX):
            return self.seal(stored)
        try:
            return PREFIX + self._fernet.rotate(_token(stored)).decode("ascii")
        except InvalidToken:
            raise SecretUnreadable(owner, "opens with none of the keys") from None


def _token(stored: str) -> bytes:
    # A token is ASCII; anything else in the column was not written by seal().
    return stored[len(PREFIX) :].encode("ascii", errors="replace")


def is_sealed(stored: str | None) -> bool:
    return stored is not None and stored.startswith(PREFIX)


def seal_secret(box: SecretBox | None, secret: str | None) -> str | None:
    """What to store for `secret`: None and "" (no secret) as they are, the rest sealed."""
    if not secret:
        return secret
    if box is None:
        raise SecretsUnavailable()
    return box.seal(secret)


def open_secret(box: SecretBox | None, stored: str | None, owner: str) -> str | None:
    """The secret a column holds: clear text from before sealing as it is, a sealed value
    opened with `box`; `owner` names whose secret it is when it cannot be."""
    if stored is None or not is_sealed(stored):
        return stored  # no secret, or clear text written before secrets were sealed
    if box is None:
        raise SecretUnreadable(owner, "is sealed, and no secret keys are configured")
    return box.open(stored, owner)


def new_key() -> str:
    """A fresh Fernet key (32 random bytes, url-safe base64)."""
    return Fernet.generate_key().decode("ascii")
