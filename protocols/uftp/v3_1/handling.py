"""What a message's handler is given and gives back (messages.py runs them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection

from protocols.uftp.v3_1.codec import Inner, Node
from protocols.uftp.v3_1.identity import Identity
from protocols.uftp.v3_1.market import Market
from store.peers import Peer
from store.tenants import Tenant


@dataclass(frozen=True, slots=True)
class Received:
    tx: AsyncConnection
    tenant: Tenant
    peer: Peer  # the sender, whose key verified the message
    identity: Identity  # ours
    market: Market
    inner: Inner


@dataclass(frozen=True, slots=True)
class Accepted:
    """What an Accepted response carries beyond the metadata."""

    extra: Mapping[str, str] = field(default_factory=dict)
    children: Sequence[Node] = ()
    # Run in the same transaction once the response is queued, so that what it sends (a
    # FlexOrder an accepted offer completes) follows the response on the wire.
    then: Callable[[], Awaitable[object]] | None = None


# A handler applies the message (raising Rejected to refuse it, with nothing written).
Handler = Callable[[Received], Awaitable[Accepted]]
