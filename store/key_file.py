"""Where the keys that seal peer secrets come from: a list given, or a key file.

The adapter's setting `secret_keys` (FLEXBRIDGE_SECRET_KEYS) lists Fernet keys,
comma-separated; the first seals, all open (store/secret_box.py). When it is empty, the keys
are the lines of `secret_key_file`, and a missing file is created once with one new key,
readable by its owner only (0600). The keys are never kept in the database: a copy of the
database alone opens no secret. docs/security.md says how to rotate them. Here, beside the
store, so that the conformance provisioning (which imports no adapter) finds the keys the
server will use.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from cryptography.fernet import Fernet

from store.secret_box import SecretBox, new_key

log = logging.getLogger("flexbridge.secrets")


class SecretKeyError(ValueError):
    """A key that is not a Fernet key; the message names where it was given."""


def parse_keys(text: str, source: str) -> list[str]:
    """The keys of a comma- or line-separated list, each checked to be a Fernet key."""
    keys = [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
    for number, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise SecretKeyError(
                f"{source}: key {number} is not a Fernet key (32 bytes, url-safe base64; "
                "`flexbridge secrets new-key` makes one)"
            ) from None
    return keys


def _read_key_file(path: Path) -> list[str]:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("key file %s can be read by others (mode %o); chmod 600 it", path, mode)
    keys = parse_keys(path.read_text(), f"key file {path}")
    if not keys:
        raise SecretKeyError(f"key file {path} holds no key")
    return keys


def _key_file(path: Path) -> list[str]:
    if path.exists():
        return _read_key_file(path)
    key = new_key()
    # Written whole under another name, then linked in place, which fails when the file
    # exists: of two processes starting at once on a new machine, one's key wins and both
    # read it, and neither ever sees a half-written file.
    draft = path.with_name(f".{path.name}.{os.getpid()}.new")
    handle = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(handle, "w") as file:
            file.write(key + "\n")
        os.link(draft, path)
    except FileExistsError:
        return _read_key_file(path)
    finally:
        draft.unlink(missing_ok=True)
    log.info("created key file %s for the secrets stored for peers; back it up", path)
    return [key]


def secret_box(keys: str | None, key_file: str) -> SecretBox:
    """The box of the configured keys, or of the key file's (created when missing)."""
    if keys and keys.strip():
        parsed = parse_keys(keys, "setting 'secret_keys'")
        if parsed:
            return SecretBox(parsed)
    return SecretBox(_key_file(Path(key_file)))
