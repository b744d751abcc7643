"""Where a request's fields are (A.1): a GET's in the query string, each value JSON-decoded
where it can be and repeated keys a list, else in a JSON body (the docs show bodies); a
POST's in its JSON body, whatever the Content-Type says. And the `type` rule."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from protocols.usef.v1_v2_0.errors import UsefError
from protocols.usef.v1_v2_0.versions import VERSIONS


def _decoded(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


async def fields_of(request: web.Request) -> dict[str, Any]:
    if request.method == "GET" and request.query:
        fields: dict[str, Any] = {}
        for key in request.query:
            values = [_decoded(v) for v in request.query.getall(key)]
            fields[key] = values[0] if len(values) == 1 else values
        return fields
    body = await request.read()
    if not body.strip():
        return {}
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UsefError("INVALID_REQUEST", f"The body is not JSON: {exc}.") from None
    if not isinstance(parsed, dict):
        raise UsefError("INVALID_REQUEST", "The body must be a JSON object.")
    return parsed


def check_type(fields: dict[str, Any], endpoint: str, *, required: bool = True) -> None:
    """`type` must be "<Endpoint>Request" (NO_MESSAGE_TYPE when missing and `required`)."""
    wanted = f"{endpoint[:1].upper()}{endpoint[1:]}Request"
    given = fields.get("type")
    if given is None:
        if required:
            raise UsefError("NO_MESSAGE_TYPE", type=wanted)
        return
    if given != wanted:
        raise UsefError("INVALID_MESSAGE_TYPE", type=wanted)


def version_of(request: web.Request) -> str:
    """The API version the request's path names (its routes are made per version)."""
    return next(part for part in request.path.split("/") if part in VERSIONS)
