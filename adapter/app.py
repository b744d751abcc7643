"""The application: `create_app(settings)` wires state, middlewares, routes and workers."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from adapter.auth import RateLimiter
from adapter.background import Background
from adapter.bootstrap import first_start
from adapter.guards import CredentialCache, LoginCache, password_account
from adapter.health import routes as health_routes
from adapter.keys import (
    BACKGROUND,
    BRAKE,
    CREDENTIAL_CACHE,
    DB,
    JWT_SECRET,
    LOGIN_CACHE,
    METRICS,
    RATE_LIMITER,
    SETTINGS,
)
from adapter.metrics import Metrics
from adapter.middlewares import ROOT_MIDDLEWARES
from adapter.settings import Settings
from adapter.surfaces import mount
from adapter.throttle import Brake
from protocols.common.context import HUB, LIMITS, PASSWORD_LOGIN
from protocols.common.surface import Surface
from protocols.cpapi import v1 as cpapi_v1
from protocols.ocmp import v1_0 as ocmp_v1_0
from protocols.oscp import v2_0 as oscp_v2_0
from protocols.uftp import v3_1 as uftp_v3_1
from protocols.uftp.v3_1.identity import default_domain
from protocols.uftp.v3_1.market import Market
from protocols.usef import v1_v2_0 as usef_api
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


def slot_name(settings: Settings) -> str:
    """The name of this server's process slot (outbox and plan claims): two servers on one
    host listen on different ports, and a server started again on its port finds its own
    claims (and releases them at once instead of waiting out their leases)."""
    return f"{socket.gethostname()}:{settings.host}:{settings.port}"


def _background(name: str | None) -> Callable[[web.Application], AsyncIterator[None]]:
    """The work besides HTTP (adapter/background.py), in process slot `name` (that of
    `serve` when None)."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        async with aiohttp.ClientSession() as session:
            background = Background(
                app[DB],
                settings,
                app[METRICS],
                session,
                (cpapi_v1.SURFACE, *peer_surfaces(settings)),
                name=name or slot_name(settings),
                runs_jobs=settings.run_jobs or name is not None,
            )
            app[BACKGROUND], app[HUB] = background, background.hub
            background.start()
            try:
                yield
            finally:
                await background.stop()

    return context


def uftp_market(settings: Settings) -> Market:
    return Market(
        default_domain(settings.uftp_domain, settings.base_url),
        ZoneInfo(settings.uftp_time_zone),
        order_lead=timedelta(seconds=settings.uftp_order_lead_seconds),
        reservation_lead=timedelta(seconds=settings.uftp_reservation_lead_seconds),
        congestion_check=timedelta(seconds=settings.uftp_congestion_check_seconds),
    )


def peer_surfaces(settings: Settings) -> tuple[Surface, ...]:
    """Surfaces with peers: the ones that handshake and beat, and UFTP's traders."""
    uftp = uftp_v3_1.surface(uftp_market(settings))
    return (ocmp_v1_0.SURFACE, oscp_v2_0.CO_SURFACE, oscp_v2_0.CP_SURFACE, uftp)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=ROOT_MIDDLEWARES, client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[RATE_LIMITER] = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    app[BRAKE] = Brake.from_settings(settings, app[METRICS])
    app[CREDENTIAL_CACHE] = CredentialCache()
    app[LOGIN_CACHE] = LoginCache(settings.login_cache_seconds)
    app[LIMITS] = settings.limits
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_background(None))
    app.add_routes(health_routes)
    app[uftp_v3_1.MARKET] = uftp_market(settings)
    app[usef_api.TOKEN_TTL] = timedelta(seconds=settings.usef_token_ttl_seconds)
    host = urlsplit(settings.base_url).hostname or "localhost"
    app[usef_api.NAMING] = usef_api.Naming(settings.usef_naming_authority, host)
    app[PASSWORD_LOGIN] = password_account
    mount(
        app,
        [
            (settings.cpapi_prefix, cpapi_v1.SURFACE),
            (f"/{settings.event_hub_path.strip('/')}", cpapi_v1.EVENT_HUB),
            (settings.ocmp_prefix, ocmp_v1_0.SURFACE),
            (settings.oscp_co_prefix, oscp_v2_0.CO_SURFACE),
            (settings.oscp_cp_prefix, oscp_v2_0.CP_SURFACE),
            (settings.uftp_prefix, uftp_v3_1.surface(app[uftp_v3_1.MARKET])),
            (settings.usef_prefix, usef_api.SURFACE),
        ],
    )
    return app


def create_worker(settings: Settings, name: str) -> web.Application:
    """A process that runs plan jobs, deliveries and the peer clock and serves nothing
    (`flexbridge worker`): the app's start-up and clean-up without routes or a socket."""
    app = web.Application()
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_background(name))
    return app
