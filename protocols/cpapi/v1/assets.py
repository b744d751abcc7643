"""Asset management API (CP-API 4.2)."""

from aiohttp import web

routes = web.RouteTableDef()
