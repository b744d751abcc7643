"""What every OSCP 2.0 handler does around its message: the headers, the body against its
schema, the peer behind the token, the idempotency claim, the 204, and messages queued for the
peer through the outbox.

    X-Request-ID       required on every request (400 without); a repeated one from the same
                       peer is answered 204 again and changes nothing
    X-Correlation-ID   on our answers (= the request id answered) and on our replies
                       (Register back, HandshakeAcknowledge)
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from protocols.common.context import caller_of
from protocols.common.jsonschemas import check
from protocols.common.surface import ProtocolError
from protocols.common.wire import read_json
from store.messages import claim_message
from store.outbox import enqueue
from store.peers import OutboundAuth, Peer, peer_for_account

PROTOCOL = "oscp"
SCHEMAS = "schemas.oscp"
MAX_REQUEST_ID = 200  # what the message log keeps


def request_id(request: web.Request) -> str:
    """OSCP 2.0: X-Request-ID is required on every request."""
    given = request.headers.get("X-Request-ID", "").strip()
    if not given:
        raise ProtocolError(400, "invalid", "header X-Request-ID is required")
    if len(given) > MAX_REQUEST_ID:
        raise ProtocolError(
            400, "invalid", f"header X-Request-ID: at most {MAX_REQUEST_ID} characters"
        )
    return given


async def read(request: web.Request, schema: str) -> dict[str, Any]:
    """The JSON body, checked against schemas/oscp/2.0/<schema>.json."""
    body = await read_json(request)
    check(body, SCHEMAS, f"2.0/{schema}.json")
    return body


def caller_token(request: web.Request) -> str:
    """The token the caller authenticated with (the surface checked it)."""
    parts = request.headers.get("Authorization", "").split(None, 1)
    return parts[1].strip() if len(parts) == 2 else ""


async def peer_of(tx: AsyncConnection, request: web.Request) -> Peer:
    """The OSCP peer whose token the caller used (`flexbridge peer add --protocol oscp`)."""
    caller = caller_of(request)
    peer = await peer_for_account(tx, caller.tenant, PROTOCOL, caller.account.id)
    if peer is None:
        raise ProtocolError(403, "forbidden", "this token belongs to no OSCP peer")
    return peer


async def first_time(tx: AsyncConnection, request: web.Request, peer: Peer, kind: str) -> bool:
    """False when this peer sent this X-Request-ID before (it was applied then)."""
    return await claim_message(
        tx,
        peer.tenant,
        protocol=PROTOCOL,
        peer=peer.name,
        message_id=request_id(request),
        message_type=kind,
        payload=await request.read(),
        peer_id=peer.id,
    )


def no_content(request: web.Request) -> web.Response:
    """204, empty body, X-Correlation-ID = the request id answered."""
    return web.Response(status=204, headers={"X-Correlation-ID": request_id(request)})


async def answered_first(request: web.Request) -> web.Response:
    """The 204, already written to the peer: call before waking the outbox when the reply
    must follow the answer (OSCP 2.0 Register: "answers 204 FIRST, then POSTs")."""
    response = no_content(request)
    await response.prepare(request)
    await response.write_eof()
    return response


def registered(peer: Peer) -> bool:
    """We know where to reach the peer and the token to use there (from its Register)."""
    return bool(peer.base_url) and peer.auth is OutboundAuth.TOKEN and bool(peer.secret)


async def send(
    tx: AsyncConnection,
    peer: Peer,
    kind: str,
    path: str,
    body: dict[str, Any],
    *,
    correlation: str | None = None,
) -> bool:
    """Queue a message for the peer (sent after commit); False when the peer has not
    registered, so there is nowhere to send it (what caused it is kept all the same)."""
    if not registered(peer):
        return False
    headers = {"Content-Type": "application/json"}
    if correlation:
        headers["X-Correlation-ID"] = correlation
    await enqueue(
        tx,
        peer.tenant,
        peer,
        protocol=PROTOCOL,
        message_type=kind,
        path=path,
        body=orjson.dumps(body),
        headers=headers,
    )
    return True


def seconds(value: float) -> int | float:
    """A number of seconds as JSON: whole numbers without '.0' (peers validate integers)."""
    return int(value) if float(value).is_integer() else value
