"""OCMP 1.0, flexbridge as the Capacity Management Operator (CMO), in the rendition of
docs/protocols/ocmp-1.0.md (OCMP has no public wire text).

    POST {prefix}/handshake                               handshake.py
    POST {prefix}/heartbeat                               heartbeat.py
    POST {prefix}/update_group_maximum_capacity_forecast  capacity.py
    POST {prefix}/update_detailed_metering_data           metering.py
"""

from __future__ import annotations

from protocols.common.surface import Auth, Surface
from protocols.ocmp.v1_0 import capacity, clock, codec, handshake, heartbeat, metering
from protocols.ocmp.v1_0.errors import error_reply
from store.accounts import Role

SURFACE = Surface(
    name="OCMP 1.0",
    routes=(*handshake.routes, *heartbeat.routes, *capacity.routes, *metering.routes),
    # Section 7: "Communication will be over HTTPS using basic authentication": the login
    # names the tenant; a tenant key, as on the CP-API, is checked when sent.
    auth=Auth.BASIC_TENANT_KEY_OPTIONAL,
    roles=frozenset({Role.PEER}),
    realm="OCMP",
    render_error=error_reply,
    clock=clock.tick,
    peer_protocol=codec.PROTOCOL,
    send_optimum=capacity.send_optimal,
)
