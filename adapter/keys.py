"""Typed application state keys (aiohttp AppKey): the only home of app-wide state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from protocols.common.context import DB as DB  # one key object, shared with protocols

if TYPE_CHECKING:
    from adapter.auth import RateLimiter
    from adapter.background import Background
    from adapter.guards import CredentialCache, LoginCache
    from adapter.metrics import Metrics
    from adapter.settings import Settings
    from adapter.throttle import Brake

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
BRAKE: web.AppKey[Brake] = web.AppKey("brake")
CREDENTIAL_CACHE: web.AppKey[CredentialCache] = web.AppKey("credential_cache")
JWT_SECRET: web.AppKey[str] = web.AppKey("jwt_secret")
# Delivery, plan jobs, the peer clock and the solver pool (adapter/background.py).
BACKGROUND: web.AppKey[Background] = web.AppKey("background")
LOGIN_CACHE: web.AppKey[LoginCache] = web.AppKey("login_cache")
