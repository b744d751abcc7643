"""OSCP 2.0, flexbridge as the Capacity Optimizer (CO) and as a Capacity Provider (CP) for
DSO users, per docs/protocols/oscp-2.0.md.

Two surfaces, mounted at their own prefixes (settings oscp_co_prefix, oscp_cp_prefix):

    CO  register (POST, PUT, DELETE), handshake, handshake_acknowledge(+ment), heartbeat,
        update_group_capacity_forecast, update_asset_measurements (+ singular spelling)
    CP  register (POST, PUT, DELETE), handshake_acknowledge(+ment), heartbeat,
        update_group_measurements, adjust_group_capacity_forecast,
        group_capacity_compliance_error

Both authenticate with `Authorization: Token <token>` and answer errors as
`{"message": ...}`. The clock (heartbeats, offline peers, fallbacks, re-sends) runs once, on
the CO surface: it serves every OSCP peer whichever surface it talks to.
"""

from __future__ import annotations

from protocols.common.surface import Auth, Surface
from protocols.oscp.v2_0 import (
    capacity_requests,
    clock,
    codec,
    forecasts,
    group_measurements,
    handshake,
    heartbeat,
    measurements,
    registration,
)
from protocols.oscp.v2_0.dialects import DIALECTS
from protocols.oscp.v2_0.errors import message_reply
from store.accounts import Role

_LINK = (*registration.routes, *handshake.ack_routes, *heartbeat.routes)

CO_SURFACE = Surface(
    name="OSCP 2.0 CO",
    routes=(*_LINK, *handshake.routes, *forecasts.routes, *measurements.routes),
    auth=Auth.TOKEN,
    roles=frozenset({Role.PEER}),
    realm="OSCP",
    render_error=message_reply,
    clock=clock.tick,
    dialects=frozenset(DIALECTS),
    peer_protocol=codec.PROTOCOL,
    send_optimum=forecasts.send_optimum_forecast,
)

CP_SURFACE = Surface(
    name="OSCP 2.0 CP",
    routes=(*_LINK, *group_measurements.routes, *capacity_requests.routes),
    auth=Auth.TOKEN,
    roles=frozenset({Role.PEER}),
    realm="OSCP",
    render_error=message_reply,
    dialects=frozenset(DIALECTS),
    peer_protocol=codec.PROTOCOL,
)
