"""/health (is the database reachable, which version) and /metrics (Prometheus text)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from adapter.keys import DB, METRICS
from adapter.metrics import CONTENT_TYPE
from store.migrate import current_revision
from store.outbox import outbox_depth

routes = web.RouteTableDef()


def flexbridge_version() -> str:
    try:
        return version("flexbridge")
    except PackageNotFoundError:
        return "unknown"


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    try:
        revision = await current_revision(request.app[DB])
    except Exception as exc:  # any failure to reach the database is "unhealthy", not a 500
        return web.json_response(
            {
                "status": "unavailable",
                "version": flexbridge_version(),
                "database": f"unreachable: {type(exc).__name__}",
            },
            status=503,
        )
    return web.json_response(
        {"status": "ok", "version": flexbridge_version(), "database": "ok", "schema": revision}
    )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    registry = request.app[METRICS]
    async with request.app[DB].read() as tx:
        depth = await outbox_depth(tx)
    for status, count in depth.items():
        registry.outbox_depth.labels(status).set(count)
    return web.Response(body=registry.render(), headers={"Content-Type": CONTENT_TYPE})
