"""/health (is the database reachable, which version) and /metrics (Prometheus text)."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from adapter.keys import BRAKE, DB, METRICS
from adapter.metrics import CONTENT_TYPE
from store.accounts import count_locked_accounts
from store.migrate import current_revision
from store.outbox import outbox_depth

log = logging.getLogger("flexbridge.health")

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
    """The in-process counters always; the outbox and locked-account gauges are refreshed when
    the database answers, so that a scrape during a database outage still shows what the
    process saw."""
    registry = request.app[METRICS]
    try:
        async with request.app[DB].read() as tx:
            depth = await outbox_depth(tx)
            locked = await count_locked_accounts(tx, request.app[BRAKE].clock())
    except (SQLAlchemyError, OSError) as exc:  # OSError covers timeouts and refused connections
        log.warning("/metrics: outbox depth not refreshed, database unreachable: %r", exc)
    else:
        for status, count in depth.items():
            registry.outbox_depth.labels(status).set(count)
        registry.auth_locked.labels("account").set(locked)
    return web.Response(body=registry.render(), headers={"Content-Type": CONTENT_TYPE})
