"""TestMessage from the DSO (`flexbridge uftp test-message`; docs/protocols/uftp-3.1.md,
"TestMessage"): "any -> any", metadata only, to check that a peer can be reached and
verifies our signature. The 3.x TestMessageResponse carries no reference and no Result, so
it is matched to our TestMessage by sender and ConversationID; it marks the exchange
`answered` (a Result it carries anyway, as shapeshifter-uftp 2.4.0 sends, is kept)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncConnection

from protocols.uftp.v3_1.codec import Node
from protocols.uftp.v3_1.handling import Accepted, Received
from protocols.uftp.v3_1.identity import Identity
from protocols.uftp.v3_1.replies import VERSION, metadata, send_signed
from store.peers import Peer
from store.tenants import Tenant
from store.uftp_exchanges import (
    Exchange,
    ExchangeStatus,
    add_exchange,
    find_exchange,
    record_answer,
)

KIND = "TestMessage"


async def send_test_message(
    tx: AsyncConnection, tenant: Tenant, peer: Peer, identity: Identity
) -> Exchange:
    """Queue a signed TestMessage for the peer, in a new conversation; the exchange."""
    attributes = metadata(identity, peer, conversation=str(uuid.uuid4()), version=VERSION)
    message_id = await send_signed(tx, peer, identity, Node(KIND, attributes))
    return await add_exchange(
        tx,
        tenant,
        peer,
        KIND,
        message_id=message_id,
        conversation_id=attributes["ConversationID"],
        request={},
    )


async def answered_test_message(received: Received) -> Accepted:
    """TestMessageResponse: our TestMessage in that conversation answered (one we did not
    send, or answered before, is logged only)."""
    exchange = await find_exchange(
        received.tx,
        received.peer,
        KIND,
        conversation_id=received.inner.header.conversation_id,
    )
    if exchange is not None:
        result = received.inner.attr("Result")
        answer = {} if result is None else {"result": result}
        await record_answer(received.tx, exchange, ExchangeStatus.ANSWERED, answer=answer)
    return Accepted()
