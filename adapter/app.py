"""The application: `create_app(settings)` wires state, middlewares, routes and workers."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
from aiohttp import web

from adapter.auth import RateLimiter
from adapter.bootstrap import first_start
from adapter.guards import CredentialCache, LoginCache
from adapter.health import routes as health_routes
from adapter.keys import (
    BRAKE,
    CREDENTIAL_CACHE,
    DB,
    DELIVERY,
    JWT_SECRET,
    LOGIN_CACHE,
    METRICS,
    PEER_CLOCK,
    RATE_LIMITER,
    SETTINGS,
    SOLVER,
)
from adapter.metrics import Metrics
from adapter.middlewares import ROOT_MIDDLEWARES
from adapter.outbox import DeliveryWorker
from adapter.peer_clock import PeerClock
from adapter.settings import Settings
from adapter.solver import Solver
from adapter.surfaces import mount
from adapter.throttle import Brake
from hub.runtime import Hub
from protocols.common.context import HUB
from protocols.cpapi import v1 as cpapi_v1
from protocols.ocmp import v1_0 as ocmp_v1_0
from protocols.oscp import v2_0 as oscp_v2_0
from store.app_secrets import get_or_create_secret
from store.db import open_database
from store.key_file import secret_box
from store.migrate import upgrade
from store.secrets import new_secret


async def _database(app: web.Application) -> AsyncIterator[None]:
    """Open, migrate and (on an empty database) seed; closed after the workers stop."""
    settings = app[SETTINGS]
    keys = secret_box(settings.secret_keys, settings.secret_key_file)
    db = open_database(
        settings.database_url,
        secrets=keys,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    db = db.with_group_commit(settings.group_commit_max)
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
        settings = app[SETTINGS]
        # Two servers on one host listen on different ports: host and port name the slot.
        name = f"{socket.gethostname()}:{settings.host}:{settings.port}"
        worker = DeliveryWorker(app[DB], settings, app[METRICS], session, name=name)
        app[DELIVERY] = worker
        worker.start()
        yield
        await worker.stop()


async def _solver(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[SOLVER] = Solver(settings.solver_workers, settings.solver_deadline_seconds)
    yield
    await app[SOLVER].close()


async def _peer_clock(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    replan = settings.replan_minutes
    app[HUB] = Hub(
        public_url=settings.base_url,
        heartbeat_seconds=settings.heartbeat_seconds,
        resend_after=timedelta(minutes=settings.resend_minutes),
        replan_every=timedelta(minutes=replan) if replan else None,  # 0: no schedule
        wake_outbox=app[DELIVERY].wake,
        solve=app[SOLVER].solve,
        plan_hooks=tuple(s.on_plan for s in (cpapi_v1.SURFACE, *SURFACES) if s.on_plan),
    )
    clock = PeerClock(
        app[DB], app[HUB], app[METRICS], SURFACES, PEER_PROTOCOLS, settings.peer_clock_seconds
    )
    app[PEER_CLOCK] = clock
    clock.start()
    yield
    await clock.stop()


# Surfaces with peers that handshake and beat, and their protocol names in the peer table.
SURFACES = (ocmp_v1_0.SURFACE, oscp_v2_0.CO_SURFACE, oscp_v2_0.CP_SURFACE)
PEER_PROTOCOLS = ("ocmp", "oscp")


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=ROOT_MIDDLEWARES, client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[RATE_LIMITER] = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    app[BRAKE] = Brake.from_settings(settings, app[METRICS])
    app[CREDENTIAL_CACHE] = CredentialCache()
    app[LOGIN_CACHE] = LoginCache(settings.login_cache_seconds)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_delivery)
    app.cleanup_ctx.append(_solver)
    app.cleanup_ctx.append(_peer_clock)
    app.add_routes(health_routes)
    mount(app, settings.cpapi_prefix, cpapi_v1.SURFACE)
    mount(app, f"/{settings.event_hub_path.strip('/')}", cpapi_v1.EVENT_HUB)
    mount(app, settings.ocmp_prefix, ocmp_v1_0.SURFACE)
    mount(app, settings.oscp_co_prefix, oscp_v2_0.CO_SURFACE)
    mount(app, settings.oscp_cp_prefix, oscp_v2_0.CP_SURFACE)
    return app
