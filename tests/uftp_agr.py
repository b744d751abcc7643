"""An AGR for UFTP tests in this process: it signs what it sends with its own key, and its
endpoint records every SignedMessage flexbridge sends it, verified with flexbridge's public
key and read into (type, attributes, children)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element

from aiohttp import web

from protocols.common.xmlschemas import parse
from protocols.uftp.v3_1.codec import Node, document, timestamp
from protocols.uftp.v3_1.envelope import Role, read_envelope, write_envelope
from protocols.uftp.v3_1.sealing import SigningKey, open_sealed, public_key

WAIT = 10.0  # seconds a reply may take; a failure, never a pause


@dataclass
class Received:
    kind: str
    attributes: dict[str, str]
    children: list[Element]
    inner: bytes
    headers: dict[str, str]


@dataclass
class Agr:
    domain: str = "agr.example.com"
    key: SigningKey = field(default_factory=SigningKey.generate)
    dso_domain: str = "dso.example.com"
    dso_key: str | None = None  # flexbridge's public key, once known
    inbox: asyncio.Queue[Received] = field(default_factory=asyncio.Queue)
    status: int = 200  # what the endpoint answers

    async def receive(self, request: web.Request) -> web.Response:
        envelope = read_envelope(await request.read())
        assert self.dso_key is not None
        inner = open_sealed(envelope.sealed, [public_key(self.dso_key)])
        root = parse(inner)
        await self.inbox.put(
            Received(root.tag, dict(root.attrib), list(root), inner, dict(request.headers))
        )
        return web.Response(status=self.status)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/agr/message", self.receive)
        return app

    async def next(self, kind: str | None = None) -> Received:
        while True:
            received = await asyncio.wait_for(self.inbox.get(), WAIT)
            if kind is None or received.kind == kind:
                return received

    def metadata(self, **overrides: str) -> dict[str, str]:
        return {
            "Version": "3.1.0",
            "SenderDomain": self.domain,
            "RecipientDomain": self.dso_domain,
            "TimeStamp": timestamp(datetime.now(UTC)),
            "MessageID": str(uuid.uuid4()),
            "ConversationID": str(uuid.uuid4()),
            **overrides,
        }

    def signed(
        self, inner: bytes, *, key: SigningKey | None = None, domain: str | None = None
    ) -> bytes:
        sealed = (key or self.key).seal(inner)
        return write_envelope(domain or self.domain, Role.AGR, sealed)

    def message(
        self, kind: str, attributes: dict[str, str], children: list[Node] | None = None
    ) -> bytes:
        return document(Node(kind, attributes, children or []))


def isp_nodes(powers: list[int]) -> list[Node]:
    return [
        Node("ISP", {"Power": str(p), "Start": str(n + 1), "Duration": "1"})
        for n, p in enumerate(powers)
    ]


__all__ = ["Agr", "Any", "Received", "isp_nodes"]
