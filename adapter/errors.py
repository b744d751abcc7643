"""The JSON error envelope of flexbridge's own (non-protocol) routes.

{"error": {"code": "...", "message": "...", "request_id": "...", "issues": [{"field", "reason"}]}}
Protocol surfaces answer in their own envelopes; this one catches what reaches the root.
"""

from __future__ import annotations

from aiohttp import web

from protocols.common.surface import Refusal


def error_response(refusal: Refusal) -> web.Response:
    body: dict[str, object] = {
        "code": refusal.code,
        "message": refusal.message,
        "request_id": refusal.request_id,
    }
    if refusal.issues:
        body["issues"] = [{"field": i.field, "reason": i.reason} for i in refusal.issues]
    return web.json_response({"error": body}, status=refusal.status, headers=refusal.headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    413: "body_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    431: "header_too_large",
}


def http_code(status: int) -> str:
    return _HTTP_CODES.get(status, "error" if status < 500 else "server_error")
