"""OCMP 1.0, flexbridge as the Capacity Management Operator (CMO), in the rendition of
docs/protocols/ocmp-1.0.md (OCMP has no public wire text)."""

from __future__ import annotations

from protocols.common.surface import Auth, Surface
from protocols.ocmp.v1_0 import clock, messages
from protocols.ocmp.v1_0.errors import error_reply
from store.accounts import Role

SURFACE = Surface(
    name="OCMP 1.0",
    routes=tuple(messages.routes),
    # Section 7: "Communication will be over HTTPS using basic authentication"; the tenant key
    # header as on the CP-API (DESIGN.md section 7).
    auth=Auth.BASIC_AND_TENANT_KEY,
    roles=frozenset({Role.PEER}),
    realm="OCMP",
    render_error=error_reply,
    clock=clock.tick,
)
