"""UFTP 3.1 (Shapeshifter), flexbridge as the DSO, per docs/protocols/uftp-3.1.md.

One route, `POST <prefix>/message` (setting uftp_prefix, default /shapeshifter/api/v3: one
URL per major version, 3.0.x and 3.1.x share it). Authentication is the body's signature
(transport.py); transport failures are answered with their HTTP status and a one-line text
body, business results later by signed responses.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from hub.runtime import Hub
from protocols.common.surface import Auth, Refusal, Surface
from protocols.uftp.v3_1 import clock, messages, transport
from protocols.uftp.v3_1.market import Market
from store.accounts import Role
from store.db import Database

# The sender's side of the spec's table: 404 and 419 (no key for us yet) are temporary.
TEMPORARY = frozenset({404, 419})


def render_error(refusal: Refusal) -> web.Response:
    """The transport answer: the status, the reason as plain text (the spec defines no body)."""
    return web.Response(
        status=refusal.status,
        text=refusal.message,
        content_type="text/plain",
        headers=refusal.headers,
    )


def surface(market: Market) -> Surface:
    """The surface for a market (its clock checks congestion in the market's time zone)."""

    swept: datetime | None = None  # when this process last swept

    async def tick(db: Database, hub: Hub, now: datetime) -> None:
        nonlocal swept
        if swept is not None and now - swept < market.congestion_check:
            return
        swept = now
        await clock.tick(db, hub, now, market)

    return Surface(
        name="UFTP 3.1",
        routes=messages.routes,
        auth=Auth.SIGNED_BODY,
        roles=frozenset({Role.PEER}),
        realm="UFTP",
        render_error=render_error,
        clock=tick,
        peer_protocol=transport.PROTOCOL,
        authenticate=transport.authenticate,
        retry_statuses=TEMPORARY,
    )
