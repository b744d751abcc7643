"""getConnection (v1_1 and later, A.4): the connections of the caller's account, by their
EA1 address, with their names in the same order, the newest first.

A connection is a resource (not an area: a UFTP congestion point is none) of the caller's
tenant. Each is named by its USEF `ea1` reference; one without gets the address
`<naming authority>:<tenant id>:<entity id>` (naming.py) here, minted once and kept.
`type` may be left out, as FlexMeasures 0.3 never checked it here; when given it must be
GetConnectionRequest.
"""

from __future__ import annotations

from aiohttp import web

from protocols.common.context import caller_of, database_of
from protocols.usef.v1_v2_0.envelope import processed
from protocols.usef.v1_v2_0.fields import check_type, fields_of
from protocols.usef.v1_v2_0.naming import NAMING, authority_of
from store.references import USEF_SYSTEM, mint_ea1_addresses, named_resources
from store.timeutil import utcnow


async def get_connection(request: web.Request) -> web.Response:
    check_type(await fields_of(request), "getConnection", required=False)
    tenant = caller_of(request).tenant
    async with database_of(request).transaction() as tx:
        authority = await authority_of(tx, request.config_dict[NAMING], utcnow().date())
        await mint_ea1_addresses(tx, tenant, authority)
        named = await named_resources(tx, tenant, USEF_SYSTEM, "ea1")
    return processed(
        "getConnection",
        connections=[address for address, _ in named],
        names=[name for _, name in named],
    )
