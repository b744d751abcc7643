"""The INVADE CP-API, version 1, with flexbridge in the platform (IIP) role."""

from __future__ import annotations

from protocols.common.surface import Auth, Surface
from protocols.cpapi.v1 import assets, timeseries
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
)
