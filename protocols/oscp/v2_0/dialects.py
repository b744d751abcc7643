"""Per-peer dialects of OSCP 2.0: named sets of wire choices for peers that depart from the
text in ways we cannot talk them out of (docs/protocols/oscp-2.0.md, "Dialects"; the evidence
in docs/protocols/pyoscp-quirks.md).

    oscp-2.0     the text: acknowledgements to /handshake_acknowledge, RFC 3339 'Z' times
    pyoscp-0.1   pyoscp 0.1.0: acknowledgements to /handshake_acknowledgment (quirk 4), our
                 heartbeat's offline_mode_at as zone-less "YYYY-MM-DD HH:MM:SS" in UTC (quirk
                 1: it parses nothing else, and answers 500)

A peer's dialect is set with `flexbridge peer add|update --dialect NAME` and kept in its
state; a peer without one speaks the text. What we accept does not depend on the dialect:
every peer may send either spelling and either time form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from hub.peer_state import state_of
from protocols.common.wire import iso
from store.peers import Peer


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    ack_path: str  # where a HandshakeAcknowledge goes at the peer
    time: Callable[[datetime], str]  # how the times we send are written


def _zoneless_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


STANDARD = Dialect("oscp-2.0", "/handshake_acknowledge", iso)
PYOSCP = Dialect("pyoscp-0.1", "/handshake_acknowledgment", _zoneless_utc)
DIALECTS = {d.name: d for d in (STANDARD, PYOSCP)}


def dialect_of(peer: Peer) -> Dialect:
    return DIALECTS.get(state_of(peer).dialect or "", STANDARD)
