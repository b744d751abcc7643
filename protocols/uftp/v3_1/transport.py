"""Taking in a SignedMessage, in the order the specification sets (message-transport-
mechanism, "Error handling"), each failure answered with the HTTP status of its table:

    no Content-Length                                   411
    Content-Type not text/xml (or application/xml, as   400
      the Java library and GOPACS send) or not UTF-8
    the envelope not well-formed or not schema-valid    400
    no key for (SenderDomain, SenderRole)               419 (temporary: the sender retries)
    the signature not verified by any of its keys       401

The signature is verified over the exact bytes received, before the inner XML is parsed.
The sender is the peer whose key verified it; its account is the caller (rate budget,
message log, idempotency). One endpoint serves every tenant: a sender known to several
tenants is taken for the one whose DSO domain the inner RecipientDomain names.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.peer_state import state_of
from protocols.common.context import database_of
from protocols.common.surface import AuthError
from protocols.common.xmlschemas import XmlInvalid, parse
from protocols.uftp.v3_1.envelope import Envelope, read_envelope
from protocols.uftp.v3_1.errors import TransportError
from protocols.uftp.v3_1.identity import kept_domain
from protocols.uftp.v3_1.sealing import BadKey, BadSignature, open_sealed, public_key
from store.accounts import Account, account_by_id
from store.peers import Peer, peers_named

PROTOCOL = "uftp"
_XML_TYPES = frozenset({"text/xml", "application/xml"})


@dataclass(frozen=True, slots=True)
class Signed:
    """A SignedMessage whose signature a peer's key verified."""

    envelope: Envelope
    inner: bytes  # the inner XML exactly as signed
    peer: Peer


SIGNED = web.RequestKey("uftp_signed", Signed)


def _check_headers(request: web.Request) -> None:
    if request.content_length is None:
        raise TransportError(411, "Content-Length required")
    if request.content_type not in _XML_TYPES:
        raise TransportError(400, f"Content-Type {request.content_type!r}: text/xml required")
    if (request.charset or "utf-8").lower() not in ("utf-8", "utf8"):
        raise TransportError(400, f"charset {request.charset!r}: UTF-8 required")


def _opened(peer: Peer, sealed: bytes) -> bytes | None:
    try:
        keys = [public_key(text) for text in state_of(peer).public_keys]
        return open_sealed(sealed, keys)
    except (BadKey, BadSignature):
        return None


def _recipient(inner: bytes) -> str | None:
    try:
        return parse(inner).attrib.get("RecipientDomain")
    except XmlInvalid:
        return None


async def _signer(tx: AsyncConnection, envelope: Envelope) -> Signed:
    candidates = [
        peer
        for peer in await peers_named(tx, PROTOCOL, envelope.sender_domain)
        if state_of(peer).role == envelope.sender_role
    ]
    if not candidates:
        raise TransportError(419, "Unknown SenderDomain (SignedMessage)")
    verified = [
        Signed(envelope, inner, peer)
        for peer in candidates
        if (inner := _opened(peer, envelope.sealed)) is not None
    ]
    if not verified:
        raise AuthError("Invalid signature")
    if len(verified) > 1:
        return await _addressed(tx, verified)
    return verified[0]


async def _addressed(tx: AsyncConnection, verified: list[Signed]) -> Signed:
    """Of a sender known to several tenants, the one whose DSO domain the message names."""
    wanted = _recipient(verified[0].inner)
    for signed in verified:
        if await kept_domain(tx, signed.peer.tenant) == wanted:
            return signed
    return verified[0]


async def authenticate(request: web.Request) -> Account:
    """The account of the peer that signed the request's SignedMessage (its envelope and
    inner bytes kept in request[SIGNED]), found in one read."""
    _check_headers(request)
    try:
        envelope = read_envelope(await request.read())
    except XmlInvalid as exc:
        raise TransportError(400, f"Invalid SignedMessage: {exc.reason}") from exc
    async with database_of(request).read() as tx:
        signed = await _signer(tx, envelope)
        if signed.peer.account_id is None:
            raise TransportError(419, "Unknown SenderDomain (SignedMessage)")
        account = await account_by_id(tx, signed.peer.account_id)
    request[SIGNED] = signed
    return account
