"""The INVADE CP-API, version 1, with flexbridge in the platform (IIP) role
(docs/protocols/cpapi-v1.md): the asset and time-series surface and the event hub."""

from __future__ import annotations

from protocols.common.surface import Auth, Surface
from protocols.cpapi.v1 import assets, eventhub, outbound, timeseries
from protocols.cpapi.v1.errors import error_response
from store.accounts import Role

SURFACE = Surface(
    name="CP-API",
    routes=(*assets.routes, *timeseries.routes),
    # CP-API 4.1.3: basic authentication per participant plus the tenant key header.
    auth=Auth.BASIC_AND_TENANT_KEY,
    roles=frozenset({Role.ADMIN, Role.PARTICIPANT}),
    realm="CP-API",
    render_error=error_response,
    # Section 6: plans' control, capacity and flexibility series go to the tenant's endpoint.
    on_plan=outbound.emit,
)


EVENT_HUB = Surface(
    name="CP-API event hub",
    routes=tuple(eventhub.routes),
    # CP-API 5.2.1: "Each device is assigned a unique token ... A device that possesses a token
    # can only send to one publisher".
    auth=Auth.SHARED_ACCESS_SIGNATURE,
    roles=frozenset({Role.GATEWAY}),
    realm="CP-API event hub",
    render_error=error_response,
)
