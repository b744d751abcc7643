"""Refusals the hub makes on every protocol's behalf; each surface renders them."""

from __future__ import annotations

from store.errors import StoreError


class NotAPeer(StoreError):
    """The caller's account speaks for no peer of the protocol it called (403)."""

    code = "forbidden"

    def __init__(self, username: str, protocol: str) -> None:
        super().__init__(f"account {username!r} is no {protocol.upper()} peer")
