"""The USEF API of FlexMeasures 0.3, versions v1 to v2_0 (docs/protocols/usef-api.md).

    GET  <prefix>/                          the versions (root.py)
    POST <prefix>/requestAuthToken          a token (root.py)
    GET  <prefix>/<version>/getService      what the version serves (services.py)
    ...  <prefix>/<version>/<endpoint>      each endpoint of SERVICES (versions.py) with a
                                            handler in ENDPOINTS, in the versions that have it

Authentication: `Authorization: <token>` (the token alone; `Bearer <token>` tolerated);
getService, the versions and requestAuthToken are public; each endpoint is for the USEF
roles its service names (access.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from protocols.common.surface import Auth, Surface
from protocols.usef.v1_v2_0 import connections, power_posts, power_reads, prices, root
from protocols.usef.v1_v2_0.access import reserved
from protocols.usef.v1_v2_0.errors import render_error
from protocols.usef.v1_v2_0.power import METER_DATA, PROGNOSIS
from protocols.usef.v1_v2_0.services import get_service
from protocols.usef.v1_v2_0.versions import SERVICES, VERSIONS

# The endpoints served, by name; the others of SERVICES answer 404 in every version.
ENDPOINTS: dict[str, Callable[[web.Request], Awaitable[web.Response]]] = {
    "getConnection": connections.get_connection,
    "postMeterData": power_posts.post_handler(METER_DATA),
    "getMeterData": power_reads.get_handler(METER_DATA),
    "postPrognosis": power_posts.post_handler(PROGNOSIS),
    "getPrognosis": power_reads.get_handler(PROGNOSIS),
    "postPriceData": prices.post_price_data,
}


def _routes() -> tuple[web.AbstractRouteDef, ...]:
    routes: list[web.AbstractRouteDef] = [*root.routes, *get_service(ENDPOINTS)]
    for service in SERVICES:
        handler = ENDPOINTS.get(service.name)
        if handler is None:
            continue
        handler = reserved(service, handler)
        for version in VERSIONS:
            if service.in_version(version):
                for method in service.methods_of(version):
                    routes.append(web.route(method, f"/{version}/{service.name}", handler))
    return tuple(routes)


SURFACE = Surface(
    name="USEF API",
    routes=_routes(),
    auth=Auth.BARE_TOKEN,
    roles=root.ACCOUNT_ROLES,
    realm="USEF API",
    render_error=render_error,
)
