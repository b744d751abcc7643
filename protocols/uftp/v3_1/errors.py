"""UFTP's two kinds of failure (docs/protocols/uftp-3.1.md).

Transport: the SignedMessage cannot be taken in, answered at once with the HTTP status of
the spec's table (400, 401, 411, 419, 429) and a short text body.

Rejection: a message that was taken in (HTTP 200) but refused by a business rule, answered
later by a signed `<Type>Response` with Result="Rejected" and the spec's RejectionReason
words, never by an HTTP error.
"""

from __future__ import annotations

from protocols.common.surface import ProtocolError


class TransportError(ProtocolError):
    """The SignedMessage is refused with an HTTP status; `reason` is the body's text."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, f"HTTP {status}", reason)


class Rejected(Exception):
    """A business rule refuses the message: its Response says Rejected with `reason`, one
    of the spec's RejectionReason strings (message-validation.md), or several joined with
    "; "."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
