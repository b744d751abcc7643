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

from protocols.common.surface import Refusal
from store.errors import FieldIssue, ValidationError


class MessageRefused(ValidationError):
    """The message itself is wrong (its group or asset missing or unknown): raised inside its
    transaction so that nothing of it is kept, and answered by `items_reply` with every error
    of the message and of its items, `accepted` 0."""


def error_reply(refusal: Refusal, accepted: int | None = None) -> web.Response:
    code, request_id = refusal.code, refusal.request_id
    errors = [{"code": code, "message": i.reason, "path": i.field} for i in refusal.issues] or [
        {"code": code, "message": refusal.message, "path": ""}
    ]
    body: dict[str, object] = {"errors": errors}
    if accepted is not None:
        body["accepted"] = accepted
    headers = {
        **(refusal.headers or {}),
        **({"X-Correlation-ID": request_id} if request_id else {}),
    }
    return web.json_response(body, status=refusal.status, headers=headers)


def items_reply(request: web.Request, issues: Sequence[FieldIssue], accepted: int) -> web.Response:
    """The answer to a message of items: 204 when every item was good, else one 400 listing
    every error and how many items were kept."""
    if not issues:
        return web.Response(status=204)
    refusal = Refusal(
        400, "invalid", "see errors", issues, None, request.headers.get("X-Request-ID")
    )
    return error_reply(refusal, accepted)
