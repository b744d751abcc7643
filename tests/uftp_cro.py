"""A CRO for UFTP tests in this process, made as tests/uftp_agr.py makes its AGR: it signs
as role CRO with its own key, and its endpoint records every SignedMessage flexbridge sends
it. And `with_cro`, for a test module's fixture: the `dso` fixture with this CRO as a uftp
peer of the tenant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from uftp_agr import Agr, Dso

from adapter import peer_admin
from adapter.keys import DB
from protocols.uftp.v3_1.envelope import Role, write_envelope
from protocols.uftp.v3_1.sealing import SigningKey

CRO_DOMAIN = "cro.example.com"


@dataclass
class Cro(Agr):
    domain: str = CRO_DOMAIN

    def signed(
        self, inner: bytes, *, key: SigningKey | None = None, domain: str | None = None
    ) -> bytes:
        sealed = (key or self.key).seal(inner)
        return write_envelope(domain or self.domain, Role.CRO, sealed)


class WithCro:
    """The DSO of the `dso` fixture and its CRO; `as_cro` posts as the CRO."""

    def __init__(self, dso: Dso, cro: Cro) -> None:
        self.dso, self.cro = dso, cro
        self.as_cro = Dso(dso.client, dso.app, dso.tenant, cro, dso.point)


async def with_cro(dso: Dso, aiohttp_server: Any) -> WithCro:
    party = Cro(dso_key=dso.agr.dso_key)
    server = await aiohttp_server(party.app())
    await peer_admin.add(
        dso.app[DB],
        peer_admin.NewPeer(
            "grid",
            "uftp",
            CRO_DOMAIN,
            str(server.make_url("/agr/message")),
            role="CRO",
            public_keys=(party.key.public,),
        ),
    )
    return WithCro(dso, party)
