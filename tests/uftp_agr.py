"""An AGR for UFTP tests in this process: it signs what it sends with its own key, and its
endpoint records every SignedMessage flexbridge sends it, verified with flexbridge's public
key and read into (type, attributes, children). And the `dso` fixture (registered by
tests/conftest.py): a flexbridge app with a tenant, our identity, this AGR as its peer and a
congestion point it is active at."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from xml.etree.ElementTree import Element
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web

from adapter import peer_admin
from adapter.app import create_app
from adapter.keys import DB
from adapter.settings import Settings
from protocols.common.xmlschemas import check, parse
from protocols.uftp.v3_1.codec import Node, document, timestamp
from protocols.uftp.v3_1.congestion_points import NewCongestionPoint, add_congestion_point
from protocols.uftp.v3_1.envelope import Role, read_envelope, write_envelope
from protocols.uftp.v3_1.identity import identity_of
from protocols.uftp.v3_1.schemas import OUTBOUND, PACKAGE
from protocols.uftp.v3_1.sealing import SigningKey, open_sealed, public_key
from store.tenants import add_tenant

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


# --- flexbridge as the DSO, with this AGR as its peer -----------------------------------

PATH = "/shapeshifter/api/v3/message"
CP = "ea1.2026-12.nl.example.dso:cp-1"
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
XML = {"Content-Type": "text/xml; charset=utf-8"}


class Dso:
    def __init__(self, client: Any, app: Any, tenant: Any, agr: Agr, point: Any) -> None:
        self.client, self.app, self.tenant, self.agr, self.point = client, app, tenant, agr, point

    async def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
        response = await self.client.post(PATH, data=body, headers=headers or XML)
        return response.status, await response.text()

    async def send(
        self, kind: str, children: list[Node] | None = None, **attributes: str
    ) -> tuple[int, str]:
        inner = self.agr.message(kind, self.agr.metadata(**attributes), children)
        return await self.post(self.agr.signed(inner))


@pytest.fixture
async def dso(db, database_url, aiohttp_client, aiohttp_server):  # type: ignore[no-untyped-def]
    agr = Agr()
    agr_server = await aiohttp_server(agr.app())
    settings = replace(
        Settings(),
        database_url=database_url,
        admin_password="admin-pw",
        outbox_poll_seconds=0.05,
        peer_clock_seconds=0.05,
        uftp_domain="dso.example.com",
        uftp_congestion_check_seconds=0.05,
    )
    app = create_app(settings)
    client = await aiohttp_client(app)
    async with db.transaction() as tx:
        tenant, _ = await add_tenant(tx, "grid")
    async with app[DB].transaction() as tx:
        identity = await identity_of(tx, tenant, "dso.example.com")
    agr.dso_key = identity.key.public
    await peer_admin.add(
        app[DB],
        peer_admin.NewPeer(
            "grid",
            "uftp",
            agr.domain,
            str(agr_server.make_url("/agr/message")),
            role="AGR",
            public_keys=(agr.key.public,),
        ),
    )
    point = await add_congestion_point(
        app[DB], NewCongestionPoint("grid", CP, ("ean.871685900012345678",), (agr.domain,))
    )
    return Dso(client, app, tenant, agr, point)


def tomorrow() -> date:
    return datetime.now(AMSTERDAM).date() + timedelta(days=1)


def flex_attributes(period: date, **more: str) -> dict[str, str]:
    return {
        "ISP-Duration": "PT15M",
        "TimeZone": "Europe/Amsterdam",
        "Period": period.isoformat(),
        "CongestionPoint": CP,
        **more,
    }


def valid_outbound(inner: bytes) -> None:
    check(parse(inner), PACKAGE, OUTBOUND)


def isps_of(period: date) -> int:
    start = datetime.combine(period, datetime.min.time(), AMSTERDAM)
    end = datetime.combine(period + timedelta(days=1), datetime.min.time(), AMSTERDAM)
    return (end - start) // timedelta(minutes=15)
