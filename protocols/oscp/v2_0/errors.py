"""OSCP 2.0 error answers: `{"message": "..."}`, the status saying which kind of refusal
(400 invalid payload, 401 no Authorization, 403 unknown token, 501 no common version).

OSCP has one message per answer, so every problem found is named in it, field first:

    {"message": "forecasted_blocks[1].capacity: -1 is less than the minimum of 0;
                 type: 'consumption' is not one of ['CONSUMPTION', ...]"}

`X-Correlation-ID` carries the request id the answer is for.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from protocols.common.surface import Refusal
from store.errors import FieldIssue

MAX_NAMED = 20  # issues named in one message; the rest are counted


def message_of(message: str, issues: Sequence[FieldIssue]) -> str:
    if not issues:
        return message
    named = [f"{i.field}: {i.reason}" if i.field else i.reason for i in issues[:MAX_NAMED]]
    more = len(issues) - MAX_NAMED
    return "; ".join(named) + (f"; and {more} more" if more > 0 else "")


def message_reply(refusal: Refusal) -> web.Response:
    """The protocol's ErrorRenderer (protocols.common.surface); the refusal's code is not on
    the OSCP wire, the status says it."""
    request_id = refusal.request_id
    headers = {
        **(refusal.headers or {}),
        **({"X-Correlation-ID": request_id} if request_id else {}),
    }
    return web.json_response(
        {"message": message_of(refusal.message, refusal.issues)},
        status=refusal.status,
        headers=headers,
    )
