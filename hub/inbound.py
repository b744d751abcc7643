"""The one way an inbound message is opened, for every handler of every protocol
(docs/architecture.md, "The message path"): one transaction; the tenant; the peer the
caller's account speaks for, its row locked; the idempotency claim on the message id; and
the message log.

    async with receive(db, Arrival(...)) as message:
        if message.repeated:
            return <the same answer as the first time>
        ... translate into store calls on message.tx ...
        message.outcome("partial", "3 of 4 items saved")  # optional; default "applied"

A message id seen before from the same peer marks the message `repeated`: it was applied
then, and is not applied again. The message-log row is written when the message is claimed
(so a concurrent twin loses the race) or, without an id, when the block ends; an outcome set
later updates it. A block that raises rolls back everything, its log row included; the
surface then answers the refusal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.errors import NotAPeer
from store.accounts import Account
from store.db import Database
from store.messages import Direction, claim_message, log_message, set_outcome
from store.peers import Peer, peer_for_account
from store.tenants import Tenant

MAX_MESSAGE_ID = 200  # what the message log keeps of an id
MAX_DETAIL = 1000
# A refused message changed nothing: its log row keeps this much of the body, enough to see
# what came, not a copy of every oversize or hostile body.
REFUSED_EXCERPT = 16 * 1024


@dataclass(frozen=True, slots=True)
class Arrival:
    """What the surface knows of a message before it is opened."""

    protocol: str
    message_type: str
    tenant: Tenant
    payload: bytes
    message_id: str | None = None
    account: Account | None = None  # whose peer the message is from; None: no peer
    idempotent: bool = True  # a repeated message_id of the same peer is not applied again


@dataclass(slots=True)
class Message:
    tx: AsyncConnection
    arrival: Arrival
    peer: Peer | None
    repeated: bool = False
    _row: int | None = None
    _status: str = "applied"
    _detail: str | None = field(default=None)

    @property
    def tenant(self) -> Tenant:
        return self.arrival.tenant

    def from_peer(self) -> Peer:
        """The peer the message is from (opened with an account, so there is one)."""
        assert self.peer is not None, "opened without an account"
        return self.peer

    def outcome(self, status: str, detail: str | None = None) -> None:
        """What became of the message, for the log: applied, partial, refused..."""
        self._status, self._detail = status, None if detail is None else detail[:MAX_DETAIL]


async def _peer(tx: AsyncConnection, arrival: Arrival) -> Peer | None:
    if arrival.account is None:
        return None
    peer = await peer_for_account(
        tx, arrival.tenant, arrival.protocol, arrival.account.id, for_update=True
    )
    if peer is None:
        raise NotAPeer(arrival.account.username, arrival.protocol)
    return peer


async def _claim(message: Message) -> None:
    arrival, peer = message.arrival, message.peer
    if not (arrival.message_id and peer is not None and arrival.idempotent):
        return
    row = await claim_message(
        message.tx,
        arrival.tenant,
        protocol=arrival.protocol,
        peer=peer.name,
        message_id=arrival.message_id[:MAX_MESSAGE_ID],
        message_type=arrival.message_type,
        payload=arrival.payload,
        peer_id=peer.id,
    )
    message.repeated, message._row = row is None, row


async def _log(message: Message) -> None:
    arrival = message.arrival
    if message._row is not None:
        if (message._status, message._detail) != ("applied", None):
            await set_outcome(message.tx, message._row, message._status, message._detail)
        return
    await log_message(
        message.tx,
        arrival.tenant,
        protocol=arrival.protocol,
        message_type=arrival.message_type,
        direction=Direction.IN,
        status=message._status,
        peer_id=None if message.peer is None else message.peer.id,
        message_id=None if not arrival.message_id else arrival.message_id[:MAX_MESSAGE_ID],
        payload=arrival.payload[:REFUSED_EXCERPT]
        if message._status == "refused"
        else arrival.payload,
        detail=message._detail,
    )


@asynccontextmanager
async def receive(db: Database, arrival: Arrival) -> AsyncIterator[Message]:
    """Open the message in its transaction (committed when the block ends without error)."""
    async with db.transaction() as tx:
        message = Message(tx, arrival, await _peer(tx, arrival))
        await _claim(message)
        yield message
        if not message.repeated:
            await _log(message)


def list_outcome(saved: int, total: int) -> str:
    """The status of a message of items: every item applied, some, or none."""
    return "applied" if saved == total else "partial" if saved else "refused"
