"""The USEF API's answers to what it processed (A.1):

{"type": "<Endpoint>Response", "status": "PROCESSED",
 "message": "Request has been processed.", ...the payload}
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from protocols.usef.v1_v2_0.versions import response_type

PROCESSED = "Request has been processed."


def processed(endpoint: str, **payload: Any) -> web.Response:
    body = {"type": response_type(endpoint), **payload, "status": "PROCESSED"}
    body["message"] = PROCESSED
    return web.json_response(body)
