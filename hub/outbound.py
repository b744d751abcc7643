"""The send path: a message for a peer (JSON, or bytes already encoded) is queued in the
outbox inside the transaction that caused it, and the adapter's delivery worker sends it
after commit, with retries."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from store.outbox import enqueue
from store.peers import Peer

DEFAULT_DEADLINE = timedelta(hours=24)


async def send(
    tx: AsyncConnection,
    peer: Peer,
    *,
    protocol: str,
    message_type: str,
    path: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    message_id: str | None = None,
    deadline: timedelta = DEFAULT_DEADLINE,
    topic: str | None = None,
) -> int | None:
    """Queue a JSON message for the peer; its outbox id, or None when we do not know where
    to reach the peer yet (what caused the message is kept all the same). A message with a
    `topic` supersedes the peer's undelivered ones of that topic (store.outbox)."""
    return await send_bytes(
        tx,
        peer,
        protocol=protocol,
        message_type=message_type,
        path=path,
        body=orjson.dumps(body),
        headers={"Content-Type": "application/json", **(headers or {})},
        message_id=message_id,
        deadline=deadline,
        topic=topic,
    )


async def send_bytes(
    tx: AsyncConnection,
    peer: Peer,
    *,
    protocol: str,
    message_type: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    message_id: str | None = None,
    deadline: timedelta = DEFAULT_DEADLINE,
    topic: str | None = None,
) -> int | None:
    """Queue a message already encoded (its Content-Type among `headers`), as `send`."""
    if not peer.base_url:
        return None
    return await enqueue(
        tx,
        peer.tenant,
        peer,
        protocol=protocol,
        message_type=message_type,
        path=path,
        body=body,
        headers=headers,
        message_id=message_id,
        deadline=deadline,
        topic=topic,
    )
