"""OSCP 2.0 registration: the token swap that opens a link, its update and its end.

POST   {prefix}/register   initiator's Register (Authorization: Token A, body token B):
                           204 first, then our Register to the chosen base_url with
                           Authorization: Token B, X-Correlation-ID = its X-Request-ID,
                           body token C + our version; C replaces A (A is revoked)
POST   {prefix}/register   with X-Correlation-ID: the answer to a Register of ours: its
                           token and base_url are kept, nothing is sent back
PUT    {prefix}/register   endpoint update: the new token and base_url are kept; no swap
DELETE {prefix}/register   unregister: we forget how to reach the peer and stop sending
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.peer_state import edit
from protocols.common.context import caller_of, hub_of, open_message
from protocols.common.surface import ProtocolError
from protocols.oscp.v2_0 import codec
from store.accounts import record_token, revoke_token
from store.peers import OutboundAuth, Peer, check_base_url, update_peer
from store.secrets import new_secret

VERSION = "2.0"

routes = web.RouteTableDef()


def chosen_base_url(body: dict[str, Any]) -> str:
    """The peer's base_url for the version we speak; 501 when it offers none we do."""
    for index, offer in enumerate(body["version_url"]):
        if offer["version"] == VERSION:
            url = check_base_url(offer["base_url"], f"version_url[{index}].base_url")
            return url or ""
    offered = ", ".join(repr(o["version"]) for o in body["version_url"])
    raise ProtocolError(
        501, "not_implemented", f"no common version: offered {offered}; we speak {VERSION!r}"
    )


def our_base_url(request: web.Request) -> str:
    """Where the peer reaches us: the public URL and the prefix this request came in on."""
    return hub_of(request).public_url + request.path.rsplit("/", 1)[0]


@routes.post("/register")
async def register(request: web.Request) -> web.StreamResponse:
    """OSCP 2.0: the receiver answers 204 first, then posts its own Register to the chosen
    base_url with `Authorization: Token B`, body token C and the selected version,
    `X-Correlation-ID` = the initiator's request id; token C replaces A."""
    answering = codec.request_id(request)
    body = await codec.read(request, "register")
    base_url = chosen_base_url(body)
    is_reply = bool(request.headers.get("X-Correlation-ID", "").strip())
    now = datetime.now(UTC)
    async with open_message(request, codec.PROTOCOL, "Register", message_id=answering) as message:
        if message.repeated:
            return codec.no_content(request)
        tx = message.tx
        peer = await _keep_endpoint(tx, message.from_peer(), base_url, body["token"], now)
        async with edit(tx, peer) as state:
            state.registered_at = now
        if not is_reply:
            account = caller_of(request).account
            token_c = new_secret()
            await record_token(tx, account, token_c, None)
            await revoke_token(tx, account, codec.caller_token(request))
            ours = {
                "token": token_c,
                "version_url": [{"version": VERSION, "base_url": our_base_url(request)}],
            }
            await codec.send(tx, peer, "Register", "/register", ours, correlation=answering)
    response = await codec.answered_first(request)
    hub_of(request).wake_outbox()
    return response


async def _keep_endpoint(
    tx: AsyncConnection, peer: Peer, base_url: str, token: str, now: datetime
) -> Peer:
    """Where and with which token (B) we reach the peer, in the version we agreed."""
    peer = await update_peer(
        tx, peer.tenant, peer, base_url=base_url, auth=OutboundAuth.TOKEN, secret=token, seen=now
    )
    async with edit(tx, peer) as state:
        state.version = VERSION
    return peer


@routes.put("/register")
async def update_endpoint(request: web.Request) -> web.Response:
    """The peer moved or changed the token we use towards it; its token with us stays."""
    message_id = codec.request_id(request)
    body = await codec.read(request, "register")
    base_url = chosen_base_url(body)
    now = datetime.now(UTC)
    async with open_message(
        request, codec.PROTOCOL, "RegisterUpdate", message_id=message_id
    ) as message:
        if not message.repeated:
            peer = await _keep_endpoint(
                message.tx, message.from_peer(), base_url, body["token"], now
            )
            async with edit(message.tx, peer) as state:
                state.endpoint_updated_at = now
    return codec.no_content(request)


@routes.delete("/register")
async def unregister(request: web.Request) -> web.Response:
    """We forget the token we used towards the peer and stop our heartbeats; its own token
    with us stays valid, so that it can register again."""
    message_id = codec.request_id(request)
    now = datetime.now(UTC)
    async with open_message(
        request, codec.PROTOCOL, "Unregister", message_id=message_id
    ) as message:
        if not message.repeated:
            tx = message.tx
            peer = await update_peer(
                tx, message.tenant, message.from_peer(), auth=OutboundAuth.NONE, secret="", seen=now
            )
            async with edit(tx, peer) as state:
                state.registered_at = state.handshaken_at = None
                state.heartbeat_interval = state.next_heartbeat_at = None
                state.unregistered_at = now
    return codec.no_content(request)
