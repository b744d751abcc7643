"""What we send: every message signed with the tenant's key (identity.py), wrapped in a
SignedMessage and queued in the outbox in the transaction that caused it, for the peer's
endpoint as `text/xml; charset=utf-8`.

A response carries the ConversationID and Version of the message it answers and that
message's id in `<Type>MessageID`; a TestMessageResponse has neither Result nor reference
(the 3.x schema). Replies go to the peer whose key verified the message, whatever its inner
SenderDomain said.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.outbound import send_bytes
from protocols.uftp.v3_1.codec import (
    RESPONSE,
    Header,
    Node,
    document,
    reference_attribute,
    timestamp,
)
from protocols.uftp.v3_1.envelope import Role, write_envelope
from protocols.uftp.v3_1.identity import Identity
from protocols.uftp.v3_1.transport import PROTOCOL
from store.peers import Peer
from store.timeutil import utcnow

CONTENT_TYPE = "text/xml; charset=utf-8"
VERSION = "3.1.0"
_NO_RESULT = frozenset({"TestMessageResponse"})


def metadata(identity: Identity, peer: Peer, *, conversation: str, version: str) -> dict[str, str]:
    return {
        "Version": version,
        "SenderDomain": identity.domain,
        "RecipientDomain": peer.name,
        "TimeStamp": timestamp(utcnow()),
        "MessageID": str(uuid.uuid4()),
        "ConversationID": conversation,
    }


async def send_signed(tx: AsyncConnection, peer: Peer, identity: Identity, message: Node) -> str:
    """Queue `message` for the peer, signed; its MessageID."""
    sealed = identity.key.seal(document(message))
    message_id = message.attributes["MessageID"]
    await send_bytes(
        tx,
        peer,
        protocol=PROTOCOL,
        message_type=message.tag,
        path="",  # the peer's base URL is its message endpoint
        body=write_envelope(identity.domain, Role.DSO, sealed),
        headers={"Content-Type": CONTENT_TYPE},
        message_id=message_id,
    )
    return message_id


async def respond(
    tx: AsyncConnection,
    peer: Peer,
    identity: Identity,
    received: Header,
    *,
    rejection: str | None = None,
    extra: Mapping[str, str] | None = None,
    children: Sequence[Node] = (),
) -> str:
    """Queue the response to `received`: Accepted, or Rejected with `rejection`."""
    kind = received.kind + RESPONSE
    attributes = metadata(
        identity, peer, conversation=received.conversation_id, version=received.version
    )
    if kind not in _NO_RESULT:
        attributes["Result"] = "Accepted" if rejection is None else "Rejected"
        if rejection is not None:
            attributes["RejectionReason"] = rejection
        attributes[reference_attribute(received.kind)] = received.message_id
    attributes.update(extra or {})
    return await send_signed(tx, peer, identity, Node(kind, attributes, children))
