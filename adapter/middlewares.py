"""Root middlewares, outermost first: read deadlines (adapter/connections.py), request id,
metrics, request limits, error envelope."""

from __future__ import annotations

import re
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from adapter.connections import read_deadline_middleware
from adapter.errors import error_response
from adapter.keys import METRICS, SETTINGS
from adapter.refusals import refusal_of
from protocols.common.context import REQUEST_ID as REQUEST_ID_KEY

REQUEST_ID = "X-Request-ID"
# The longest request target answered (aiohttp's own limit on a request line, kept): a
# longer one is refused 414 in the envelope of the surface its path names. `serve` parses
# targets up to adapter.connections.PARSED_TARGET_BYTES so that it can.
MAX_TARGET_BYTES = 8190
_ACCEPTABLE_ID = re.compile(r"[\x21-\x7e]{1,200}")


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Take the caller's X-Request-ID when it is sane, else make one; echo it on the reply."""
    given = request.headers.get(REQUEST_ID, "")
    request[REQUEST_ID_KEY] = given if _ACCEPTABLE_ID.fullmatch(given) else str(uuid.uuid4())
    response = await handler(request)
    response.headers.setdefault(REQUEST_ID, request[REQUEST_ID_KEY])
    return response


def _route_label(request: web.Request) -> str:
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.config_dict[METRICS]
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = _route_label(request)
        metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)
        metrics.requests.labels(request.method, route, str(status)).inc()


@web.middleware
async def request_limits_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse an overlong target or a declared oversize body before reading a byte of the
    body. A protocol surface does so itself (adapter.surfaces), to answer in the protocol's
    envelope."""
    if len(request.match_info.apps) > 1:  # a route of a mounted surface
        return await handler(request)
    try:
        refuse_long_target(request)
        refuse_declared_oversize(request)
    except web.HTTPException as exc:
        refusal = refusal_of(exc, request, "flexbridge")
        assert refusal is not None
        return error_response(refusal)
    return await handler(request)


def refuse_long_target(request: web.Request) -> None:
    """HTTP 414 for a request target over MAX_TARGET_BYTES."""
    length = len(request.raw_path.encode("utf-8", "surrogateescape"))
    if length > MAX_TARGET_BYTES:
        raise web.HTTPRequestURITooLong(
            text=f"the request target of {length} bytes is longer than {MAX_TARGET_BYTES}"
        )


def refuse_declared_oversize(request: web.Request) -> None:
    """HTTP 413 for a Content-Length over `max_body_bytes` (a chunked body is cut off at the
    limit while it is read)."""
    limit = request.config_dict[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(
            max_size=limit,
            actual_size=request.content_length,
            text=f"request body of {request.content_length} bytes exceeds {limit}",
        )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Whatever escapes a handler becomes the JSON envelope; never a traceback."""
    try:
        return await handler(request)
    except Exception as exc:
        refusal = refusal_of(exc, request, "flexbridge")
        if refusal is None:
            raise
        return error_response(refusal)


ROOT_MIDDLEWARES = (
    read_deadline_middleware,
    request_id_middleware,
    metrics_middleware,
    request_limits_middleware,
    error_middleware,
)
