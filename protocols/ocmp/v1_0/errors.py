"""OCMP 1.0 error replies: one reply listing every error found (section 7: "The response
contains a list of errors as some data may be ok whilst other data is erroneous").

    {"errors": [{"code": "invalid", "message": "-1 is less than the minimum of 0",
                 "path": "forecasted_blocks[2].capacity"}],
     "accepted": 3}

`accepted` counts the items (forecast blocks, meter values) that were kept. Schema:
schemas/ocmp/1.0/error_reply.json.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from store.errors import FieldIssue


def error_reply(
    status: int,
    code: str,
    message: str,
    request_id: str | None,
    issues: Sequence[FieldIssue] = (),
    headers: dict[str, str] | None = None,
    accepted: int | None = None,
) -> web.Response:
    errors = [{"code": code, "message": i.reason, "path": i.field} for i in issues] or [
        {"code": code, "message": message, "path": ""}
    ]
    body: dict[str, object] = {"errors": errors}
    if accepted is not None:
        body["accepted"] = accepted
    headers = {**(headers or {}), **({"X-Correlation-ID": request_id} if request_id else {})}
    return web.json_response(body, status=status, headers=headers)


def items_reply(request: web.Request, issues: Sequence[FieldIssue], accepted: int) -> web.Response:
    """The answer to a message of items: 204 when every item was good, else one 400 listing
    every error and how many items were kept."""
    if not issues:
        return web.Response(status=204)
    request_id = request.headers.get("X-Request-ID")
    return error_reply(400, "invalid", "see errors", request_id, issues, None, accepted)
