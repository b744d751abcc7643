"""The application: `create_app(settings)` wires state, middlewares, routes and workers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from adapter.auth import RateLimiter
from adapter.bootstrap import first_start
from adapter.guards import CredentialCache
from adapter.health import routes as health_routes
from adapter.keys import CREDENTIAL_CACHE, DB, DELIVERY, JWT_SECRET, METRICS, RATE_LIMITER, SETTINGS
from adapter.metrics import Metrics
from adapter.middlewares import ROOT_MIDDLEWARES
from adapter.outbox import DeliveryWorker
from adapter.settings import Settings
from adapter.surfaces import mount
from protocols.cpapi import v1 as cpapi_v1
from store.app_secrets import get_or_create_secret
from store.db import open_database
from store.migrate import upgrade
from store.secrets import new_secret


async def _database(app: web.Application) -> AsyncIterator[None]:
    """Open, migrate and (on an empty database) seed; closed after the workers stop."""
    settings = app[SETTINGS]
    db = open_database(settings.database_url)
    try:
        await upgrade(db)
        created = await first_start(db, settings.admin_password)
        if created is not None:
            print(created.banner(), flush=True)
        async with db.transaction() as tx:
            app[JWT_SECRET] = settings.jwt_secret or await get_or_create_secret(
                tx, "jwt", new_secret
            )
        app[DB] = db
        yield
    finally:
        await db.close()


async def _delivery(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session:
        worker = DeliveryWorker(app[DB], app[SETTINGS], app[METRICS], session)
        app[DELIVERY] = worker
        worker.start()
        yield
        await worker.stop()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=ROOT_MIDDLEWARES, client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[RATE_LIMITER] = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    app[CREDENTIAL_CACHE] = CredentialCache()
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_delivery)
    app.add_routes(health_routes)
    mount(app, settings.cpapi_prefix, cpapi_v1.SURFACE)
    mount(app, f"/{settings.event_hub_path.strip('/')}", cpapi_v1.EVENT_HUB)
    return app
