"""POST <prefix>/message: every UFTP message a DSO receives (docs/protocols/uftp-3.1.md).

The SignedMessage was verified before this handler runs (transport.py). Here the inner XML
is read and checked against our schema (400 when it is not valid USEF XML), then, answered
with HTTP 200, the generic rules run in the order of message-validation.md, first failure
wins:

    inner SenderDomain = the envelope's          "Mismatch SenderDomain"
    the message type is one the sender's role     "Invalid SenderRole"
      may send a DSO
    RecipientDomain is our domain                "Unknown RecipientDomain"
    a MessageID seen before                      "Already Submitted" (same content, not
                                                 applied again) or "Duplicate Identifier"
    a Version we speak (3.0.0, 3.1.0)            "Invalid Message"

and then the message type's own rules (its handler). The result is a signed `<Type>Response`
queued for the sender in the same transaction, with the message's ConversationID; a
handler's writes are undone when it rejects, its response kept.
"""

from __future__ import annotations

from aiohttp import web

from protocols.common.context import hub_of, open_message
from protocols.common.xmlschemas import XmlInvalid
from protocols.uftp.v3_1.codec import RESPONSE, Inner, read_inner
from protocols.uftp.v3_1.d_prognosis import d_prognosis
from protocols.uftp.v3_1.envelope import Role, read_envelope
from protocols.uftp.v3_1.errors import Rejected, TransportError
from protocols.uftp.v3_1.flex_offers import flex_offer, flex_offer_revocation, trade_answered
from protocols.uftp.v3_1.handling import Accepted, Handler, Received
from protocols.uftp.v3_1.identity import identity_of
from protocols.uftp.v3_1.market import MARKET
from protocols.uftp.v3_1.metering import metering
from protocols.uftp.v3_1.portfolio_answers import (
    portfolio_query_answered,
    portfolio_update_answered,
)
from protocols.uftp.v3_1.reachability import answered_test_message
from protocols.uftp.v3_1.replies import respond
from protocols.uftp.v3_1.sealing import SIGNATURE_BYTES
from protocols.uftp.v3_1.settlement import settlement_answered
from protocols.uftp.v3_1.transport import PROTOCOL, SIGNED, Signed
from store.messages import claimed_payload

VERSIONS = frozenset({"3.0.0", "3.1.0"})


async def _noted(received: Received) -> Accepted:
    """A TestMessage: taken in, nothing to apply (its response says it arrived)."""
    return Accepted()


HANDLERS: dict[str, Handler] = {
    "D-Prognosis": d_prognosis,
    "Metering": metering,
    "FlexOffer": flex_offer,
    "FlexOfferRevocation": flex_offer_revocation,
    "TestMessage": _noted,
    "TestMessageResponse": answered_test_message,
    "FlexRequestResponse": trade_answered,
    "FlexOrderResponse": trade_answered,
    "FlexReservationUpdateResponse": trade_answered,
    "FlexSettlementResponse": settlement_answered,
    "DSOPortfolioUpdateResponse": portfolio_update_answered,
    "DSOPortfolioQueryResponse": portfolio_query_answered,
}

# What each role may send a DSO (the DSO's acceptable messages, by sender).
FROM_ROLE: dict[Role, frozenset[str]] = {
    Role.AGR: frozenset(
        {
            "D-Prognosis",
            "FlexOffer",
            "FlexOfferRevocation",
            "FlexRequestResponse",
            "FlexOrderResponse",
            "FlexReservationUpdateResponse",
            "FlexSettlementResponse",
            "Metering",
            "TestMessage",
            "TestMessageResponse",
        }
    ),
    Role.CRO: frozenset(
        {
            "DSOPortfolioQueryResponse",
            "DSOPortfolioUpdateResponse",
            "TestMessage",
            "TestMessageResponse",
        }
    ),
    Role.DSO: frozenset({"TestMessage", "TestMessageResponse"}),
}


def _read(signed: Signed) -> Inner:
    try:
        return read_inner(signed.inner)
    except XmlInvalid as exc:
        raise TransportError(400, f"Invalid Message: {exc.reason}") from exc
    except Rejected as exc:
        raise TransportError(400, exc.reason) from exc


def _inner_of(stored: bytes | None) -> bytes | None:
    """The inner bytes of a SignedMessage kept in the message log."""
    if stored is None:
        return None
    try:
        return read_envelope(stored).sealed[SIGNATURE_BYTES:]
    except XmlInvalid:
        return None


async def _repeat(received: Received, signed: Signed) -> str:
    stored = await claimed_payload(
        received.tx,
        received.tenant,
        protocol=PROTOCOL,
        peer=received.peer.name,
        message_id=received.inner.header.message_id,
    )
    same = _inner_of(stored) == signed.inner
    return "Already Submitted" if same else "Duplicate Identifier"


def _check_generic(received: Received, signed: Signed) -> None:
    header = received.inner.header
    if header.sender_domain != signed.envelope.sender_domain:
        raise Rejected("Mismatch SenderDomain")
    if header.kind not in FROM_ROLE[signed.envelope.sender_role]:
        raise Rejected("Invalid SenderRole")
    if header.recipient_domain != received.identity.domain:
        raise Rejected("Unknown RecipientDomain")


async def _apply(received: Received, signed: Signed, repeated: bool) -> Accepted:
    _check_generic(received, signed)
    if repeated:
        raise Rejected(await _repeat(received, signed))
    if received.inner.header.version not in VERSIONS:
        raise Rejected(f"Invalid Message: Version {received.inner.header.version} not supported")
    handler = HANDLERS.get(received.inner.header.kind)
    if handler is None:
        raise Rejected(f"Invalid Message: {received.inner.header.kind} is not handled yet")
    async with received.tx.begin_nested():  # a rejection undoes what the handler wrote
        return await handler(received)


async def receive_message(request: web.Request) -> web.Response:
    signed = request[SIGNED]
    inner = _read(signed)
    market = request.config_dict[MARKET]
    async with open_message(
        request, PROTOCOL, inner.header.kind, message_id=inner.header.message_id
    ) as message:
        identity = await identity_of(message.tx, message.tenant, market.domain)
        received = Received(message.tx, message.tenant, signed.peer, identity, market, inner)
        rejection, accepted = None, Accepted()
        try:
            accepted = await _apply(received, signed, message.repeated)
        except Rejected as exc:
            rejection = exc.reason
            message.outcome("refused", exc.reason)
        if not inner.header.kind.endswith(RESPONSE):
            await respond(
                message.tx,
                signed.peer,
                identity,
                inner.header,
                rejection=rejection,
                extra=accepted.extra,
                children=accepted.children,
            )
        if accepted.then is not None:
            await accepted.then()
    hub_of(request).wake_outbox()
    return web.Response(status=200)


routes = (web.post("/message", receive_message),)
