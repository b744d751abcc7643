"""Time series management API (CP-API 4.3)."""

from aiohttp import web

routes = web.RouteTableDef()
